package runbook_test

import (
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

var (
	chaosSeeds = flag.Int("chaos.seeds", 500, "how many fault schedules TestChaos draws")
	chaosSeed  = flag.Int("chaos.seed", -1, "replay this one schedule of TestChaos")
)

// chaosRunbook changes every kind of thing the executor handles: a guarded PUT
// with a wait, a POST create, a for_each of guarded PUTs on one environment,
// and a DELETE.
const chaosRunbook = `version: 1
name: chaos
timeout: 2h
defaults:
  http:
    base_url: https://cloud.example.com/v2
    basic_auth: {username: u, password: p}
    timeout: 30s
  timeout: 40m
steps:
  - name: Stop VM 1101
    http: {method: PUT, url: /configurations/11/vms/1101, json: {runstate: stopped}}
    guard: {check: GET /configurations/11}
    wait_for: state.runstate == "stopped"
  - name: Create from the template
    http: {method: POST, url: /configurations, json: {template_id: "7", name: chaos}}
    guard: {check: GET /templates/7, busy_when: state.busy == true}
    wait_for:
      check: GET /configurations
      until: any(state, .name == "chaos" && .runstate != "busy")
IDEMPOTENT  - name: Suspend the VMs of 12
    for_each: '["1201", "1202"]'
    as: vm
    concurrency: 2
    http: {method: PUT, url: "/configurations/12/vms/${{ vm }}", json: {runstate: suspended}}
    guard: {check: GET /configurations/12}
    wait_for: state.runstate == "suspended"
  - name: Delete 13
    http: DELETE /configurations/13
`

const (
	chaosRunTimeout     = 2 * time.Hour
	chaosRequestTimeout = 30 * time.Second
)

// schedule is one seed's draw of faults; String is enough to replay it by eye,
// and -chaos.seed replays it exactly.
type schedule struct {
	seed       uint64
	cfg        sim.Config
	idempotent bool
	vms        map[string]sim.VMSpec
	envErr     map[string]string
	failNext   []string
	busy       []busyWindow
	faults     []sim.Fault
	// The run is killed at this point (see crashRig), and resumed; zero: it
	// is not.
	killAfterRecord, killAfterChange int
}

type busyWindow struct {
	at, d  time.Duration
	target string
}

func (s *schedule) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d: rate %g burst %d, ops %d, queue-stale %v, lag %d, date Retry-After %v, Retry-After %s, busy answers %+v, POST idempotent %v\n",
		s.seed, s.cfg.Rate, s.cfg.Burst, s.cfg.MaxConcurrentOps, s.cfg.QueueStale, s.cfg.LagReads, s.cfg.RetryAfterDate, s.cfg.RetryAfter, s.cfg.Busy, s.idempotent)
	for id, v := range s.vms {
		if v.Error != "" || v.NoTools {
			fmt.Fprintf(&b, "  vm %s: lingering error %q, no tools %v\n", id, v.Error, v.NoTools)
		}
	}
	for id, e := range s.envErr {
		fmt.Fprintf(&b, "  env %s: lingering error %q\n", id, e)
	}
	for _, v := range s.failNext {
		fmt.Fprintf(&b, "  vm %s: next operation fails\n", v)
	}
	for _, w := range s.busy {
		fmt.Fprintf(&b, "  %s busy from %s for %s\n", w.target, w.at, w.d)
	}
	for _, f := range s.faults {
		fmt.Fprintf(&b, "  fault %+v\n", f)
	}
	if s.killAfterRecord > 0 {
		fmt.Fprintf(&b, "  killed after journal record %d, then resumed\n", s.killAfterRecord)
	}
	if s.killAfterChange > 0 {
		fmt.Fprintf(&b, "  killed when change %d reached the server, then resumed\n", s.killAfterChange)
	}
	return b.String()
}

// draw makes the schedule of one seed.
func draw(seed uint64) *schedule {
	rng := rand.New(rand.NewPCG(seed, 0xc4a05))
	pick := func(n int) int { return rng.IntN(n) }
	s := &schedule{seed: seed, vms: map[string]sim.VMSpec{}, envErr: map[string]string{}}
	s.cfg = sim.Config{
		Seed:             seed,
		Rate:             []float64{-1, 2, 5, 10}[pick(4)],
		Burst:            []int{3, 10, 20}[pick(3)],
		MaxConcurrentOps: []int{-1, 1, 2}[pick(3)],
		QueueStale:       pick(2) == 0,
		LagReads:         pick(3),
		RetryAfterDate:   pick(3) == 0,
		RetryAfter:       []time.Duration{time.Second, 10 * time.Second, 40 * time.Second}[pick(3)],
		Busy:             sim.BusyWeights{Status422: rng.Float64(), Status423: rng.Float64(), Dropped200: rng.Float64(), Status409: rng.Float64() / 2},
	}
	s.idempotent = pick(4) == 0
	for _, id := range []string{"1101", "1201", "1202", "1301"} {
		spec := sim.VMSpec{ID: id}
		if pick(4) == 0 {
			spec.Error = "an old failure of " + id
		}
		if id == "1101" && pick(5) == 0 {
			spec.NoTools = true // the graceful stop fails with a new error
		}
		s.vms[id] = spec
	}
	for _, id := range []string{"11", "12", "13"} {
		if pick(5) == 0 {
			s.envErr[id] = "an old failure of environment " + id
		}
	}
	for _, id := range []string{"1201", "1202"} {
		if pick(8) == 0 {
			s.failNext = append(s.failNext, id)
		}
	}
	targets := []string{"env/11", "vm/1101", "env/12", "vm/1201", "vm/1202", "env/13", "template/7", "*"}
	for range pick(3) {
		s.busy = append(s.busy, busyWindow{at: time.Duration(rng.IntN(600)) * time.Second,
			d: time.Duration(1+rng.IntN(120)) * time.Second, target: targets[pick(6)]})
	}
	for range pick(7) {
		f := sim.Fault{Target: targets[pick(len(targets))], Times: 1 + pick(3)}
		switch k := pick(14); k {
		case 0:
			f.Status = 422 // says busy
		case 1:
			f.Status, f.Body = 422, `{"errors":["Network adapter type was not a valid choice"]}`
		case 2, 3:
			f.Status = []int{423, 429}[pick(2)]
			switch pick(5) {
			case 0:
				f.RetryAfter = time.Duration(1+pick(60)) * time.Second
			case 1:
				f.RetryAfterRaw = "-"
			case 2:
				f.RetryAfterRaw = "soon"
			case 3:
				f.RetryAfterRaw = "99999999"
			case 4:
				f.RetryAfterRaw = "0"
			}
		case 4:
			f.Status = []int{500, 502, 503}[pick(3)]
		case 5:
			f.Drop = sim.DropBeforeWrite
		case 6:
			f.Drop = sim.DropAfterWrite
		case 7:
			f.Delay = chaosRequestTimeout + time.Duration(pick(30))*time.Second
		case 8:
			f.Method, f.Stale = "GET", true
		case 9:
			f.Method, f.Status = "GET", 404
		case 10:
			f.Method, f.Status = "GET", []int{429, 503}[pick(2)]
			f.RetryAfter = time.Duration(pick(20)) * time.Second
		case 11:
			f.Status, f.Body = 409, `{"error":"The resource is busy"}`
		case 12:
			f.Method, f.Drop = "GET", sim.DropAfterWrite
		case 13:
			f.Method, f.Delay = "GET", chaosRequestTimeout+time.Second
		}
		s.faults = append(s.faults, f)
	}
	switch pick(6) {
	case 0:
		s.killAfterRecord = 1 + pick(40)
	case 1:
		s.killAfterChange = 1 + pick(6)
	}
	return s
}

// chaosRun is what one schedule did.
type chaosRun struct {
	err     error
	elapsed time.Duration // of the last run (a resume's own deadline counts from its start)
	total   time.Duration // since the first run began
	log     []sim.Entry
	lost    map[int]bool // answers a kill kept from the client, by sequence number
	// A killed run's requests are those up to split (a sequence number); its
	// resume knows of the Retry-After pauses it received only what its journal
	// holds (paused: the end of the longest).
	split      int
	paused     time.Time
	violations []string
}

func (c *chaosRun) violate(format string, args ...any) {
	c.violations = append(c.violations, fmt.Sprintf(format, args...))
}

// play runs the chaos runbook against a simulator playing the schedule, and
// checks the invariants. It must be called inside a synctest bubble.
func (s *schedule) play(t *testing.T) *chaosRun {
	srv := sim.New(s.cfg)
	srv.AddEnvironment(sim.EnvSpec{ID: "11", VMs: []sim.VMSpec{s.vms["1101"]}, Error: s.envErr["11"]})
	srv.AddEnvironment(sim.EnvSpec{ID: "12", VMs: []sim.VMSpec{s.vms["1201"], s.vms["1202"]}, Error: s.envErr["12"]})
	srv.AddEnvironment(sim.EnvSpec{ID: "13", VMs: []sim.VMSpec{s.vms["1301"]}, Error: s.envErr["13"]})
	srv.AddTemplate(sim.TemplateSpec{ID: "7", VMs: []sim.VMSpec{{ID: "70"}}})
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

	src := chaosRunbook
	if s.idempotent {
		src = strings.Replace(src, "IDEMPOTENT", "    retry: {idempotent: true}\n", 1)
	} else {
		src = strings.Replace(src, "IDEMPOTENT", "", 1)
	}
	res := &chaosRun{lost: map[int]bool{}}
	// Invariant 3, checked as each step (or item) reports done: the condition
	// held at the server on the read that let it move on.
	check := func(e runbook.Event) {
		if e.Type != runbook.StepDone {
			return
		}
		log := srv.Log()
		switch {
		case e.Step == 1:
			lastRead(res, log, "/v2/configurations/11/vms/1101", "stopped", e)
		case e.Step == 2:
			if id := createdEnv(log); id == "" {
				res.violate("step 2 done, but no environment was created")
			} else if rs, ok := srv.Runstate("env/" + id); !ok || rs == "busy" {
				res.violate("step 2 done while the created environment %s is %q", id, rs)
			}
		case e.Step == 3 && e.ItemNo > 0:
			lastRead(res, log, "/v2/configurations/12/vms/"+e.Item, "suspended", e)
		case e.Step == 4:
			lastRead(res, log, "/v2/configurations/13", "", e)
		}
	}
	if s.killAfterRecord > 0 || s.killAfterChange > 0 {
		s.playKilled(t, srv, src, check, res)
	} else {
		rb, err := runbook.Load("chaos.yaml", []byte(src), steps.Kinds(&http.Client{Transport: srv.Transport()}, nil))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		res.err = rb.Run(t.Context(), runbook.Options{Observer: runbook.ObserverFunc(check)})
		res.elapsed = time.Since(start)
		res.total = res.elapsed
	}
	res.log = srv.Log()
	s.checkLog(res)
	s.checkEnd(res, srv)
	wg.Wait()
	return res
}

// playKilled runs the chaos runbook until the schedule's kill, then resumes
// it; the invariants hold across the two runs.
func (s *schedule) playKilled(t *testing.T, srv *sim.Server, src string, check func(runbook.Event), res *chaosRun) {
	file := filepath.Join(t.TempDir(), "chaos.yaml")
	if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	observe := func(o *runbook.Options) { o.Observer = runbook.ObserverFunc(check) }
	rig := &crashRig{afterRecord: s.killAfterRecord, afterChange: s.killAfterChange}
	first := time.Now()
	start := first
	r := crashRunWith(t, srv, file, dir, "r01", rig, false, observe)
	res.lost[rig.lostAnswer] = true
	if rig.dead {
		if log := srv.Log(); len(log) > 0 {
			res.split = log[len(log)-1].Seq
		}
		store, _ := runbook.OpenStore(dir, true, file, false)
		last, _ := store.Last()
		for _, t := range last.Pauses(time.Time{}) {
			if t.After(res.paused) {
				res.paused = t
			}
		}
		start = time.Now()
		r = crashRunWith(t, srv, file, dir, "r02", &crashRig{}, true, observe)
		if runbook.ExitCode(r.err) == runbook.ExitUsage && strings.Contains(r.err.Error(), "nothing to resume") {
			// Killed after its last record: the run had finished.
			r.err = nil
		}
	}
	res.err, res.elapsed, res.total = r.err, time.Since(start), time.Since(first)
}

// lastRead checks the last read of path before an event: its truth at the server
// was want ("" for gone). A read of a VM's environment that lists it counts as
// a read of the VM.
func lastRead(res *chaosRun, log []sim.Entry, path, want string, e runbook.Event) {
	envPath, vm, isVM := strings.Cut(path, "/vms/")
	for i := len(log) - 1; i >= 0; i-- {
		r := log[i]
		if isVM && r.Method == "GET" && r.Path == envPath && r.Status == 200 {
			if truth, ok := r.Listed[vm]; ok {
				if truth != want {
					res.violate("step %d %s done after a read of %s listing %s, whose truth was %q, not %q", e.Step, e.Item, envPath, vm, truth, want)
				}
				return
			}
		}
		if r.Method != "GET" || r.Path != path || r.Status == 0 {
			continue
		}
		if want == "" {
			if r.Status != 404 {
				res.violate("step %d done after a read of %s that found it (%d %s), not gone", e.Step, path, r.Status, r.Runstate)
			}
		} else if r.Runstate != want || r.Status != 200 {
			res.violate("step %d %s done after a read of %s whose truth was %q (%d), not %q", e.Step, e.Item, path, r.Runstate, r.Status, want)
		}
		return
	}
	res.violate("step %d %s done without reading %s", e.Step, e.Item, path)
}

func createdEnv(log []sim.Entry) string {
	for _, e := range log {
		if e.Method == "POST" && e.Outcome == "accepted" {
			return e.Env
		}
	}
	return ""
}

// guardOf is the guard's check for a change, by path.
func guardOf(path string) string {
	switch {
	case strings.HasPrefix(path, "/v2/configurations/11"):
		return "/v2/configurations/11"
	case strings.HasPrefix(path, "/v2/configurations/12"):
		return "/v2/configurations/12"
	case path == "/v2/configurations/13":
		return "/v2/configurations/13"
	}
	return "/v2/templates/7" // a create's busyness is its template's
}

// checkLog checks invariants 1, 2 and 5 on what the server saw.
func (s *schedule) checkLog(res *chaosRun) {
	log := res.log
	for i, m := range log {
		if !m.Mutation {
			continue
		}
		// 1. Since the previous change of the same resource, a guard read that
		// showed it not busy (a 404 shows nothing busy).
		guard := guardOf(m.Path)
		read := -1
		for j := i - 1; j >= 0; j-- {
			if log[j].Mutation && log[j].Path == m.Path {
				break
			}
			if log[j].Method == "GET" && log[j].Path == guard && log[j].Status != 0 && (log[j].Status == 200 || log[j].Status == 404) {
				read = j
				break
			}
		}
		if read < 0 {
			res.violate("#%d %s %s sent without a guard read since the previous attempt", m.Seq, m.Method, m.Path)
		} else if r := log[read]; r.Status == 200 && (r.Shown == "busy" || strings.HasSuffix(r.Shown, "+rate_limited")) {
			res.violate("#%d %s %s sent after a guard read (#%d) that showed %q", m.Seq, m.Method, m.Path, r.Seq, r.Shown)
		}
	}
	// 2. Nothing reaches the host between a Retry-After answer and its time.
	for _, e := range log {
		// An answer lost to a dropped connection or a kill told the client nothing.
		if e.RetryAt.IsZero() || strings.Contains(e.Fault, "drop") || res.lost[e.Seq] {
			continue
		}
		for _, later := range log {
			if later.Time.After(e.Answered) && later.Time.Before(e.RetryAt) {
				if res.split > 0 && e.Seq <= res.split && later.Seq > res.split {
					// A concurrent item may get its answer just as the run is
					// killed, before it can journal the pause: the resume is held
					// to the pauses its journal holds.
					if later.Time.Before(res.paused) {
						res.violate("#%d %s %s at %s in the resume, before the journaled pause's end %s", later.Seq, later.Method, later.Path,
							later.Time.Format("15:04:05.000"), res.paused.Format("15:04:05.000"))
					}
					break
				}
				res.violate("#%d %s %s at %s, before the Retry-After of #%d (until %s)", later.Seq, later.Method, later.Path,
					later.Time.Format("15:04:05.000"), e.Seq, e.RetryAt.Format("15:04:05.000"))
				break
			}
		}
	}
	// 5. No POST after one that may have taken effect, unless idempotent.
	if !s.idempotent {
		ambiguous := false
		for _, e := range log {
			if e.Method != "POST" {
				continue
			}
			if ambiguous {
				res.violate("#%d POST sent again after an ambiguous failure", e.Seq)
				break
			}
			if e.Status >= 500 || strings.Contains(e.Fault, "drop after") || res.lost[e.Seq] || (strings.Contains(e.Fault, "delay") && e.Answered.Sub(e.Time) >= chaosRequestTimeout) {
				ambiguous = true
			}
		}
	}
}

// checkEnd checks invariant 4: the run ended by its deadline (plus one request
// timeout), with exit 0 only if every condition holds at the server, and
// otherwise a code the design gives and a message.
func (s *schedule) checkEnd(res *chaosRun, srv *sim.Server) {
	if res.elapsed > chaosRunTimeout+chaosRequestTimeout {
		res.violate("the run took %s, past its deadline of %s", res.elapsed, chaosRunTimeout)
	}
	code := runbook.ExitCode(res.err)
	// Another actor's busy window at the end hides the runstates; invariant 3
	// has checked each step's truth when it was done.
	for _, w := range s.busy {
		if res.total >= w.at && res.total < w.at+w.d && code == 0 {
			return
		}
	}
	switch code {
	case 0:
		if rs, _ := srv.Runstate("vm/1101"); rs != "stopped" {
			res.violate("exit 0 but VM 1101 is %q", rs)
		}
		for _, id := range []string{"1201", "1202"} {
			if rs, _ := srv.Runstate("vm/" + id); rs != "suspended" {
				res.violate("exit 0 but VM %s is %q", id, rs)
			}
		}
		if _, exists := srv.Runstate("env/13"); exists {
			res.violate("exit 0 but environment 13 still exists")
		}
		if createdEnv(res.log) == "" {
			res.violate("exit 0 but nothing was created")
		}
	case runbook.ExitFailed, runbook.ExitBusy, runbook.ExitDeadline:
		if res.err == nil || strings.TrimSpace(res.err.Error()) == "" {
			res.violate("exit %d without a message", code)
		}
		if code == runbook.ExitDeadline && res.elapsed < 40*time.Minute && !strings.Contains(res.err.Error(), "timeout") {
			res.violate("exit 124 after %s without a deadline: %v", res.elapsed, res.err)
		}
	default:
		res.violate("exit %d is not a code a run can end with here: %v", code, res.err)
	}
}

// TestChaos plays hundreds of fault schedules against the executor and checks
// what the server saw: no change to a busy resource, no request before a
// Retry-After, no step advanced before its condition held, every run ends by its
// deadline with the right code, no POST sent twice, nothing left running.
// Then it does the same for a runbook of the /async/ personality (see
// chaos_async_test.go): budgets, monitors, idempotency keys.
//
//	go test -run TestChaos ./runbook -chaos.seeds=5000   # more schedules
//	go test -run TestChaos ./runbook -chaos.async-seeds=3000
//	go test -run TestChaos ./runbook -chaos.seed=123     # replay one of each
func TestChaos(t *testing.T) {
	first, n := 0, *chaosSeeds
	if *chaosSeed >= 0 {
		first, n = *chaosSeed, 1
	}
	violations, codes := 0, map[int]int{}
	for seed := first; seed < first+n; seed++ {
		s := draw(uint64(seed))
		var res *chaosRun
		synctest.Test(t, func(t *testing.T) { res = s.play(t) })
		if res == nil {
			t.Fatalf("schedule %d did not finish\n%s", seed, s)
		}
		codes[runbook.ExitCode(res.err)]++
		if len(res.violations) > 0 {
			violations += len(res.violations)
			t.Errorf("schedule %d: %d violations:\n  %s\nrun error: %v\n%s", seed, len(res.violations), strings.Join(res.violations, "\n  "), res.err, s)
		}
	}
	t.Logf("chaos: %d schedules, %d violations (exit codes: %v)", n, violations, codes)

	// The /async/ runbook, under its own schedules.
	if *chaosSeed < 0 {
		n = *chaosAsyncSeeds
	}
	violations, codes = 0, map[int]int{}
	for seed := first; seed < first+n; seed++ {
		s := drawAsync(uint64(seed))
		var res *chaosRun
		synctest.Test(t, func(t *testing.T) { res = s.play(t) })
		if res == nil {
			t.Fatalf("async schedule %d did not finish\n%s", seed, s)
		}
		codes[runbook.ExitCode(res.err)]++
		if len(res.violations) > 0 {
			violations += len(res.violations)
			t.Errorf("async schedule %d: %d violations:\n  %s\nrun error: %v\n%s", seed, len(res.violations), strings.Join(res.violations, "\n  "), res.err, s)
		}
	}
	t.Logf("chaos async: %d schedules, %d violations (exit codes: %v)", n, violations, codes)
}
