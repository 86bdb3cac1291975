package runbook

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// demand has senders send through p until ctx ends, each waiting think
// after its answer: a fleet whose demand is senders/think requests a second,
// or unbounded with no think. Call it in a synctest bubble.
func demand(ctx context.Context, p *pacer, senders int, think time.Duration) {
	for range senders {
		go func() {
			for p.wait(ctx, RealClock{}) == nil {
				p.sending()
				p.answered(time.Now(), false)
				if (RealClock{}).Sleep(ctx, think) != nil {
					return
				}
			}
		}()
	}
}

// limitAt sleeps until d after t0 and reads p's rate.
func limitAt(p *pacer, t0 time.Time, d time.Duration) float64 {
	time.Sleep(time.Until(t0.Add(d)))
	p.mu.Lock()
	defer p.mu.Unlock()
	return float64(p.lim.Limit())
}

// TestSlowStartDoublesEachSecondWhileTheRateHoldsRequestsBack: with more
// requests than the rate lets through, the adaptive rate starts at adaptStart
// and doubles once a second, not once per answer.
func TestSlowStartDoublesEachSecondWhileTheRateHoldsRequestsBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		p := newPacer(0)
		t0 := time.Now()
		demand(ctx, p, 100, 0)
		for _, c := range []struct {
			after time.Duration
			want  float64
		}{
			{500 * time.Millisecond, adaptStart},
			{1500 * time.Millisecond, 2 * adaptStart},
			{2500 * time.Millisecond, 4 * adaptStart},
			{3500 * time.Millisecond, 8 * adaptStart},
		} {
			if got := limitAt(p, t0, c.after); got != c.want {
				t.Fatalf("after %s with requests waiting the rate is %g/s, want %g/s", c.after, got, c.want)
			}
		}
	})
}

// TestSlowStartStopsWhereDemandEnds: a fleet asking 12 requests a second
// takes the rate from 5/s to 10/s and 20/s, where no request waits and the
// rate, no longer used up, rises no more.
func TestSlowStartStopsWhereDemandEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		p := newPacer(0)
		t0 := time.Now()
		demand(ctx, p, 12, time.Second)
		for _, c := range []struct {
			after time.Duration
			want  float64
		}{
			{1500 * time.Millisecond, 2 * adaptStart},
			{2500 * time.Millisecond, 4 * adaptStart},
			{30 * time.Second, 4 * adaptStart},
		} {
			if got := limitAt(p, t0, c.after); got != c.want {
				t.Fatalf("after %s at 12 requests/s the rate is %g/s, want %g/s", c.after, got, c.want)
			}
		}
	})
}

// TestFirst429EndsSlowStart: after a 429 the rate is cut to adaptCut of the
// measured rate and, however many requests wait, grows by adaptStep every
// adaptEvery instead of doubling.
func TestFirst429EndsSlowStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		p := newPacer(0)
		t0 := time.Now()
		demand(ctx, p, 100, 0)
		if got := limitAt(p, t0, 2500*time.Millisecond); got != 4*adaptStart {
			t.Fatalf("before the 429 the rate is %g/s, want %g/s", got, 4*adaptStart)
		}
		p.answered(time.Now(), true)
		p.mu.Lock()
		// The answers since the first, the 429's too, over the 2.5s they took.
		measured := float64(len(p.sent)) / 2.5
		p.mu.Unlock()
		cut := limitAt(p, t0, 2500*time.Millisecond)
		if cut != measured*adaptCut || cut >= 2*adaptStart {
			t.Fatalf("after the 429 the rate is %g/s, want %g/s", cut, measured*adaptCut)
		}
		if got := limitAt(p, t0, 2500*time.Millisecond+adaptEvery-time.Millisecond); got != cut {
			t.Errorf("%s after the 429 the rate is %g/s, want still %g/s", adaptEvery-time.Millisecond, got, cut)
		}
		if got := limitAt(p, t0, 2500*time.Millisecond+adaptEvery+500*time.Millisecond); got != cut+adaptStep {
			t.Errorf("%s after the 429 the rate is %g/s, want %g/s", adaptEvery+500*time.Millisecond, got, cut+adaptStep)
		}
	})
}

// TestSlowStartStopsAtABudget: while a host's budget lasts, requests waiting
// on the rate it allows do not double it.
func TestSlowStartStopsAtABudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		p := newPacer(0)
		t0 := time.Now()
		p.spread(t0, &Budget{Remaining: 1200, Reset: time.Minute}, p.sending())
		seeded := limitAt(p, t0, 0)
		if seeded <= adaptStart {
			t.Fatalf("a budget of 1200 requests a minute left the rate at %g/s", seeded)
		}
		demand(ctx, p, 100, 0)
		if got := limitAt(p, t0, 5*time.Second); got != seeded {
			t.Errorf("with requests waiting on the budget's %g/s, the rate went to %g/s", seeded, got)
		}
	})
}

// TestBudgetSeedsTheRateWithoutPassingIt: a budget that allows more than the
// adaptive rate raises it at once to what the budget allows, less the requests
// the server may not have counted and the turns in the bucket, so that what
// the pacer lets through before the reset stays within the budget. After a
// 429, a budget no longer raises the rate; a huge one raises it to adaptMax,
// not past it.
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
