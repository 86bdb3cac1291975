package runbook

import (
	"context"
	"sync"
	"time"
)

// pauses holds the Retry-After pause of each host: a 429 or 423 on any request
// pauses every request to that host, guard reads included.
type pauses struct {
	mu    sync.Mutex
	until map[string]time.Time
}

func (p *pauses) get(host string) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.until[host]
}

// last is when the longest pause that has not passed ends, as a wall-clock
// time; zero when none.
func (p *pauses) last(r *run) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	var end time.Time
	now := r.clock.Now()
	for _, t := range p.until {
		if t.After(now) && t.After(end) {
			end = t
		}
	}
	if end.IsZero() {
		return end
	}
	return time.Now().Add(r.clock.Real(end.Sub(now)))
}

// extend makes the host's pause last until t at least; it says whether it
// grew.
func (p *pauses) extend(host string, t time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !t.After(p.until[host]) {
		return false
	}
	p.until[host] = t
	return true
}

// gateKey names what the guard reads, so changes gated by one check take turns.
func (p *pipeline) gateKey() string {
	check := p.s.Guard.Check
	if check == nil {
		return ""
	}
	call, err := check.Prepare(p.scope)
	if err != nil {
		return ""
	}
	return call.Target().String()
}

// gateShown is the headers the guard's check shows (not its secrets), so a
// read shared between items is one they would all have made.
func (p *pipeline) gateShown() string {
	call, err := p.s.Guard.Check.Prepare(p.scope)
	if err != nil {
		return ""
	}
	return call.Target().Shown
}

// gates are one-at-a-time passages keyed by a guard's check. They are channels,
// not mutexes, so a wait on one is durable for testing/synctest.
type gates struct {
	mu    sync.Mutex
	byKey map[string]chan struct{}
}

// enter waits for the key's gate, and returns its release.
func (g *gates) enter(ctx context.Context, key string) (func(), error) {
	if key == "" {
		return func() {}, nil
	}
	g.mu.Lock()
	ch, ok := g.byKey[key]
	if !ok {
		ch = make(chan struct{}, 1)
		g.byKey[key] = ch
	}
	g.mu.Unlock()
	select {
	case ch <- struct{}{}:
		var once sync.Once
		return func() { once.Do(func() { <-ch }) }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// pause holds every request to host until t (on the run's clock), and
// journals it as a wall-clock time, so that a resume or the next run of the
// runbook waits it out too.
func (r *run) pause(host string, t time.Time) error {
	if !r.pauses.extend(host, t) {
		return nil
	}
	return r.record(Record{Type: recPause, Host: host, Until: time.Now().Add(r.clock.Real(t.Sub(r.clock.Now())))})
}
