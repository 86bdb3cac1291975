package runbook

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// The executor's rules (docs/executor.md) as the policy states them: each row
// is a situation, the answer it got, and what the executor does next.

func after(d time.Duration) *time.Duration { return &d }

// A step with the defaults: retry every 10s, Retry-After up to 15m, a budget of
// 3 sends when a row sets attempts to it.
var stepRetry = Retry{Interval: 10 * time.Second, MaxRetryAfter: 15 * time.Minute, MaxAttempts: 3}

// A PUT that waits for its change (idempotent), first send, no deadline.
func putInput(out *Outcome) sendInput {
	return sendInput{out: classify(out), retry: stepRetry, attempts: 1, backoff: 10 * time.Second,
		mutating: true, idempotent: true, wait: true, canProbe: true, what: "PUT"}
}

// A POST (not idempotent), as putInput otherwise.
func post(in *sendInput) { in.idempotent, in.what = false, "POST" }

var (
	errReset   = errors.New("connection reset by peer")
	errRefused = errors.New("connection refused")
	errCert    = errors.New("x509: certificate signed by unknown authority")
	yes, no    = true, false
)

// want is what a row expects of a decision; says is in its message (a
// failure's, else the retry event's).
type want struct {
	move  move
	why   Failure
	busy  bool
	delay time.Duration
	guard bool
	probe probeOf
	says  string
}

func (w want) check(t *testing.T, d decision) {
	t.Helper()
	got := want{move: d.move, why: d.why, busy: d.busy, delay: d.delay, guard: d.guard, probe: d.probe}
	w2 := w
	w2.says = ""
	if got != w2 {
		t.Errorf("decision %+v, want %+v", got, w2)
	}
	text := d.msg
	if d.move != fail {
		text = d.retry + d.reason
	}
	if !strings.Contains(text, w.says) {
		t.Errorf("says %q, want %q in it", text, w.says)
	}
}

func TestSendPolicy(t *testing.T) {
	for _, c := range []struct {
		situation string
		out       *Outcome
		is        class
		in        func(*sendInput)
		want      want
	}{
		// Accepted: a 200 to a change means "accepted", not "done".
		{"a change accepted, with a wait: poll until it shows",
			&Outcome{Status: 200, Accepted: true}, accepted, nil, want{move: waitFor}},
		{"a change accepted, no wait: done",
			&Outcome{Status: 200, Accepted: true}, accepted, func(in *sendInput) { in.wait = false }, want{move: done}},
		{"a read answered: done",
			&Outcome{Status: 200, Accepted: true}, accepted, func(in *sendInput) { in.mutating, in.wait = false, false }, want{move: done}},
		{"a DELETE's 404 in expect is accepted",
			&Outcome{Status: 404, Accepted: true}, accepted, nil, want{move: waitFor}},
		{"accepted but the body says busy: wait until not busy, then see whether it took",
			&Outcome{Status: 200, Accepted: true}, accepted, func(in *sendInput) { in.busyBody = true }, want{move: waitNotBusy, busy: true}},
		{"a create accepted busy is being made: wait for it, never infer dropped",
			&Outcome{Status: 201, Accepted: true}, accepted, func(in *sendInput) { post(in); in.busyBody = true }, want{move: waitFor}},
		{"a create accepted busy, no wait: done",
			&Outcome{Status: 201, Accepted: true}, accepted, func(in *sendInput) { post(in); in.busyBody, in.wait = true, false }, want{move: done}},

		// 409 and 422: busy waits and re-sends; anything else is a real error.
		{"422 that says busy: back off the interval, guard, send again",
			&Outcome{Status: 422, Snippet: `{"error":"Resource is busy"}`}, busyConflict, nil,
			want{move: resend, busy: true, delay: 10 * time.Second, guard: true, says: "after 422"}},
		{"409 that says busy: the same",
			&Outcome{Status: 409, Snippet: "BUSY"}, busyConflict, nil,
			want{move: resend, busy: true, delay: 10 * time.Second, guard: true}},
		{"422 that does not say: read the guard's check first",
			&Outcome{Status: 422, Snippet: `{"error":"name is invalid"}`}, conflict, nil,
			want{move: probe, probe: probeGuard}},
		{"422, and the check reads not busy: a validation error, fail at once",
			&Outcome{Status: 422, Snippet: `{"error":"name is invalid"}`}, conflict, func(in *sendInput) { in.probed = &probed{} },
			want{move: fail, why: Failed, says: "a validation error, not busy: fix the request"}},
		{"409, and the check reads busy: guard from that read, send again",
			&Outcome{Status: 409}, conflict, func(in *sendInput) { in.probed = &probed{busy: true} },
			want{move: resend, busy: true, guard: true, says: "the resource is busy (the change got 409 Conflict)"}},
		{"409 reading busy with the budget spent: still busy, exit 75",
			&Outcome{Status: 409}, conflict, func(in *sendInput) { in.probed, in.attempts = &probed{busy: true}, 3 },
			want{move: fail, why: StillBusy, busy: true, says: "gave up after 3 attempts (retry.max_attempts); the last answer was 409 Conflict"}},
		{"busy 422 with the budget spent: still busy",
			&Outcome{Status: 422, Snippet: "busy"}, busyConflict, func(in *sendInput) { in.attempts = 3 },
			want{move: fail, why: StillBusy, busy: true, says: "gave up after 3 attempts"}},

		// 423 and 429: wait Retry-After, never less.
		{"423 with Retry-After 30s: wait 30s, send again",
			&Outcome{Status: 423, RetryAfter: after(30 * time.Second)}, locked, nil,
			want{move: resend, busy: true, delay: 30 * time.Second, says: "the 30s wait has passed"}},
		{"429 without Retry-After: the retry interval",
			&Outcome{Status: 429}, throttled, nil, want{move: resend, busy: true, delay: 10 * time.Second}},
		{"429 with Retry-After 0: the interval, so \"now\" cannot make the step hammer",
			&Outcome{Status: 429, RetryAfter: after(0)}, throttled, nil, want{move: resend, busy: true, delay: 10 * time.Second}},
		{"423 with Retry-After past max_retry_after: fail now, exit 75",
			&Outcome{Status: 423, RetryAfter: after(20 * time.Minute)}, locked, nil,
			want{move: fail, why: StillBusy, busy: true, says: "the wait of 20m exceeds max_retry_after 15m"}},
		{"429 whose wait would pass the deadline: fail now, exit 75",
			&Outcome{Status: 429, RetryAfter: after(time.Minute)}, throttled, func(in *sendInput) { in.bounded, in.left = true, 30*time.Second },
			want{move: fail, why: StillBusy, busy: true, says: "waiting 1m would pass the deadline (30s left)"}},
		{"429 whose wait fits the deadline: wait it",
			&Outcome{Status: 429, RetryAfter: after(time.Minute)}, throttled, func(in *sendInput) { in.bounded, in.left = true, 2*time.Minute },
			want{move: resend, busy: true, delay: time.Minute}},
		{"423 with the budget spent: still busy, exit 75",
			&Outcome{Status: 423, RetryAfter: after(30 * time.Second)}, locked, func(in *sendInput) { in.attempts = 3 },
			want{move: fail, why: StillBusy, busy: true, says: "the last answer was 423 Retry-After 30s"}},

		// 5xx and lost connections: back off when safe, else judge or refuse.
		{"503 to an idempotent change: back off the interval",
			&Outcome{Status: 503}, serverError, nil, want{move: resend, delay: 10 * time.Second, says: "after 503 Service Unavailable"}},
		{"503 that says when to come back: no sooner",
			&Outcome{Status: 503, RetryAfter: after(45 * time.Second)}, serverError, nil, want{move: resend, delay: 45 * time.Second}},
		{"408 to an idempotent change: back off",
			&Outcome{Status: 408}, serverError, nil, want{move: resend, delay: 10 * time.Second}},
		{"503 with the budget spent: a definite failure, not busy",
			&Outcome{Status: 503}, serverError, func(in *sendInput) { in.attempts = 3 },
			want{move: fail, why: Failed, says: "gave up after 3 attempts"}},
		{"500 to a POST that may have taken effect: read its wait's check",
			&Outcome{Status: 500}, serverError, post, want{move: probe, probe: probeWait}},
		{"500 to a POST whose condition already holds: done",
			&Outcome{Status: 500}, serverError, func(in *sendInput) { post(in); in.probed = &probed{holds: true} }, want{move: done}},
		{"500 to a POST whose condition does not hold: fail, never re-sent",
			&Outcome{Status: 500}, serverError, func(in *sendInput) { post(in); in.probed = &probed{} },
			want{move: fail, why: Failed, says: "the POST may have taken effect, and POST is not idempotent, so it was not re-sent"}},
		{"500 to a POST that nothing can check: fail, never re-sent",
			&Outcome{Status: 500}, serverError, func(in *sendInput) { post(in); in.canProbe = false },
			want{move: fail, why: Failed, says: "not idempotent"}},
		{"connection reset after a POST was written: ambiguous, read the check",
			&Outcome{Err: errReset, Written: true}, lostSent, post, want{move: probe, probe: probeWait}},
		{"connection reset after an idempotent change was written: back off",
			&Outcome{Err: errReset, Written: true}, lostSent, nil, want{move: resend, delay: 10 * time.Second, says: "after connection reset by peer"}},
		{"connection refused before a POST was written: safe to send again",
			&Outcome{Err: errRefused}, lostUnsent, post, want{move: resend, delay: 10 * time.Second}},
		{"a POST with retry.idempotent: true is backed off like any idempotent change",
			&Outcome{Status: 502}, serverError, func(in *sendInput) { post(in); in.idempotent = true }, want{move: resend, delay: 10 * time.Second}},

		// Everything else fails at once, unless retry.when says otherwise.
		{"an error the same request would meet again: fail, not retried",
			&Outcome{Err: errCert, Permanent: true}, permanent, nil, want{move: fail, why: Failed, says: "certificate signed by unknown authority (not retried)"}},
		{"401: fail, never retried",
			&Outcome{Status: 401}, denied, nil, want{move: fail, why: Failed, says: "401 Unauthorized (check the credentials; never retried)"}},
		{"403 even when retry.when holds: fail, never retried",
			&Outcome{Status: 403}, denied, func(in *sendInput) { in.retryWhen = &yes }, want{move: fail, why: Failed, says: "never retried"}},
		{"400: fail at once with the server's message",
			&Outcome{Status: 400, Snippet: "bad field"}, rejected, nil, want{move: fail, why: Failed, says: "400 Bad Request: bad field"}},
		{"400 when retry.when holds: back off and send again",
			&Outcome{Status: 400}, rejected, func(in *sendInput) { in.retryWhen, in.whenSource = &yes, "response.status == 400" },
			want{move: resend, delay: 10 * time.Second, says: "retry.when response.status == 400 holds"}},
		{"400 when retry.when does not hold: fail",
			&Outcome{Status: 400}, rejected, func(in *sendInput) { in.retryWhen = &no }, want{move: fail, why: Failed}},
		{"retry.when that cannot be evaluated: fail",
			&Outcome{Status: 400}, rejected, func(in *sendInput) { in.whenErr = errors.New("state.x: no such key") },
			want{move: fail, why: Failed, says: "no such key"}},
		{"404 to a PUT (not in expect): fail",
			&Outcome{Status: 404}, gone, nil, want{move: fail, why: Failed, says: "404 Not Found"}},
		{"a command that exited 1: fail",
			&Outcome{ExitCode: 1}, commandFailed, nil, want{move: fail, why: Failed, says: "exit code 1"}},
		{"a redirect outside expect: fail",
			&Outcome{Status: 302}, rejected, nil, want{move: fail, why: Failed, says: "302 Found"}},
	} {
		t.Run(c.situation, func(t *testing.T) {
			in := putInput(c.out)
			if in.out.class != c.is {
				t.Errorf("classified %s, want %s", in.out.class, c.is)
			}
			if c.in != nil {
				c.in(&in)
			}
			c.want.check(t, sendPolicy(in))
		})
	}
}

func TestReadPolicy(t *testing.T) {
	conditionsFailed := errors.New("until: state.x: no such key")
	for _, c := range []struct {
		situation string
		out       *Outcome
		said      *conditions // what the phase's conditions say, when asked
		want      want
		failed    string // why the check failed, for deadline messages
	}{
		{"a read answered: the phase's conditions decide",
			&Outcome{Status: 200, Accepted: true}, nil, want{move: judge}, ""},
		{"a read on which until holds: done",
			&Outcome{Status: 200, Accepted: true}, &conditions{move: done}, want{move: done}, ""},
		{"a read that shows busy: keep reading",
			&Outcome{Status: 200, Accepted: true}, &conditions{move: keepWaiting, reason: "busy (runstate=busy)"},
			want{move: keepWaiting, says: "busy (runstate=busy)"}, ""},
		{"a read the conditions fail on: fail as they say",
			&Outcome{Status: 200, Accepted: true}, &conditions{err: conditionsFailed}, want{move: fail}, ""},
		{"a 404: the conditions decide (a DELETE's wait)",
			&Outcome{Status: 404}, nil, want{move: judge}, ""},
		{"a command check that failed, and its failure is what was waited for: done",
			&Outcome{ExitCode: 1}, &conditions{move: done}, want{move: done}, ""},
		{"a command check that failed otherwise: not yet",
			&Outcome{ExitCode: 1}, &conditions{move: keepWaiting}, want{move: keepWaiting, says: "check exit code 1"}, "exit code 1"},
		{"a command check that failed, conditions in error: not yet",
			&Outcome{ExitCode: 2}, &conditions{err: conditionsFailed}, want{move: keepWaiting}, "exit code 2"},
		{"a connection lost on the check: read again",
			&Outcome{Err: errReset}, nil, want{move: keepWaiting, says: "check failed (connection reset by peer)"}, "connection reset by peer"},
		{"a certificate error on the check: fail, not retried",
			&Outcome{Err: errCert, Permanent: true}, nil, want{move: fail, why: Failed, says: "check failed: x509"}, ""},
		{"401 on the check: fail, never retried",
			&Outcome{Status: 401}, nil, want{move: fail, why: Failed, says: "check answered 401 Unauthorized (check the credentials"}, ""},
		{"423 on the check: read again no sooner than Retry-After",
			&Outcome{Status: 423, RetryAfter: after(30 * time.Second)}, nil, want{move: keepWaiting, delay: 30 * time.Second, says: "423 Retry-After 30s"}, ""},
		{"429 on the check past max_retry_after: fail, exit 75",
			&Outcome{Status: 429, RetryAfter: after(time.Hour)}, nil, want{move: fail, why: StillBusy, says: "longer than max_retry_after 15m"}, ""},
		{"422 busy on the check: read again",
			&Outcome{Status: 422, Snippet: "busy"}, nil, want{move: keepWaiting}, ""},
		{"503 on the check that says when: read again no sooner",
			&Outcome{Status: 503, RetryAfter: after(40 * time.Second)}, nil, want{move: keepWaiting, delay: 40 * time.Second, says: "503 Service Unavailable on the check"}, "503 Service Unavailable"},
		{"408 on the check: read again after the interval",
			&Outcome{Status: 408, RetryAfter: after(40 * time.Second)}, nil, want{move: keepWaiting}, "408 Request Timeout"},
		{"400 on the check: fail",
			&Outcome{Status: 400}, nil, want{move: fail, why: Failed, says: "check answered 400 Bad Request"}, ""},
	} {
		t.Run(c.situation, func(t *testing.T) {
			d := readPolicy(classify(c.out), stepRetry, c.said)
			if c.said != nil && c.said.err != nil && c.want.move == fail && d.err != c.said.err {
				t.Errorf("failed with %v, want the condition's error as is", d.err)
			}
			c.want.check(t, decision{move: d.move, why: d.why, delay: d.floor, msg: d.msg, reason: d.reason})
			if d.failed != c.failed {
				t.Errorf("the check failed %q, want %q", d.failed, c.failed)
			}
		})
	}
}

// Every class has a name, for the table's messages.
func TestClassNames(t *testing.T) {
	if len(classNames) != int(rejected)+1 {
		t.Errorf("%d class names for %d classes", len(classNames), int(rejected)+1)
	}
}
