package runbook_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/runbookhq/runbook/runbook"
	"github.com/runbookhq/runbook/sim"
)

func TestRateLimitedGuardPausesTheHost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		srv.Inject(sim.Fault{Target: "env/1", Method: "GET", Status: 429, RetryAfter: 7 * time.Second})
		r := execute(t, srv, stopVM)
		wantCode(t, r, 0)
		assertManners(t, r)
		if got := r.at(r.mutations()[0]); got < 7*time.Second {
			t.Errorf("change sent at %s, before the guard's 429 Retry-After of 7s", got)
		}
	})
}

func TestHostPauseHoldsForEveryItem(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil, sim.VMSpec{ID: "101"}, sim.VMSpec{ID: "102"}, sim.VMSpec{ID: "103"})
		srv.Inject(sim.Fault{Target: "vm/101", Status: 429, RetryAfter: 5 * time.Second, Delay: time.Second})
		srv.Inject(sim.Fault{Target: "vm/102", Status: 429, RetryAfter: 30 * time.Second, Delay: 2 * time.Second})
		srv.Inject(sim.Fault{Target: "vm/103", Status: 500, Delay: time.Second})
		r := execute(t, srv, `steps:
  - name: Rename each
    for_each: '["101", "102", "103"]'
    as: vm
    concurrency: 3
    http: {method: PUT, url: "/configurations/1/vms/${{ vm }}", json: {name: renamed}}
    guard: false
    wait_for: false
    retry: {interval: 500ms}
`)
		wantCode(t, r, 0)
		assertManners(t, r)
	})
}

// Items held by a Retry-After pause must not each take a turn from the pacer
// meanwhile and then reach the host together when the pause ends.
func TestPauseEndsWithoutABurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var vms []sim.VMSpec
		for i := range 20 {
			vms = append(vms, sim.VMSpec{ID: fmt.Sprint(101 + i)})
		}
		srv := quietSim(t, nil, vms...)
		srv.Inject(sim.Fault{Target: "*", Status: 429, RetryAfter: 10 * time.Second})
		r := execute(t, srv, `    rate: 2/s
steps:
  - name: Rename each
    for_each: 'map(1..20, string(100 + #))'
    as: vm
    concurrency: 20
    http: {method: PUT, url: "/configurations/1/vms/${{ vm }}", json: {name: renamed}}
    guard: false
    wait_for: false
`)
		wantCode(t, r, 0)
		assertManners(t, r)
		var end time.Time
		for _, e := range r.log {
			if !e.RetryAt.IsZero() {
				end = e.RetryAt
				break
			}
		}
		if end.IsZero() {
			t.Fatal("no request was answered 429 with Retry-After")
		}
		// At 2/s with a burst of 2: two at once, the third half a second later.
		n := 0
		for _, e := range r.log {
			if !e.Time.Before(end) && e.Time.Before(end.Add(time.Second)) {
				n++
			}
		}
		if n > 3 {
			t.Errorf("%d requests in the second after the pause ended, want at most 3 at 2/s", n)
		}
	})
}

func TestGateIsReleasedWhenASnapshotFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		r := execute(t, srv, `steps:
  - for_each: '["101", "102"]'
    as: vm
    concurrency: 2
    http: {method: PUT, url: "/configurations/1/vms/${{ vm }}", json: {runstate: stopped}}
    guard: {check: GET /configurations/1}
    wait_for: state.runstat == "stopped"
`)
		wantCode(t, r, runbook.ExitFailed, `no key "runstat"`)
		if got := r.end.Sub(r.start); got != 0 {
			t.Errorf("failed after %s; the other item waited on a gate never released", got)
		}
	})
}

// TestGateIsReleasedWhenAResumedStepWasDone: a change a stopped run may have
// sent, not to be sent twice, is found done on resume, and the next change
// gated by the same check still gets its turn.
func TestGateIsReleasedWhenAResumedStepWasDone(t *testing.T) {
	file := filepath.Join(t.TempDir(), "gate.yaml")
	once := stopVM + "    retry: {idempotent: false}\n"
	src := header + once + strings.ReplaceAll(strings.TrimPrefix(once, "steps:\n"), "101", "102")
	if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		dir := t.TempDir()
		crashRun(t, srv, file, dir, "r01", &crashRig{afterChange: 1}, false)
		r := crashRun(t, srv, file, dir, "r02", &crashRig{}, true)
		wantCode(t, r, 0)
		r.log = srv.Log()
		if n := len(r.mutations()); n != 2 {
			t.Errorf("%d changes sent; the resumed change had taken effect and must not be sent again", n)
		}
		if got, _ := srv.Runstate("vm/102"); got != "stopped" {
			t.Errorf("the next step on the same environment did not run (VM 102 is %s)", got)
		}
	})
}
