package runbook

import (
	"testing"
	"time"
)

// TestAdaptiveRateStartsModest: the adaptive rate holds its starting rate for
// its first step before it doubles, and doubles once a step, not per answer.
func TestAdaptiveRateStartsModest(t *testing.T) {
	p := newPacer(0)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		after time.Duration
		want  float64
	}{
		{0, adaptStart},
		{time.Second, adaptStart},
		{adaptEvery - time.Millisecond, adaptStart},
		{adaptEvery, 2 * adaptStart},
		{adaptEvery + time.Second, 2 * adaptStart},
		{2 * adaptEvery, 4 * adaptStart},
	} {
		p.answered(t0.Add(c.after), false)
		if got := float64(p.lim.Limit()); got != c.want {
			t.Fatalf("after %s without a 429 the rate is %g/s, want %g/s", c.after, got, c.want)
		}
	}
}

// TestBudgetSeedsTheRateWithoutPassingIt: a budget that allows more than the
// adaptive rate raises it at once to what the budget allows, less the requests
// the server may not have counted and the turns in the bucket, so that what
// the pacer lets through before the reset stays within the budget; while the
// budget lasts, the rate does not double past it. After a 429, a budget no
// longer raises the rate; a huge one raises it to adaptMax, not past it.
func TestBudgetSeedsTheRateWithoutPassingIt(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	p := newPacer(0)
	seq := p.sending() // the answer carrying the budget
	p.sending()        // sent after it, not answered yet
	p.answered(now, false)
	p.spread(now, &Budget{Remaining: 100, Reset: 10 * time.Second}, seq)
	// 100 left, less the one sent after (counted again as unanswered: the
	// pacer cannot tell), less the 5 turns in the bucket.
	want := (100.0 - 1 - 1 - 5) / 10
	if got := float64(p.lim.Limit()); got != want {
		t.Fatalf("a budget of 100 requests for 10s seeded %g/s, want %g/s", got, want)
	}
	let := 0
	for d := time.Duration(0); d < 10*time.Second; d += time.Millisecond {
		if p.lim.AllowN(now.Add(d), 1) {
			let++
		}
	}
	if let+1 > 100 {
		t.Errorf("the pacer let %d requests through before the reset, with 1 in flight: the budget is 100", let)
	}
	p.answered(now.Add(6*time.Second), false)
	if got := float64(p.lim.Limit()); got != want {
		t.Errorf("with the budget current the rate rose to %g/s, want still %g/s", got, want)
	}

	p = newPacer(0)
	p.answered(now, true)
	cut := p.lim.Limit()
	p.spread(now, &Budget{Remaining: 1000, Reset: 10 * time.Second}, p.sending())
	if got := p.lim.Limit(); got != cut {
		t.Errorf("after a 429 a budget raised the rate from %v to %v", cut, got)
	}

	p = newPacer(0)
	p.spread(now, &Budget{Remaining: 1e9, Reset: time.Second}, p.sending())
	if got := float64(p.lim.Limit()); got != adaptMax {
		t.Errorf("a huge budget seeded %g/s, want adaptMax %g/s", got, float64(adaptMax))
	}
}

// TestLowBudgetIsSpreadOverItsWindow: a server's budget lower than what the
// rate would send before its reset caps the rate at the budget over the
// window, and the rate comes back once the window has reset; a budget that
// allows more than the rate changes nothing.
func TestLowBudgetIsSpreadOverItsWindow(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	p := newPacer(10)
	p.spread(now, &Budget{Remaining: 1000, Reset: 10 * time.Second}, 0)
	if got := p.lim.Limit(); got != 10 {
		t.Fatalf("a generous budget changed the rate to %v", got)
	}
	p.spread(now, &Budget{Remaining: 5, Reset: 10 * time.Second}, 0)
	if got := p.lim.Limit(); got != 0.5 {
		t.Errorf("5 requests left for 10s: rate %v, want 0.5/s", got)
	}
	p.answered(now.Add(6*time.Second), false) // no rise past the budget
	if got := p.lim.Limit(); got != 0.5 {
		t.Errorf("after an answer, rate %v, want still 0.5/s", got)
	}
	p.mu.Lock()
	p.uncap(now.Add(10 * time.Second))
	p.mu.Unlock()
	if got := p.lim.Limit(); got != 10 {
		t.Errorf("after the reset, rate %v, want 10/s again", got)
	}
}
