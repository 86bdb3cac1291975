package runbook

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"
)

// decide classifies the answer to a send and does what it calls for: wait for
// the change, wait out a busy or locked resource, back off, or fail.
func (p *pipeline) decide(ctx context.Context, out *Outcome, idempotent bool) (verdict, error) {
	s := p.s
	p.lastAnswer = answer(out)
	p.lastBusy = false
	if out.Accepted {
		if s.Action.Info().Mutating {
			p.accepted = answer(out)
		}
		if s.Action.Info().Mutating && p.busyLenient(out) {
			if !idempotent {
				// A create answered busy has been taken in (it is being made):
				// inferring "dropped" and sending it again could make two.
				if s.Wait.On {
					return p.wait(ctx)
				}
				return done, nil
			}
			// Accepted with a busy body: taken in, or dropped because the resource
			// was busy. Only the resource can tell, once it is not busy.
			p.lastBusy = true
			return p.waitNotBusyThenCheck(ctx, out)
		}
		if s.Wait.On {
			return p.wait(ctx)
		}
		return done, nil
	}
	switch {
	case out.Err != nil && out.Permanent:
		return 0, p.failure(Failed, out.Err, answer(out)+" (not retried)")
	case out.Err != nil && (!out.Written || idempotent):
		return p.backoff(ctx, answer(out), out)
	case out.Err != nil:
		return p.ambiguous(ctx, out)
	case out.Status == http.StatusLocked || out.Status == http.StatusTooManyRequests:
		p.lastBusy = true
		return p.retryAfter(ctx, out)
	case out.Status == http.StatusConflict || out.Status == http.StatusUnprocessableEntity:
		return p.conflict(ctx, out)
	case out.Status >= 500 || out.Status == http.StatusRequestTimeout:
		if idempotent {
			return p.backoff(ctx, answer(out), out)
		}
		return p.ambiguous(ctx, out)
	}
	msg := answer(out)
	if out.Status == http.StatusUnauthorized || out.Status == http.StatusForbidden {
		return 0, p.failure(Failed, nil, msg+" (check the credentials; never retried)")
	}
	// retry.when may ask for a re-send of an answer that would otherwise fail the
	// step; it never overrides the rules above (401/403, ambiguous changes).
	if s.Retry.When != nil {
		retry, err := s.Retry.When.Bool(p.scope)
		if err != nil {
			return 0, p.failure(Failed, err, err.Error())
		}
		if retry {
			return p.backoff(ctx, fmt.Sprintf("%s, and retry.when %s holds", msg, s.Retry.When.Source), out)
		}
	}
	return 0, p.failure(Failed, nil, msg)
}

// retryAfter waits out a 423 or 429, never less than Retry-After, or fails now
// when the wait would pass the deadline or max_retry_after.
func (p *pipeline) retryAfter(ctx context.Context, out *Outcome) (verdict, error) {
	// Missing, unreadable, zero or past: the retry interval, so a server that
	// says "now" cannot make the step hammer it.
	d := retryDelay(p.s.Retry, p.retries)
	if out.RetryAfter != nil && *out.RetryAfter > 0 {
		d = *out.RetryAfter
	}
	if d > p.s.Retry.MaxRetryAfter {
		return 0, p.failure(StillBusy, nil, fmt.Sprintf("%s: the wait of %s exceeds max_retry_after %s; raise retry.max_retry_after to wait longer",
			answer(out), fmtDur(d), fmtDur(p.s.Retry.MaxRetryAfter)))
	}
	if dl, ok := ctx.Deadline(); ok && p.r.clock.Real(d) > time.Until(dl) {
		left := time.Duration(float64(time.Until(dl)) * float64(d) / float64(max(p.r.clock.Real(d), 1)))
		return 0, p.failure(StillBusy, nil, fmt.Sprintf("%s: waiting %s would pass the deadline (%s left); raise the step's timeout to wait longer",
			answer(out), fmtDur(d), fmtDur(left)))
	}
	if s := p.s.Retry.MaxAttempts; s > 0 && p.attempts >= s {
		return 0, p.giveUp()
	}
	p.emit(Event{Type: Waiting, Phase: "change", Attempt: p.attempts, Status: out.Status, Reason: answer(out), Delay: d})
	if err := p.r.clock.Sleep(ctx, d); err != nil {
		return 0, p.ctxError(ctx)
	}
	p.emit(Event{Type: Retrying, Attempt: p.attempts, Reason: fmt.Sprintf("the %s wait has passed", fmtDur(d))})
	return resend, nil
}

// conflict handles 409 and 422: busy (the body says so, or the resource reads
// busy) waits and re-sends; anything else is a real error.
func (p *pipeline) conflict(ctx context.Context, out *Outcome) (verdict, error) {
	if strings.Contains(strings.ToLower(out.Snippet), "busy") {
		// The server says busy even if a check may not show it yet: never re-send
		// sooner than the retry interval, then wait until the check reads not busy
		// (with or without a guard before each send).
		p.lastBusy = true
		p.mustGuard = true
		return p.backoff(ctx, answer(out), out)
	}
	probe, err := p.read(ctx, p.s.Guard.Check, "guard")
	if err != nil {
		return 0, err
	}
	if ctx.Err() != nil {
		return 0, p.ctxError(ctx)
	}
	busy, err := p.busyState(probe)
	if err != nil {
		return 0, err
	}
	if !busy {
		return 0, p.failure(Failed, nil, fmt.Sprintf("%s (a validation error, not busy: fix the request)", answer(out)))
	}
	p.lastBusy = true
	if s := p.s.Retry.MaxAttempts; s > 0 && p.attempts >= s {
		return 0, p.giveUp()
	}
	// The check read busy: the guard waits it out from that read.
	p.mustGuard, p.firstRead = true, probe
	p.emit(Event{Type: Retrying, Attempt: p.attempts, Reason: "the resource is busy (the change got " + answer(out) + "); sending again once it is not"})
	return resend, nil
}

// backoff waits the retry interval (with backoff and jitter) before a re-send.
func (p *pipeline) backoff(ctx context.Context, why string, out *Outcome) (verdict, error) {
	r := p.s.Retry
	if r.MaxAttempts > 0 && p.attempts >= r.MaxAttempts {
		return 0, p.giveUp()
	}
	d := retryDelay(r, p.retries)
	p.retries++
	if out != nil && out.RetryAfter != nil && *out.RetryAfter > d {
		d = *out.RetryAfter // a 5xx that says when to come back
	}
	p.emit(Event{Type: Waiting, Phase: "change", Attempt: p.attempts, Reason: why, Delay: d})
	if err := p.r.clock.Sleep(ctx, d); err != nil {
		return 0, p.ctxError(ctx)
	}
	p.emit(Event{Type: Retrying, Attempt: p.attempts, Reason: "after " + why})
	return resend, nil
}

// retryDelay is the n-th re-send delay: interval × backoff^n, capped, jittered.
func retryDelay(r Retry, n int) time.Duration {
	d := float64(r.Interval)
	for i := 0; i < n && r.Backoff > 1; i++ {
		d *= r.Backoff
		if r.MaxInterval > 0 && d > float64(r.MaxInterval) {
			break
		}
	}
	if r.MaxInterval > 0 && d > float64(r.MaxInterval) {
		d = float64(r.MaxInterval)
	}
	if r.Jitter > 0 {
		d *= 1 + r.Jitter*(2*rand.Float64()-1)
	}
	return time.Duration(d)
}

// ambiguous handles a non-idempotent change that may or may not have taken
// effect: done if its condition already holds, re-sent only when the runbook says
// it is safe.
func (p *pipeline) ambiguous(ctx context.Context, out *Outcome) (verdict, error) {
	s := p.s
	// A check that reads the answer cannot be made from a failed one: it
	// would read something else (an error body's request id).
	if s.Wait.On && s.Wait.Until != nil && !s.Wait.AfterSend {
		probe, err := p.read(ctx, s.Wait.Check, "wait")
		if err != nil {
			return 0, err
		}
		if ctx.Err() != nil {
			return 0, p.ctxError(ctx)
		}
		if probe != nil && probe.Err == nil && probe.Status != 0 {
			ok, err := s.Wait.Until.Bool(p.scope)
			if err == nil && ok {
				return done, nil
			}
		}
	}
	method := p.what()
	return 0, p.failure(Failed, nil, fmt.Sprintf("%s after the request was sent: the %s may have taken effect, and %s is not idempotent, so it was not re-sent. Check the resource before running again; set retry.idempotent: true if re-sending is safe",
		answer(out), method, method))
}

// giveUp is the retry budget used up.
func (p *pipeline) giveUp() error {
	why := Failed
	if p.lastBusy {
		why = StillBusy
	}
	return p.failure(why, nil, fmt.Sprintf("gave up after %d attempt%s (retry.max_attempts); the last answer was %s", p.attempts, plural(p.attempts), p.lastAnswer))
}
