package runbook_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/runbookhq/runbook/runbook"
	"github.com/runbookhq/runbook/sim"
	"github.com/runbookhq/runbook/steps"
)

var cleanupSeeds = flag.Int("chaos.cleanup-seeds", 300, "how many fault schedules TestChaosCleanup draws")

// chaosCleanupRunbook resizes VM 1101 as examples/resize-vm.yaml does: its
// stop and start are used runbooks (uses:), on_failure starts the VM again
// through the same used file, and finally makes changes of its own (a
// for_each of guarded PUTs, then a POST to a webhook), so that every kind of
// step that runs outside the main list sends changes under chaos.
const chaosCleanupRunbook = `version: 1
name: chaos-cleanup
timeout: 2h
cleanup_timeout: 1h
defaults:
  http:
    base_url: https://cloud.example.com/v2
    basic_auth: {username: u, password: p}
    timeout: 30s
  timeout: 40m
steps:
  - id: stop
    uses: lib/stop.yaml
    with: {vm: "1101"}
  - id: resize
    http: {method: PUT, url: /configurations/11/vms/1101, json: {hardware: {cpus: CPUS}}}
    guard: {check: GET /configurations/11}
    wait_for: state.runstate == "stopped" && state.hardware.cpus == CPUS
  - id: start
    uses: lib/start.yaml
    with: {vm: "1101"}
on_failure:
  - name: Start 1101 again
    if: run.failed_step_id != "stop" && !steps.stop.skipped && steps.stop.outputs.was != "stopped"
    uses: lib/start.yaml
    with: {vm: "1101"}
finally:
  - name: Suspend the VMs of 12
    for_each: '["1201", "1202"]'
    as: vm
    concurrency: 2
    http: {method: PUT, url: "/configurations/12/vms/${{ vm }}", json: {runstate: suspended}}
    guard: {check: GET /configurations/12}
    wait_for: state.runstate == "suspended"
    continue_on_error: true
  - name: Notify
    http:
      method: POST
      url: https://cloud.example.com/webhook/chaos
      json: {result: "${{ run.result }}", error: "${{ run.error }}"}
    guard: false
    wait_for: false
    continue_on_error: true
`

const chaosLibDefaults = `defaults:
  http:
    base_url: https://cloud.example.com/v2
    basic_auth: {username: u, password: p}
    timeout: 30s
  timeout: 40m
`

var chaosLibs = map[string]string{
	"lib/stop.yaml": `version: 1
vars: {vm: null}
` + chaosLibDefaults + `steps:
  - id: vm
    http: GET /configurations/11/vms/${{ vars.vm }}
    outputs: {runstate: response.body.runstate}
  - id: stop
    if: steps.vm.outputs.runstate != "stopped"
    http: {method: PUT, url: "/configurations/11/vms/${{ vars.vm }}", json: {runstate: stopped}}
    guard: {check: GET /configurations/11}
    wait_for: state.runstate == "stopped"
outputs:
  was: steps.vm.outputs.runstate
`,
	"lib/start.yaml": `version: 1
vars: {vm: null}
` + chaosLibDefaults + `steps:
  - http: {method: PUT, url: "/configurations/11/vms/${{ vars.vm }}", json: {runstate: running}}
    guard: {check: GET /configurations/11}
    wait_for: state.runstate == "running"
`,
}

const chaosHook = "/webhook/chaos"

// cleanupSchedule is chaos_test.go's schedule of faults and busy windows (its
// kill is not used), and what this test adds: a size the simulator refuses,
// a signal, a short run deadline.
type cleanupSchedule struct {
	*schedule
	cpus     int
	signalAt time.Duration // 0: no SIGINT
	timeout  time.Duration // 0: the runbook's
}

func drawCleanup(seed uint64) *cleanupSchedule {
	s := &cleanupSchedule{schedule: draw(seed), cpus: 4}
	s.killAfterRecord, s.killAfterChange = 0, 0
	rng := rand.New(rand.NewPCG(seed, 0xc1ea4))
	if rng.IntN(3) == 0 {
		s.cpus = 64 // more than the simulator's 12: the resize fails with a 422
	}
	if rng.IntN(5) == 0 {
		s.signalAt = time.Duration(1+rng.IntN(1200)) * time.Second
	}
	if rng.IntN(6) == 0 {
		s.timeout = time.Duration(1+rng.IntN(20)) * time.Minute
	}
	// The webhook fails now and then, the ambiguous ways included: its POST
	// must not be sent again after one that may have arrived.
	if rng.IntN(3) == 0 {
		f := sim.Fault{Target: "webhook/chaos", Times: 1 + rng.IntN(2)}
		switch rng.IntN(4) {
		case 0:
			f.Status = []int{500, 502, 503}[rng.IntN(3)]
		case 1:
			f.Drop = sim.DropAfterWrite
		case 2:
			f.Drop = sim.DropBeforeWrite
		case 3:
			f.Status, f.RetryAfter = 429, time.Duration(1+rng.IntN(30))*time.Second
		}
		s.faults = append(s.faults, f)
	}
	return s
}

func (s *cleanupSchedule) String() string {
	return fmt.Sprintf("%s  cpus %d, SIGINT at %s, run timeout %s\n", s.schedule, s.cpus, s.signalAt, s.timeout)
}

// cleanupRun is what one schedule did, and the events that tell which steps
// ran.
type cleanupRun struct {
	chaosRun
	mu     sync.Mutex
	events []runbook.Event
}

func (c *cleanupRun) violate(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.chaosRun.violate(format, args...)
}

func (s *cleanupSchedule) play(t *testing.T, dir string) *cleanupRun {
	srv := sim.New(s.cfg)
	srv.AddEnvironment(sim.EnvSpec{ID: "11", VMs: []sim.VMSpec{s.vms["1101"]}, Error: s.envErr["11"]})
	srv.AddEnvironment(sim.EnvSpec{ID: "12", VMs: []sim.VMSpec{s.vms["1201"], s.vms["1202"]}, Error: s.envErr["12"]})
	for _, id := range s.failNext {
		srv.FailNext(id)
	}
	for _, f := range s.faults {
		srv.Inject(f)
	}
	var wg sync.WaitGroup
	for _, w := range s.busy {
		wg.Go(func() {
			time.Sleep(w.at)
			srv.MakeBusy(w.target, w.d)
		})
	}
	rb, err := runbook.LoadFile(filepath.Join(dir, "main.yaml"), steps.Kinds(&http.Client{Transport: srv.Transport()}, nil))
	if err != nil {
		t.Fatal(err)
	}
	res := &cleanupRun{chaosRun: chaosRun{lost: map[int]bool{}}}
	// Invariant 3 for used and cleanup steps: each is done only after a read
	// whose truth at the server was what it waited for.
	observe := func(e runbook.Event) {
		res.mu.Lock()
		res.events = append(res.events, e)
		res.mu.Unlock()
		if e.Type != runbook.StepDone {
			return
		}
		log := srv.Log()
		check := func(path, want string) {
			res.mu.Lock()
			defer res.mu.Unlock()
			lastRead(&res.chaosRun, log, path, want, e)
		}
		switch {
		case e.Path == "1/2", e.Step == 2 && e.Path == "":
			check("/v2/configurations/11/vms/1101", "stopped")
		case e.Path == "3/1", e.Path == "4/1":
			check("/v2/configurations/11/vms/1101", "running")
		case e.Step == 5 && e.ItemNo > 0:
			check("/v2/configurations/12/vms/"+e.Item, "suspended")
		}
	}
	ctx, cancel := context.WithCancelCause(t.Context())
	defer cancel(nil)
	if s.signalAt > 0 {
		// The first SIGINT: the main steps stop, finally runs.
		stop := time.AfterFunc(s.signalAt, func() { cancel(&runbook.Stopped{Signal: "SIGINT", Code: runbook.ExitSIGINT}) })
		defer stop.Stop()
	}
	start := time.Now()
	res.err = rb.Run(ctx, runbook.Options{Observer: runbook.ObserverFunc(observe), Timeout: s.timeout})
	res.elapsed = time.Since(start)
	res.log = srv.Log()
	s.checkLog(res)
	s.checkCleanup(res)
	wg.Wait()
	return res
}

// checkLog checks invariants 1, 2 and 5 on what the server saw, cleanup and
// used steps' requests included: a guard read that showed the resource not
// busy before each change (the webhook has no guard: it has nothing to be
// busy), nothing sent to the host before a Retry-After's time, and no POST
// sent again after one that may have taken effect.
func (s *cleanupSchedule) checkLog(res *cleanupRun) {
	// What the change's own guard saw: the server's log cannot tell it from
	// the reads of the same environment a fleet's other items make while they
	// wait, so it is taken from the step's events (a guard read shared from
	// the previous item is one of them).
	lastGuard := map[string]runbook.Event{}
	for _, e := range res.events {
		k := fmt.Sprint(e.Step, "|", e.Path, "|", e.Item)
		switch {
		case e.Type == runbook.Probe && e.Phase == runbook.PhaseGuard:
			lastGuard[k] = e
		case e.Type == runbook.Attempt && e.Phase == runbook.PhaseChange && !strings.HasPrefix(e.Target, "GET ") && strings.Contains(e.Target, "/configurations/"):
			g, ok := lastGuard[k]
			delete(lastGuard, k)
			if !ok {
				res.violate("%s sent without a guard read since the previous attempt (step %d %s %s)", e.Target, e.Step, e.Path, e.Item)
			} else if g.Status == 200 && (strings.Contains(g.State, "runstate=busy") || strings.Contains(g.State, "rate_limited=true")) {
				res.violate("%s sent after its guard read showed %q (step %d %s %s)", e.Target, g.State, e.Step, e.Path, e.Item)
			}
		}
	}
	log := res.log
	for i, m := range log {
		if !m.Mutation || m.Path == chaosHook {
			continue
		}
		guard := "/v2/configurations/11"
		if strings.HasPrefix(m.Path, "/v2/configurations/12/") {
			guard = "/v2/configurations/12"
		}
		read := -1
		for j := i - 1; j >= 0; j-- {
			if log[j].Mutation && log[j].Path == m.Path {
				break
			}
			if log[j].Method == "GET" && log[j].Path == guard && (log[j].Status == 200 || log[j].Status == 404) {
				read = j
				break
			}
		}
		if read < 0 {
			res.violate("#%d %s %s %s sent without a read of its environment since the previous attempt", m.Seq, m.Method, m.Path, m.Body)
		}
	}
	for _, e := range log {
		if e.RetryAt.IsZero() || strings.Contains(e.Fault, "drop") {
			continue
		}
		for _, later := range log {
			if later.Time.After(e.Answered) && later.Time.Before(e.RetryAt) {
				res.violate("#%d %s %s at %s, before the Retry-After of #%d %s %s (until %s)", later.Seq, later.Method, later.Path,
					later.Time.Format("15:04:05.000"), e.Seq, e.Method, e.Path, e.RetryAt.Format("15:04:05.000"))
				break
			}
		}
	}
	ambiguous := ""
	for _, e := range log {
		if e.Method != "POST" {
			continue
		}
		if ambiguous != "" {
			res.violate("#%d POST %s sent again after an ambiguous failure (%s)", e.Seq, e.Path, ambiguous)
			break
		}
		if e.Status >= 500 || strings.Contains(e.Fault, "drop after") || (strings.Contains(e.Fault, "delay") && e.Answered.Sub(e.Time) >= chaosRequestTimeout) {
			ambiguous = fmt.Sprintf("#%d: %d %s", e.Seq, e.Status, e.Fault)
		}
	}
}

// checkCleanup checks how the run ended and what its cleanup did: a code a
// run ends with here, finally's notification sent with the run's result,
// on_failure run only for a failure, and starting the VM again when this run
// had stopped it.
func (s *cleanupSchedule) checkCleanup(res *cleanupRun) {
	code := runbook.ExitCode(res.err)
	switch code {
	case 0, runbook.ExitFailed, runbook.ExitBusy, runbook.ExitDeadline, runbook.ExitSIGINT:
	default:
		res.violate("exit %d is not a code a run can end with here: %v", code, res.err)
	}
	if code != 0 && (res.err == nil || strings.TrimSpace(res.err.Error()) == "") {
		res.violate("exit %d without a message", code)
	}
	if res.elapsed > chaosRunTimeout+time.Hour+2*chaosRequestTimeout {
		res.violate("the run took %s, past its deadline and cleanup_timeout", res.elapsed)
	}

	want := map[int]string{0: "ok", runbook.ExitSIGINT: "stopped"}[code]
	if want == "" {
		want = "failed"
	}
	var hook *sim.Entry
	for i := range res.log {
		if res.log[i].Path == chaosHook {
			hook = &res.log[i]
		}
	}
	notified := false
	for _, e := range res.events {
		notified = notified || e.Step == 6 && e.Type == runbook.StepStarted
	}
	switch {
	case !notified && !strings.Contains(fmt.Sprint(res.err), "cleanup_timeout"):
		res.violate("finally never came to its notification (exit %d)", code)
	case hook != nil:
		// A notification never sent is one a Retry-After on the host held
		// back past the step's timeout: invariant 2 is checked above.
		var body struct{ Result, Error string }
		if err := json.Unmarshal([]byte(hook.Body), &body); err != nil {
			res.violate("the webhook got %q: %v", hook.Body, err)
		} else if body.Result != want {
			res.violate("the webhook was told %q, the run ended %q (exit %d)", body.Result, want, code)
		} else if (want == "ok") != (body.Error == "") {
			res.violate("the webhook was told result %q with error %q", body.Result, body.Error)
		}
	}

	var was string
	stopDone, failedAt := false, 0
	ranOnFailure, skippedOnFailure := false, false
	for _, e := range res.events {
		switch {
		case e.Step == 1 && e.Path == "" && e.Type == runbook.StepDone:
			stopDone = true
			was, _ = e.Outputs["was"].(string)
		case e.Step <= 3 && e.Path == "" && e.Type == runbook.StepFailed:
			failedAt = e.Step
		case e.Step == 4 && e.Type == runbook.StepSkipped:
			skippedOnFailure = true
		case e.Step == 4 && (e.Path != "" || e.Type == runbook.StepDone || e.Type == runbook.StepFailed):
			ranOnFailure = true
		}
	}
	failed := code != 0 && code != runbook.ExitSIGINT
	switch {
	case !failed && (ranOnFailure || skippedOnFailure):
		res.violate("on_failure ran after a run that ended with exit %d", code)
	case failed && failedAt > 0 && !ranOnFailure && !skippedOnFailure:
		res.violate("on_failure did not run after step %d failed (exit %d)", failedAt, code)
	case failedAt == 1 && ranOnFailure:
		res.violate("on_failure started the VM though the stop itself failed")
	case failed && failedAt > 1 && stopDone && was != "stopped" && !ranOnFailure:
		res.violate("step %d failed after this run stopped the VM (it was %q), and on_failure did not start it", failedAt, was)
	case failed && stopDone && was == "stopped" && ranOnFailure:
		res.violate("on_failure started a VM this run found stopped")
	}
}

// TestChaosCleanup plays fault schedules against a runbook whose used steps
// and on_failure and finally steps make changes, and checks that the rules of
// TestChaos hold for them too: no change while busy, nothing before a
// Retry-After, no POST sent twice, a step done only when its condition held;
// and that cleanup ran when it should, told the run's result, and put back
// only what the run had changed.
//
//	go test -run TestChaosCleanup ./runbook -chaos.cleanup-seeds=3000
//	go test -run TestChaosCleanup ./runbook -chaos.seed=123   # replay one
func TestChaosCleanup(t *testing.T) {
	dir := t.TempDir()
	for name, src := range chaosLibs {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	first, n := 0, *cleanupSeeds
	if *chaosSeed >= 0 {
		first, n = *chaosSeed, 1
	}
	violations, codes := 0, map[int]int{}
	for seed := first; seed < first+n; seed++ {
		s := drawCleanup(uint64(seed))
		src := strings.ReplaceAll(chaosCleanupRunbook, "CPUS", fmt.Sprint(s.cpus))
		if err := os.WriteFile(filepath.Join(dir, "main.yaml"), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		var res *cleanupRun
		synctest.Test(t, func(t *testing.T) { res = s.play(t, dir) })
		if res == nil {
			t.Fatalf("schedule %d did not finish\n%s", seed, s)
		}
		codes[runbook.ExitCode(res.err)]++
		if len(res.violations) > 0 {
			violations += len(res.violations)
			t.Errorf("schedule %d: %d violations:\n  %s\nrun error: %v\n%s", seed, len(res.violations), strings.Join(res.violations, "\n  "), res.err, s)
		}
	}
	t.Logf("chaos cleanup: %d schedules, %d violations (exit codes: %v)", n, violations, codes)
}
