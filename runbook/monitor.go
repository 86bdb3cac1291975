package runbook

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Long-running operations: a change answered 202 (or 201, 200) that names a
// status monitor (Operation-Location, Azure-AsyncOperation, a 202's
// Location) is not done until the monitor says so. Its wait polls the
// monitor, unless wait_for names a check of its own or is false.

// watch says whether the wait polls the status monitor the change's
// accepted answer names, and makes its read. A monitor that was named but
// cannot be polled leaves the step's own wait to tell when the change is
// done, and fails a step that has none: the change was accepted, and taking
// it as done would be a guess.
func (p *pipeline) watch(out *Outcome) (bool, error) {
	w := p.s.Wait
	mon := p.s.Action.Info().Monitor
	if w.Off || w.OwnCheck || mon == nil || out.Monitor == "" && out.MonitorBad == "" {
		return false, nil
	}
	if out.Monitor == "" {
		bad := fmt.Sprintf("%s was accepted (%s), but its status monitor cannot be polled: %s", p.what(), answer(out), p.r.redact.String(out.MonitorBad))
		if w.On {
			p.emit(Event{Type: LogLine, Reason: bad + "; waiting on the step's own check"})
			return false, nil
		}
		return false, p.failure(Failed, nil, bad+"; give wait_for a check that shows when it is done")
	}
	p.monitor = mon(out.Monitor)
	return true, nil
}

// firstPoll is how long the wait lets pass before its first read: a 201 or
// 202 that says when to come back (Retry-After) is not asked sooner.
func firstPoll(out *Outcome) time.Duration {
	if out.Status != http.StatusCreated && out.Status != http.StatusAccepted || out.RetryAfter == nil {
		return 0
	}
	return max(*out.RetryAfter, 0)
}

// operation is what a status monitor's answer says of the operation: still
// running, succeeded, or failed with the server's message.
type operation struct {
	over    bool   // it has ended
	failed  string // it failed: the server's message ("" for none); over is set too
	now     string // what the answer says, for the waiting event
	success bool   // over and succeeded
}

// operationOf reads a monitor's answer by the rules of Azure's (status:
// NotStarted, Running, Succeeded, Failed, Canceled) and Google's (done,
// error) long-running operations. An answer with neither is the operation's
// result when it is 200 or 204, and still running when it is a 202; a 404
// has lost it.
func operationOf(out *Outcome) operation {
	if out.Status/100 != 2 {
		// A 404: the monitor does not know the operation (any other answer
		// outside 2xx is the read rules' to judge).
		return operation{over: true, now: answer(out)}
	}
	body, _ := out.State.(map[string]any)
	if done, ok := body["done"].(bool); ok {
		switch {
		case !done:
			return operation{now: "done: false"}
		case body["error"] != nil:
			return operation{over: true, failed: operationError(body), now: "done with an error"}
		}
		return operation{over: true, success: true, now: "done"}
	}
	if status, ok := body["status"].(string); ok {
		switch strings.ToLower(status) {
		case "succeeded":
			return operation{over: true, success: true, now: "status " + status}
		case "failed", "canceled", "cancelled":
			return operation{over: true, failed: operationError(body), now: "status " + status}
		}
		return operation{now: "status " + truncate(status, 40)}
	}
	if out.Status == http.StatusAccepted {
		return operation{now: answer(out)}
	}
	return operation{over: true, success: true, now: answer(out)}
}

// operationError is a failed operation's error: its code and message, as
// Azure and Google both put them (error.code, error.message).
func operationError(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	msg, _ := e["message"].(string)
	var code string
	switch c := e["code"].(type) {
	case string:
		code = c
	case float64, int64, int:
		code = fmt.Sprint(c)
	}
	if code != "" && msg != "" {
		msg = code + ": " + msg
	} else if msg == "" {
		msg = code
	}
	return truncate(strings.Join(strings.Fields(msg), " "), 300)
}

// monitorDecide judges a read of the status monitor by the operation's
// rules. The step's own conditions are judged afterwards, on its own check:
// they are written for the resource, not for the monitor.
func (p *pipeline) monitorDecide(out *Outcome, what string) (move, string, error) {
	op := operationOf(out)
	switch {
	case op.over && !op.success:
		msg := "the operation failed (" + op.now + ", " + what + ")"
		if op.failed != "" {
			msg += ": " + p.r.redact.String(op.failed)
		}
		return 0, "", p.failure(Failed, nil, msg)
	case op.over:
		return done, "", nil
	}
	return keepWaiting, "the operation is running (" + op.now + ")", nil
}

// newIdempotencyKey is a random (version 4) UUID, the form the
// Idempotency-Key draft and the APIs that take one suggest.
func newIdempotencyKey() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
