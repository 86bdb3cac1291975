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

// TestLowBudgetIsSpreadOverItsWindow: a server's budget lower than what the
// rate would send before its reset caps the rate at the budget over the
// window, and the rate comes back once the window has reset; a budget that
// allows more than the rate changes nothing.
func TestLowBudgetIsSpreadOverItsWindow(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	p := newPacer(10)
	p.spread(now, &Budget{Remaining: 1000, Reset: 10 * time.Second})
	if got := p.lim.Limit(); got != 10 {
		t.Fatalf("a generous budget changed the rate to %v", got)
	}
	p.spread(now, &Budget{Remaining: 5, Reset: 10 * time.Second})
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
