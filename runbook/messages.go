package runbook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

func errMsg(err error) string {
	var se *StepError
	if errors.As(err, &se) {
		s := se.Msg
		if se.Expect != "" {
			s += "; expected " + se.Expect
		}
		if se.Last != "" {
			s += "; last state: " + se.Last
		}
		return s
	}
	return err.Error()
}

// what names the step's action in messages: its method, or "command".
func (p *pipeline) what() string {
	if m := p.s.Action.Info().Method; m != "" {
		return m
	}
	return "command"
}

// failure is the step's error. Once a change was accepted, it is never sent
// again whatever fails after (a condition, an output): the message says so.
func (p *pipeline) failure(why Failure, err error, msg string) error {
	if p.accepted != "" && why == Failed && !strings.Contains(msg, "was accepted") {
		msg += fmt.Sprintf(" (after the change was accepted, %s: it is not sent again", p.accepted)
		if p.s.ID != "" {
			msg += "; its answer is in steps." + p.s.ID + ".response"
		}
		msg += ")"
	}
	return &StepError{Why: why, Msg: msg, Wrapped: err, Last: p.lastSeen()}
}

// lastSeen is the last state seen, for messages, saying whose it is when it
// is not the resource the step acts on (the environment a VM's guard reads).
func (p *pipeline) lastSeen() string {
	sum := p.summary(p.lastState())
	if sum == "" || !p.checked || p.stateOf == "" || p.stateOf == "GET "+p.target {
		return sum
	}
	return sum + " (" + p.stateOf + ")"
}

// ctxError explains why the context ended: a deadline (124), a signal (130,
// 143), or a cancel by the program running the runbook (1).
func (p *pipeline) ctxError(ctx context.Context) error {
	return ctxError(ctx, p, p.expect)
}

func ctxError(ctx context.Context, p *pipeline, expect string) error {
	cause := context.Cause(ctx)
	var last string
	if p != nil {
		last = p.lastSeen()
		if last == "" {
			if resp, ok := p.scope["response"].(map[string]any); ok && resp["status"] != nil {
				last = fmt.Sprintf("status %v", resp["status"])
			}
		}
	}
	var dc *deadlineCause
	if errors.As(cause, &dc) {
		msg := dc.Error()
		if p != nil && expect == "" && p.last.answer != "" {
			msg += fmt.Sprintf(" while %s (%d attempt%s, the last answered %s)", p.doing(), p.attempts, plural(p.attempts), p.last.answer)
		}
		if p != nil && p.checkFailed != "" {
			// Waiting on a check that never answered is not waiting on the resource.
			msg += "; the last check failed: " + p.checkFailed
		}
		return &StepError{Why: DeadlinePassed, Msg: msg, Expect: expect, Last: last, Wrapped: cause}
	}
	var st *Stopped
	if errors.As(cause, &st) {
		return &StepError{Why: Interrupted, Signal: st.Code, Msg: st.Error(), Last: last, Wrapped: cause}
	}
	// The program running the runbook cancelled it: no signal came, so no
	// signal's exit code is claimed.
	return &StepError{Why: Interrupted, Msg: "stopped: the run was cancelled", Last: last, Wrapped: cause}
}

// doing says what the step's own action does, for messages: "sending the
// change", "reading", "running the command".
func (p *pipeline) doing() string {
	switch info := p.s.Action.Info(); {
	case info.Change:
		return "sending the change"
	case info.Method != "":
		return "reading"
	}
	return "running the command"
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// answer describes an outcome in a few words: "423 Retry-After 30s".
func answer(out *Outcome) string {
	switch {
	case out.Err != nil:
		return out.Err.Error()
	case out.Status == 0:
		if out.Accepted {
			return "ok"
		}
		if out.Message != "" {
			return out.Message
		}
		return fmt.Sprintf("exit code %d", out.ExitCode)
	}
	s := fmt.Sprintf("%d %s", out.Status, http.StatusText(out.Status))
	if out.Status == http.StatusLocked || out.Status == http.StatusTooManyRequests {
		if out.RetryAfter != nil {
			s = fmt.Sprintf("%d Retry-After %s", out.Status, fmtDur(*out.RetryAfter))
		} else {
			s = fmt.Sprintf("%d without Retry-After", out.Status)
		}
	}
	if out.Status >= 400 {
		msg := out.Said
		if msg == "" {
			msg = ServerMessage(out)
		}
		if msg != "" {
			s += ": " + msg
		}
	}
	return s
}

// ServerMessage is what a server said in an error body: the `error`, `errors` or
// `message` of a JSON body, else the start of the text.
func ServerMessage(out *Outcome) string {
	if obj, ok := out.Body.(map[string]any); ok {
		if msgs := errorMessages(obj); len(msgs) > 0 {
			return strings.Join(msgs, "; ")
		}
		if m, ok := obj["message"].(string); ok && m != "" {
			return m
		}
	}
	return out.Snippet
}

// fmtDur prints durations the way operators write them: 10s, 1m30s, 1h, 250ms.
func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	}
	d = d.Round(time.Second)
	s := d.String()
	// time.Duration prints 1h0m0s; operators write 1h.
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// FormatDuration is fmtDur for presentation packages.
func FormatDuration(d time.Duration) string { return fmtDur(d) }
