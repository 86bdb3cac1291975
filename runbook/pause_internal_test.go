package runbook

import (
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"
)

// scaled is a clock running ten times faster than real time.
type scaled struct{ RealClock }

func (scaled) Real(d time.Duration) time.Duration { return d / 10 }

// TestJournaledPauseNeverEndsEarly: a pause read back from the journal, as a
// wall-clock time, ends on the run's clock no sooner than it did, not even by
// the nanosecond a float's rounding would take off. (Under synctest the clock
// stands still, so the comparison is exact.)
func TestJournaledPauseNeverEndsEarly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		for _, clock := range []Clock{RealClock{}, scaled{}} {
			r := &run{clock: clock}
			for range 10000 {
				d := time.Duration(rng.Int64N(int64(time.Hour)))
				want := d
				if clock.Real(time.Hour) != time.Hour {
					want = d * 10
				}
				if got := r.clockTime(time.Now().Add(d)).Sub(r.clock.Now()); got < want {
					t.Fatalf("%T: a pause of %s ends after %s", clock, want, got)
				}
			}
		}
	})
}
