package runbook

import (
	"context"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// pacer paces the requests of a run to one host: a token bucket at the rate of
// defaults.http.rate, or, with none configured, an adaptive rate. The adaptive
// rate starts modest and doubles while no 429 comes (so a fleet's first burst is
// not thrown at the host); at a 429 it drops below the rate the host was actually
// giving, then climbs back slowly, so a long run settles just under the server's
// limit with few 429s.
type pacer struct {
	mu        sync.Mutex
	lim       *rate.Limiter
	adaptive  bool
	throttled bool        // a 429 has come: growth is additive from now on
	sent      []time.Time // answer times of the last window, for the measured rate
	lastCut   time.Time
	lastRise  time.Time
}

const (
	adaptWindow  = 10 * time.Second // the measured rate is over this window
	adaptCut     = 0.7              // a 429 sets the rate to this share of the measured one
	adaptStep    = 0.25             // requests/s added...
	adaptEvery   = 5 * time.Second  // ...this often while no 429 comes
	adaptMinRate = 1.0
	adaptStart   = 5.0  // requests/s before anything is known of the host
	adaptMax     = 1000 // past this, a host that never throttles is not paced
)

func newPacer(perSecond float64) *pacer {
	if perSecond > 0 {
		return &pacer{lim: rate.NewLimiter(rate.Limit(perSecond), burst(perSecond))}
	}
	return &pacer{lim: rate.NewLimiter(adaptStart, burst(adaptStart)), adaptive: true}
}

// burst is a second's worth of requests: a step's guard read, change and first
// check go out together, while a fleet's average stays at the rate.
func burst(perSecond float64) int { return max(1, int(math.Ceil(perSecond))) }

// setLimit changes the rate, and the burst with it.
func (p *pacer) setLimit(now time.Time, perSecond float64) {
	if perSecond > adaptMax {
		p.lim.SetLimitAt(now, rate.Inf)
		return
	}
	p.lim.SetLimitAt(now, rate.Limit(perSecond))
	p.lim.SetBurstAt(now, burst(perSecond))
}

// wait blocks until the next request may go, on the run's clock. It waits in
// slices of at most a second and asks again, so a rate that rises meanwhile is
// felt at once by requests already waiting.
func (p *pacer) wait(ctx context.Context, clock Clock) error {
	for {
		now := clock.Now()
		p.mu.Lock()
		res := p.lim.ReserveN(now, 1)
		d := res.DelayFrom(now)
		if d > 0 {
			res.CancelAt(now)
		}
		p.mu.Unlock()
		if d <= 0 {
			break
		}
		if err := clock.Sleep(ctx, min(d, time.Second)); err != nil {
			return err
		}
	}
	return nil
}

// answered adapts the rate to one answer: down on 429, slowly up otherwise.
func (p *pacer) answered(now time.Time, throttled bool) {
	if !p.adaptive {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	// Counted when answered, not when the turn was given: a turn spent waiting
	// out a pause sends nothing.
	if p.lastRise.IsZero() {
		// The first answer starts the clock of the first rise.
		p.lastRise = now
	}
	p.sent = append(p.sent, now)
	cut := 0
	for cut < len(p.sent) && now.Sub(p.sent[cut]) > adaptWindow {
		cut++
	}
	p.sent = p.sent[cut:]
	limit := float64(p.lim.Limit())
	if throttled {
		// One burst of 429s is one signal: cut once per window.
		if now.Sub(p.lastCut) < adaptWindow {
			return
		}
		// Over the window, or over the time since sending began if that is shorter,
		// so a burst after a quiet spell is measured as the burst it is.
		span := adaptWindow
		if len(p.sent) > 0 {
			span = min(span, max(now.Sub(p.sent[0]), time.Second))
		}
		measured := float64(len(p.sent)) / span.Seconds()
		if limit != math.Inf(1) {
			measured = min(measured, limit)
		}
		p.setLimit(now, max(adaptMinRate, measured*adaptCut))
		p.lastCut, p.lastRise, p.throttled = now, now, true
		return
	}
	if limit == math.Inf(1) || now.Sub(p.lastRise) < adaptEvery {
		return
	}
	next := limit + adaptStep
	if !p.throttled {
		next = limit * 2
	}
	p.setLimit(now, next)
	p.lastRise = now
}

// pacers holds one pacer per host.
type pacers struct {
	mu        sync.Mutex
	perSecond float64
	byHost    map[string]*pacer
}

func (ps *pacers) get(host string) *pacer {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	p, ok := ps.byHost[host]
	if !ok {
		p = newPacer(ps.perSecond)
		ps.byHost[host] = p
	}
	return p
}
