package runbook

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"
)

// A step with `confirm:` asks a person before it runs: at a terminal the run
// waits for a yes; with no one to ask (cron, CI, JSON output) it stops before
// the step (exit 75) unless --confirm or --yes approved it in advance.

// Confirm is the event of a step's confirm: Reason is its text, rendered and
// redacted, Target what the step will do, Phase how it is decided.
const Confirm EventType = "confirm"

// How a confirm is decided (the Phase of its event).
const (
	PhaseAsk      Phase = "ask"       // the person at the terminal is asked now
	PhaseGiven    Phase = "given"     // approved in advance: --confirm or --yes
	PhaseNeeded   Phase = "needed"    // no one to ask: the run stops before the step
	PhaseNotAsked Phase = "not asked" // a dry run shows it and asks nothing
)

// WarnConfirmNoChange is confirm on a step that changes nothing (a read, a
// log, an assert): a yes there guards nothing.
const WarnConfirmNoChange = "confirm-no-change"

// ConfirmFunc asks a person whether to go on, showing text (the step's
// confirm) and plan (what the step will send). It must return when ctx ends.
type ConfirmFunc func(ctx context.Context, text, plan string) (bool, error)

// ConfirmError is a step whose confirm was not given: declined at the
// terminal, or no one could be asked. The step was never carried out, so it
// stops the run whatever continue_on_error says.
type ConfirmError struct {
	Step  string // the step as --confirm names it: its id, else its index
	Asked bool   // a person was asked and did not say yes
}

func (e *ConfirmError) Error() string {
	if e.Asked {
		return "not confirmed"
	}
	return "waiting for confirmation"
}

// unconfirmed says whether err is a confirm that was not given.
func unconfirmed(err error) bool {
	var ce *ConfirmError
	return errors.As(err, &ce)
}

// ConfirmName is how --confirm names step s: its id, else its 1-based index.
func (s *Step) ConfirmName() string { return s.confirmName("") }

// confirmName is the name after prefix, the path of the uses steps that lead
// to s ("3/" for a step of the runbook step 3 uses).
func (s *Step) confirmName(prefix string) string {
	if s.ID != "" {
		return prefix + s.ID
	}
	return prefix + strconv.Itoa(s.Index)
}

// CheckConfirm refuses a --confirm that names no step with confirm: a typo
// must not leave the step it meant unapproved, nor approve another one. A
// step of a used runbook is named after the path to it: 3/delete.
func (rb *Runbook) CheckConfirm(names []string) error {
	type asked struct {
		s      *Step
		prefix string
	}
	var all []asked
	var walk func(rb *Runbook, prefix string)
	walk = func(rb *Runbook, prefix string) {
		for _, s := range rb.Steps {
			if s.Confirm != nil {
				all = append(all, asked{s, prefix})
			}
			if s.Uses != nil {
				walk(s.Uses.Book, prefix+strconv.Itoa(s.Index)+"/")
			}
		}
	}
	walk(rb, "")
	var have []string
	for _, a := range all {
		have = append(have, a.s.confirmName(a.prefix))
	}
	for _, n := range names {
		if !slices.ContainsFunc(all, func(a asked) bool { return a.s.approvedBy(a.prefix, n) }) {
			if len(have) == 0 {
				return &UsageError{Msg: fmt.Sprintf("--confirm %s: no step of %s has confirm", n, rb.File)}
			}
			return &UsageError{Msg: fmt.Sprintf("--confirm %s: no step with confirm has that id or number; the steps with confirm are: %s", n, strings.Join(have, ", "))}
		}
	}
	return nil
}

// approvedBy says whether --confirm name names s, after prefix: by its id,
// or its index.
func (s *Step) approvedBy(prefix, name string) bool {
	return name == prefix+s.ID && s.ID != "" || name == prefix+strconv.Itoa(s.Index)
}

// confirmPrefix is the path of the uses steps that lead to this run's steps,
// without the items' keys: 3/ for the runbook step 3 uses.
func (r *run) confirmPrefix() string {
	if r.frame == nil {
		return ""
	}
	var parts []string
	for _, seg := range strings.Split(r.frame.path, "/") {
		step, _, _ := strings.Cut(seg, "@")
		parts = append(parts, step)
	}
	return strings.Join(parts, "/") + "/"
}

// loadConfirm compiles a step's confirm: text, once for the whole step.
func (c *compileCtx) loadConfirm(s *Step, n *yaml.Node, forEach bool, info Info) {
	if n == nil {
		return
	}
	if s.Stage != StageMain {
		c.errorf(n, "confirm in %s: cleanup runs unattended, after a failure or a signal, and cannot wait for a person; ask before the main step that needs it", s.Stage)
		return
	}
	t := c.template(n, "confirm")
	if t == nil {
		return
	}
	if strings.TrimSpace(t.Source) == "" {
		c.errorf(n, "confirm is empty: write the question a person says yes to, such as \"Delete environment ${{ vars.env_id }}?\"")
		return
	}
	if forEach {
		for _, p := range t.parts {
			for _, name := range []string{s.As, "index"} {
				if p.expr != nil && p.expr.Reads(name) {
					c.errorAt(p.expr.Pos, "confirm is asked once for the whole for_each, before any item: it cannot read %s", name)
					return
				}
			}
		}
	}
	s.Confirm = t
	if !info.Change && !info.LocalCommand && s.Action != nil {
		what := "a " + s.Kind
		if info.Method != "" {
			what = "a " + info.Method
		}
		c.warnf(n, WarnConfirmNoChange, "confirm on a step that changes nothing (%s): there is nothing to say yes to; put confirm on the step that makes the change", what)
	}
}

// confirm asks for step s's confirm, if it has one, before any of its work.
// The run's deadline does not run while a person decides: it is held for the
// time the question takes. The step's own deadline starts after it.
func (r *run) confirm(ctx context.Context, s *Step, scope Scope, stepEvent func(Event) Event) error {
	if s.Confirm == nil {
		return nil
	}
	if r.dryRun {
		// What earlier changes would have answered is unknown: shown as written.
		r.emit(stepEvent(Event{Type: Confirm, Phase: PhaseNotAsked, Reason: s.Confirm.Partial(scope)}))
		return nil
	}
	text, err := s.Confirm.String(scope)
	if err != nil {
		return &StepError{Why: Failed, Msg: "confirm: " + err.Error(), Wrapped: err}
	}
	text = r.redact.String(text)
	plan := r.redact.String(s.Action.Describe(s.withoutItem(scope)))
	ev := Event{Type: Confirm, Reason: text, Target: plan}
	prefix := r.confirmPrefix()
	name := s.confirmName(prefix)
	switch {
	case r.yes || slices.ContainsFunc(r.approved, func(n string) bool { return s.approvedBy(prefix, n) }):
		ev.Phase = PhaseGiven
		r.emit(stepEvent(ev))
		return nil
	case r.ask == nil:
		ev.Phase = PhaseNeeded
		r.emit(stepEvent(ev))
		return &StepError{Why: Unconfirmed, Wrapped: &ConfirmError{Step: name},
			Msg: fmt.Sprintf("waiting for confirmation (%q), and there is no terminal to ask; confirm it in advance with --confirm %s (or --yes)", text, name)}
	}
	if ctx.Err() != nil {
		return ctxError(ctx, nil, "")
	}
	ev.Phase = PhaseAsk
	r.emit(stepEvent(ev))
	r.deadline.hold()
	ok, err := r.ask(ctx, text, plan)
	r.deadline.release()
	switch {
	case ctx.Err() != nil:
		return ctxError(ctx, nil, "")
	case err != nil:
		return &StepError{Why: Failed, Msg: "confirm: the answer could not be read: " + err.Error(), Wrapped: err}
	case !ok:
		return &StepError{Why: Failed, Msg: "not confirmed: the step was not run", Wrapped: &ConfirmError{Step: name, Asked: true}}
	}
	return nil
}

// runDeadline is the run's timeout as a context whose timer a confirm can
// hold: the time a person takes to answer is not the run's. Deadline says
// when it passes, as a timeout's context does, so a step's policy knows how
// much time is left.
type runDeadline struct {
	context.Context
	mu    sync.Mutex
	timer *time.Timer
	end   time.Time     // when it passes (real time)
	left  time.Duration // while held: what was left
	held  bool
}

// startDeadline bounds ctx by the run's timeout (on the run's clock).
func (r *run) startDeadline(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	inner, cancel := context.WithCancelCause(ctx)
	wall := r.clock.Real(timeout)
	d := &runDeadline{Context: inner, end: time.Now().Add(wall)}
	cause := &deadlineCause{what: "run timeout " + fmtDur(timeout)}
	d.timer = time.AfterFunc(wall, func() { cancel(cause) })
	r.deadline = d
	return d, func() {
		d.timer.Stop()
		cancel(context.Canceled)
	}
}

// Deadline is when the run's timeout passes, were it not held again.
func (d *runDeadline) Deadline() (time.Time, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.held {
		return time.Now().Add(d.left), true
	}
	return d.end, true
}

// hold stops the clock of the deadline, unless it has already passed.
func (d *runDeadline) hold() {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.held && d.timer.Stop() {
		d.held, d.left = true, time.Until(d.end)
	}
}

// release starts the clock again with what was left when it was held.
func (d *runDeadline) release() {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.held {
		d.held, d.end = false, time.Now().Add(d.left)
		d.timer.Reset(d.left)
	}
}
