package steps

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/runbookhq/runbook/runbook"
)

// Sleep is the sleep step kind: `sleep: 30s`.
type Sleep struct {
	Clock runbook.Clock // nil: real time
}

// Log is the log step kind: `log: "text ${{ expr }}"`.
type Log struct{}

// Assert is the assert step kind: `assert: expr` with an optional `message`.
type Assert struct{}

// Kinds is the registry of step kinds for one run. Every http step and check
// shares client; clock is the run's time (real, or the simulator's for --sim).
func Kinds(client *http.Client, clock runbook.Clock) map[string]runbook.Kind {
	return map[string]runbook.Kind{
		"http":   &HTTP{Client: client, Clock: clock},
		"exec":   &Exec{Clock: clock},
		"shell":  &Exec{Shell: true, Clock: clock},
		"sleep":  Sleep{Clock: clock},
		"log":    Log{},
		"assert": Assert{},
	}
}

var (
	_ runbook.Kind = Sleep{}
	_ runbook.Kind = Log{}
	_ runbook.Kind = Assert{}
)

func (Sleep) Fields() []string  { return nil }
func (Log) Fields() []string    { return nil }
func (Assert) Fields() []string { return []string{"message"} }

// Decode reads the duration.
func (s Sleep) Decode(d *runbook.Decoder) (runbook.Action, error) {
	dur, ok := d.Duration(d.Node, "sleep")
	if !ok {
		return nil, nil
	}
	clock := s.Clock
	if clock == nil {
		clock = runbook.RealClock{}
	}
	return sleepAction{d: dur, clock: clock}, nil
}

type sleepAction struct {
	d     time.Duration
	clock runbook.Clock
}

func (a sleepAction) Info() runbook.Info                          { return runbook.Info{SideEffects: true} }
func (a sleepAction) Prepare(runbook.Scope) (runbook.Call, error) { return a, nil }
func (a sleepAction) Describe(runbook.Scope) string               { return "sleep " + runbook.FormatDuration(a.d) }
func (a sleepAction) Target() runbook.Target {
	return runbook.Target{URL: "sleep " + runbook.FormatDuration(a.d)}
}

// Do waits, or stops early when the step's context ends.
func (a sleepAction) Do(ctx context.Context) *runbook.Outcome {
	if err := a.clock.Sleep(ctx, a.d); err != nil {
		// Say why (a deadline, a signal), not Go's "context deadline exceeded".
		return &runbook.Outcome{Err: fmt.Errorf("cut short: %w", context.Cause(ctx))}
	}
	return &runbook.Outcome{Accepted: true}
}

// Decode compiles the text template.
func (Log) Decode(d *runbook.Decoder) (runbook.Action, error) {
	t := d.Template(d.Node, "log")
	if t == nil {
		return nil, nil
	}
	return logAction{t}, nil
}

type logAction struct{ text *runbook.Template }

func (a logAction) Info() runbook.Info { return runbook.Info{} }
func (a logAction) Describe(s runbook.Scope) string {
	if text, err := a.text.String(s); err == nil {
		return "log " + text
	}
	return "log " + a.text.Source
}
func (a logAction) Prepare(s runbook.Scope) (runbook.Call, error) {
	text, err := a.text.String(s)
	if err != nil {
		return nil, err
	}
	return done{target: "log", outcome: runbook.Outcome{Accepted: true, Message: text}}, nil
}

// Decode compiles the condition and the optional message.
func (Assert) Decode(d *runbook.Decoder) (runbook.Action, error) {
	a := assertAction{cond: d.Expr(d.Node, "assert", true)}
	if n, ok := d.Field("message"); ok {
		a.message = d.Template(n, "message")
	}
	if a.cond == nil {
		return nil, nil
	}
	return a, nil
}

type assertAction struct {
	cond    *runbook.Expr
	message *runbook.Template
}

func (a assertAction) Info() runbook.Info            { return runbook.Info{} }
func (a assertAction) Describe(runbook.Scope) string { return "assert " + a.cond.Source }

// Prepare evaluates the assertion: its outcome is decided before anything is done.
func (a assertAction) Prepare(s runbook.Scope) (runbook.Call, error) {
	ok, err := a.cond.Bool(s)
	if err != nil {
		return nil, err
	}
	if ok {
		return done{target: "assert " + a.cond.Source, outcome: runbook.Outcome{Accepted: true}}, nil
	}
	msg := "assertion failed: " + a.cond.Source
	if a.message != nil {
		text, err := a.message.String(s)
		if err != nil {
			return nil, err
		}
		msg = "assertion failed: " + text
	}
	return done{target: "assert " + a.cond.Source, outcome: runbook.Outcome{Message: msg}}, nil
}

// done is a call whose outcome is known when it is prepared.
type done struct {
	target  string
	outcome runbook.Outcome
}

func (c done) Target() runbook.Target { return runbook.Target{URL: c.target} }
func (c done) Do(context.Context) *runbook.Outcome {
	o := c.outcome
	return &o
}
