package sim

import (
	"context"
	"time"
)

// Clock is the simulator's time source. Operations are timed against Now, and
// Sleep serves slow responses, so a test, a demo and a real server can each run
// the same simulation on the time that suits them.
type Clock interface {
	Now() time.Time
	// Sleep waits for d, or until ctx is done, in which case it returns ctx.Err().
	Sleep(ctx context.Context, d time.Duration) error
}

// RealClock returns the clock of the time package. Under testing/synctest that
// is the bubble's fake clock, which is how tests get ten-minute scenarios in
// milliseconds.
func RealClock() Clock { return realClock{} }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Sleep(ctx context.Context, d time.Duration) error { return sleep(ctx, d) }

// ScaledClock returns a clock whose time runs scale times faster than real
// time, starting at the real now. It lets `runbook run --sim` show minutes of
// busy waiting in seconds. A scale of zero or less means 1.
func ScaledClock(scale float64) Clock {
	if scale <= 0 {
		scale = 1
	}
	return scaledClock{scale: scale, start: time.Now()}
}

type scaledClock struct {
	scale float64
	start time.Time
}

func (c scaledClock) Now() time.Time {
	elapsed := time.Since(c.start)
	return c.start.Add(time.Duration(float64(elapsed) * c.scale))
}

func (c scaledClock) Sleep(ctx context.Context, d time.Duration) error {
	return sleep(ctx, time.Duration(float64(d)/c.scale))
}

// sleep waits with a timer that is stopped on return, so that nothing is left
// behind when ctx is cancelled first (synctest counts leftover timers' goroutines).
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
