package runbook_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/runbookhq/runbook/runbook"
	"github.com/runbookhq/runbook/sim"
)

// stoppedVMs are n stopped VMs 101, 102, ..., and their ids as a for_each list.
func stoppedVMs(n int) ([]sim.VMSpec, string) {
	var vms []sim.VMSpec
	var ids []string
	for i := range n {
		vms = append(vms, sim.VMSpec{ID: fmt.Sprint(101 + i), Runstate: "stopped"})
		ids = append(ids, fmt.Sprintf("%q", fmt.Sprint(101+i)))
	}
	return vms, "[" + strings.Join(ids, ", ") + "]"
}

// runEachVM is a runbook that runs each VM of list (a for_each list) in
// environment 1, guarded by a read of the environment every guardEvery ("":
// the default); wait is its wait_for ("": until it runs), and lines adds to
// the step (a concurrency).
func runEachVM(list, guardEvery, wait, lines string) string {
	guard := "{check: GET /configurations/1}"
	if guardEvery != "" {
		guard = "{check: GET /configurations/1, interval: " + guardEvery + "}"
	}
	if wait == "" {
		wait = `state.runstate == "running"`
	}
	return "steps:\n  - name: Run each\n    for_each: '" + list + "'\n    as: vm\n" + lines +
		"    http: {method: PUT, url: \"/configurations/1/vms/${{ vm }}\", json: {runstate: running}}\n" +
		"    guard: " + guard + "\n    wait_for: " + wait + "\n"
}

// vmReadsBefore counts the reads of a VM that came before its first change.
func vmReadsBefore(log []sim.Entry, vm string) int {
	n := 0
	for _, e := range log {
		if strings.HasSuffix(e.Path, "/vms/"+vm) {
			if e.Mutation {
				return n
			}
			n++
		}
	}
	return n
}

// An environment's answer lists its VMs whole, so the guard's read of it
// serves as the VM's state before the change: no read of the VM before the
// PUT, and its lingering error is still told from a new one.
func TestBeforeComesFromTheGuardsAnswer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil, sim.VMSpec{ID: "101", Runstate: "stopped", Error: "disk was slow last week"})
		r := execute(t, srv, `steps:
  - name: Run
    http: {method: PUT, url: /configurations/1/vms/101, json: {runstate: running}}
    guard: {check: GET /configurations/1}
    wait_for: state.runstate == "running"
`)
		wantCode(t, r, 0)
		assertManners(t, r)
		if n := vmReadsBefore(r.log, "101"); n != 0 {
			t.Errorf("the VM was read %d times before the change, want none", n)
		}
	})
}

// A condition that reads what the environment's list leaves out is tried on
// the VM itself, read before the change, and fails there, before anything is
// sent, as it did when the VM was always read.
func TestBeforeIsReadWhenTheGuardsAnswerLacksAField(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil, sim.VMSpec{ID: "101", Runstate: "stopped"})
		r := execute(t, srv, `steps:
  - name: Run
    http: {method: PUT, url: /configurations/1/vms/101, json: {runstate: running}}
    guard: {check: GET /configurations/1}
    wait_for: state.no_such_field == "x"
`)
		wantCode(t, r, runbook.ExitFailed, "no_such_field", "so nothing was sent")
		if n := vmReadsBefore(r.log, "101"); n != 1 || len(r.mutations()) != 0 {
			t.Errorf("%d reads of the VM and %d changes, want the VM read once and nothing sent", n, len(r.mutations()))
		}
	})
}

// checksAfterChange is, for each item, how many times its wait read the
// check after its change, and how long after the change its first read came.
func checksAfterChange(events []runbook.Event) (map[string]int, map[string]time.Duration) {
	reads, first := map[string]int{}, map[string]time.Duration{}
	changed := map[string]time.Time{}
	for _, e := range events {
		switch {
		case e.Type == runbook.Attempt && e.Phase == runbook.PhaseChange:
			changed[e.Item] = e.Time
		case e.Type == runbook.Probe && e.Phase == runbook.PhaseWait:
			if reads[e.Item] == 0 {
				first[e.Item] = e.Time.Sub(changed[e.Item])
			}
			reads[e.Item]++
		}
	}
	return reads, first
}

// A fleet learns when its changes show: the first VM's start (30s) is polled
// every 10s; the later ones' first check comes near 30s, so each needs fewer
// reads, and none comes sooner than the interval after a busy answer.
func TestFleetFirstCheckComesWhenChangesUsuallyShow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		vms, list := stoppedVMs(8)
		srv := quietSim(t, func(c *sim.Config) { c.Durations.Run, c.Durations.RunPerVM = 30*time.Second, -1 }, vms...)
		r := execute(t, srv, runEachVM(list, "", "", ""))
		wantCode(t, r, 0)
		assertManners(t, r)
		reads, first := checksAfterChange(r.events)
		if reads["101"] < 3 {
			t.Errorf("the first VM was read %d times after its change, want every 10s until it ran at 30s", reads["101"])
		}
		late := 0
		for _, vm := range []string{"105", "106", "107", "108"} {
			late += reads[vm]
			if first[vm] < 20*time.Second {
				t.Errorf("VM %s first read %s after its change, want near when changes showed (30s)", vm, first[vm])
			}
		}
		if late > 4*2 {
			t.Errorf("the last four VMs were read %d times after their changes (%v), want at most two each", late, reads)
		}
		for vm, d := range first {
			if d < 10*time.Second {
				t.Errorf("VM %s read %s after a busy answer, sooner than the interval", vm, d)
			}
		}
	})
}

// A free slot goes to the first item whose environment no item in flight
// shares: with two at a time over [1/101, 1/102, 2/201], 2/201 starts beside
// 1/101, and no guard read finds an environment busy with this run's change.
func TestFleetStartsAnItemWhoseEnvironmentIsFree(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil, sim.VMSpec{ID: "101", Runstate: "stopped"}, sim.VMSpec{ID: "102", Runstate: "stopped"})
		srv.AddEnvironment(sim.EnvSpec{ID: "2", VMs: []sim.VMSpec{{ID: "201", Runstate: "stopped"}}})
		r := execute(t, srv, `steps:
  - name: Run each
    for_each: '[{env: "1", id: "101"}, {env: "1", id: "102"}, {env: "2", id: "201"}]'
    as: vm
    concurrency: 2
    http: {method: PUT, url: "/configurations/${{ vm.env }}/vms/${{ vm.id }}", json: {runstate: running}}
    guard: {check: "GET /configurations/${{ vm.env }}"}
    wait_for: state.runstate == "running"
`)
		wantCode(t, r, 0)
		assertManners(t, r)
		var order []string
		for _, m := range r.mutations() {
			order = append(order, m.Path[strings.LastIndex(m.Path, "/")+1:])
		}
		// 101 and 201 start together: either may be sent first.
		if got := strings.Join(order, " "); got != "101 201 102" && got != "201 101 102" {
			t.Errorf("changes in the order %v, want 101 and 201, then 102", order)
		}
		for _, e := range r.events {
			if e.Type == runbook.Waiting && e.Phase == runbook.PhaseGuard {
				t.Errorf("a guard waited: %s", e.Reason)
			}
		}
	})
}

// A fleet item's wait reads its environment, which lists the VM, and the read
// that sees it run serves the next VM's guard: no VM is read, and each item
// after the first has no guard read of its own.
func TestFleetWaitReadServesTheNextGuard(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil, sim.VMSpec{ID: "101", Runstate: "stopped", Error: "an old failure"},
			sim.VMSpec{ID: "102", Runstate: "stopped"}, sim.VMSpec{ID: "103", Runstate: "stopped"})
		r := execute(t, srv, runEachVM(`["101", "102", "103"]`, "", "", ""))
		wantCode(t, r, 0)
		assertManners(t, r)
		envReads, waitReads, guardReads, shared := 0, 0, 0, 0
		for _, e := range r.log {
			if strings.Contains(e.Path, "/vms/") && !e.Mutation {
				t.Errorf("the VM was read: %s %s", e.Method, e.Path)
			}
			if e.Path == "/v2/configurations/1" {
				envReads++
			}
		}
		for _, e := range r.events {
			if e.Type == runbook.Probe && e.Phase == runbook.PhaseWait {
				waitReads++
			}
			if e.Type == runbook.Probe && e.Phase == runbook.PhaseGuard {
				guardReads++
				if strings.Contains(e.Reason, "read by the previous item's last check") {
					shared++
				}
			}
		}
		if guardReads != 3 || shared != 2 || envReads != 1+waitReads {
			t.Errorf("%d guard checks (%d shared) and %d reads of the environment for %d wait reads, want the first VM's guard read and two shared", guardReads, shared, envReads, waitReads)
		}
	})
}

// A wait whose condition reads the answer (response) reads the VM itself:
// the environment's answer is not the VM's.
func TestFleetWaitThatReadsTheAnswerReadsTheResource(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil, sim.VMSpec{ID: "101", Runstate: "stopped"}, sim.VMSpec{ID: "102", Runstate: "stopped"})
		r := execute(t, srv, runEachVM(`["101", "102"]`, "", `response.body.runstate == "running"`, ""))
		wantCode(t, r, 0)
		for _, vm := range []string{"101", "102"} {
			if got := vmReads(r.log)[vm]; got == 0 {
				t.Errorf("VM %s never read", vm)
			}
		}
	})
}

// holdEnvReads holds each answer to a read of environment 1 until the next
// change reaches the server (or hold passes), so a wait read sent before
// another item's change is answered after it.
type holdEnvReads struct {
	rt   http.RoundTripper
	mu   sync.Mutex
	put  chan struct{}
	hold time.Duration
}

func (h *holdEnvReads) RoundTrip(r *http.Request) (*http.Response, error) {
	h.mu.Lock()
	ch := h.put
	h.mu.Unlock()
	resp, err := h.rt.RoundTrip(r)
	switch {
	case r.Method == http.MethodPut:
		h.mu.Lock()
		close(h.put)
		h.put = make(chan struct{})
		h.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/configurations/1"):
		select {
		case <-ch:
			time.Sleep(time.Millisecond)
		case <-time.After(h.hold):
		}
	}
	return resp, err
}

// A wait read sent before another item's change, and answered after it,
// shows the environment as it was: it must not serve the next item's guard.
// Three VMs of one environment at once, so changes and wait reads interleave.
func TestFleetSharedReadFromBeforeAChangeDoesNotServe(t *testing.T) {
	for _, c := range []struct{ hold, run time.Duration }{
		{500 * time.Millisecond, 3 * time.Second}, {900 * time.Millisecond, 3 * time.Second}, {1500 * time.Millisecond, 3 * time.Second},
		{500 * time.Millisecond, 5 * time.Second}, {900 * time.Millisecond, 5 * time.Second}, {1500 * time.Millisecond, 5 * time.Second},
	} {
		hold := c.hold
		t.Run(fmt.Sprint(c.hold, c.run), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				vms, list := stoppedVMs(6)
				srv := quietSim(t, func(cfg *sim.Config) { cfg.Durations.Run, cfg.Durations.RunPerVM = c.run, -1 }, vms...)
				rt := &holdEnvReads{rt: srv.Transport(), put: make(chan struct{}), hold: hold}
				r := executeVia(t.Context(), t, rt, srv, runEachVM(list, "1s", `{until: 'state.runstate == "running"', interval: 1s}`, "    concurrency: 3\n"))
				wantCode(t, r, 0)
				assertManners(t, r)
			})
		})
	}
}

// summaryList answers reads of an environment with its VMs listed without
// their errors, as an API that lists summaries would.
type summaryList struct{ rt http.RoundTripper }

func (s summaryList) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := s.rt.RoundTrip(r)
	if err != nil || r.Method != http.MethodGet || strings.Contains(r.URL.Path, "/vms/") {
		return resp, err
	}
	var body map[string]any
	if json.NewDecoder(resp.Body).Decode(&body) != nil {
		return resp, nil
	}
	resp.Body.Close()
	vms, _ := body["vms"].([]any)
	for _, v := range vms {
		if m, ok := v.(map[string]any); ok {
			delete(m, "error")
			delete(m, "errors")
			delete(m, "error_details")
		}
	}
	b, _ := json.Marshal(body)
	resp.Body, resp.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
	resp.Header.Del("Content-Length")
	return resp, nil
}

// When the environment lists its VMs without their errors, the wait reads
// the VM itself, so the error its change brings fails the step at once.
func TestFleetWaitSeesANewErrorTheListLeavesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil, sim.VMSpec{ID: "101", Runstate: "stopped"}, sim.VMSpec{ID: "102", Runstate: "stopped"})
		srv.FailNext("101")
		r := executeVia(t.Context(), t, summaryList{srv.Transport()}, srv, runEachVM(`["101", "102"]`, "", `{until: 'state.runstate == "running"', timeout: 10m}`, ""))
		wantCode(t, r, runbook.ExitFailed, "a new error appeared")
		if got := vmReads(r.log)["101"]; got == 0 {
			t.Errorf("VM 101 never read itself")
		}
	})
}

// delayChanges holds each PUT for delay before it reaches the server.
type delayChanges struct {
	rt    http.RoundTripper
	delay time.Duration
}

func (d delayChanges) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPut {
		time.Sleep(d.delay)
	}
	return d.rt.RoundTrip(r)
}

// A wait read sent while another item's change is on its way (and answered
// before the change lands) saw the environment free: it must not serve the
// next item's guard. Four VMs of one environment at once, the changes slow.
func TestFleetSharedReadDuringAChangeDoesNotServe(t *testing.T) {
	for _, delay := range []time.Duration{200 * time.Millisecond, 500 * time.Millisecond, 800 * time.Millisecond, 950 * time.Millisecond} {
		t.Run(delay.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				vms, list := stoppedVMs(4)
				srv := quietSim(t, func(c *sim.Config) { c.Durations.Run, c.Durations.RunPerVM = 2*time.Second, -1 }, vms...)
				r := executeVia(t.Context(), t, delayChanges{srv.Transport(), delay}, srv, runEachVM(list, "1s", `{until: 'state.runstate == "running"', interval: 1s}`, "    concurrency: 4\n"))
				wantCode(t, r, 0)
				assertManners(t, r)
			})
		})
	}
}
