package runbook

import (
	"fmt"
	"slices"
	"strconv"
	"time"
)

// Runbook is a loaded, compiled runbook: every template and expression compiled,
// every reference checked. Nothing in it is evaluated yet.
type Runbook struct {
	File        string
	Hash        string // sha256 of the file, for the journal and --resume
	Name        string
	Description string
	Vars        []Var
	Secrets     []string      // env names whose values never appear in output
	Timeout     time.Duration // the whole run; 0 means none
	Lock        *Template     // lock: the name of what the runbook acts on; nil: the runbook file is locked
	LockPos     Pos           // where lock: is, for messages
	Rate        float64       // requests per second to each host; 0: adaptive
	Steps       []*Step
	// OnFailure runs when the main steps failed (exit 1, 75, 124), Finally
	// after every run; both under CleanupTimeout. Their indexes follow the
	// main steps'.
	Outputs        []Output // top-level outputs: what a step that uses this runbook offers
	OnFailure      []*Step
	Finally        []*Step
	CleanupTimeout time.Duration
	Env            []EnvVar // env names read strictly: they must be set before the run
	AuthEnv        []string // the env names credentials are read from (--sim stands in for them)
	Warnings       Errors
	secrets        []*Template // auth values: secrets wherever they came from
	joined         []joinedSecret
}

// AllSteps are the main steps, then on_failure's and finally's, in the order
// of their indexes.
func (rb *Runbook) AllSteps() []*Step {
	return slices.Concat(rb.Steps, rb.OnFailure, rb.Finally)
}

// EnvVar is an environment variable the runbook reads, where it first does.
type EnvVar struct {
	Name string
	Pos  Pos
}

// Var is one input. Its value may be a template over env and earlier vars.
type Var struct {
	Name     string
	Value    *Value
	Pos      Pos
	Required bool // declared null: a run needs --var
}

// Step is one step of a runbook.
type Step struct {
	Index           int       // 1-based
	Name            string    // as written
	Title           *Template // the name, when it has ${{ }}: rendered with the vars, and per for_each item
	ID              string
	Stage           Stage // which list the step is in
	Pos             Pos
	Kind            string
	Action          Action
	If              *Expr
	Guard           Guard
	Wait            Wait
	Retry           Retry
	Timeout         time.Duration
	Outputs         []Output
	ForEach         *Expr
	As              string
	Concurrency     int
	MaxFailures     *FailureBudget // for_each: failed items allowed before no new one starts; nil: none
	ContinueOnError bool
	Confirm         *Template // asked once before the step runs; nil: none
	Uses            *Uses     // uses: the runbook whose steps this step runs; nil for other kinds
	keepAnswer      bool      // a later expression may read its response's body or state
}

// Stage is the list a step is in: the main steps, or a cleanup list.
type Stage string

const (
	StageMain      Stage = ""
	StageOnFailure Stage = "on_failure"
	StageFinally   Stage = "finally"
)

// Guard is the check made before every send of a change.
type Guard struct {
	On       bool   // run before every send
	Check    Action // what the guard reads (by default the resource the change acts on); nil: nothing
	BusyWhen *Expr
	Interval time.Duration
	Timeout  time.Duration // 0: bounded by the step's deadline only
}

// Wait is the check made after a change until it has taken effect.
type Wait struct {
	On        bool
	Check     Action // what the wait reads; nil: nothing
	AfterSend bool   // the check reads response: it is made only after the change, and before is null
	Until     *Expr
	FailWhen  *Expr
	Interval  time.Duration
	Timeout   time.Duration
	Gone      bool // the default wait of a DELETE: until the check reads 404
	OwnCheck  bool // wait_for names its check: a status monitor the answer names is not read
	Off       bool // wait_for: false: not even a status monitor the answer names is waited for
}

// Retry is the re-send policy.
type Retry struct {
	Interval      time.Duration
	Backoff       float64
	MaxInterval   time.Duration
	Jitter        float64
	MaxAttempts   int // sends, the first included; 0 = bounded by the deadline only
	MaxRetryAfter time.Duration
	When          *Expr
	BusyAnswer    *Expr // which 409 and 422 answers mean busy; nil: the body says "busy"
	Idempotent    *bool
}

// Output is a named value computed after the step.
type Output struct {
	Name string
	Expr *Expr
}

// FailureBudget is a for_each step's max_failures: a number of items, or a
// percentage of the item count, rounded down ("10%" of 5 items is 0).
type FailureBudget struct {
	N       int
	Percent bool // N is a percentage of the items
}

// Allowed is how many of items may fail before no new item starts.
func (b FailureBudget) Allowed(items int) int {
	if b.Percent {
		return items * b.N / 100
	}
	return b.N
}

// String is the budget as written, with what it allows when a percentage.
func (b FailureBudget) String() string {
	if b.Percent {
		return fmt.Sprintf("%d%%", b.N)
	}
	return strconv.Itoa(b.N)
}
