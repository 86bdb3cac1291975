package runbook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// stateNote is the scope's key for why state is nil after a read that
// succeeded (its answer was not JSON), for the message of an expression that
// reads a key of it. No expression can name it.
const stateNote = "\x00state_note"

// notJSON is why an outcome that succeeded has no state: its answer was
// text, not JSON. nil when it has a state, or did not succeed.
func notJSON(out *Outcome) any {
	if out == nil || out.State != nil || !out.Accepted || out.Text == "" {
		return nil
	}
	what := "the answer"
	if out.Status == 0 {
		what = "the command's output"
	}
	return fmt.Sprintf("%s was not valid JSON (%s)", what, out.Text)
}

// read makes one check read and makes it the scope's state and response. With no
// check and no probe there is nothing to read: it returns nil.
func (p *pipeline) read(ctx context.Context, check Action, phase Phase) (*Outcome, error) {
	if check == nil {
		return nil, nil
	}
	if p.via && !p.viaOff {
		return p.readVia(ctx, check)
	}
	p.scope["elapsed"] = p.r.since(p.start)
	call, err := check.Prepare(p.scope)
	if err != nil {
		return nil, p.failure(Failed, err, err.Error())
	}
	out := p.r.do(ctx, p, call, nil, false)
	if err := p.journalFailure(out); err != nil {
		return nil, err
	}
	if out, err = p.pages(ctx, call, out); err != nil {
		return nil, err
	}
	if out.Err != nil && ctx.Err() != nil {
		// Cut short by the deadline or a signal: not a read, keep the last one.
		return out, nil
	}
	p.sawRead(phase, call.Target().String(), out)
	p.emit(Event{Type: Probe, Phase: phase, Attempt: p.attempts, Status: out.Status, Target: p.lastRead,
		Reason: answer(out), State: p.summary(out.State)})
	return out, nil
}

// sawRead makes a read of target the scope's state and response.
func (p *pipeline) sawRead(phase Phase, target string, out *Outcome) {
	p.checked = true
	if phase == PhaseWait && !p.shown.accepted.IsZero() {
		p.shown.reads++
		p.shown.prev, p.shown.last = p.shown.last, p.r.clock.Now()
	}
	p.lastRead = target
	p.stateOf = p.lastRead
	p.scope["response"] = out.Response
	p.scope["state"], p.scope[stateNote] = out.State, notJSON(out)
	p.scope["elapsed"] = p.r.since(p.start)
}

// decider is a phase's conditions, judging one successful (or 404) read.
type decider func(out *Outcome) (move, string, error)

// pollStart is where a poll starts; the zero value reads at once.
type pollStart struct {
	// read is a check read already made, judged before any other (the guard
	// after a 409 whose probe read busy).
	read *Outcome
	// held is an answer already judged "not yet" (a change accepted busy) for
	// why: the first read comes an interval later.
	held *Outcome
	why  string
	// after holds back the first read (a 202's Retry-After), for why.
	after time.Duration
}

// poll reads the check every interval until decide says done or resend. It is the
// one loop behind the guard, the wait and every re-check; it never sleeps past the
// context's deadline.
func (p *pipeline) poll(ctx context.Context, phase Phase, check Action, interval time.Duration, from pollStart, decide decider) (move, error) {
	out := from.read
	d := decision{move: judge}
	if from.held != nil {
		out, d = from.held, decision{move: keepWaiting, reason: from.why, floor: from.after}
	}
	if out == nil && from.after > 0 {
		if err := p.waitOut(ctx, Event{Type: Waiting, Phase: phase, Attempt: p.attempts, Reason: from.why, Delay: from.after}); err != nil {
			return 0, err
		}
	}
	for {
		if d.move == judge {
			if out == nil {
				var err error
				out, err = p.read(ctx, check, phase)
				if err != nil {
					return 0, err
				}
				if ctx.Err() != nil {
					return 0, p.ctxError(ctx)
				}
				if out == nil {
					return done, nil
				}
			}
			if d = p.judgeRead(out, decide); d.move == fail {
				return 0, p.fail(d)
			}
			if d.move != keepWaiting {
				return d.move, nil
			}
		}
		delay := max(p.jitter(interval), d.floor)
		if err := p.waitOut(ctx, Event{Type: Waiting, Phase: phase, Attempt: p.attempts, Status: out.Status, Reason: d.reason, Delay: delay, State: p.summary(out.State)}); err != nil {
			return 0, err
		}
		out, d = nil, decision{move: judge}
	}
}

// judgeRead decides about one check read by the policy, asking the phase's
// conditions when the policy says they decide.
func (p *pipeline) judgeRead(out *Outcome, decide decider) decision {
	o := classify(out)
	d := readPolicy(o, p.s.Retry, nil)
	if d.move == judge {
		m, reason, err := decide(out)
		d = readPolicy(o, p.s.Retry, &conditions{move: m, reason: reason, err: err})
	}
	p.checkFailed = d.failed
	return d
}

// withTimeout bounds one phase by its own timeout, if it has one. A guard's
// counts from its start; wait_for's from the first time the step waited, so
// waiting again after a re-send does not start the clock over.
func (p *pipeline) withTimeout(ctx context.Context, d time.Duration, what string) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return ctx, func() {}
	}
	left := d
	if what == waitTimeout {
		if p.waitStart.IsZero() {
			p.waitStart = p.r.clock.Now()
		}
		left = max(d-p.r.clock.Now().Sub(p.waitStart), 0)
	}
	return context.WithTimeoutCause(ctx, p.r.clock.Real(left), &deadlineCause{what: what + " " + fmtDur(d)})
}

const waitTimeout = "wait_for timeout"

// guard waits until the resource is not busy; the last state read becomes
// `before`. A 404 read is not busy: the request itself then decides.
func (p *pipeline) guard(ctx context.Context, first *Outcome) error {
	g := p.s.Guard
	ctx, cancel := p.withTimeout(ctx, g.Timeout, "guard timeout")
	defer cancel()
	p.expect = "not busy (busy_when: " + g.BusyWhen.Source + ")"
	defer func() { p.expect = "" }()
	_, err := p.poll(ctx, PhaseGuard, g.Check, g.Interval, pollStart{read: first}, func(out *Outcome) (move, string, error) {
		if out.Status == 0 && !out.Accepted {
			// A check command that failed cannot tell whether it is busy.
			return keepWaiting, "check " + answer(out), nil
		}
		busy, err := p.busyState(out)
		if err != nil {
			return 0, "", err
		}
		if busy {
			return keepWaiting, "busy (" + p.summary(out.State) + ")", nil
		}
		p.before = out.State
		return done, "", nil
	})
	return err
}

// snapshot makes `before` the state of the wait's check just before the change,
// so fail_when and until compare a resource with itself: the guard's last read
// serves when it read the same URL, else the wait's check is read once. The
// conditions are then tried on it, so a typo in a field name fails before
// anything is changed.
func (p *pipeline) snapshot(ctx context.Context) error {
	check := p.waitCheck()
	if check == nil || p.s.Wait.AfterSend {
		// A check that reads the answer reads what the change makes, which
		// had no state before it.
		p.before = nil
		return nil
	}
	call, err := check.Prepare(p.scope)
	if err != nil {
		return p.failure(Failed, err, err.Error())
	}
	target := call.Target().String()
	if p.lastRead != "" && p.lastRead != target {
		if el := contained(p.lastRead, target, p.before); el != nil && p.listedServes(el, el) {
			p.before, p.lastRead = el, target
		}
	}
	if p.lastRead == "" || p.lastRead != target {
		out, err := p.read(ctx, check, PhaseBefore)
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return p.ctxError(ctx)
		}
		p.before = nil
		if out != nil && out.Err == nil {
			p.before = out.State
		}
	}
	if p.before == nil {
		return nil
	}
	p.scope["state"], p.scope["before"] = p.before, p.before
	for _, e := range []*Expr{p.s.Wait.Until, p.s.Wait.FailWhen} {
		if e == nil {
			continue
		}
		var mk *MissingKeyError
		if _, err := e.Eval(p.scope); errors.As(err, &mk) && mk.Path == "state" {
			return p.failure(Failed, err, err.Error()+" (found on the state read just before the change, so nothing was sent)")
		}
	}
	return nil
}

// waitCheck is what the wait reads.
func (p *pipeline) waitCheck() Action { return p.s.Wait.Check }

// failWhen applies fail_when to the state just read.
func (p *pipeline) failWhen() error {
	w := p.s.Wait
	if w.FailWhen == nil {
		return nil
	}
	p.scope["before"] = p.before
	hit, err := w.FailWhen.Bool(p.scope)
	if err != nil {
		return p.failure(Failed, err, err.Error())
	}
	if !hit {
		return nil
	}
	if w.FailWhen.Source == DefaultFailWhen {
		msg, _ := newError(p.before, p.scope["state"])
		return p.failure(Failed, nil, fmt.Sprintf("a new error appeared: %s", msg))
	}
	return p.failure(Failed, nil, "fail_when holds: "+w.FailWhen.Source)
}

// until evaluates the wait's condition on the read just made. On a read that is
// not a success (a 404) an evaluation error means the resource is gone, and is
// said so.
func (p *pipeline) until(out *Outcome) (bool, error) {
	w := p.s.Wait
	ok, err := w.Until.Bool(p.scope)
	if err != nil {
		if out.Status == http.StatusNotFound {
			return false, p.gone()
		}
		return false, p.failure(Failed, err, err.Error())
	}
	if !ok && out.Status == http.StatusNotFound {
		return false, p.gone()
	}
	if w.Gone {
		// A delete is done when the resource is gone for good: a 404 from a
		// lagging replica or a load balancer is confirmed.
		if !ok {
			p.confirming.drop(foundGone)
		} else if !p.confirming.confirmed(foundGone) {
			return false, nil
		}
	}
	return ok, nil
}

func (p *pipeline) gone() error {
	return p.failure(Failed, nil, fmt.Sprintf("the check answered 404 (the resource is gone) and %s does not hold on it", p.s.Wait.Until.Source))
}

// waiting says what a wait is waiting for, and what it saw instead.
func (p *pipeline) waiting(out *Outcome, busy bool) string {
	if p.s.Wait.Gone && out.Status == http.StatusNotFound {
		return "gone (404); confirming with one more read"
	}
	now := p.summary(out.State)
	if out.State == nil {
		now = answer(out)
	}
	if busy {
		return fmt.Sprintf("busy (%s); waiting for %s", now, p.s.Wait.Until.Source)
	}
	return fmt.Sprintf("waiting for %s (now %s)", p.s.Wait.Until.Source, now)
}

// wait polls the check until `until` holds: the change has really taken
// effect. When the change's answer named a status monitor, it first polls
// that until the operation has ended, then the wait's own check, if the step
// has one. after holds back the first read (the answer's Retry-After).
func (p *pipeline) wait(ctx context.Context, after, typical time.Duration) (move, error) {
	w := p.s.Wait
	if after > p.s.Retry.MaxRetryAfter {
		return 0, p.failure(StillBusy, nil, fmt.Sprintf("%s was accepted (%s), and the answer asks to look again in %s, longer than max_retry_after %s; raise retry.max_retry_after to wait longer",
			p.what(), p.accepted, fmtDur(after), fmtDur(p.s.Retry.MaxRetryAfter)))
	}
	ctx, cancel := p.withTimeout(ctx, w.Timeout, waitTimeout)
	defer cancel()
	defer func() { p.expect = "" }()
	from := pollStart{after: after, why: fmt.Sprintf("accepted (%s), Retry-After %s", p.accepted, fmtDur(after))}
	if typical > after {
		from.after, from.why = typical, fmt.Sprintf("accepted (%s); this step's changes have shown after about %s", p.accepted, fmtDur(typical))
	}
	p.shown.first = from.after
	if mon := p.monitor; mon != nil {
		what := "monitor " + mon.Describe(p.scope)
		p.expect = "the operation to succeed (" + what + ")"
		v, err := p.poll(ctx, PhaseWait, mon, w.Interval, from, func(out *Outcome) (move, string, error) { return p.monitorDecide(out, what) })
		if err != nil || !w.On {
			return v, err
		}
		from = pollStart{}
	}
	p.expect = w.Until.Source
	p.via = p.viaGuard()
	defer func() { p.via = false }()
	return p.poll(ctx, PhaseWait, w.Check, w.Interval, from, p.waitDecide)
}

// waitDecide judges a read of the wait's own check.
func (p *pipeline) waitDecide(out *Outcome) (move, string, error) {
	if err := p.failWhen(); err != nil {
		return 0, "", err
	}
	ok, err := p.until(out)
	if err != nil {
		return 0, "", err
	}
	if ok {
		return done, "", nil
	}
	return keepWaiting, p.waiting(out, p.busyLenient(out)), nil
}

// waitNotBusyThenCheck handles a change accepted with a busy body: poll until not
// busy; then the step is done if `until` holds. If it still does not hold on a
// second not-busy read (one read may be stale), the change was dropped while the
// resource was busy, and it is sent again. With no accepted answer (a change a
// stopped run may have sent) it reads at once, and says resend for a change
// that does not show, without re-sending: the caller decides.
func (p *pipeline) waitNotBusyThenCheck(ctx context.Context, accepted *Outcome, typical time.Duration) (move, error) {
	w := p.s.Wait
	check := w.Check
	if !w.On {
		check = p.s.Guard.Check
	}
	ctx, cancel := p.withTimeout(ctx, w.Timeout, waitTimeout)
	defer cancel()
	p.expect = "not busy"
	if w.On {
		p.expect = "not busy, then " + w.Until.Source
	}
	defer func() { p.expect = "" }()
	p.confirming = confirming{}
	// The answer said busy: the first check comes an interval later. The
	// conditions are judged on the check's reads only, not on the answer, whose
	// shape may differ (a POST answers with the new resource, its check may read
	// the collection).
	var from pollStart
	if accepted != nil {
		from.held, from.why, from.after = accepted, "accepted, busy ("+p.summary(accepted.State)+")", typical
		p.shown.first = max(w.Interval, typical)
		if w.On {
			from.why += "; waiting for " + w.Until.Source
		}
	}
	p.via = w.On && p.viaGuard()
	defer func() { p.via = false }()
	v, err := p.poll(ctx, PhaseWait, check, w.Interval, from, func(out *Outcome) (move, string, error) {
		if err := p.failWhen(); err != nil {
			return 0, "", err
		}
		// until is evaluated on every read, busy or not, so a typo in it fails at
		// the first read instead of after the busy spell.
		ok := false
		if w.On {
			var err error
			if ok, err = p.until(out); err != nil {
				return 0, "", err
			}
		}
		// The guard's busy_when is written for what the guard reads: on the
		// wait's reads (what a create made) it is judged leniently.
		busy := p.busyLenient(out)
		if !w.On {
			var err error
			if busy, err = p.busyState(out); err != nil {
				return 0, "", err
			}
		}
		if busy {
			p.confirming = confirming{}
			if !w.On {
				return keepWaiting, "busy (" + p.summary(out.State) + ")", nil
			}
			return keepWaiting, p.waiting(out, true), nil
		}
		if !w.On || ok {
			return done, "", nil
		}
		if w.Gone && out.Status == http.StatusNotFound {
			// A delete's first 404, which the next read confirms: not a dropped change.
			return keepWaiting, p.waiting(out, false), nil
		}
		if !p.confirming.confirmed(foundNotTaken) {
			return keepWaiting, fmt.Sprintf("not busy, but %s does not hold (now %s); checking once more before sending again", w.Until.Source, p.summary(out.State)), nil
		}
		return resend, "", nil
	})
	if v == resend && accepted != nil {
		p.last = last{answer: "a change that did not take effect", busy: true}
		p.emit(Event{Type: Retrying, Attempt: p.attempts, Reason: fmt.Sprintf("not busy, and %s still does not hold: the change was dropped while the resource was busy (or the condition is wrong); sending it again", w.Until.Source),
			State: p.summary(p.scope["state"])})
	}
	return v, err
}

// confirmReads is how many reads in a row must find the same thing before the
// step acts on what one stale read could fake: a deleted resource gone (a 404
// from a lagging replica or a load balancer), a change that did not take
// effect (a read from before it landed), which would be sent again.
const confirmReads = 2

// finding is what a read found that must be confirmed.
type finding int

const (
	foundGone     finding = iota + 1 // a deleted resource answered 404
	foundNotTaken                    // not busy, and until does not hold
)

// confirming counts the consecutive reads that found one thing.
type confirming struct {
	found finding
	reads int
}

// confirmed counts one more read that found f, and says whether confirmReads
// reads in a row have.
func (c *confirming) confirmed(f finding) bool {
	if c.found != f {
		*c = confirming{found: f}
	}
	c.reads++
	return c.reads >= confirmReads
}

// drop forgets f: a read did not find it.
func (c *confirming) drop(f finding) {
	if c.found == f {
		*c = confirming{}
	}
}
