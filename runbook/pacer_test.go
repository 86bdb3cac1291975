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
