package runbook

import (
	"regexp"
	"slices"
	"strings"
)

var (
	topKeys      = []string{"version", "name", "description", "vars", "secrets", "timeout", "lock", "defaults", "steps", "outputs", "on_failure", "finally", "cleanup_timeout", "ignore_warnings"}
	stepKeys     = []string{"name", "id", "if", "guard", "wait_for", "retry", "timeout", "outputs", "for_each", "as", "concurrency", "max_failures", "continue_on_error", "confirm", "ignore_warnings"}
	guardKeys    = []string{"check", "busy_when", "interval", "timeout"}
	waitKeys     = []string{"check", "until", "fail_when", "interval", "timeout"}
	retryKeys    = []string{"interval", "backoff", "max_interval", "jitter", "max_attempts", "max_retry_after", "when", "busy_answer", "idempotent"}
	defaultsKeys = []string{"guard", "wait", "retry", "timeout"}
	defGuardKeys = []string{"busy_when", "interval", "timeout"}
	defWaitKeys  = []string{"fail_when", "interval", "timeout"}
	// scopeNames are the names every expression may read; a for_each step's
	// adds its item (as:) and index.
	scopeNames = []string{"vars", "env", "steps", "run", "response", "state", "before", "attempt", "elapsed"}
	// reservedNames may not name a for_each item.
	reservedNames = append(slices.Clone(scopeNames), "index")
	// runFields are what run holds: the run's own state, for cleanup steps
	// above all.
	runFields = []string{"id", "name", "result", "error", "failed_step", "failed_step_id", "exit_code"}
	idPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// Vocabularizer is a kind with keys of its own below its key (such as http's
// method and url), named by place: "http", "defaults.http", ...
type Vocabularizer interface {
	Vocabulary() map[string][]string
}

// Vocabulary lists the keys the loader accepts in each place of a runbook, so a
// test can hold the JSON Schema to exactly the same language.
func Vocabulary(kinds map[string]Kind) map[string][]string {
	v := map[string][]string{
		"":               topKeys,
		"defaults":       slices.Clone(defaultsKeys),
		"defaults.guard": defGuardKeys,
		"defaults.wait":  defWaitKeys,
		"retry":          retryKeys,
		"step":           slices.Clone(stepKeys),
		"guard":          guardKeys,
		"wait_for":       waitKeys,
	}
	for name, k := range withUses(kinds) {
		v["step"] = append(v["step"], name)
		for _, f := range k.Fields() {
			if !slices.Contains(v["step"], f) {
				v["step"] = append(v["step"], f)
			}
		}
		if vz, ok := k.(Vocabularizer); ok {
			for place, keys := range vz.Vocabulary() {
				v[place] = keys
				if strings.HasPrefix(place, "defaults.") {
					v["defaults"] = append(v["defaults"], strings.TrimPrefix(place, "defaults."))
				}
			}
		}
	}
	return v
}
