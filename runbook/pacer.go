package runbook

import (
	"context"
	"math"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// The path every request of a run takes to its host (run.do): the host's
// Retry-After pause, its pacer, the journal's intent, the call, the answer.

// pacer paces the requests of a run to one host: a token bucket at the rate of
// defaults.http.rate, or, with none configured, an adaptive rate. The adaptive
// rate starts modest and, like TCP's slow start, doubles every second while
// requests wait their turn and no 429 has come (so a fleet's first burst is
// not thrown at the host, nor held back long); a rate nobody uses up is not
// raised. At a 429 it drops below the rate the host was actually giving, then
// climbs back slowly, so a long run settles just under the server's limit with
// few 429s. A host that announces its budget is paced by what it allows.
type pacer struct {
	mu        sync.Mutex
	lim       *rate.Limiter
	adaptive  bool
	throttled bool        // a 429 has come: growth is additive from now on
	waited    bool        // a request waited its turn since the last rise: the rate is what holds the run back
	sent      []time.Time // answer times of the last window, for the measured rate
	lastCut   time.Time
	lastRise  time.Time
	// A server's budget caps the rate until capUntil, its reset: uncapped is
	// the rate to go back to.
	capped   bool
	capUntil time.Time
	uncapped rate.Limit
	// Requests sent (a sequence) and not yet answered, which an answer's
	// budget may not count yet; budgetUntil is the reset of the last budget
	// heard, until which the budget, not doubling, sets the rate.
	sends       uint64
	inflight    int
	budgetUntil time.Time
}

const (
	adaptWindow  = 10 * time.Second // the measured rate is over this window
	adaptCut     = 0.7              // a 429 sets the rate to this share of the measured one
	adaptStep    = 0.25             // requests/s added...
	adaptEvery   = 5 * time.Second  // ...this often after a 429
	adaptDouble  = time.Second      // before one, the rate doubles this often...
	adaptInUse   = 0.8              // ...while requests go at this share of it, or more
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

// spread caps the rate when the server's budget (b.Remaining requests until
// b.Reset) is lower than what the current rate would send before the reset:
// the requests left are spread over the window rather than spent at once and
// met by a 429. A budget that allows more than the rate changes nothing, but
// for an adaptive rate that has met no 429: it starts from what the budget
// allows instead of doubling up to it. seq is the request the answer came to
// (from sending).
func (p *pacer) spread(now time.Time, b *Budget, seq uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.uncap(now)
	p.budgetUntil = now.Add(b.Reset)
	allowed := rate.Limit(float64(b.Remaining) / b.Reset.Seconds())
	if allowed >= p.lim.Limit() {
		if p.adaptive && !p.throttled && !p.capped {
			p.seed(now, b, seq)
		}
		return
	}
	if !p.capped {
		p.uncapped = p.lim.Limit()
	}
	p.capped, p.capUntil = true, now.Add(b.Reset)
	p.lim.SetLimitAt(now, allowed)
	p.lim.SetBurstAt(now, 1)
}

// seed raises the rate to what b allows over its window, and no further: of
// b.Remaining it takes off the requests the server may not have counted yet
// (sent after seq, and those unanswered: one that is both is taken off twice,
// so the seed errs low) and the turns already in the bucket, so that the
// bucket's turns and the rate until the reset together come to no more than
// the budget, whatever the burst.
func (p *pacer) seed(now time.Time, b *Budget, seq uint64) {
	uncounted := float64(p.sends-seq) + float64(p.inflight) + max(p.lim.TokensAt(now), 0)
	r := min((float64(b.Remaining)-uncounted)/b.Reset.Seconds(), adaptMax)
	if rate.Limit(r) > p.lim.Limit() {
		p.setLimit(now, r)
	}
}

// uncap goes back to the rate before a budget's cap once its window has reset.
func (p *pacer) uncap(now time.Time) {
	if p.capped && !now.Before(p.capUntil) {
		p.capped = false
		p.setLimit(now, float64(p.uncapped))
	}
}

// wait blocks until the next request may go, on the run's clock. It waits in
// slices of at most a second and asks again, so a rate that rises meanwhile is
// felt at once by requests already waiting.
func (p *pacer) wait(ctx context.Context, clock Clock) error {
	for {
		now := clock.Now()
		p.mu.Lock()
		p.uncap(now)
		res := p.lim.ReserveN(now, 1)
		d := res.DelayFrom(now)
		if d > 0 {
			res.CancelAt(now)
			p.waited = true
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

// sending counts a request that goes now, and says which it is, for spread.
func (p *pacer) sending() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sends++
	p.inflight++
	return p.sends
}

// answered adapts the rate to one answer: down on 429, up otherwise while the
// rate holds requests back.
func (p *pacer) answered(now time.Time, throttled bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inflight = max(p.inflight-1, 0)
	if !p.adaptive {
		return
	}
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
		if p.capped {
			// After the budget's window, back to the cut rate, not above it.
			p.uncapped = min(p.uncapped, p.lim.Limit())
		}
		p.lastCut, p.lastRise, p.throttled, p.waited = now, now, true, false
		return
	}
	if limit == math.Inf(1) || p.capped {
		// Not past what the server's budget allows, either.
		return
	}
	var next float64
	switch {
	case p.throttled:
		if now.Sub(p.lastRise) < adaptEvery {
			return
		}
		next = limit + adaptStep
	case now.Sub(p.lastRise) < adaptDouble || now.Before(p.budgetUntil):
		// A host's budget, while it lasts, sets the rate (spread).
		return
	default:
		// Slow start weighs each second on its own: the rate doubles if it is
		// what held the run back, that is if requests waited their turn and
		// went at about the rate. Otherwise the run asks for less than the
		// rate, and doubling it would only let a later burst through
		// unchecked; nor is a queue flushed just after a rise demand for more.
		inUse := p.waited && float64(p.answeredSince(p.lastRise)) >= adaptInUse*limit*now.Sub(p.lastRise).Seconds()
		p.lastRise, p.waited = now, false
		if !inUse {
			return
		}
		next = limit * 2
	}
	p.setLimit(now, next)
	p.lastRise, p.waited = now, false
}

// answeredSince counts the answers after t, of the last window.
func (p *pacer) answeredSince(t time.Time) int {
	n := 0
	for i := len(p.sent) - 1; i >= 0 && p.sent[i].After(t); i-- {
		n++
	}
	return n
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

// do sends one call (an action or a check) through the run's shared rules: the
// host's pacer gives it a turn, and a host that answered 423 or 429 with
// Retry-After (or 429 without) gets nothing until the pause has passed.
// intent, if any, journals the call just before it goes: after the waits, so
// that a run stopped while it waits is not taken for one that sent. Nothing is
// sent once the journal has failed.
//
// A change of an API (finish) that has left is let finish on a signal or a
// deadline, bounded by its own request timeout: its answer, journaled, tells a
// resume whether it was made, where a request cut off in flight would leave a
// create that may or may not exist.
func (r *run) do(ctx context.Context, p *pipeline, call Call, intent func() error, finish bool) *Outcome {
	if err := r.journalErr(); err != nil {
		return &Outcome{Err: err}
	}
	t := call.Target()
	var pace *pacer
	if t.Host != "" {
		pace = r.pacers.get(t.Host)
	}
	// The pause is waited out before pacing, so requests held by a pause do not
	// collect turns and then hit the host together when it ends; and again after,
	// since a pause may begin while a request waits its turn (that turn is spent).
	for pace != nil {
		if err := r.waitPause(ctx, p, t); err != nil {
			return &Outcome{Err: err}
		}
		if err := pace.wait(ctx, r.clock); err != nil {
			return &Outcome{Err: err}
		}
		if !r.clock.Now().Before(r.pauses.get(t.Host)) {
			break
		}
	}
	// The journal may have failed while this call waited.
	if err := r.journalErr(); err != nil {
		return &Outcome{Err: err}
	}
	if intent != nil {
		if err := intent(); err != nil {
			return &Outcome{Err: err}
		}
	}
	callCtx := ctx
	if finish {
		callCtx = context.WithoutCancel(ctx)
	}
	var seq uint64
	if pace != nil {
		seq = pace.sending()
	}
	out := call.Do(callCtx)
	if err := r.decode(callCtx, p, out, t); err != nil {
		out.Err = err
	}
	r.tidy(out)
	if pace != nil {
		pace.answered(r.clock.Now(), out.Status == http.StatusTooManyRequests || rateLimited403(out))
		if b := out.Budget; b != nil && b.Remaining > 0 && b.Reset > 0 {
			pace.spread(r.clock.Now(), b, seq)
		}
	}
	req := Event{Type: Request, Target: t.String(), Status: out.Status, Reason: answer(out), Duration: out.Elapsed}
	if r.verbose {
		req.Sent, req.Received = t.Shown+shownBody(r.redact, []byte(t.Body)), shownBody(r.redact, out.Raw)
	}
	p.emit(req)
	if t.Host != "" && slowDown(out) {
		var until time.Time
		now := r.clock.Now()
		if out.RetryAfter != nil && *out.RetryAfter > 0 {
			until = now.Add(*out.RetryAfter)
		}
		if b := out.Budget; b != nil && b.Remaining == 0 && b.Reset > 0 && now.Add(b.Reset).After(until) {
			// No request left until the window resets: none is sent before,
			// whatever a shorter Retry-After says (a 202's or a monitor's is
			// about reading the operation, not about the budget).
			until = now.Add(b.Reset)
		}
		if until.IsZero() && (out.Status == http.StatusTooManyRequests || out.Status == http.StatusForbidden) {
			// Throttled without saying for how long: the whole host still needs a rest.
			until = now.Add(p.s.Retry.Interval)
		}
		var err error
		if !until.IsZero() {
			err = r.pause(t.Host, until)
		}
		if err != nil {
			// The answer stands; the journal's failure stops the run at its next request.
			p.emit(Event{Type: LogLine, Reason: err.Error()})
		}
	}
	return out
}

// waitPause sleeps until the host's Retry-After pause has passed, reading it
// again after every sleep, since another item may have extended it meanwhile.
func (r *run) waitPause(ctx context.Context, p *pipeline, t Target) error {
	for {
		until := r.pauses.get(t.Host)
		now := r.clock.Now()
		if !now.Before(until) {
			return nil
		}
		d := until.Sub(now)
		p.emit(Event{Type: Waiting, Phase: PhasePause, Target: t.String(), Reason: t.Host + " asked to slow down", Delay: d})
		if err := r.clock.Sleep(ctx, d); err != nil {
			return err
		}
	}
}

// tidy redacts the text an outcome carries and only then cuts it short, so no
// part of a secret survives the cut.
func (r *run) tidy(out *Outcome) {
	out.Text = truncate(r.redact.String(out.Text), 60)
	if out.Status >= 400 {
		out.Said = truncate(r.redact.String(ServerMessage(out)), 200)
	}
	out.Snippet = truncate(r.redact.String(out.Snippet), 200)
	out.Message = r.redact.String(out.Message)
	if !out.Accepted {
		out.Message = truncate(out.Message, 300)
	}
}

// slowDown says whether an answer asks the client to come back later: 423 and
// 429, a 403 that is a rate limit, a 5xx whose Retry-After says when the
// server expects to be back, and any answer that says no request is left
// before its budget resets. Retry-After, when there is one, says for how long.
func slowDown(out *Outcome) bool {
	return out.Status == http.StatusLocked || out.Status == http.StatusTooManyRequests || rateLimited403(out) ||
		(out.Status >= 500 && out.RetryAfter != nil) ||
		(out.Budget != nil && out.Budget.Remaining == 0 && out.Budget.Reset > 0)
}
