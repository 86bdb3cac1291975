package runbook

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// reguard is a guard the next send must pass, whatever the step's guard:
// says, after an answer that said busy.
type reguard struct {
	due  bool
	from *Outcome // a read already made, that the guard starts from
}

// last is the last answer, as messages tell it.
type last struct {
	answer string // "423 Retry-After 30s"; "a change that did not take effect"
	busy   bool   // it said busy, locked or slow down: a give-up is exit 75
}

// pipeline carries one step (or one for_each item) through guard, send, retry and
// wait. It owns its scope.
type pipeline struct {
	r              *run
	s              *Step
	scope          Scope
	start          time.Time
	item           string
	itemIndex      int
	itemKey        string // the item by what it is, for the journal
	name           string // the step's name rendered for this item; "": the step's
	attempts       int
	retries        int            // re-sends after transient failures, for backoff
	before         any            // the state the guard read just before the change
	actionResponse map[string]any // the response to the step's own action
	actionState    any
	checked        bool       // a check has been read, so state is the check's
	reguard        reguard    // the next send waits until not busy first, whatever guard: says
	lastRead       string     // the target of the last check read since the last send
	flight         *flight    // the change the resumed run sent, or may have, for this step or item
	confirming     confirming // reads in a row that found what must be confirmed
	rng            *rand.Rand // jitter of this item's intervals
	accepted       string     // the change's accepted answer ("200 OK"), once there is one
	target         string     // the URL (or command) of the step's action, once prepared
	stateOf        string     // the check read that the scope's state came from
	last           last       // the last answer, for give-up and deadline messages
	checkFailed    string     // why the last check read failed, "" when it did not
	expect         string     // the condition being waited for, for deadline messages
	waitStart      time.Time  // when the step first waited for its change (wait_for timeout)
	holds          []hold     // answers decoded under the run's budget, which it may still hold
	key            string     // the change's idempotency key, once made (or taken from the journal)
	monitor        Action     // the read of the status monitor the change's answer named, when the wait polls it
	pageBodies     []any      // the pages of a list being read, whose items it holds
	resumed        bool       // it carries on a change a stopped run sent
	via            bool       // the wait's checks read the guard's check, which lists the resource (shared.go)
	viaOff         bool       // ... but its answer did not list it whole: read the wait's own
	shown          shown      // when the accepted change was checked, to learn when changes show
}

func (p *pipeline) event(e Event) Event {
	e.Step, e.StepName, e.StepID = p.s.Index, p.r.names[p.s.Index], p.s.ID
	if p.name != "" {
		e.StepName = p.name
	}
	e.Item, e.ItemNo = p.item, p.itemIndex+1 // -1, none, is 0
	if e.Elapsed == 0 {
		e.Elapsed = p.r.since(p.start)
	}
	return e
}

func (p *pipeline) emit(e Event) { p.r.emit(p.event(e)) }

// summary is Summarize with the run's secrets hidden.
func (p *pipeline) summary(state any) string { return summarize(state, p.r.redact) }

// jitter spreads the checks of concurrent for_each items over up to a tenth of
// the interval, never shorter, so a fleet does not poll in lockstep.
func (p *pipeline) jitter(d time.Duration) time.Duration {
	if p.itemIndex < 0 || p.s.Concurrency < 2 {
		return d
	}
	if p.rng == nil {
		p.rng = rand.New(rand.NewPCG(uint64(p.s.Index), uint64(p.itemIndex)))
	}
	return d + time.Duration(p.rng.Float64()*0.1*float64(d))
}

func (p *pipeline) lastState() any {
	if p.checked {
		return p.scope["state"]
	}
	return p.actionState
}

// carry carries the pipeline out under the step's deadline. The result is
// steps.<id> (for a for_each step, one element of it), also when it failed.
func (p *pipeline) carry(ctx context.Context) (map[string]any, error) {
	if p.s.Uses != nil {
		return p.carryUses(ctx)
	}
	ctx, cancel := context.WithTimeoutCause(ctx, p.r.clock.Real(p.s.Timeout), &deadlineCause{what: "step timeout " + fmtDur(p.s.Timeout)})
	defer cancel()
	defer p.releaseAll()
	res, err := p.drive(ctx)
	if err != nil {
		res = StepResult{Response: p.actionResponse, State: p.lastState(), Attempts: p.attempts, Error: errMsg(err)}.scope()
	}
	return res, err
}

// readsUnsent says whether the step's action reads what a change the dry
// run did not send would have answered: it is shown as written, not failed.
func (p *pipeline) readsUnsent() bool {
	_, err := p.s.Action.Prepare(p.scope)
	return errors.Is(err, errUnknown)
}

// idempotent says whether the step's action is safe to send again after an
// ambiguous failure: its kind's default, or what retry.idempotent says.
func (p *pipeline) idempotent() bool {
	if i := p.s.Retry.Idempotent; i != nil {
		return *i
	}
	info := p.s.Action.Info()
	return !info.Change || info.Idempotent
}

// drive sends the step's action until the policy calls it done or failed, and
// computes the result.
func (p *pipeline) drive(ctx context.Context) (map[string]any, error) {
	s := p.s
	info := s.Action.Info()
	idempotent := p.idempotent()
	if f := p.flight; f != nil && p.r.dryRun {
		return p.dryResume(ctx, f)
	}
	if f := p.flight; f != nil {
		p.flight, p.resumed = nil, true
		next, err := p.recover(ctx, f, idempotent)
		if err != nil {
			return nil, err
		}
		if next == done {
			return p.result()
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, p.ctxError(ctx)
		}
		if p.r.dryRun && (info.SideEffects || p.readsUnsent()) {
			return p.dryRun(ctx)
		}
		out, err := p.send(ctx)
		if err != nil {
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, p.ctxError(ctx)
		}
		if !info.Change && p.attempts == 1 {
			p.before = out.State
		}
		next, err := p.answered(ctx, out, idempotent)
		if err != nil {
			return nil, err
		}
		if next == done {
			return p.result()
		}
	}
}

// send is one attempt: the guard, the snapshot of `before`, and the change. Two
// changes gated by the same check (VMs of one environment) must not both read
// "not busy" before either is sent, so guard and send hold the check's gate,
// released on every way out. A change's intent is journaled before it is sent
// and its answer after.
func (p *pipeline) send(ctx context.Context) (*Outcome, error) {
	s := p.s
	info := s.Action.Info()
	if s.Guard.On || p.reguard.due {
		stalled := p.r.memory.stall(p)
		key := p.gateKey()
		release, err := p.r.gates.enter(ctx, key)
		stalled()
		if err != nil {
			return nil, p.ctxError(ctx)
		}
		defer release()
		first := p.reguard.from
		p.reguard = reguard{}
		if first == nil && p.attempts == 0 && p.itemIndex >= 0 && key != "" {
			// The previous item's last check read this just now.
			if out := p.r.fresh.take(s, key, p.gateShown(), p.r.clock.Now()); out != nil {
				p.sawRead(PhaseGuard, key, out)
				p.emit(Event{Type: Probe, Phase: PhaseGuard, Status: out.Status, Target: key,
					Reason: answer(out) + ", read by the previous item's last check", State: p.summary(out.State)})
				first = out
			}
		}
		if err := p.guard(ctx, first); err != nil {
			return nil, err
		}
		if info.SideEffects && key != "" {
			// A read from before this change's answer no longer tells the
			// next guard.
			defer p.r.fresh.changing(key)()
		}
	}
	if info.SideEffects && s.Wait.On {
		if err := p.snapshot(ctx); err != nil {
			return nil, err
		}
	}
	if spent(s.Retry, p.attempts) {
		return nil, p.fail(giveUp(p.attempts, p.last.answer, p.last.busy))
	}
	p.attempts++
	p.scope["attempt"] = p.attempts
	p.scope["before"] = p.before
	p.scope["elapsed"] = p.r.since(p.start)
	if info.Keyed {
		if p.key == "" {
			p.key = newIdempotencyKey()
		}
		p.scope[idemKey] = p.key
	}
	call, err := s.Action.Prepare(p.scope)
	if err != nil {
		return nil, p.failure(Failed, err, err.Error())
	}
	target := call.Target()
	p.target = target.URL
	var intent func() error
	if info.SideEffects {
		intent = func() error {
			return p.r.record(p.record(Record{Type: recIntent, Attempt: p.attempts, Target: target.String(), Before: p.before, Key: p.key}))
		}
	}
	out := p.r.do(ctx, p, call, intent, info.Method != "" && info.Change)
	if err := p.journalFailure(out); err != nil {
		return nil, err
	}
	if out, err = p.pages(ctx, call, out); err != nil {
		return nil, err
	}
	p.took(out)
	if info.Method != "" || info.SideEffects || !out.Accepted {
		p.emit(Event{Type: Attempt, Phase: PhaseChange, Attempt: p.attempts, Status: out.Status, Target: target.String(),
			Reason: answer(out), State: p.summary(out.State)})
	}
	if info.SideEffects {
		rec := p.record(Record{Type: recAnswer, Attempt: p.attempts, Status: out.Status, Accepted: out.Accepted, Response: out.Response, Monitor: out.Monitor})
		if out.Err != nil {
			rec.Error, rec.Written = out.Err.Error(), out.Written
		}
		if err := p.r.record(rec); err != nil {
			// The change was sent: say so, and what came back (a created id),
			// since the journal can no longer tell a resume.
			msg := fmt.Sprintf("%s was sent and answered %s", target, answer(out))
			if out.Snippet != "" && out.Status < 400 {
				msg += " (" + truncate(out.Snippet, 160) + ")"
			}
			return nil, p.failure(JournalBroken, err, msg+", but "+err.Error()+"; a resume will not send it again unless its wait shows it did not take effect and it is idempotent")
		}
	}
	if out.Message != "" && out.Accepted {
		p.emit(Event{Type: LogLine, Reason: out.Message})
	}
	return out, nil
}

// took makes an answer to the step's action the scope's response (and its
// state, until a check has been read).
func (p *pipeline) took(out *Outcome) {
	p.lastRead = "" // reads before this send no longer describe the resource
	p.monitor = nil // a monitor is the answer's: a new answer names its own
	p.actionResponse, p.actionState = out.Response, out.State
	p.scope["response"] = out.Response
	if !p.checked {
		p.scope["state"], p.scope[stateNote] = out.State, notJSON(out)
	}
}

// busyLenient judges with busy_when a change's own accepted answer, or a read
// of the wait's check, leniently: either may be another resource than the
// guard reads (a create answers with what it made, its guard reads a
// template), so a field it lacks is not busy, and an expression that cannot
// be evaluated on it does not fail a change already made.
func (p *pipeline) busyLenient(out *Outcome) bool {
	if out.State == nil {
		return false
	}
	p.scope["state"] = out.State
	busy, err := p.s.Guard.BusyWhen.Bool(p.scope)
	return err == nil && busy
}

// busyState evaluates busy_when on an outcome's state (nil state: not busy). An
// error in busy_when fails the step: it must not silently mean "not busy".
func (p *pipeline) busyState(out *Outcome) (bool, error) {
	if out == nil || out.State == nil {
		return false, nil
	}
	p.scope["state"] = out.State
	b, err := p.s.Guard.BusyWhen.Bool(p.scope)
	if err != nil {
		return false, p.failure(Failed, err, err.Error())
	}
	return b, nil
}

// result is steps.<id> for this pipeline.
// An output that cannot be computed fails the step: it is a broken promise to
// later steps (an empty id in the next step's URL).
func (p *pipeline) result() (map[string]any, error) {
	var response, state any = p.actionResponse, p.lastState()
	if p.r.dryRun && p.s.Action.Info().SideEffects && p.actionResponse == nil {
		// A dry run sent nothing, so nothing was answered: what reads it is
		// shown as written.
		response, state = unknown{}, unknown{}
	}
	p.scope["response"], p.scope["state"] = response, state
	outputs := map[string]any{}
	for _, o := range p.s.Outputs {
		v, err := o.Expr.Eval(p.scope)
		if err != nil {
			return nil, p.failure(Failed, err, fmt.Sprintf("output %s: %v", o.Name, err))
		}
		outputs[o.Name] = v
	}
	return StepResult{Response: response, State: state, Outputs: outputs, Attempts: p.attempts}.scope(), nil
}

// answered carries out what the policy decides about the answer to a send:
// it gathers what the policy looks at (evaluating busy_when and retry.when,
// reading a probe when asked), then waits, sleeps and emits as decided.
func (p *pipeline) answered(ctx context.Context, out *Outcome, idempotent bool) (move, error) {
	s := p.s
	info := s.Action.Info()
	o := classify(out)
	if (o.class == conflict || o.class == busyConflict) && s.Retry.BusyAnswer != nil {
		busy, err := s.Retry.BusyAnswer.Bool(p.scope)
		if err != nil {
			return 0, p.failure(Failed, err, fmt.Sprintf("%s; retry.busy_answer cannot say whether it means busy: %v", answer(out), err))
		}
		o.class = conflict
		if busy {
			o.class = busyConflict
		}
	}
	in := sendInput{out: o, retry: s.Retry, attempts: p.attempts, backoff: retryDelay(s.Retry, p.retries),
		mutating: info.Change, idempotent: idempotent, wait: s.Wait.On, what: p.what(),
		canProbe: s.Wait.On && s.Wait.Until != nil && !s.Wait.AfterSend}
	if dl, ok := ctx.Deadline(); ok {
		// On the run's clock, which --sim scales.
		scale := float64(time.Hour) / float64(max(p.r.clock.Real(time.Hour), 1))
		in.bounded, in.left = true, time.Duration(float64(time.Until(dl))*scale)
	}
	p.last.answer = answer(out)
	if o.class == accepted && info.Change {
		p.accepted = p.last.answer
		p.shown = shown{accepted: p.r.clock.Now()}
		in.busyBody = p.busyLenient(out)
		watch, err := p.watch(out)
		if err != nil {
			return 0, err
		}
		in.monitor = watch
	}
	if s.Retry.When != nil && o.class.onlyRetryWhen() {
		retry, err := s.Retry.When.Bool(p.scope)
		in.retryWhen, in.whenSource, in.whenErr = &retry, s.Retry.When.Source, err
	}
	d := sendPolicy(in)
	if d.move == probe {
		read, facts, err := p.probe(ctx, d.probe)
		if err != nil {
			return 0, err
		}
		in.probed = facts
		if d = sendPolicy(in); d.move == resend {
			p.reguard.from = read // the guard waits it out from that read
		}
	}
	p.last.busy = d.busy
	switch d.move {
	case done:
		return done, nil
	case waitFor:
		return p.learnShown(p.wait(ctx, firstPoll(out), p.typicalFirst(in)))
	case waitNotBusy:
		return p.learnShown(p.waitNotBusyThenCheck(ctx, out, p.typicalFirst(in)))
	case fail:
		return 0, p.fail(d)
	}
	// resend
	if d.guard {
		p.reguard.due = true
	}
	if d.backoff {
		p.retries++
	}
	if d.waiting != "" {
		ev := Event{Type: Waiting, Phase: PhaseChange, Attempt: p.attempts, Reason: d.waiting, Delay: d.delay}
		if d.status {
			ev.Status = out.Status
		}
		if err := p.waitOut(ctx, ev); err != nil {
			return 0, err
		}
	}
	p.emit(Event{Type: Retrying, Attempt: p.attempts, Reason: d.retry})
	return resend, nil
}

// probe makes the read a decision asks for, and says what it found.
func (p *pipeline) probe(ctx context.Context, of probeOf) (*Outcome, *probed, error) {
	check, phase := p.s.Guard.Check, PhaseGuard
	if of == probeWait {
		check, phase = p.s.Wait.Check, PhaseWait
	}
	read, err := p.read(ctx, check, phase)
	if err != nil {
		return nil, nil, err
	}
	if ctx.Err() != nil {
		return nil, nil, p.ctxError(ctx)
	}
	facts := &probed{}
	switch {
	case of == probeGuard:
		if facts.busy, err = p.busyState(read); err != nil {
			return nil, nil, err
		}
	case read != nil && read.Err == nil && read.Status != 0:
		ok, err := p.s.Wait.Until.Bool(p.scope)
		facts.holds = err == nil && ok
	}
	return read, facts, nil
}

// fail is the step's error for a failing decision.
func (p *pipeline) fail(d decision) error {
	if d.err != nil {
		return d.err
	}
	return p.failure(d.why, d.cause, d.msg)
}

// waitOut tells the waiting event e, then sleeps its delay on the run's clock:
// every wait of a pipeline between reads and sends is one of these.
func (p *pipeline) waitOut(ctx context.Context, e Event) error {
	p.emit(e)
	if err := p.r.clock.Sleep(ctx, e.Delay); err != nil {
		return p.ctxError(ctx)
	}
	return nil
}
