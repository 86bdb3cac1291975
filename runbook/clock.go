package runbook

import (
	"context"
	"time"
)

// Clock is the executor's time. It is real time, except for `run --sim`, where the
// run shares the simulator's scaled clock so a rehearsal shows every wait in
// seconds. Under testing/synctest real time is already fake.
type Clock interface {
	Now() time.Time
	// Sleep waits d of this clock's time, or until ctx ends.
	Sleep(ctx context.Context, d time.Duration) error
	// Real converts a span of this clock's time to real time, for context deadlines.
	Real(d time.Duration) time.Duration
}

// RealClock is wall-clock time.
type RealClock struct{}

// Now is time.Now.
func (RealClock) Now() time.Time { return time.Now() }

// Real is the identity.
func (RealClock) Real(d time.Duration) time.Duration { return d }

// Sleep waits d or until ctx ends: the only way the executor waits, so no wait
// outlives its deadline or Ctrl-C.
func (RealClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
