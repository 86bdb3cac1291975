package runbook

import (
	"context"
	"errors"
	"sync"
	"time"
)

// One read of an environment can tell both that a VM's change has shown and
// that the environment is free for the next VM's change. A fleet item whose
// wait reads a resource the guard's answer lists (contained) reads the
// guard's check instead, and the last such read of each environment serves
// the guard of the next item of the step that reads it, if it comes at once.

// freshFor is how old a read may be to serve a guard: about what a guard's
// own read ages between its answer and the change, on a paced host.
const freshFor = time.Second

// fresh holds the last wait read of each guard check of a step, for the
// next item's guard.
type fresh struct {
	mu    sync.Mutex
	reads map[freshKey]freshRead
}

type freshKey struct {
	s      *Step
	target string // the guard's check, "GET https://..."
}

type freshRead struct {
	out *Outcome
	at  time.Time
}

// put keeps out, read of target at at, in place of any older read of it. At
// most two reads per slot of the step are kept: the oldest go.
func (f *fresh) put(s *Step, target string, out *Outcome, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.reads == nil {
		f.reads = map[freshKey]freshRead{}
	}
	f.reads[freshKey{s, target}] = freshRead{out, at}
	for len(f.reads) > 2*max(s.Concurrency, 1) {
		var oldest freshKey
		first := true
		for k, r := range f.reads {
			if first || r.at.Before(f.reads[oldest].at) {
				oldest, first = k, false
			}
		}
		delete(f.reads, oldest)
	}
}

// take returns the read of target kept for s, if it is still fresh at now,
// and forgets it: one read serves one guard.
func (f *fresh) take(s *Step, target string, now time.Time) *Outcome {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := freshKey{s, target}
	r, ok := f.reads[k]
	delete(f.reads, k)
	if !ok || now.Sub(r.at) > freshFor {
		return nil
	}
	return r.out
}

// forget drops the read of target: a change was sent since.
func (f *fresh) forget(s *Step, target string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.reads, freshKey{s, target})
}

// viaGuard says whether this item's wait may read the guard's check in place
// of its own: a fleet item, a guard that reads something else, and nothing
// that needs the wait's own answer: conditions that read response, outputs
// that read state (the listed resource may leave a field out), a delete's
// 404.
func (p *pipeline) viaGuard() bool {
	s, w := p.s, p.s.Wait
	if p.itemIndex < 0 || !s.Guard.On || s.Guard.Check == nil || w.Check == nil || w.AfterSend || w.Gone || p.r.dryRun {
		return false
	}
	if w.Until.Reads("response") || w.FailWhen.Reads("response") {
		return false
	}
	for _, o := range s.Outputs {
		if o.Expr.Reads("state") || o.Expr.Reads("response") {
			return false
		}
	}
	return true
}

// readVia reads the guard's check for the wait, and takes the wait's resource
// from its list. When the answer is not a success, or does not list the
// resource whole (the conditions cannot read it), the item reads its own
// check from then on, starting now.
func (p *pipeline) readVia(ctx context.Context, check Action) (*Outcome, error) {
	wcall, err := check.Prepare(p.scope)
	if err != nil {
		return nil, p.failure(Failed, err, err.Error())
	}
	gcall, err := p.s.Guard.Check.Prepare(p.scope)
	if err != nil {
		return nil, p.failure(Failed, err, err.Error())
	}
	gTarget, wTarget := gcall.Target().String(), wcall.Target().String()
	out := p.r.do(ctx, p, gcall, nil, false)
	if err := p.journalFailure(out); err != nil {
		return nil, err
	}
	if out, err = p.pages(ctx, gcall, out); err != nil {
		return nil, err
	}
	if out.Err != nil && ctx.Err() != nil {
		return out, nil
	}
	var el map[string]any
	if out.Err == nil && out.Accepted && out.Status/100 == 2 {
		el = contained(gTarget, wTarget, out.State)
	}
	if el == nil || !p.readable(el) {
		p.viaOff = true
		return p.read(ctx, check, PhaseWait)
	}
	p.r.fresh.put(p.s, gTarget, out, p.r.clock.Now())
	listed := *out
	listed.State = el
	p.sawRead(PhaseWait, wTarget, &listed)
	p.emit(Event{Type: Probe, Phase: PhaseWait, Attempt: p.attempts, Status: out.Status, Target: gTarget,
		Reason: answer(out) + ", listing " + wTarget, State: p.summary(el)})
	return &listed, nil
}

// readable says whether the wait's conditions can read el as the state.
func (p *pipeline) readable(el map[string]any) bool {
	p.scope["state"], p.scope["before"] = el, p.before
	for _, e := range []*Expr{p.s.Wait.Until, p.s.Wait.FailWhen} {
		var mk *MissingKeyError
		if _, err := e.Eval(p.scope); e != nil && errors.As(err, &mk) && mk.Path == "state" {
			return false
		}
	}
	return true
}
