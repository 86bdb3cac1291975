package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/runbookhq/runbook/runbook"
	"github.com/runbookhq/runbook/sim"
	"github.com/runbookhq/runbook/steps"
	"github.com/runbookhq/runbook/ui"
)

// runFlags are the flags of `runbook run`.
type runFlags struct {
	vars     []string
	varFiles []string
	sim      bool
	simSpeed float64
	simLog   string
	timeout  time.Duration
	output   string
	quiet    bool
	verbose  bool
	stateDir string
	resume   resumeMode
	dryRun   bool
	waitLock time.Duration
	keepRuns int
	confirm  []string // steps approved in advance, by id or index
	yes      bool     // every confirm approved in advance

	metricsFile string
	pushgateway string
}

func runCommand(ctx context.Context, environ []string, stdout, stderr io.Writer) *cobra.Command {
	var f runFlags
	c := &cobra.Command{
		Use:   "run FILE",
		Short: "Run a runbook",
		Long: `Run the steps of a runbook in order. Each change waits until its resource is not
busy, and each step is done only when the resource shows it took effect.

A terminal gets a live view; anything else gets one timestamped line per event.
Every run is journaled under the state dir and holds a lock on its runbook.

Exit codes:
  0    every step took effect
  1    a step failed (validation error, other 4xx, fail_when, assert, ...)
  2    the command line is wrong
  65   the runbook is invalid (run "runbook validate FILE")
  66   the runbook cannot be read
  74   the journal cannot be written: nothing more was sent (fix it, then --resume)
  75   still busy or rate limited when the retries ran out, another run holds the lock,
       or a step's confirm could not be asked (no terminal): --resume --confirm ID
  78   missing configuration (an environment variable the runbook reads)
  124  a step's or the run's deadline passed
  130  stopped by SIGINT (143: SIGTERM); continue with --resume`,
		Example: `  runbook run --sim examples/restart-environment.yaml
  SKYTAP_USER=me SKYTAP_TOKEN=... runbook run restart.yaml --var env_id=1234567
  runbook run -q --wait-lock 10m nightly.yaml      # from cron: mails only on failure`,
		Args: func(cmd *cobra.Command, args []string) error {
			if f.resume != resumeNo && len(args) > 1 && slices.Contains(args, "auto") {
				return &runbook.UsageError{Msg: "write --resume=auto, with the =: a bare --resume takes no value, and auto was read as a file"}
			}
			return fileArgs("run", 1, 1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRunbook(ctx, f, args[0], environ, stdout, stderr)
		},
	}
	fl := c.Flags()
	fl.StringArrayVar(&f.vars, "var", nil, "set a var: --var name=value (repeatable)")
	fl.StringArrayVar(&f.varFiles, "var-file", nil, "set vars from a YAML or JSON map (repeatable; later files and --var win)")
	fl.BoolVar(&f.sim, "sim", false, "run against the built-in simulator (no account needed)")
	fl.Float64Var(&f.simSpeed, "sim-speed", sim.RehearsalSpeed, "with --sim: how many times faster than real time the rehearsal runs")
	fl.StringVar(&f.simLog, "sim-log", "", "with --sim: when the run ends, write what the simulator saw to this file (one JSON request a line, secrets hidden)")
	fl.DurationVar(&f.timeout, "timeout", 0, "deadline for the whole run (overrides the runbook's timeout)")
	fl.StringVar(&f.output, "output", "auto", "auto (live view on a terminal, else plain), human, plain, or json (events on stdout)")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "print nothing on success; on failure, the failing step's story")
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "print every request and its answer (plain and json output)")
	fl.StringVar(&f.stateDir, "state-dir", "", "where journals and locks live (default $XDG_STATE_HOME/runbook or ~/.local/state/runbook)")
	fl.Var(&f.resume, "resume", "continue the last unfinished run of this runbook after its last completed step (exit 2 if there is none);\n--resume=auto: continue it if there is one, else start a new run")
	fl.Lookup("resume").NoOptDefVal = "true"
	fl.BoolVar(&f.dryRun, "dry-run", false, "send reads only; print the changes it would send")
	fl.DurationVar(&f.waitLock, "wait-lock", 0, "wait up to this long for another run of the runbook to finish")
	fl.StringArrayVar(&f.confirm, "confirm", nil, "approve the confirm of this step in advance, by id (or number when it has none); repeatable")
	fl.BoolVar(&f.yes, "yes", false, "approve every step's confirm in advance")
	fl.IntVar(&f.keepRuns, "keep-runs", 100, "journals of this runbook to keep; older ones are removed when a run starts (0: keep all)")
	fl.StringVar(&f.metricsFile, "metrics-file", "", "after the run, write its metrics to this file (node exporter textfile format, written atomically)")
	fl.StringVar(&f.pushgateway, "pushgateway", "", "after the run, push its metrics to this Prometheus Pushgateway URL (job runbook, label runbook)")
	return c
}

// runRunbook is `runbook run`: load, lock, journal, observe, run.
func runRunbook(ctx context.Context, f runFlags, file string, environ []string, stdout, stderr io.Writer) (err error) {
	if err := checkOutput(f.output); err != nil {
		return err
	}
	if f.keepRuns < 0 {
		return &runbook.UsageError{Msg: fmt.Sprintf("--keep-runs %d: give how many journals to keep, or 0 to keep all", f.keepRuns)}
	}
	if f.pushgateway != "" {
		if err := checkGateway(f.pushgateway); err != nil {
			return err
		}
	}
	overrides, err := parseVars(f.vars)
	if err != nil {
		return err
	}
	client := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	if f.simSpeed <= 0 {
		return &runbook.UsageError{Msg: "--sim-speed must be more than 0"}
	}
	if f.simLog != "" && !f.sim {
		return &runbook.UsageError{Msg: "--sim-log writes the simulator's log: it needs --sim"}
	}
	switch {
	case f.timeout < 0:
		return &runbook.UsageError{Msg: "--timeout must not be negative (0 or none: the runbook's own timeout)"}
	case f.waitLock < 0:
		return &runbook.UsageError{Msg: "--wait-lock must not be negative"}
	}
	var clock runbook.Clock = runbook.RealClock{}
	simClock := sim.NewRehearsalClock(f.simSpeed)
	if f.sim {
		clock = simClock
	}
	rb, err := runbook.LoadFile(file, steps.Kinds(client, clock))
	if err != nil {
		return err
	}
	if overrides, err = withVarFiles(rb, f.varFiles, overrides); err != nil {
		return err
	}
	if err := rb.CheckConfirm(f.confirm); err != nil {
		return err
	}
	// -q prints nothing on success, warnings included (validate and other runs
	// show them), except an insecure setting: it must nag on every run.
	printWarnings(stderr, rb, f.quiet)
	// From here on every outcome is a run that monitoring must hear of (a
	// lock held by another run included); a dry run is not one.
	var exp *export
	if !f.dryRun {
		exp = newExport(f, rb, file)
	}
	if exp != nil {
		defer func() { exp.finish(ctx, err, ui.Sanitized(stderr)) }()
	}
	// Notes on how the run goes (waiting for the lock, the simulator's address)
	// are not printed with -q, so cron mails only a failure, nor with JSON
	// events, whose reader wants nothing else.
	notes := ui.Sanitized(stderr)
	if f.quiet || f.output == "json" {
		notes = io.Discard
	}
	env := envMap(environ)
	var standIns []string
	if f.sim {
		standIns = simStandIns(rb, env)
	}
	opt := runbook.Options{Vars: overrides, Env: env, Timeout: f.timeout, Clock: clock, DryRun: f.dryRun, Verbose: f.verbose, RunID: runbook.NewRunID(time.Now()),
		Approve: f.confirm, Yes: f.yes, Confirm: confirmer(f, os.Stdin, stderr)}
	// A wrong --var or a missing environment variable is told before the lock is
	// taken or waited for. A resume's vars are in the journal, read under the
	// lock: Run checks them then.
	if f.resume == resumeNo {
		if err := rb.Check(opt); err != nil {
			return err
		}
	}
	if f.sim {
		if err := simRunsNoCommands(rb, rb.Describer(opt)); err != nil {
			return err
		}
		srv, stop, err := sim.Rehearse(client, simClock, standIns, notes)
		if err != nil {
			return err
		}
		defer stop()
		if f.simLog != "" {
			// After the run and its cleanup, before the server closes.
			defer func() {
				if werr := writeSimLog(f.simLog, srv.Log(), rb, env); werr != nil {
					fmt.Fprintf(ui.Sanitized(stderr), "runbook: --sim-log: %v\n", werr)
				}
			}()
		}
	}
	// The lock: name, from the vars as the command line gives them: the lock
	// is taken before a resume reads the stopped run's.
	lockName, err := rb.LockName(opt)
	if err != nil {
		return err
	}
	// What --resume=auto decided, when it starts a new run; a resume is told
	// by the executor.
	startNote := ""
	stateDir := f.stateDir
	if stateDir == "" {
		if stateDir, err = runbook.DefaultStateDir(env); err != nil {
			return err
		}
	}
	{
		// A dry run takes no lock and writes no journal, but it reads the last
		// run: what a resume would do, and a Retry-After pause to wait out.
		store, err := runbook.OpenStore(stateDir, f.stateDir != "", file, f.sim)
		if err != nil {
			return err
		}
		if lockName != "" {
			store.Named(lockName)
		}
		if exp != nil {
			// Before the lock: a run refused it still exports the last success.
			exp.store = store
		}
		if !f.dryRun {
			lock, err := store.Lock(ctx, f.waitLock, notes)
			if err != nil {
				return err
			}
			defer lock.Release()
		}
		last, err := store.LastSummary()
		if err != nil {
			return err
		}
		resume := f.resume == resumeYes
		if f.resume == resumeAuto {
			_, _, _, resume = last.Unfinished()
			if !resume {
				startNote = "no unfinished run to resume; starting a new one"
				if err := rb.Check(opt); err != nil {
					return err
				}
			}
		}
		if resume {
			res, err := runbook.FindResume(last, rb)
			if err != nil {
				return err
			}
			// overrides is opt.Vars: the run gets the merged values.
			if err := res.MergeVars(overrides); err != nil {
				return err
			}
			// Its journal is under this lock name; its vars name it too unless
			// the environment changed since.
			if again, err := rb.LockName(opt); err != nil {
				return err
			} else if again != lockName {
				return &runbook.UsageError{Msg: fmt.Sprintf("the stopped run's vars name its lock %q, not %q as this command line does: give the vars lock: reads with --var", again, lockName)}
			}
			opt.Resume = res
		} else if id, how, step, ok := last.Unfinished(); ok && !f.dryRun {
			fmt.Fprintf(notes, "runbook: run %s %s at step %d and is not finished; this run starts from the first step, and that one can no longer be resumed (to continue it instead: %s)\n",
				id, how, step, resumeCommand(f, file))
		}
		opt.Pauses = last.Pauses(time.Now())
		if !f.dryRun {
			// The id is the run's start under the lock: a run that waited for
			// it began after the one it waited for.
			opt.RunID = runbook.NewRunID(time.Now())
			journal, err := store.Create(opt.RunID)
			if err != nil {
				return err
			}
			defer journal.Close()
			opt.Journal = journal
			protect := ""
			if last != nil {
				protect = last.Path
			}
			if removed, err := store.Prune(f.keepRuns, protect); err != nil {
				fmt.Fprintf(ui.Sanitized(stderr), "runbook: warning: old journals were not all removed (--keep-runs %d): %v\n", f.keepRuns, err)
			} else if len(removed) > 0 {
				fmt.Fprintf(notes, "runbook: removed %d old journal(s), keeping the last %d (--keep-runs)\n", len(removed), f.keepRuns)
			}
		}
	}
	obs, stop := observer(f, rb, env, clock, stdout, stderr)
	if startNote != "" {
		obs = noteOnStart(obs, startNote)
	}
	if exp != nil {
		obs = exp.observe(obs)
	}
	opt.Observer = obs
	err = rb.Run(ctx, opt)
	stop()
	if opt.Journal != nil {
		// For history; a journal that failed takes no more.
		opt.Journal.Exit(opt.RunID, runbook.ExitCode(err))
	}
	var se *runbook.StepError
	var ce *runbook.ConfirmError
	if errors.As(err, &ce) && !ce.Asked && errors.As(err, &se) && opt.Journal != nil {
		return &hinted{err: err, hint: fmt.Sprintf("stopped before step %d %q, which asks for confirmation; once you have checked it, continue with: %s",
			se.Index, se.Step, resumeCommand(f, file, "--confirm", ce.Step))}
	}
	if errors.As(err, &se) && opt.Journal != nil {
		switch se.Why {
		case runbook.Interrupted, runbook.DeadlinePassed, runbook.StillBusy, runbook.JournalBroken:
			hint := fmt.Sprintf("stopped at step %d %q; continue with: %s", se.Index, se.Step, resumeCommand(f, file))
			if !se.Until.IsZero() {
				hint = fmt.Sprintf("stopped at step %d %q; the API asked for a pause until %s, which a resume waits out; continue with: %s",
					se.Index, se.Step, se.Until.Local().Format("15:04:05"), resumeCommand(f, file))
			}
			return &hinted{err: err, hint: hint}
		}
	}
	return err
}

// checkOutput refuses an --output that is not one of the modes.
func checkOutput(output string) error {
	switch output {
	case "auto", "human", "plain", "json":
		return nil
	}
	return &runbook.UsageError{Msg: fmt.Sprintf("--output %q: use auto, human, plain or json", output)}
}

// resumeMode is the value of --resume: absent, given alone, or auto.
type resumeMode string

const (
	resumeNo   resumeMode = ""
	resumeYes  resumeMode = "true"
	resumeAuto resumeMode = "auto"
)

func (m *resumeMode) String() string { return string(*m) }

// Type is "bool" so that help shows a bare --resume, which is how it is mostly given.
func (m *resumeMode) Type() string { return "bool" }

func (m *resumeMode) Set(v string) error {
	switch v {
	case "true", "auto":
		*m = resumeMode(v)
	case "false":
		*m = resumeNo
	default:
		return fmt.Errorf("use --resume (continue the last unfinished run, exit 2 if there is none) or --resume=auto (continue it if there is one, else start a new run)")
	}
	return nil
}

// noteOnStart puts note on the run's run_started event, where the executor
// says that it resumes a run: one place, which every output mode shows (JSON
// as the event's reason, plain text on the run's first line).
func noteOnStart(obs runbook.Observer, note string) runbook.Observer {
	return runbook.ObserverFunc(func(e runbook.Event) {
		if e.Type == runbook.RunStarted && e.Reason == "" {
			e.Reason = note
		}
		obs.Observe(e)
	})
}

// resumeCommand is the command line that continues this run.
func resumeCommand(f runFlags, file string, flags ...string) string {
	again := "runbook run --resume"
	if f.stateDir != "" {
		again += " --state-dir " + f.stateDir
	}
	if f.sim {
		again += " --sim"
		if f.simSpeed != sim.RehearsalSpeed {
			again += fmt.Sprintf(" --sim-speed %g", f.simSpeed)
		}
	}
	return strings.Join(append(append([]string{again}, flags...), file), " ")
}

// hinted is an error followed by what to do next; it keeps the error's exit code.
type hinted struct {
	err  error
	hint string
}

func (h *hinted) Error() string { return h.err.Error() + "\nrunbook: " + h.hint }

func (h *hinted) Unwrap() error { return h.err }

// observer picks how the run is shown: JSON events on stdout; on stderr the live
// view (a terminal that takes colour, or --output human), plain lines, or, with
// -q, nothing but a failing step's story.
func observer(f runFlags, rb *runbook.Runbook, env map[string]string, clock runbook.Clock, stdout, stderr io.Writer) (runbook.Observer, func()) {
	getenv := func(k string) string { return env[k] }
	switch {
	case f.output == "json":
		return ui.NewJSON(stdout, f.verbose), func() {}
	case f.quiet:
		return ui.NewQuiet(stderr), func() {}
	case f.output == "human" || (f.output == "auto" && !f.verbose && ui.Colour(stderr, getenv)):
		names := make([]string, len(rb.Steps))
		for i, s := range rb.Steps {
			names[i] = s.Name
		}
		name := rb.Name
		if name == "" {
			name = rb.File
		}
		live := ui.NewLive(stderr, ui.NewStyles(stderr, getenv), clock.Now, func() int { return ui.Width(stderr) }, name, names)
		live.Start()
		return live, live.Stop
	}
	return ui.NewPlain(stderr, f.verbose), func() {}
}

// simStandIns sets the credentials the runbook reads that are not set (or are
// empty), since the simulator accepts any, and names them. Other variables
// must be set as for a real run.
func simStandIns(rb *runbook.Runbook, env map[string]string) []string {
	var standIns []string
	for _, name := range rb.AuthEnv {
		if strings.TrimSpace(env[name]) == "" {
			env[name] = "sim-" + strings.ToLower(name)
			standIns = append(standIns, name)
		}
	}
	return standIns
}

// simRunsNoCommands refuses a rehearsal that would run commands: the simulator
// stands in for the HTTP API only, and a command would act on the real world
// (kubectl scale against a real cluster) while the operator thinks nothing is.
// Each command is shown as it would run (describe).
func simRunsNoCommands(rb *runbook.Runbook, describe func(*runbook.Step, runbook.Action) string) error {
	var uses []string
	var walk func(rb *runbook.Runbook)
	walk = func(rb *runbook.Runbook) {
		for _, s := range rb.AllSteps() {
			for _, c := range []struct {
				a    runbook.Action
				what string
			}{{s.Action, "runs"}, {s.Guard.Check, "checks with"}, {s.Wait.Check, "waits with"}} {
				if c.a != nil && c.a.Info().LocalCommand {
					uses = append(uses, fmt.Sprintf("%s:%d:%d: step %d %s %s", rb.File, s.Pos.Line, s.Pos.Col, s.Index, c.what, describe(s, c.a)))
				}
			}
			if s.Uses != nil {
				// A used runbook's commands would run for real too.
				walk(s.Uses.Book)
			}
		}
	}
	walk(rb)
	if len(uses) == 0 {
		return nil
	}
	return &runbook.UsageError{Msg: fmt.Sprintf("--sim stands in for the HTTP API only, not for commands, which would run for real:\n%s\nrun it without --sim (with --dry-run, it shows the changes and commands without making them)", strings.Join(uses, "\n"))}
}

// writeSimLog writes a rehearsal's request log, one JSON entry a line, with
// the values of the runbook's secrets and credentials hidden as in its
// output: a body may carry one.
func writeSimLog(file string, log []sim.Entry, rb *runbook.Runbook, env map[string]string) error {
	red := runbook.NewRedactor()
	for _, name := range slices.Concat(rb.Secrets, rb.AuthEnv) {
		red.Add(env[name])
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for _, e := range log {
		e.Path, e.Query, e.Body, e.User = red.String(e.Path), red.String(e.Query), red.String(e.Body), red.String(e.User)
		if err := enc.Encode(e); err != nil {
			return err
		}
	}
	return os.WriteFile(file, b.Bytes(), 0o600)
}
