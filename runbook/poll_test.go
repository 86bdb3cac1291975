package runbook_test

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/runbookhq/runbook/runbook"
	"github.com/runbookhq/runbook/sim"
)

func TestGuardWaitsWhileBusy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		srv.MakeBusy("env/1", 45*time.Second)
		r := execute(t, srv, stopVM)
		wantCode(t, r, 0)
		assertManners(t, r)
		muts := r.mutations()
		if len(muts) != 1 {
			t.Fatalf("%d changes sent, want 1", len(muts))
		}
		// Guard reads at 0, 10, ..., 50 s: the first not busy is at 50 s.
		if got := r.at(muts[0]); got != 50*time.Second {
			t.Errorf("change sent at %s, want 50s (the first guard read after the busy window)", got)
		}
		if got, _ := srv.Runstate("vm/101"); got != "stopped" {
			t.Errorf("VM is %s at the end, want stopped", got)
		}
	})
}

func TestNewErrorFailsButLingeringErrorDoesNot(t *testing.T) {
	t.Run("lingering", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			srv := quietSim(t, nil, sim.VMSpec{ID: "101", Error: "an old failure"})
			r := execute(t, srv, strings.ReplaceAll(stopVM, "stopped", "suspended"))
			wantCode(t, r, 0)
		})
	})
	t.Run("new", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			srv := quietSim(t, nil, sim.VMSpec{ID: "101", NoTools: true, Error: "an old failure"})
			r := execute(t, srv, stopVM)
			wantCode(t, r, runbook.ExitFailed, "new error", "gracefully")
			if strings.Contains(r.err.Error(), "an old failure") {
				t.Errorf("the lingering error was taken for the new one: %v", r.err)
			}
			if n := len(r.mutations()); n != 1 {
				t.Errorf("%d changes, want 1", n)
			}
		})
	})
}

func TestDeleteWaitsUntilGone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		r := execute(t, srv, `steps:
  - name: Delete
    http: DELETE /configurations/1
  - name: After
    log: deleted
`)
		wantCode(t, r, 0)
		assertManners(t, r)
		if _, exists := srv.Runstate("env/1"); exists {
			t.Errorf("the environment still exists")
		}
		last := r.log[len(r.log)-1]
		if last.Method != "GET" || last.Status != 404 {
			t.Errorf("last request %s %d, want the GET that saw 404", last.Method, last.Status)
		}
		var doneAt, logAt time.Time
		for _, e := range r.events {
			// The first 404 is told as what it is, not as a change that did not hold.
			if e.Type == runbook.Waiting && (strings.Contains(e.Reason, "does not hold") || strings.Contains(e.Reason, "sending again")) {
				t.Errorf("the wait for the delete says %q", e.Reason)
			}
			if e.Type == runbook.StepDone && e.Step == 1 && e.ItemNo == 0 {
				doneAt = e.Time
			}
			if e.Type == runbook.LogLine {
				logAt = e.Time
			}
		}
		if logAt.Before(last.Time) || doneAt.Before(last.Time) {
			t.Errorf("the next step started before the 404 was seen")
		}
	})
}

func TestWaitThatNeverHoldsPassesTheDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		r := execute(t, srv, `steps:
  - name: Run VM 101
    http:
      method: PUT
      url: /configurations/1/vms/101
      json: {runstate: running}
    timeout: 2m
    wait_for: state.runstate == "stopped"
`)
		wantCode(t, r, runbook.ExitDeadline, `state.runstate == "stopped"`, "runstate=running", "step timeout 2m")
		if got := r.end.Sub(r.start); got != 2*time.Minute {
			t.Errorf("failed after %s, want exactly the 2m deadline (no sleep past it)", got)
		}
		if last := r.log[len(r.log)-1]; r.at(last) > 2*time.Minute {
			t.Errorf("a request at %s, after the deadline", r.at(last))
		}
	})
}

func TestTypoInConditionFailsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		r := execute(t, srv, strings.Replace(stopVM, "state.runstate ==", "state.runstat ==", 1))
		wantCode(t, r, runbook.ExitFailed, `no key "runstat"`, `did you mean "runstate"`, "nothing was sent")
		if got := r.end.Sub(r.start); got != 0 {
			t.Errorf("failed after %s of polling, want at once", got)
		}
		if n := len(r.mutations()); n != 0 {
			t.Errorf("%d changes sent; the typo shows on the state read before the change", n)
		}
	})
}

// A guard whose check never answers fails at its deadline saying so: the wait
// was on a broken check, not on a busy resource.
func TestDeadlineTellsACheckThatNeverAnswered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		srv.Inject(sim.Fault{Target: "env/1", Method: "GET", Status: 503, Times: -1})
		r := execute(t, srv, `steps:
  - name: Stop VM 101
    timeout: 2m
    http: {method: PUT, url: /configurations/1/vms/101, json: {runstate: stopped}}
    guard: {check: GET /configurations/1}
    wait_for: state.runstate == "stopped"
`)
		wantCode(t, r, runbook.ExitDeadline, "step timeout 2m passed; the last check failed: 503 Service Unavailable")
		if n := len(r.mutations()); n != 0 {
			t.Errorf("%d changes sent past a guard that never read", n)
		}
	})
	// A check that failed, then read a busy resource: the deadline is the busy one's.
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		srv.MakeBusy("env/1", time.Hour)
		srv.Inject(sim.Fault{Target: "env/1", Method: "GET", Status: 503, Times: 2})
		r := execute(t, srv, `steps:
  - name: Stop VM 101
    timeout: 2m
    http: {method: PUT, url: /configurations/1/vms/101, json: {runstate: stopped}}
    guard: {check: GET /configurations/1}
`)
		wantCode(t, r, runbook.ExitDeadline, "step timeout 2m passed; expected not busy")
		if strings.Contains(r.err.Error(), "check failed") {
			t.Errorf("error %q blames a check that has answered since", r.err)
		}
	})
	// A command check that fails is named too.
	synctest.Test(t, func(t *testing.T) {
		r := execute(t, quietSim(t, nil), `steps:
  - name: Scale
    timeout: 30s
    exec: [true]
    guard: {check: {exec: [sh, -c, "echo no cluster >&2; exit 1"]}}
`)
		wantCode(t, r, runbook.ExitDeadline, "step timeout 30s passed; the last check failed: ")
		if !strings.Contains(r.err.Error(), "no cluster") {
			t.Errorf("error %q does not say why the command failed", r.err)
		}
	})
}

func TestStaleReadDoesNotSendTheChangeTwice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		// The first read after the accepted change shows the state before it.
		srv.Inject(sim.Fault{Target: "vm/101", Method: "GET", Stale: true})
		r := execute(t, srv, strings.Replace(stopVM, "    guard:\n      check: GET /configurations/1\n", "", 1))
		wantCode(t, r, 0)
		if n := len(r.mutations()); n != 1 {
			t.Errorf("%d changes sent after a stale read, want 1", n)
		}
	})
}

func TestWaitOn404SaysTheResourceIsGone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		srv.Inject(sim.Fault{Target: "vm/101", Method: "GET", Status: 404, Times: -1})
		r := execute(t, srv, stopVM)
		wantCode(t, r, runbook.ExitFailed, "the check answered 404 (the resource is gone)")
	})
}
