package runbook_test

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/runbookhq/runbook/runbook"
)

// cleanupLogs are the texts of a run's log events, in order.
func cleanupLogs(r result) []string {
	var out []string
	for _, e := range r.events {
		if e.Type == runbook.LogLine {
			out = append(out, e.Reason)
		}
	}
	return out
}

const cleanupLists = `  - id: later
    log: later
on_failure:
  - name: Start the VM again
    if: run.failed_step_id == "check"
    http:
      method: PUT
      url: /configurations/1/vms/101
      json: {runstate: running}
    wait_for: state.runstate == "running"
  - log: 'on_failure saw ${{ run.result }} ${{ run.exit_code }} ${{ run.failed_step }} (${{ run.error }}); later skipped ${{ steps.later.skipped }}'
finally:
  - log: "finally: ${{ run.result }}"
`

// TestOnFailureAndFinallyAfterAFailure: a failed step runs on_failure (which
// reads how the run failed), then finally; the exit code stays the failure's.
func TestOnFailureAndFinallyAfterAFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		r := execute(t, srv, `steps:
  - name: Suspend VM
    http:
      method: PUT
      url: /configurations/1/vms/101
      json: {runstate: suspended}
    wait_for: state.runstate == "suspended"
  - id: check
    name: Check
    assert: 1 == 2
    message: the check failed
`+cleanupLists)
		wantCode(t, r, runbook.ExitFailed, "the check failed")
		got := strings.Join(cleanupLogs(r), "\n")
		want := "on_failure saw failed 1 Check (assertion failed: the check failed); later skipped true\nfinally: failed"
		if !strings.Contains(got, "on_failure saw failed 1 Check") || !strings.HasSuffix(got, "finally: failed") || !strings.Contains(got, "later skipped true") {
			t.Errorf("logs:\n%s\nwant like:\n%s", got, want)
		}
		muts := r.mutations()
		if len(muts) != 2 || !strings.Contains(muts[1].Body, "running") {
			t.Fatalf("changes %v, want the suspend, then on_failure's start", muts)
		}
		if rs, _ := srv.Runstate("vm/101"); rs != "running" {
			t.Errorf("VM 101 is %s after on_failure, want running", rs)
		}
		var stages []string
		for _, e := range r.events {
			if e.Type == runbook.CleanupStarted {
				stages = append(stages, e.Reason)
			}
		}
		if strings.Join(stages, ",") != "on_failure,finally" {
			t.Errorf("cleanup events %v, want on_failure then finally", stages)
		}
		assertManners(t, r)
	})
}

// TestFinallyAloneAfterSuccess: on_failure does not run when the run succeeds.
func TestFinallyAloneAfterSuccess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		r := execute(t, srv, `steps:
  - id: check
    log: fine
`+cleanupLists)
		wantCode(t, r, runbook.ExitOK)
		if got := strings.Join(cleanupLogs(r), "|"); got != "fine|later|finally: ok" {
			t.Errorf("logs %q, want the step's then finally's", got)
		}
	})
}

// TestCleanupOutlivesTheDeadline: the run's deadline ends the main steps, and
// cleanup still gets its own cleanup_timeout to put things back.
func TestCleanupOutlivesTheDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		r := execute(t, srv, `timeout: 1m
cleanup_timeout: 5m
steps:
  - id: check
    name: Wait for ever
    http: GET /configurations/1
    wait_for: {check: GET /configurations/1, until: 'state.runstate == "never"', interval: 10s}
`+cleanupLists, func(o *runbook.Options) {})
		wantCode(t, r, runbook.ExitDeadline, "run timeout 1m")
		if got := cleanupLogs(r); len(got) != 2 || !strings.HasPrefix(got[0], "on_failure saw failed 124 Wait for ever") {
			t.Errorf("logs %q, want on_failure and finally after the deadline", got)
		}
		if len(r.mutations()) != 1 {
			t.Errorf("on_failure's change was not sent: %v", r.mutations())
		}
	})
}

// TestSignalRunsFinallyOnly: a stop is not a failure: finally runs, on_failure
// does not, and the exit code is the signal's.
func TestSignalRunsFinallyOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		ctx, cancel := context.WithCancelCause(t.Context())
		time.AfterFunc(25*time.Second, func() { cancel(&runbook.Stopped{Signal: "SIGINT", Code: runbook.ExitSIGINT}) })
		r := executeCtx(ctx, t, srv, `steps:
  - id: check
    http: GET /configurations/1
    wait_for: {until: 'state.runstate == "never"', timeout: 1h}
`+cleanupLists)
		wantCode(t, r, runbook.ExitSIGINT)
		if got := strings.Join(cleanupLogs(r), "|"); got != "finally: stopped" {
			t.Errorf("logs %q, want finally alone", got)
		}
	})
}

// TestFailingCleanupIsReported: a cleanup step that fails does not stop the
// others, and the last word says both what failed and what cleanup could not
// do; after a success, a failing finally fails the run.
func TestFailingCleanupIsReported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		lists := `
on_failure:
  - assert: false
    message: cannot put it back
  - log: second cleanup step
finally:
  - log: finally ran
`
		r := execute(t, srv, "steps:\n  - assert: false\n    message: the main step failed\n"+lists)
		wantCode(t, r, runbook.ExitFailed, "the main step failed", `on_failure step 2 "assert step" failed: assertion failed: cannot put it back`)
		if got := strings.Join(cleanupLogs(r), "|"); got != "second cleanup step|finally ran" {
			t.Errorf("logs %q, want every cleanup step to run", got)
		}

		r = execute(t, srv, "steps:\n  - log: main\nfinally:\n  - assert: false\n    message: no webhook\n")
		wantCode(t, r, runbook.ExitFailed, "every step took effect, but finally step 2", "no webhook")
	})
}

// TestResumeAfterCleanup: cleanup steps journaled after a failure do not
// count as done main steps: a resume goes on at the step that failed, and,
// succeeding, runs finally but not on_failure.
func TestResumeAfterCleanup(t *testing.T) {
	file := writeRunbook(t, `steps:
  - name: Suspend
    http: {method: PUT, url: /configurations/1, json: {runstate: suspended}}
    wait_for: state.runstate == "suspended"
  - name: Gate
    assert: env.GO == "yes"
on_failure:
  - log: on_failure ran
finally:
  - log: finally ran
`)
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		dir := t.TempDir()
		withGo := func(v string) func(*runbook.Options) {
			return func(o *runbook.Options) { o.Env["GO"] = v }
		}
		r := crashRunWith(t, srv, file, dir, "r01", &crashRig{}, false, withGo("no"))
		wantCode(t, r, runbook.ExitFailed)
		if got := strings.Join(cleanupLogs(r), "|"); got != "on_failure ran|finally ran" {
			t.Fatalf("first run's logs %q", got)
		}
		r = crashRunWith(t, srv, file, dir, "r02", &crashRig{}, true, withGo("yes"))
		wantCode(t, r, runbook.ExitOK)
		if got := strings.Join(cleanupLogs(r), "|"); got != "finally ran" {
			t.Errorf("resumed run's logs %q, want finally alone", got)
		}
		if n := len((result{log: srv.Log()}).mutations()); n != 1 {
			t.Errorf("%d changes in all, want the one suspend", n)
		}
	})
}

// TestWaitingForConfirmationRunsFinallyOnly: a run that stops to wait for a
// confirmation is paused, not failed: on_failure would undo what the person
// is asked to let go on.
func TestWaitingForConfirmationRunsFinallyOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		r := execute(t, srv, `steps:
  - id: check
    log: before
  - name: Delete
    confirm: Delete it?
    http: DELETE /configurations/1
`+cleanupLists)
		wantCode(t, r, runbook.ExitBusy, "waiting for confirmation")
		if got := strings.Join(cleanupLogs(r), "|"); got != "before|finally: stopped" {
			t.Errorf("logs %q, want finally alone, told the run stopped", got)
		}
		if len(r.mutations()) != 0 {
			t.Errorf("changes sent: %v", r.mutations())
		}
	})
}

// TestFailingFinallyAfterSuccessIsAFailure: the journal says the run failed
// (so monitoring does not count it a success), and a resume runs only the
// cleanup again, not the main steps that took effect.
func TestFailingFinallyAfterSuccessIsAFailure(t *testing.T) {
	file := writeRunbook(t, `steps:
  - name: Suspend
    http: {method: PUT, url: /configurations/1, json: {runstate: suspended}}
    wait_for: state.runstate == "suspended"
finally:
  - name: Webhook
    assert: env.HOOK == "up"
    message: the webhook is down
`)
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		dir := t.TempDir()
		hook := func(v string) func(*runbook.Options) { return func(o *runbook.Options) { o.Env["HOOK"] = v } }
		r := crashRunWith(t, srv, file, dir, "r01", &crashRig{}, false, hook("down"))
		wantCode(t, r, runbook.ExitFailed, "every step took effect, but finally step 2")
		if strings.HasPrefix(r.err.Error(), "step 0") {
			t.Errorf("error %q names no step it could be", r.err)
		}
		r = crashRunWith(t, srv, file, dir, "r02", &crashRig{}, true, hook("up"))
		wantCode(t, r, runbook.ExitOK)
		if n := len((result{log: srv.Log()}).mutations()); n != 1 {
			t.Errorf("%d changes in all, want the one suspend", n)
		}
	})
}
