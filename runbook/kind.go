package runbook

import (
	"context"
	"net/http"
	"time"
)

// Kind is a step kind (http, exec, sleep, log, assert). It decodes its own YAML
// into an Action; the executor applies the guard, retry and wait policy to every
// kind's outcome alike. main registers kinds in a literal map.
type Kind interface {
	// Fields lists the step keys besides the kind's own name that it reads, such as
	// "message" for assert; the loader refuses any other key.
	Fields() []string
	// Decode decodes one step's action or one probe. Problems are recorded with
	// d.Errorf; a nil Action with a nil error means they were recorded.
	Decode(d *Decoder) (Action, error)
}

// Defaulter is a kind with a section under defaults: (defaults.http,
// defaults.exec). Kinds may share a section (exec and shell).
type Defaulter interface {
	DefaultsSection() string
	// DecodeDefaults decodes the section; d.Node.IsZero() when it is absent. What
	// it returns is handed back in every Decoder.Defaults of the kinds sharing it.
	DecodeDefaults(d *Decoder) (any, error)
}

// Pacer is a kind's defaults that cap the run's request rate (defaults.http.rate).
type Pacer interface {
	RequestRate() float64 // requests per second; 0: not capped (adaptive)
}

// Action is what a step does, compiled at load.
type Action interface {
	Info() Info
	// Prepare renders the action's templates for one attempt. Evaluation errors
	// fail the step.
	Prepare(s Scope) (Call, error)
	// Describe says what the action would do, rendered where the scope allows
	// (for plan): "PUT https://host/x {"runstate":"running"}".
	Describe(s Scope) string
}

// Info tells the executor how to treat an action.
type Info struct {
	Method       string // HTTP method; "" for other kinds
	Change       bool   // a change sent to an API (PUT, POST, PATCH, DELETE): guarded by default, its answer judged as a change, re-sent with care
	Idempotent   bool   // safe to re-send after an ambiguous failure
	Probe        Action // the default wait check (a GET of the same URL), or nil
	Guard        Action // the default guard check: the resource the change acts on (for a POST to a collection, its parent), or nil
	WaitGone     bool   // with no wait_for, wait until the check reads 404 (DELETE)
	Reads        bool   // its outcome carries a state, so it can serve as a check
	SideEffects  bool   // it may change something outside (a change, a command, a sleep): not done by --dry-run
	LocalCommand bool   // it runs a program on this machine (exec, shell), which --sim cannot stand in for
	Keyed        bool   // it sends an idempotency key, the same on every re-send (IdempotencyKey)
	// Monitor makes the read of a status monitor a change's answer named
	// (Outcome.Monitor), which its wait polls; nil: the kind has none.
	Monitor func(url string) Action
}

// Budget is a server's rate limit as its answer tells it: requests left in
// the window, and the time until the window resets (0: not said).
type Budget struct {
	Remaining int64
	Reset     time.Duration
}

// Call is one prepared attempt of an action.
type Call interface {
	Target() Target
	Do(ctx context.Context) *Outcome
}

// Target describes a prepared call for events, dry runs and host pauses.
type Target struct {
	Method string // "GET", "PUT", ... or the kind's name
	URL    string // the URL, or the command line
	Host   string // requests to one host share Retry-After pauses
	Body   string // the request body, for --dry-run
	Shown  string // request headers shown with -v, "Name: value" lines; none may be a secret
}

func (t Target) String() string {
	if t.Method == "" {
		return t.URL
	}
	return t.Method + " " + t.URL
}

// Outcome is the plain result of one call: what happened, with no policy.
type Outcome struct {
	Status     int            // HTTP status, 0 when there was none
	ExitCode   int            // for exec
	Header     http.Header    // response headers
	Body       any            // the body, JSON-decoded when it is JSON, else text
	Snippet    string         // the start of the raw body, for messages
	Raw        []byte         // the body as received (a command's stdout), for -v
	Accepted   bool           // the kind's own success (a status in expect, exit 0)
	State      any            // the JSON body of a successful read, else nil
	Response   map[string]any // `response` in expressions
	RetryAfter *time.Duration // a readable Retry-After, relative to now
	Budget     *Budget        // what the server said of its rate limit; nil: nothing
	Err        error          // the call could not complete (network, timeout, start)
	Written    bool           // with Err: the request was written, so it may have taken effect
	Permanent  bool           // with Err: retrying cannot help (a certificate, a body too large)
	Elapsed    time.Duration
	Message    string // text for the operator, such as a log step's line
	Said       string // what the server said in an error body, redacted and short (set by the executor)
	// Monitor is the status monitor a change's accepted answer names
	// (Operation-Location, Azure-AsyncOperation, a 202's Location), resolved
	// and checked; "" when none. MonitorBad says why one that was named
	// cannot be polled.
	Monitor    string
	MonitorBad string
	// Text is the start of an answer that should have been JSON and was not
	// (a 2xx HTML page, a command's plain output), for the message of a
	// condition that reads its state; "" when it was JSON or empty.
	Text string

	// Decode, when set, builds a large answer's body into Body, State and
	// Response: the executor calls it once the run's budget for decoded
	// answers has room for Cost bytes, its estimated size decoded.
	Decode func()
	Cost   int64
}

// idemKey is the scope's key for the pipeline's idempotency key. No
// expression can name it.
const idemKey = "\x00idempotency_key"

// IdempotencyKey is the idempotency key of the change being prepared, for a
// kind's Prepare: fresh for each step (each for_each item), the same on every
// re-send and after a resume; "" when the action is not Keyed.
func IdempotencyKey(s Scope) string {
	k, _ := s[idemKey].(string)
	return k
}
