package runbook

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// EventType names a decision of the executor.
type EventType string

// The executor's events. Every decision is one, so an operator (or a JSON consumer)
// can follow what the run is doing and why.
const (
	RunStarted     EventType = "run_started"
	StepStarted    EventType = "step_started"
	StepSkipped    EventType = "skipped"
	Probe          EventType = "probe"    // a guard or wait check read
	Attempt        EventType = "attempt"  // the step's action was sent (with its answer)
	Waiting        EventType = "waiting"  // about to wait: Reason and Delay say why and how long
	Retrying       EventType = "retry"    // about to re-send: Reason says why
	StepDone       EventType = "done"     // the step took effect
	StepFailed     EventType = "failed"   // the step did not take effect
	LogLine        EventType = "log"      // a log step's text
	Request        EventType = "request"  // one HTTP exchange or command run (for -v): Target, Status, Duration
	DryRun         EventType = "dry_run"  // --dry-run: the change that would have been sent (Target, Reason: body)
	Progress       EventType = "progress" // a for_each step's counts: Done, Failed, Stopped, Running of Total
	CleanupStarted EventType = "cleanup"  // on_failure or finally begins (Reason, Steps)
	RunDone        EventType = "run_done" // the run ended; Err is empty on success
)

// Event is one decision of the executor, with what it was about.
type Event struct {
	Time     time.Time
	RunID    string
	Type     EventType
	Run      string // the runbook's name (run events)
	Steps    int    // how many steps the run has (run_started)
	Step     int    // 1-based; 0 for run events
	StepName string
	StepID   string
	Item     string // the for_each item's value, "" when none
	ItemNo   int    // the for_each item's number, from 1 (its index + 1); 0 when none
	// Path places an event of a used runbook's step (uses:): the step numbers
	// from the top level down, "3/2" for step 2 of the runbook step 3 uses;
	// "" for a top-level step's. Step is then the top-level step's number.
	Path  string
	Phase Phase // which part of the step
	// Interrupted marks a failed or run_done event whose step or run was
	// stopped (by a signal, or cancelled) rather than failed.
	Interrupted bool
	Attempt     int
	Status      int
	Target      string        // "PUT https://host/path"
	Reason      string        // why: "busy (runstate=busy)", "423 Retry-After 30s"
	Delay       time.Duration // how long until the next check or send
	State       string        // a few fields of the last state seen
	Err         string
	Elapsed     time.Duration // since the step (or item, or run) started
	Duration    time.Duration // how long one request took (request events)

	// for_each counts (progress events, and a for_each step's done or failed);
	// Stopped items were in flight when a signal stopped the run.
	Total, Done, Failed, Stopped, Running int

	// A done step's (or item's) outputs, redacted, so a program reading the
	// events can take a created id.
	Outputs map[string]any

	// With Options.Verbose, a request event's bodies: the request's (a
	// command's input) and the answer's (its output), redacted and cut short.
	Sent, Received string
}

// outputsOf is a step result's outputs, nil when it has none.
func outputsOf(res map[string]any) map[string]any {
	if o, ok := res["outputs"].(map[string]any); ok && len(o) > 0 {
		return o
	}
	return nil
}

// Phase says which part of a step an event is about. The strings are those
// of JSON output's phase field.
type Phase string

const (
	PhaseGuard  Phase = "guard"  // the guard's reads and waits: is the resource busy?
	PhaseBefore Phase = "before" // the read of the wait's check just before the change
	PhaseChange Phase = "change" // the step's action: its attempts, and waits before sending again
	PhaseWait   Phase = "wait"   // the reads and waits until the change shows
	PhasePause  Phase = "pause"  // a host's Retry-After pause, which holds every request to it

	// A dry run's events: what a run would do.
	PhaseSend    Phase = "send"     // send a request
	PhaseRun     Phase = "run"      // run a command
	PhaseWaitFor Phase = "wait for" // resumed: wait for a change the stopped run had accepted
	PhaseCheck   Phase = "check"    // resumed: check whether a change the stopped run may have sent shows
)

// Observer receives the executor's events. It must be safe for concurrent use
// (for_each items run in parallel).
type Observer interface {
	Observe(Event)
}

// ObserverFunc adapts a function to Observer.
type ObserverFunc func(Event)

// Observe calls f.
func (f ObserverFunc) Observe(e Event) { f(e) }

// summaryKeys are the fields that say most about a resource's state, in the order
// they are shown.
var summaryKeys = []string{"runstate", "status", "state", "phase", "rate_limited", "busy", "error", "errors", "error_details"}

// Summarize renders a few fields of a state for messages: the fields that say
// whether it is busy or failed, not the whole body. Other fields are named, never
// shown: a state may hold a token.
func Summarize(state any) string { return summarize(state, nil) }

// summarize redacts each value before cutting it short, so no part of a secret
// survives the cut.
func summarize(state any, red *Redactor) string {
	switch s := state.(type) {
	case nil, unknown:
		return ""
	case map[string]any:
		var parts []string
		for _, k := range summaryKeys {
			v, ok := s[k]
			if !ok || quiet(k, v) {
				continue
			}
			parts = append(parts, k+"="+truncate(red.String(Text(v)), 60))
		}
		if len(s) == 0 {
			return "an empty object"
		}
		if len(parts) == 0 {
			keys := make([]string, 0, len(s))
			for k := range s {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			if len(keys) > 5 {
				keys = append(keys[:5], "...")
			}
			return "fields " + strings.Join(keys, ", ")
		}
		return strings.Join(parts, " ")
	case []any:
		return fmt.Sprintf("a list of %d", len(s))
	case string:
		return fmt.Sprintf("text of %d character%s", len(s), plural(len(s)))
	default:
		return truncate(red.String(Text(state)), 60)
	}
}

// quiet hides fields whose value says "nothing to report".
func quiet(key string, v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case bool:
		return !v && key != "busy"
	case string:
		return v == "" || (v == "false" && strings.HasPrefix(key, "error"))
	case []any:
		return len(v) == 0
	}
	return false
}
