package runbook

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"
)

// The executor's rules (docs/executor.md) as pure functions: classify names
// what an answer is; sendPolicy and readPolicy say what to do about it. They
// read nothing, sleep, emit nor change anything: the pipeline gathers their
// inputs and carries their decisions out (pipeline.answered, pipeline.judgeRead).

// class is what an answer is, as the rules tell answers apart.
type class int

const (
	accepted      class = iota // in expect (by default any 2xx, and 404 for a DELETE)
	busyConflict               // 409 or 422 whose body says busy
	conflict                   // 409 or 422 that does not say busy: busy only if the check reads so
	locked                     // 423: wait Retry-After
	throttled                  // 429: wait Retry-After
	gone                       // 404 (not in expect)
	denied                     // 401 or 403: never retried
	serverError                // 5xx or 408: the server may or may not have acted
	lostUnsent                 // no answer, and the request was not written: safe to send again
	lostSent                   // no answer after the request was written: it may have taken effect
	permanent                  // an error the same request would meet again (a certificate, a redirect loop)
	commandFailed              // a command that exited non-zero, or a sleep cut short
	rejected                   // any other answer outside expect (another 4xx, a 3xx)
)

var classNames = [...]string{"accepted", "busy conflict", "conflict", "locked", "throttled", "gone",
	"denied", "server error", "lost unsent", "lost sent", "permanent", "command failed", "rejected"}

func (c class) String() string { return classNames[c] }

// outcome is an answer as the policy sees it.
type outcome struct {
	class      class
	out        *Outcome      // the answer itself, read only
	retryAfter time.Duration // a readable Retry-After above zero, else 0
}

// answer says what the answer was, for messages: "423 Retry-After 30s". Made
// when a message needs it: most reads need none.
func (o outcome) answer() string { return answer(o.out) }

// classify names what an answer is. An error wins over a status: an answer
// that could not be completed is no answer.
func classify(out *Outcome) outcome {
	o := outcome{out: out}
	if ra := out.RetryAfter; ra != nil && *ra > 0 {
		o.retryAfter = *ra
	}
	switch s := out.Status; {
	case out.Err != nil && out.Permanent:
		o.class = permanent
	case out.Err != nil && out.Written:
		o.class = lostSent
	case out.Err != nil:
		o.class = lostUnsent
	case out.Accepted:
		o.class = accepted
	case s == 0:
		o.class = commandFailed
	case s == http.StatusLocked:
		o.class = locked
	case s == http.StatusTooManyRequests, rateLimited403(out):
		o.class = throttled
	case s == http.StatusConflict, s == http.StatusUnprocessableEntity:
		o.class = conflict
		if strings.Contains(strings.ToLower(out.Snippet), "busy") {
			o.class = busyConflict
		}
	case s == http.StatusNotFound:
		o.class = gone
	case s == http.StatusUnauthorized, s == http.StatusForbidden:
		o.class = denied
	case s >= 500, s == http.StatusRequestTimeout:
		o.class = serverError
	default:
		o.class = rejected
	}
	return o
}

// rateLimited403 is a 403 that is a rate limit, not a denial: it says when to
// come back, or that no requests are left (GitHub's way).
func rateLimited403(out *Outcome) bool {
	return out.Status == http.StatusForbidden && (out.RetryAfter != nil || out.Budget != nil && out.Budget.Remaining == 0)
}

// onlyRetryWhen says whether retry.when alone can retry an answer of this
// class: it never overrides the rules (401/403, ambiguous changes, busy).
func (c class) onlyRetryWhen() bool {
	return c == gone || c == commandFailed || c == rejected
}

// move is what comes next for a step: a decision's, a read's or a phase's.
type move int

const (
	keepWaiting move = iota // a read: busy, queued, stale, not yet; read again after the interval
	done                    // the condition holds; for an answer: accepted, nothing to wait for
	resend                  // send the change again (after the decision's delay)
	waitFor                 // accepted: read the wait's check until `until` holds
	waitNotBusy             // accepted, busy: read until not busy, then see whether it took
	probe                   // read a check (the decision's probe), then decide again with what it says
	judge                   // a read to judge by the phase's conditions
	fail                    // the step fails
)

var moveNames = [...]string{"keep waiting", "done", "resend", "wait for", "wait until not busy", "probe", "judge", "fail"}

func (m move) String() string { return moveNames[m] }

// probeOf names the check a probe reads.
type probeOf int

const (
	probeGuard probeOf = iota + 1 // is the resource busy? (a 409 or 422 that did not say)
	probeWait                     // does `until` hold already? (an ambiguous change)
)

// decision is what the policy says to do.
type decision struct {
	move    move
	busy    bool          // the answer said busy, locked or slow down: a give-up is exit 75
	delay   time.Duration // resend: how long to wait first
	waiting string        // resend: the waiting event's reason; "": no wait at all
	status  bool          // resend: the waiting event carries the answer's status
	backoff bool          // resend: the delay was a backoff step, so the next one grows
	guard   bool          // resend: only once the guard reads not busy, whatever guard: says
	retry   string        // resend: the retry event's reason
	probe   probeOf       // probe: which check
	reason  string        // keepWaiting: what the read showed, for the waiting event
	floor   time.Duration // keepWaiting: the server's Retry-After: the next read no sooner
	failed  string        // a read: why the check failed, for deadline messages
	why     Failure       // fail: the failure kind
	msg     string        // fail: the message
	cause   error         // fail: the error it wraps
	err     error         // fail: an error made already (a condition's), returned as is
}

// sendInput is what the policy for an answer to a send looks at.
type sendInput struct {
	out        outcome
	retry      Retry
	attempts   int           // sends so far, this one included
	backoff    time.Duration // the retry delay due now: retryDelay(retry, retries)
	left       time.Duration // time left before the deadline, on the run's clock
	bounded    bool          // there is a deadline
	mutating   bool          // a change
	idempotent bool          // safe to send again after an ambiguous failure
	wait       bool          // the step waits for its change (wait_for)
	canProbe   bool          // an ambiguous change can be judged by reading its wait's check
	busyBody   bool          // accepted, and busy_when holds on the body (leniently)
	monitor    bool          // accepted, naming a status monitor that the wait polls
	what       string        // the action in messages: its method, or "command"
	retryWhen  *bool         // retry.when on this answer, when the class lets it count
	whenSource string        // retry.when as written
	whenErr    error         // retry.when could not be evaluated
	probed     *probed       // what a probe read, once made
}

// probed is what a probe's read said.
type probed struct {
	busy  bool // probeGuard: busy_when holds
	holds bool // probeWait: `until` holds
}

// sendPolicy says what to do about the answer to a send. Every re-send it
// decides is bounded by the retry budget, checked here once.
func sendPolicy(in sendInput) decision {
	d := sendRule(in)
	if d.move == resend && spent(in.retry, in.attempts) {
		return giveUp(in.attempts, in.out.answer(), d.busy)
	}
	return d
}

func sendRule(in sendInput) decision {
	o := in.out
	switch o.class {
	case accepted:
		switch {
		case in.monitor:
			// A long-running operation: accepted is not done, whatever the
			// body says, until its monitor says so.
			return decision{move: waitFor}
		case in.mutating && in.busyBody && in.idempotent:
			// Accepted with a busy body: taken in, or dropped because the
			// resource was busy. Only the resource can tell, once it is not busy.
			return decision{move: waitNotBusy, busy: true}
		case in.wait:
			// A create answered busy lands here too: it has been taken in (it
			// is being made), and sending it again could make two.
			return decision{move: waitFor}
		}
		return decision{move: done}
	case permanent:
		return failWith(Failed, o.answer()+" (not retried)", o.out.Err)
	case lostUnsent:
		return backoff(in, o.answer())
	case lostSent:
		if in.idempotent {
			return backoff(in, o.answer())
		}
		return ambiguous(in)
	case locked, throttled:
		return afterRetryAfter(in)
	case busyConflict:
		// The server says busy even if a check may not show it yet: never
		// re-send sooner than the retry interval, then wait until the check
		// reads not busy (with or without a guard before each send).
		d := backoff(in, o.answer())
		d.busy, d.guard = true, true
		return d
	case conflict:
		switch {
		case in.probed == nil:
			return decision{move: probe, probe: probeGuard}
		case !in.probed.busy:
			return failWith(Failed, o.answer()+" (a validation error, not busy: fix the request)", nil)
		}
		// The check read busy: the guard waits it out from that read.
		return decision{move: resend, busy: true, guard: true,
			retry: "the resource is busy (the change got " + o.answer() + "); sending again once it is not"}
	case serverError:
		if in.idempotent {
			return backoff(in, o.answer())
		}
		return ambiguous(in)
	case denied:
		return failWith(Failed, o.answer()+" (check the credentials; never retried)", nil)
	}
	// retry.when may ask for a re-send of an answer that would otherwise fail
	// the step; it never overrides the rules above.
	switch {
	case in.whenErr != nil:
		return failWith(Failed, in.whenErr.Error(), in.whenErr)
	case in.retryWhen != nil && *in.retryWhen:
		return backoff(in, fmt.Sprintf("%s, and retry.when %s holds", o.answer(), in.whenSource))
	}
	return failWith(Failed, o.answer(), nil)
}

// afterRetryAfter waits out a 423 or 429, never less than Retry-After (missing,
// unreadable, zero or past: the retry interval, so a server that says "now"
// cannot make the step hammer it), or fails now when the wait would pass the
// deadline or max_retry_after.
func afterRetryAfter(in sendInput) decision {
	o := in.out
	d := in.backoff
	if o.retryAfter > 0 {
		d = o.retryAfter
	}
	var f decision
	switch {
	case d > in.retry.MaxRetryAfter:
		f = failWith(StillBusy, fmt.Sprintf("%s: the wait of %s exceeds max_retry_after %s; raise retry.max_retry_after to wait longer",
			o.answer(), fmtDur(d), fmtDur(in.retry.MaxRetryAfter)), nil)
	case in.bounded && d > in.left:
		f = failWith(StillBusy, fmt.Sprintf("%s: waiting %s would pass the deadline (%s left); raise the step's timeout to wait longer",
			o.answer(), fmtDur(d), fmtDur(in.left)), nil)
	default:
		return decision{move: resend, busy: true, delay: d, waiting: o.answer(), status: true,
			retry: fmt.Sprintf("the %s wait has passed", fmtDur(d))}
	}
	f.busy = true
	return f
}

// backoff waits the retry interval (with backoff and jitter), or longer when
// the answer said when to come back (a 5xx with Retry-After), then re-sends.
func backoff(in sendInput, why string) decision {
	return decision{move: resend, delay: max(in.backoff, in.out.retryAfter), waiting: why, backoff: true, retry: "after " + why}
}

// ambiguous is a change that may or may not have taken effect and is not
// safe to send again: done if its condition already holds, else it fails.
func ambiguous(in sendInput) decision {
	switch {
	case in.canProbe && in.probed == nil:
		return decision{move: probe, probe: probeWait}
	case in.probed != nil && in.probed.holds:
		return decision{move: done}
	}
	return failWith(Failed, fmt.Sprintf("%s after the request was sent: the %s may have taken effect, and %s is not idempotent, so it was not re-sent. Check the resource before running again; set retry.idempotent: true if re-sending is safe",
		in.out.answer(), in.what, in.what), nil)
}

// spent is the retry budget: max_attempts sends, the first included.
func spent(r Retry, attempts int) bool { return r.MaxAttempts > 0 && attempts >= r.MaxAttempts }

// giveUp is the retry budget used up; exit 75 while the API still said busy.
func giveUp(attempts int, last string, busy bool) decision {
	why := Failed
	if busy {
		why = StillBusy
	}
	d := failWith(why, fmt.Sprintf("gave up after %d attempt%s (retry.max_attempts); the last answer was %s", attempts, plural(attempts), last), nil)
	d.busy = busy
	return d
}

func failWith(why Failure, msg string, cause error) decision {
	return decision{move: fail, why: why, msg: msg, cause: cause}
}

// conditions is what a phase's conditions said of a read (its decider).
type conditions struct {
	move   move
	reason string
	err    error
}

// readPolicy says what to do about a check read: busy, throttled and failing
// reads are "not yet"; 401/403 fail at once; 404s and successes go to the
// phase's conditions (judge), and are decided again with what they said.
func readPolicy(o outcome, r Retry, said *conditions) decision {
	if said == nil && (o.class == accepted || o.class == gone || o.class == commandFailed) {
		return decision{move: judge}
	}
	switch o.class {
	case accepted, gone:
		if said.err != nil {
			return decision{move: fail, err: said.err}
		}
		if said.move == keepWaiting && o.retryAfter > r.MaxRetryAfter {
			return failWith(StillBusy, fmt.Sprintf("check answered %s, asking to come back later than max_retry_after %s", o.answer(), fmtDur(r.MaxRetryAfter)), nil)
		}
		// A status monitor says when to look again: not sooner.
		return decision{move: said.move, reason: said.reason, floor: o.retryAfter}
	case commandFailed:
		// A command check that failed: not yet, unless the conditions say its
		// failure is what was waited for (response.exit_code == 1: not found).
		if said.err == nil && said.move != keepWaiting {
			return decision{move: said.move, reason: said.reason}
		}
		return decision{move: keepWaiting, reason: "check " + o.answer(), failed: o.answer()}
	case permanent:
		return failWith(Failed, "check failed: "+o.out.Err.Error()+" (not retried)", o.out.Err)
	case lostSent, lostUnsent:
		return decision{move: keepWaiting, reason: "check failed (" + o.out.Err.Error() + ")", failed: o.out.Err.Error()}
	case denied:
		return failWith(Failed, fmt.Sprintf("check answered %s (check the credentials; never retried)", o.answer()), nil)
	case locked, throttled:
		if o.retryAfter > r.MaxRetryAfter {
			return failWith(StillBusy, fmt.Sprintf("check answered %s, longer than max_retry_after %s", o.answer(), fmtDur(r.MaxRetryAfter)), nil)
		}
		return decision{move: keepWaiting, reason: o.answer(), floor: o.retryAfter}
	case busyConflict, conflict:
		return decision{move: keepWaiting, reason: o.answer()}
	case serverError:
		d := decision{move: keepWaiting, reason: o.answer() + " on the check", failed: o.answer()}
		if o.out.Status >= 500 {
			d.floor = o.retryAfter // a 5xx that says when to come back is not read again sooner
		}
		return d
	}
	return failWith(Failed, "check answered "+o.answer(), nil)
}

// retryDelay is the n-th re-send delay: interval × backoff^n, capped, jittered.
// The jitter is random, so the pipeline draws it and hands the policy the
// result (sendInput.backoff): the policy itself stays deterministic.
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
