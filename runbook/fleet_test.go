package runbook_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/runbookhq/runbook/runbook"
	"github.com/runbookhq/runbook/sim"
	"github.com/runbookhq/runbook/steps"
)

// fleet describes one fleet run: envs environments of vms stopped VMs each, run
// with the given concurrency and client rate ("" for the adaptive rate), against
// a simulator that allows 10 requests/s (burst 20) and ops runstate operations
// at once (default 20), each taking transient (default 30s) ±jitter (default
// 20%). interval, when set, is the runbook's guard and wait interval.
type fleet struct {
	envs, vms, concurrency int
	rate                   string
	ops                    int
	transient              time.Duration
	jitter                 float64
	interval               string
}

type fleetResult struct {
	virtual     time.Duration
	bound       time.Duration
	requests    int
	throttled   int // answered 429
	busyChanges int // changes that reached a busy VM or environment
	notRunning  int // VMs not running at the end
	err         error
}

const (
	simRate      = 10.0
	simOps       = 20
	simTransient = 30 * time.Second
)

func (f fleet) withDefaults() fleet {
	if f.ops == 0 {
		f.ops = simOps
	}
	if f.transient == 0 {
		f.transient = simTransient
	}
	if f.jitter == 0 {
		f.jitter = 0.2
	}
	return f
}

// lowerBound is what the simulator's limits allow at best: every VM needs at
// least three requests (a guard read, the change, a read that sees it done), at
// most simRate a second; its operation takes transient on average, at most ops
// at once; and the VMs of one environment take turns (a busy environment makes
// its VMs busy). The run can be no shorter than the largest of the three.
func (f fleet) lowerBound() time.Duration {
	f = f.withDefaults()
	n := float64(f.envs * f.vms)
	byRequests := time.Duration(3 * n / simRate * float64(time.Second))
	byOps := time.Duration(n / float64(f.ops) * float64(f.transient))
	byEnv := time.Duration(f.vms) * f.transient
	return max(byRequests, byOps, byEnv)
}

// source is the fleet's runbook. Its list takes one VM of each environment in
// turn, so concurrent items are spread over environments: VMs of one busy
// environment wait for each other whatever the client does.
func (f fleet) source() string {
	var b strings.Builder
	b.WriteString("version: 1\nname: Fleet\ndefaults:\n  http:\n    base_url: https://cloud.example.com/v2\n    basic_auth: {username: u, password: p}\n")
	if f.rate != "" {
		fmt.Fprintf(&b, "    rate: %s\n", f.rate)
	}
	if f.interval != "" {
		fmt.Fprintf(&b, "  guard: {interval: %s}\n  wait: {interval: %s}\n", f.interval, f.interval)
	}
	b.WriteString("vars:\n  vms:\n")
	for v := range f.vms {
		for e := range f.envs {
			fmt.Fprintf(&b, "    - {env: \"%d\", id: \"%d\"}\n", 1000+e, (1000+e)*100+v)
		}
	}
	fmt.Fprintf(&b, `steps:
  - name: Run every VM
    for_each: vars.vms
    as: vm
    concurrency: %d
    timeout: 3h
    http:
      method: PUT
      url: /configurations/${{ vm.env }}/vms/${{ vm.id }}
      json: {runstate: running}
    guard:
      check: GET /configurations/${{ vm.env }}
    wait_for: state.runstate == "running"
`, f.concurrency)
	return b.String()
}

// run carries the fleet out inside a synctest bubble (call it from one).
func (f fleet) run(t testing.TB) fleetResult {
	f = f.withDefaults()
	srv := sim.New(sim.Config{Seed: 7, Rate: simRate, Burst: 20, MaxConcurrentOps: f.ops, Jitter: f.jitter,
		Durations: sim.Durations{Run: f.transient, RunPerVM: -1}})
	for e := range f.envs {
		spec := sim.EnvSpec{ID: fmt.Sprint(1000 + e)}
		for v := range f.vms {
			spec.VMs = append(spec.VMs, sim.VMSpec{ID: fmt.Sprint((1000+e)*100 + v), Runstate: "stopped"})
		}
		srv.AddEnvironment(spec)
	}
	client := &http.Client{Transport: srv.Transport()}
	rb, err := runbook.Load("fleet.yaml", []byte(f.source()), steps.Kinds(client, nil))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res := fleetResult{bound: f.lowerBound()}
	res.err = rb.Run(t.Context(), runbook.Options{})
	res.virtual = time.Since(start)
	for _, e := range srv.Log() {
		res.requests++
		if e.Status == http.StatusTooManyRequests {
			res.throttled++
		}
		if e.Mutation && e.Busy {
			res.busyChanges++
		}
	}
	for e := range f.envs {
		for v := range f.vms {
			if rs, _ := srv.Runstate(fmt.Sprintf("vm/%d", (1000+e)*100+v)); rs != "running" {
				res.notRunning++
			}
		}
	}
	return res
}

// inBubble runs f inside a synctest bubble from a benchmark, which has no
// *testing.T of its own.
func inBubble(b *testing.B, f func(t *testing.T)) {
	// RunTests would run the test -count times; a benchmark's -count is not its.
	count := flag.Lookup("test.count")
	if n := count.Value.String(); n != "1" {
		count.Value.Set("1")
		defer count.Value.Set(n)
	}
	ok := testing.RunTests(func(_, _ string) (bool, error) { return true, nil },
		[]testing.InternalTest{{Name: b.Name(), F: func(t *testing.T) { synctest.Test(t, f) }}})
	if !ok {
		b.Fatal("the fleet run failed")
	}
}

// BenchmarkFleet drives 1000 VMs in 50 environments against the simulator's
// limits, in virtual time, and reports how close to the limits it got. The
// small/ cases are 24 VMs in 8 environments, 8 at a time, against an account
// that runs 3 operations at once, each busy 1 to 3 s, polled every second.
//
//	go test -run '^$' -bench BenchmarkFleet -benchtime 1x ./runbook
func BenchmarkFleet(b *testing.B) {
	small := fleet{envs: 8, vms: 3, concurrency: 8, ops: 3, transient: 2 * time.Second, jitter: 0.5, interval: "1s"}
	smallRate := small
	smallRate.rate = "10/s"
	for _, c := range []struct {
		name string
		f    fleet
	}{
		{"rate=10/s", fleet{envs: 50, vms: 20, concurrency: 50, rate: "10/s"}},
		{"adaptive", fleet{envs: 50, vms: 20, concurrency: 50}},
		{"sequential", fleet{envs: 50, vms: 20, concurrency: 1, rate: "10/s"}},
		{"small/rate=10/s", smallRate},
		{"small/adaptive", small},
	} {
		b.Run(c.name, func(b *testing.B) {
			var res fleetResult
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			runs := 0
			for b.Loop() {
				inBubble(b, func(t *testing.T) { res = c.f.run(t); runs++ })
			}
			wall := time.Since(start)
			runtime.ReadMemStats(&after)
			n := float64(c.f.envs * c.f.vms * runs)
			if res.err != nil {
				b.Fatalf("fleet failed: %v", res.err)
			}
			b.ReportMetric(res.virtual.Seconds(), "virtual-s")
			b.ReportMetric(res.bound.Seconds(), "bound-s")
			b.ReportMetric(res.virtual.Seconds()/res.bound.Seconds(), "ratio")
			b.ReportMetric(float64(res.requests)/float64(c.f.envs*c.f.vms), "req/VM")
			b.ReportMetric(100*float64(res.throttled)/float64(res.requests), "%429")
			b.ReportMetric(float64(res.busyChanges), "busy-changes")
			b.ReportMetric(float64(res.notRunning), "not-running")
			b.ReportMetric(float64(wall.Nanoseconds())/n, "ns/VM")
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/n, "allocs/VM")
		})
	}
}

// TestFleet is a smaller fleet in the normal run, holding the same targets: no
// change to a busy resource, close to the limits, few 429s.
func TestFleet(t *testing.T) {
	for _, c := range []struct {
		name      string
		f         fleet
		maxRatio  float64
		max429pct float64
	}{
		{"rate", fleet{envs: 40, vms: 2, concurrency: 40, rate: "10/s"}, 1.5, 1},
		{"adaptive", fleet{envs: 40, vms: 2, concurrency: 40}, 1.5, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				res := c.f.run(t)
				if res.err != nil {
					t.Fatal(res.err)
				}
				ratio := res.virtual.Seconds() / res.bound.Seconds()
				pct := 100 * float64(res.throttled) / float64(res.requests)
				t.Logf("%s in %s (bound %s, ratio %.2f), %d requests, %.1f%% 429", c.name, res.virtual, res.bound, ratio, res.requests, pct)
				if res.busyChanges != 0 || res.notRunning != 0 {
					t.Errorf("%d changes reached a busy resource, %d VMs not running", res.busyChanges, res.notRunning)
				}
				if ratio > c.maxRatio || pct > c.max429pct {
					t.Errorf("ratio %.2f (max %.2f), %.1f%% 429 (max %.1f%%)", ratio, c.maxRatio, pct, c.max429pct)
				}
			})
		})
	}
}

func TestForEachRunsVMsInOrderGatedOnTheEnvironment(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil, sim.VMSpec{ID: "101", Runstate: "stopped"}, sim.VMSpec{ID: "102", Runstate: "stopped"})
		r := execute(t, srv, `steps:
  - id: env
    name: Read
    http: GET /configurations/1
    outputs:
      vm_ids: map(response.body.vms, .id)
  - name: Run each VM
    for_each: steps.env.outputs.vm_ids
    as: vm
    http:
      method: PUT
      url: /configurations/1/vms/${{ vm }}
      json: {runstate: running}
    guard:
      check: GET /configurations/1
    wait_for: state.runstate == "running"
`)
		wantCode(t, r, 0)
		assertManners(t, r)
		muts := r.mutations()
		if len(muts) != 2 || !strings.HasSuffix(muts[0].Path, "/101") || !strings.HasSuffix(muts[1].Path, "/102") {
			t.Fatalf("changes %+v, want VM 101 then VM 102", muts)
		}
		for _, id := range []string{"101", "102"} {
			if got, _ := srv.Runstate("vm/" + id); got != "running" {
				t.Errorf("VM %s is %s, want running", id, got)
			}
		}
	})
}

func TestForEachFirstFailureStopsNewItems(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil, sim.VMSpec{ID: "101", Runstate: "stopped"}, sim.VMSpec{ID: "102", Runstate: "stopped"})
		r := execute(t, srv, `steps:
  - name: Suspend each
    for_each: '["101", "102"]'
    as: vm
    http: {method: PUT, url: "/configurations/1/vms/${{ vm }}", json: {runstate: suspended}}
    wait_for: state.runstate == "suspended"
`)
		wantCode(t, r, runbook.ExitFailed, "1 of 2 items failed", "101")
		for _, m := range r.mutations() {
			if strings.HasSuffix(m.Path, "/102") {
				t.Errorf("VM 102 was changed after VM 101 failed")
			}
		}
	})
}

// A signal in the middle of a fleet stops it; the items it caught in flight
// are told as stopped, not failed, and the step says how far the fleet got.
func TestSignalStopsAFleetWithoutFailingItsItems(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		ctx, cancel := context.WithCancelCause(t.Context())
		time.AfterFunc(25*time.Second, func() { cancel(&runbook.Stopped{Signal: "SIGINT", Code: runbook.ExitSIGINT}) })
		// Items 0 and 1 are done at once; 2 and 3 wait for ever; 4 and 5 never start.
		r := executeCtx(ctx, t, srv, `steps:
  - name: Each
    for_each: '[1, 2, 3, 4, 5, 6]'
    concurrency: 2
    http: GET /configurations/1
    wait_for: {until: 'index < 2', timeout: 1h}
`)
		wantCode(t, r, runbook.ExitSIGINT, "stopped by SIGINT: 2 of 6 items done, 2 stopped in flight, 2 not started")
		if strings.Contains(r.err.Error(), "failed") {
			t.Errorf("error %q calls stopped items failed", r.err)
		}
		stopped := 0
		for _, e := range r.events {
			if e.Type == runbook.StepFailed && e.ItemNo == 0 && (e.Total != 6 || e.Done != 2 || e.Stopped != 2) {
				t.Errorf("the step's failed event counts %d done and %d stopped of %d, want 2, 2 of 6", e.Done, e.Stopped, e.Total)
			}
			if e.Type == runbook.StepFailed && e.ItemNo > 0 {
				if !e.Interrupted {
					t.Errorf("item %d told as failed: %+v", e.ItemNo-1, e)
				}
				stopped++
			}
			if e.Failed != 0 {
				t.Errorf("an event counts %d failed items: %+v", e.Failed, e)
			}
		}
		last := r.events[len(r.events)-1]
		if stopped != 2 || last.Type != runbook.RunDone || !last.Interrupted {
			t.Errorf("%d items told as stopped, want 2; last event %+v", stopped, last)
		}
	})
}

// A signal that comes as the last item of a fleet is done leaves the step done
// (a resume must not run its items again); the run stops at the next step.
func TestSignalAfterTheLastItemLeavesTheStepDone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		ctx, cancel := context.WithCancelCause(t.Context())
		r := executeCtx(ctx, t, srv, `steps:
  - name: Each
    for_each: '[1, 2]'
    log: item ${{ item }}
  - name: After
    log: after
`, func(o *runbook.Options) {
			next := o.Observer
			o.Observer = runbook.ObserverFunc(func(e runbook.Event) {
				next.Observe(e)
				if e.Type == runbook.StepDone && e.ItemNo == 2 {
					cancel(&runbook.Stopped{Signal: "SIGTERM", Code: runbook.ExitSIGTERM})
				}
			})
		})
		wantCode(t, r, runbook.ExitSIGTERM)
		var se *runbook.StepError
		if !errors.As(r.err, &se) || se.Index != 2 {
			t.Errorf("stopped at %v, want at step 2", r.err)
		}
		done := false
		for _, e := range r.events {
			done = done || (e.Type == runbook.StepDone && e.Step == 1 && e.ItemNo == 0)
		}
		if !done {
			t.Error("step 1 was not told done")
		}
	})
}

// vmReads counts the reads of each VM the server saw.
func vmReads(log []sim.Entry) map[string]int {
	out := map[string]int{}
	for _, e := range log {
		if i := strings.LastIndex(e.Path, "/vms/"); e.Method == "GET" && i >= 0 {
			out[e.Path[i+len("/vms/"):]]++
		}
	}
	return out
}

// TestMaxFailuresGoesOnAndFailsAtTheEnd: within max_failures every item is
// tried, and the step still fails, saying how many of how many and why.
func TestMaxFailuresGoesOnAndFailsAtTheEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil, sim.VMSpec{ID: "101"}, sim.VMSpec{ID: "102"}, sim.VMSpec{ID: "103"})
		r := execute(t, srv, `steps:
  - name: Read each
    for_each: '["101", "901", "102", "902", "103"]'
    as: vm
    max_failures: 2
    http: GET /configurations/1/vms/${{ vm }}
`)
		wantCode(t, r, runbook.ExitFailed, "2 of 5 items failed (max_failures 2): 901: ", "; 902: ")
		if got := vmReads(r.log); len(got) != 5 {
			t.Errorf("VMs read %v, want all five", got)
		}
		last := r.events[len(r.events)-2] // before run_done
		if last.Type != runbook.StepFailed || last.Done != 3 || last.Failed != 2 || last.Total != 5 {
			t.Errorf("the step's failed event %+v, want 3 done and 2 failed of 5", last)
		}
	})
}

// TestMaxFailuresExceededStopsNewItems: one failure past the budget starts no
// new item, with two at a time; the items in flight finish.
func TestMaxFailuresExceededStopsNewItems(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil, sim.VMSpec{ID: "101"}, sim.VMSpec{ID: "102"}, sim.VMSpec{ID: "103"}, sim.VMSpec{ID: "104"}, sim.VMSpec{ID: "105"})
		r := execute(t, srv, `steps:
  - name: Read each
    for_each: '["101", "901", "102", "902", "103", "903", "104", "105"]'
    as: vm
    concurrency: 2
    max_failures: 1
    http: GET /configurations/1/vms/${{ vm }}
`)
		// Which items end first is the scheduler's choice, so 103 and 903 may
		// start; 104 and 105 cannot: two failures come before a slot for them.
		wantCode(t, r, runbook.ExitFailed)
		if !regexp.MustCompile(`^step 1 "Read each": [23] of 8 items failed \(max_failures 1; [234] not started\): 901: `).MatchString(r.err.Error()) {
			t.Errorf("error %q", r.err)
		}
		got := vmReads(r.log)
		if got["104"]+got["105"] > 0 || got["901"]+got["902"] != 2 {
			t.Errorf("VMs read %v, want none after the second failure", got)
		}
	})
}

// TestMaxFailuresPercentRoundsDown: "20%" of 9 items is 1.
func TestMaxFailuresPercentRoundsDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil, sim.VMSpec{ID: "101"})
		r := execute(t, srv, `steps:
  - name: Read each
    for_each: '["901", "902", "101", "101", "101", "101", "101", "101", "101"]'
    as: vm
    max_failures: 20%
    http: GET /configurations/1/vms/${{ vm }}
`)
		wantCode(t, r, runbook.ExitFailed, "2 of 9 items failed (max_failures 20% of 9: 1; 7 not started)")
	})
}

// TestMaxFailuresWithContinueOnError: past the budget no new item starts, but
// the run goes on after the step.
func TestMaxFailuresWithContinueOnError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		r := execute(t, srv, `steps:
  - name: Read each
    for_each: '["901", "902", "101"]'
    as: vm
    max_failures: 0
    continue_on_error: true
    http: GET /configurations/1/vms/${{ vm }}
  - name: After
    log: after
`)
		wantCode(t, r, 0)
		if got := vmReads(r.log); got["902"]+got["101"] > 0 {
			t.Errorf("VMs read %v, want none after the first failure", got)
		}
	})
}

// TestResumeRunsTheFailedItemsAgain: a failed item is not done, so a resume
// (the retry) runs it again, and not the items that were done.
func TestResumeRunsTheFailedItemsAgain(t *testing.T) {
	file := writeRunbook(t, `steps:
  - name: Read each
    for_each: '["101", "102", "103"]'
    as: vm
    max_failures: 1
    http: GET /configurations/1/vms/${{ vm }}
`)
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil, sim.VMSpec{ID: "101"}, sim.VMSpec{ID: "102"}, sim.VMSpec{ID: "103"})
		srv.Inject(sim.Fault{Target: "vm/102", Method: "GET", Status: 400, Body: `{"error":"not now"}`})
		r := crashRun(t, srv, file, dir, "r01", &crashRig{}, false)
		wantCode(t, r, runbook.ExitFailed, "1 of 3 items failed (max_failures 1): 102: ")
		r = crashRun(t, srv, file, dir, "r02", &crashRig{}, true)
		wantCode(t, r, 0)
		if got := vmReads(srv.Log()); got["101"] != 1 || got["102"] != 2 || got["103"] != 1 {
			t.Errorf("VMs read %v, want 102 twice and the others once", got)
		}
	})
}
