package runbook

// The exit codes as a table, for what runs runbook unattended: what each code
// means and what a scheduler (cron, a systemd timer, a Kubernetes CronJob, a
// Nomad periodic job) should do about it. The manifests in deploy/ are held to
// this table by their tests, and docs/operations.md ("Exit codes and
// schedulers") says the same in words.

// RetryAdvice is what a scheduler should do when a run exits with a code.
type RetryAdvice int

const (
	// Success: every step took effect; nothing to do.
	Success RetryAdvice = iota
	// RetryHelps: the API, a deadline or another run was in the way. The same
	// command later may succeed, and with --resume=auto it continues the run
	// after its last completed step.
	RetryHelps
	// RetryCannotHelp: the command line, the runbook, the configuration or the
	// state dir is wrong. The same command fails the same way until a person
	// fixes something, so the scheduler should stop retrying and report.
	RetryCannotHelp
	// Resumable: a signal stopped the run; the journal says where. Whoever sent
	// the signal decides: a scheduler that stopped the run itself (a drain, an
	// eviction, a stop) runs it again, and --resume=auto continues it. Left to
	// the scheduler's default.
	Resumable
)

func (a RetryAdvice) String() string {
	switch a {
	case Success:
		return "success"
	case RetryHelps:
		return "retry helps"
	case RetryCannotHelp:
		return "retry cannot help"
	case Resumable:
		return "resumable"
	}
	return "unknown"
}

// ExitCodeInfo describes one exit code of the command line.
type ExitCodeInfo struct {
	Code    int
	Name    string // the constant's name in errors.go, such as "ExitBusy"
	Meaning string
	Advice  RetryAdvice
}

// exitCodes is every exit code the command line uses, in ascending order.
var exitCodes = []ExitCodeInfo{
	{ExitOK, "ExitOK", "every step took effect", Success},
	{ExitFailed, "ExitFailed", "a step failed: a validation error, another 4xx, fail_when, assert, a non-idempotent change not re-sent", RetryHelps},
	{ExitUsage, "ExitUsage", "the command line is wrong", RetryCannotHelp},
	{ExitInvalid, "ExitInvalid", "the runbook is invalid", RetryCannotHelp},
	{ExitNoInput, "ExitNoInput", "the runbook cannot be read", RetryCannotHelp},
	// A full disk or an I/O error on the state dir: nothing more was sent, and
	// a retry on the same volume fails at its first record. Once a person has
	// fixed it, the next scheduled run resumes.
	{ExitIOErr, "ExitIOErr", "the journal cannot be written (a full disk, an I/O error); nothing more was sent", RetryCannotHelp},
	{ExitBusy, "ExitBusy", "still busy, locked or rate limited when the retry budget or max_retry_after ran out, or another run holds the lock, or a step waits for a confirmation no one could give", RetryHelps},
	{ExitConfig, "ExitConfig", "missing configuration (an environment variable the runbook reads) or a state dir refused", RetryCannotHelp},
	{ExitDeadline, "ExitDeadline", "a step's or the run's deadline passed", RetryHelps},
	{ExitSIGINT, "ExitSIGINT", "stopped by SIGINT", Resumable},
	{ExitSIGTERM, "ExitSIGTERM", "stopped by SIGTERM", Resumable},
}

// ExitCodes returns every exit code the command line uses, in ascending order.
func ExitCodes() []ExitCodeInfo {
	return append([]ExitCodeInfo(nil), exitCodes...)
}

// ExitCodesAdvised returns the codes with the given advice, in ascending order.
func ExitCodesAdvised(a RetryAdvice) []int {
	var codes []int
	for _, e := range exitCodes {
		if e.Advice == a {
			codes = append(codes, e.Code)
		}
	}
	return codes
}
