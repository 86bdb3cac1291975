package runbook

import (
	"math"
	"sync"
	"time"
)

// typical learns, per step, when the change of one more for_each item is
// likely to show, so its first check comes then and not at once: reads before
// it would only see "not yet". It tracks the time from the accepted answer by
// which about a quarter of changes have shown (typicalQuantile), from when each
// item's checks saw its change and had not yet: later by a step when it showed
// after the estimate, sooner by a step sized so that it settles at that share
// when before. The first check never comes sooner than it would without it
// (the answer's Retry-After, or an interval after a busy answer), and checks
// after it come every interval as before.
type typical struct {
	mu     sync.Mutex
	byStep map[*Step]*estimate
}

// estimate is one step's: when its changes show, learned from n items.
type estimate struct {
	at time.Duration
	n  int
}

// typicalQuantile: a later first check saves reads of changes not yet shown,
// an earlier one sees sooner those that have, and the next item of their
// environment starts sooner. Measured on the fleet benchmarks (the wait
// reading the environment, shared.go): at 0.5 the 1000-VM fleet took 2.75
// requests per VM at 1.03-1.05 of its bound, at 0.35 3.0-3.1 at 1.02-1.05,
// at 0.25 3.1-3.2 at 1.02-1.045.
const typicalQuantile = 0.25

// step is how much the next item moves the estimate: much at first, to find
// the range soon in a small fleet, then 10%, so one slow item does not throw
// it off.
func (e *estimate) step() float64 { return 1 + max(0.1, 0.5/math.Sqrt(float64(e.n))) }

// first is when the first check of an item of s should come, after its
// change was accepted; 0 until an item of s has been seen done.
func (t *typical) first(s *Step) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.byStep[s]; e != nil {
		return e.at
	}
	return 0
}

// learn takes one item's wait: when its first check was due after the
// change's acceptance (first) and whether it saw the change (atFirst), the
// time of the last check that had not seen it (notYet; 0 if none) and of the
// one that had (seen). The change showed between the two. An estimate a check
// had not yet seen it at was too soon; one a check due then, or a check
// before it, saw it at was no sooner than needed. A first check due at
// another time (an interval, a Retry-After) says nothing of the estimate.
func (t *typical) learn(s *Step, first time.Duration, atFirst bool, notYet, seen time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byStep == nil {
		t.byStep = map[*Step]*estimate{}
	}
	e := t.byStep[s]
	switch {
	case e == nil:
		// The first item seen done: the middle of when it may have shown.
		t.byStep[s] = &estimate{at: (notYet + seen) / 2, n: 1}
	case notYet >= e.at:
		// Up by a step, or to half of when it had not shown yet, so an
		// estimate far too soon (or 0) catches up at once.
		e.n++
		e.at = max(time.Duration(float64(e.at)*e.step()), notYet/2)
	case seen <= e.at || atFirst && first <= e.at:
		// Down by a step (1-q)/q times the step up, so that it settles where
		// a share q of changes have shown.
		e.n++
		e.at = time.Duration(float64(e.at) / (1 + (e.step()-1)*(1-typicalQuantile)/typicalQuantile))
	}
}

// shown times the checks after a change was accepted, to learn (typical)
// when the next item's first check should come.
type shown struct {
	accepted time.Time     // when the answer came
	first    time.Duration // when the first check was due after it
	reads    int           // checks read since
	prev     time.Time     // the check before the last
	last     time.Time     // the last check
}

// typicalFirst is when the first check after an accepted change should come
// by what the step's earlier items showed (typical), leaving at least half the
// time left for reads after it. 0 for a step without for_each.
func (p *pipeline) typicalFirst(in sendInput) time.Duration {
	if p.itemIndex < 0 {
		return 0
	}
	est := p.r.typical.first(p.s)
	if in.bounded {
		est = min(est, in.left/2)
	}
	if t := p.s.Wait.Timeout; t > 0 {
		// What is left of it: a re-send's wait counts from the first.
		if !p.waitStart.IsZero() {
			t -= p.r.clock.Now().Sub(p.waitStart)
		}
		est = min(est, t/2)
	}
	return max(est, 0)
}

// learnShown tells typical how this item's wait went, when it saw its change.
func (p *pipeline) learnShown(v move, err error) (move, error) {
	sh := p.shown
	p.shown = shown{}
	// A change a stopped run sent was accepted before the resume: its time
	// from acceptance is unknown.
	if err != nil || v != done || p.itemIndex < 0 || p.resumed || sh.accepted.IsZero() || sh.reads == 0 {
		return v, err
	}
	var notYet time.Duration
	if sh.reads > 1 {
		notYet = sh.prev.Sub(sh.accepted)
	}
	p.r.typical.learn(p.s, sh.first, sh.reads == 1, notYet, sh.last.Sub(sh.accepted))
	return v, err
}
