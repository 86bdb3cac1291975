package runbook

import (
	"context"
	"errors"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"
)

// One read of an environment can tell both that a VM's change has shown and
// that the environment is free for the next VM's change. A fleet item whose
// wait reads a resource the guard's answer lists (contained) reads the
// guard's check instead, and the last such read of each environment serves
// the guard of the next item of the step that reads it, if it comes within
// freshFor and no change under that check could have reached the server since
// the read was sent.

// freshFor is how old a read may be to serve a guard: about what a guard's
// own read ages between its answer and the change, on a paced host.
const freshFor = time.Second

// fresh holds the last wait read of each guard check of a step, for the
// next item's guard. A change sent under a guard's check (by any step) moves
// its generation on when it starts and again when its answer comes, and no
// read is kept while one is in flight: a read that may have reached the server
// before the change, whenever its answer comes, does not serve.
type fresh struct {
	mu       sync.Mutex
	reads    map[freshKey]freshRead
	gen      map[string]uint64 // by guard check target
	inFlight map[string]int    // changes sent under it and not yet answered
}

type freshKey struct {
	s      *Step
	target string // the guard's check, "GET https://...", and the headers it shows
}

type freshRead struct {
	out *Outcome
	at  time.Time // when the read was sent
}

// generation is target's, to hand back to put with a read sent now.
func (f *fresh) generation(target string) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gen[target]
}

// put keeps out, a read of target sent at at in generation gen, in place of
// any older read of it, unless a change under target was started since or is
// still on its way. At most two reads per slot of the step are kept: the
// oldest go.
func (f *fresh) put(s *Step, target, shown string, gen uint64, out *Outcome, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gen[target] != gen || f.inFlight[target] > 0 {
		return
	}
	if f.reads == nil {
		f.reads = map[freshKey]freshRead{}
	}
	f.reads[freshKey{s, target + "\n" + shown}] = freshRead{out, at}
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

// take returns the read of target kept for s, if it was sent no longer than
// freshFor before now, and forgets it: one read serves one guard.
func (f *fresh) take(s *Step, target, shown string, now time.Time) *Outcome {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := freshKey{s, target + "\n" + shown}
	r, ok := f.reads[k]
	delete(f.reads, k)
	if !ok || now.Sub(r.at) > freshFor {
		return nil
	}
	return r.out
}

// changing tells that a change is being sent under target: no read of it
// sent before the change's answer serves a guard. Call the func it returns
// once the answer has come (or the send has failed).
func (f *fresh) changing(target string) func() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gen == nil {
		f.gen, f.inFlight = map[string]uint64{}, map[string]int{}
	}
	f.gen[target]++
	f.inFlight[target]++
	for k := range f.reads {
		if strings.HasPrefix(k.target, target+"\n") {
			delete(f.reads, k)
		}
	}
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.gen[target]++
		f.inFlight[target]--
	}
}

// viaGuard says whether this item's wait may read the guard's check in place
// of its own: a fleet item, a guard that reads something else, and nothing
// that needs the wait's own answer: conditions that read response, outputs
// that read state (the listed resource may leave a field out), a delete's
// 404.
func (p *pipeline) viaGuard() bool {
	return p.itemIndex >= 0 && !p.r.dryRun && p.s.sharesGuardRead()
}

// sharesGuardRead is viaGuard's rule on the step alone.
func (s *Step) sharesGuardRead() bool {
	w := s.Wait
	if s.ForEach == nil || !s.Guard.On || s.Guard.Check == nil || w.Check == nil || w.AfterSend || w.Gone {
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
	gen, sent := p.r.fresh.generation(gTarget), p.r.clock.Now()
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
	if el == nil || !p.listedServes(el, p.before) {
		p.viaOff = true
		return p.read(ctx, check, PhaseWait)
	}
	p.r.fresh.put(p.s, gTarget, gcall.Target().Shown, gen, out, sent)
	listed := *out
	listed.State = el
	p.sawRead(PhaseWait, wTarget, &listed)
	p.emit(Event{Type: Probe, Phase: PhaseWait, Attempt: p.attempts, Status: out.Status, Target: gTarget,
		Reason: answer(out) + ", listing " + path.Base(path.Dir(wTarget)) + "/" + path.Base(wTarget), State: p.summary(el)})
	return &listed, nil
}

// listedServes says whether el, the wait's resource as a list holds it, can
// stand for a read of it with before as the state before the change: the
// wait's conditions must be able to read it, and the default fail_when must
// see the resource's errors (a summary without them would hide a new one, or
// show a lingering one as new).
func (p *pipeline) listedServes(el map[string]any, before any) bool {
	w := p.s.Wait
	if w.FailWhen != nil && w.FailWhen.Source == DefaultFailWhen {
		_, ok1 := el["error"]
		_, ok2 := el["errors"]
		_, ok3 := el["error_details"]
		if !ok1 && !ok2 && !ok3 {
			return false
		}
	}
	state, was := p.scope["state"], p.scope["before"]
	p.scope["state"], p.scope["before"] = el, before
	for _, e := range []*Expr{w.Until, w.FailWhen} {
		if e == nil {
			continue
		}
		var mk *MissingKeyError
		if _, err := e.Eval(p.scope); errors.As(err, &mk) && mk.Path == "state" {
			// Left as they were, for the read made instead.
			p.scope["state"], p.scope["before"] = state, was
			return false
		}
	}
	return true
}

// contained finds, in the guard's read of guardTarget, the resource the wait
// reads at waitTarget, when the guard's answer holds it whole: the wait reads
// <guard URL>/<key>/<id> and the guard's answer has a list <key> with exactly
// one object whose id is <id> (a Skytap environment lists its VMs with their
// runstate and errors). That object is the resource's state as the guard saw
// it, so the read of `before` is not needed. nil when it does not hold.
func contained(guardTarget, waitTarget string, state any) map[string]any {
	g, ok1 := strings.CutPrefix(guardTarget, "GET ")
	w, ok2 := strings.CutPrefix(waitTarget, "GET ")
	obj, ok3 := state.(map[string]any)
	if !ok1 || !ok2 || !ok3 {
		return nil
	}
	gu, err1 := url.Parse(g)
	wu, err2 := url.Parse(w)
	// A query may choose another representation: only plain URLs compare.
	if err1 != nil || err2 != nil || gu.Host != wu.Host || gu.Scheme != wu.Scheme || gu.RawQuery != "" || wu.RawQuery != "" {
		return nil
	}
	rest, ok := strings.CutPrefix(wu.EscapedPath(), strings.TrimSuffix(gu.EscapedPath(), "/")+"/")
	parts := strings.Split(rest, "/")
	if !ok || len(parts) != 2 || parts[0] == "" || parts[1] == "" {
		return nil
	}
	key, err1 := url.PathUnescape(parts[0])
	id, err2 := url.PathUnescape(parts[1])
	list, _ := obj[key].([]any)
	if err1 != nil || err2 != nil {
		return nil
	}
	var found map[string]any
	for _, e := range list {
		if m, ok := e.(map[string]any); ok && m["id"] != nil && Text(m["id"]) == id {
			if found != nil {
				return nil
			}
			found = m
		}
	}
	return found
}
