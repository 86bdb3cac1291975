package runbook_test

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runbookhq/runbook/runbook"
	"github.com/runbookhq/runbook/sim"
	"github.com/runbookhq/runbook/steps"
)

var chaosAsyncSeeds = flag.Int("chaos.async-seeds", 300, "how many schedules TestChaos draws for the /async/ runbook")

// chaosAsyncRunbook works the simulator's /async/ personality: a paged list,
// keyed starts answered 202 and waited on through their monitors (two at a
// time), a keyed create, a read of what was created, and a search on the
// GitHub-style route, all under one client's budget.
const chaosAsyncRunbook = `version: 1
name: chaos-async
timeout: 2h
defaults:
  http:
    base_url: https://cloud.example.com/async
    headers: {Authorization: Bearer chaos}
    timeout: 30s
  timeout: 40m
steps:
  - id: envs
    name: Read every environment
    http: {url: /environments, query: {per_page: "4"}, paginate: link}
    outputs:
      idle: map(filter(response.body, .state != "running"), .id)[:3]
  - name: Start ${{ env_id }}
    for_each: steps.envs.outputs.idle
    as: env_id
    concurrency: 2
    http: {method: POST, url: "/environments/${{ env_id }}/start", idempotency_key: true}
    guard: {check: "GET /environments/${{ env_id }}", busy_when: state.operation != nil}
    ignore_warnings: [no-wait]
  - id: create
    name: Create one
    http: {method: POST, url: /environments, json: {name: chaos}, idempotency_key: true}
    guard: false
    wait_for: false
  - name: Read what was created
    http: GET /environments/${{ steps.create.response.body.id }}
  - name: Search
    http: {url: /search/environments, query: {q: "env-*"}}
`

// asyncSchedule is one seed's draw for the /async/ runbook.
type asyncSchedule struct {
	seed   uint64
	cfg    sim.Config
	faults []sim.Fault
	// A colleague with the same token spends part of the budget: n requests
	// at each moment, unseen by the run.
	others []colleague
}

type colleague struct {
	at time.Duration
	n  int
}

func (s *asyncSchedule) String() string {
	a := s.cfg.Async
	var b strings.Builder
	fmt.Fprintf(&b, "async seed %d: running share %g, budget %d per %s, queued %s, duration %s, Retry-After %s, fail share %g\n",
		s.seed, a.RunningShare, a.Limit, a.Window, a.Queued, a.Duration, a.RetryAfter, a.FailShare)
	for _, f := range s.faults {
		fmt.Fprintf(&b, "  fault %+v\n", f)
	}
	for _, o := range s.others {
		fmt.Fprintf(&b, "  a colleague sends %d requests at %s\n", o.n, o.at)
	}
	return b.String()
}

// drawAsync makes the /async/ schedule of one seed: budgets that run out
// within the run, monitors that fail, pages and reads that 429, POSTs whose
// answers are lost.
func drawAsync(seed uint64) *asyncSchedule {
	rng := rand.New(rand.NewPCG(seed, 0xa5f1c))
	pick := func(n int) int { return rng.IntN(n) }
	s := &asyncSchedule{seed: seed}
	s.cfg = sim.Config{
		Seed: seed,
		Rate: -1,
		Async: sim.AsyncAPI{
			Environments: 10,
			RunningShare: []float64{-1, 0.3, 0.6}[pick(3)],
			Limit:        []int{-1, 5, 8, 15, 40}[pick(5)],
			Window:       []time.Duration{10 * time.Second, 30 * time.Second, time.Minute}[pick(3)],
			Queued:       []time.Duration{-1, time.Second, 5 * time.Second}[pick(3)],
			Duration:     []time.Duration{-1, 5 * time.Second, 30 * time.Second, 2 * time.Minute}[pick(4)],
			RetryAfter:   []time.Duration{time.Second, 5 * time.Second, 15 * time.Second}[pick(3)],
			FailShare:    []float64{0, 0, 0.3, 1}[pick(4)],
		},
	}
	targets := []string{"*", "async/env/1", "async/env/2", "async/env/3", "async/env/4", "async/op/op-1", "async/op/op-2"}
	for range pick(6) {
		f := sim.Fault{Target: targets[pick(len(targets))], Times: 1 + pick(3)}
		switch pick(9) {
		case 0:
			f.Method, f.Drop = "POST", sim.DropAfterWrite // acted on, answer lost
		case 1:
			f.Method, f.Delay = "POST", chaosRequestTimeout+time.Duration(pick(20))*time.Second // acted on, timed out
		case 2:
			f.Method, f.Status = "POST", []int{500, 502, 503}[pick(3)]
		case 3:
			f.Method, f.Drop = "POST", sim.DropBeforeWrite
		case 4:
			f.Method, f.Status, f.RetryAfter = "GET", 429, time.Duration(1+pick(30))*time.Second
		case 5:
			f.Method, f.Status, f.RetryAfterRaw = "GET", 429, "-"
		case 6:
			f.Method, f.Status = "GET", 503
		case 7:
			f.Method, f.Drop = "GET", sim.DropAfterWrite
		case 8:
			f.Method, f.Delay = "GET", chaosRequestTimeout+time.Second
		}
		s.faults = append(s.faults, f)
	}
	if s.cfg.Async.Limit > 0 {
		for range pick(4) {
			s.others = append(s.others, colleague{at: time.Duration(rng.IntN(300)) * time.Second, n: 1 + pick(s.cfg.Async.Limit)})
		}
	}
	return s
}

// colleagueQuery marks a colleague's requests in the log: they are not the
// run's, and are held to nothing.
const colleagueQuery = "by=colleague"

// lostAnswer says whether an answer never reached the client: a dropped
// connection, or one delayed past the request's timeout (its Answered is then
// never moved on from its arrival).
func lostAnswer(e sim.Entry) bool {
	return strings.Contains(e.Fault, "drop") || strings.Contains(e.Fault, "delay") && !e.Answered.After(e.Time)
}

// play runs the /async/ runbook against a simulator playing the schedule, and
// checks its invariants. It must be called inside a synctest bubble.
func (s *asyncSchedule) play(t *testing.T) *chaosRun {
	srv := sim.New(s.cfg)
	for _, f := range s.faults {
		srv.Inject(f)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	client := &http.Client{Transport: srv.Transport()}
	for _, o := range s.others {
		wg.Go(func() {
			time.Sleep(o.at)
			for range o.n {
				req, _ := http.NewRequest("GET", "https://cloud.example.com/async/environments?"+colleagueQuery, nil)
				req.Header.Set("Authorization", "Bearer chaos")
				if resp, err := client.Do(req); err == nil {
					resp.Body.Close()
				}
			}
		})
	}
	res := &chaosRun{lost: map[int]bool{}}
	started := map[string]bool{}
	// A step (or item) is done only once what it waits on said so, at the
	// server, on an answer the client received.
	check := func(e runbook.Event) {
		if e.Type != runbook.StepDone {
			return
		}
		log := srv.Log()
		switch {
		case e.Step == 2 && e.ItemNo > 0:
			started[e.Item] = true
			monitorSucceeded(res, log, e.Item)
		case e.Step == 3:
			if n := countOutcome(log, "POST", "/async/environments", "created"); n != 1 {
				res.violate("step 3 done with %d environments created, not 1", n)
			}
		}
	}
	rb, err := runbook.Load("chaos-async.yaml", []byte(chaosAsyncRunbook), steps.Kinds(&http.Client{Transport: srv.Transport()}, nil))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res.err = rb.Run(t.Context(), runbook.Options{Observer: runbook.ObserverFunc(check)})
	res.elapsed = time.Since(start)
	res.total = res.elapsed
	res.log = srv.Log()
	s.checkLog(res)
	s.checkEnd(res, srv, started)
	return res
}

// monitorSucceeded checks that a started environment's item is done only
// after its monitor's Succeeded was received, when its start was accepted
// (a start of an environment already running names no monitor).
func monitorSucceeded(res *chaosRun, log []sim.Entry, id string) {
	if countOutcome(log, "POST", "/async/environments/"+id+"/start", "accepted") == 0 {
		return
	}
	for i := len(log) - 1; i >= 0; i-- {
		m := log[i]
		if m.Method != "GET" || !strings.HasPrefix(m.Path, "/async/operations/") || m.Env != id || m.Status == 0 {
			continue
		}
		if m.Status != 200 || m.Shown != "Succeeded" || lostAnswer(m) {
			res.violate("step 2 %s done after its monitor's last read #%d answered %d %q (lost: %v), not Succeeded", id, m.Seq, m.Status, m.Shown, lostAnswer(m))
		}
		return
	}
	res.violate("step 2 %s done without reading its monitor", id)
}

func countOutcome(log []sim.Entry, method, path, outcome string) int {
	n := 0
	for _, e := range log {
		if e.Method == method && e.Path == path && e.Outcome == outcome {
			n++
		}
	}
	return n
}

// checkLog checks the /async/ manners on what the server saw.
func (s *asyncSchedule) checkLog(res *chaosRun) {
	log := res.log
	// 6. Nothing is sent while the server's announced budget is zero: once
	// the client has received an answer that said none is left (a request
	// that spent the last one, or a refusal), no request arrives with
	// nothing left until the window resets. A request already under way at
	// the same instant could not have heard it.
	var window time.Time
	var heard time.Time // when the client received this window's zero; zero: not yet
	for _, e := range log {
		if e.Remaining == nil {
			continue // never reached the budget (dropped before it was written)
		}
		if window.IsZero() || !e.Time.Before(window.Add(s.cfg.Async.Window)) {
			window, heard = e.Time, time.Time{}
		}
		if e.BudgetZero && !heard.IsZero() && e.Time.After(heard) && e.Query != colleagueQuery {
			res.violate("#%d %s %s arrived with the budget spent, after the client was told so at %s", e.Seq, e.Method, e.Path, heard.Format("15:04:05.000"))
		}
		if *e.Remaining <= 1 && e.Status != 0 && !lostAnswer(e) && e.Query != colleagueQuery && (heard.IsZero() || e.Answered.Before(heard)) {
			heard = e.Answered
		}
	}
	// 7. A keyed change is never re-sent without its key: every POST of a
	// path carries a key, the same one each time.
	keys := map[string]string{}
	for _, e := range log {
		if e.Method != "POST" {
			continue
		}
		k, seen := keys[e.Path]
		switch {
		case e.IdempotencyKey == "":
			res.violate("#%d POST %s sent without its Idempotency-Key", e.Seq, e.Path)
		case seen && k != e.IdempotencyKey:
			res.violate("#%d POST %s sent again with another Idempotency-Key (%q, first %q)", e.Seq, e.Path, e.IdempotencyKey, k)
		case !seen:
			keys[e.Path] = e.IdempotencyKey
		}
	}
	// 8. No monitor read before the Retry-After of the last answer about its
	// operation (the 202 or the monitor's previous answer), unless that
	// answer was lost.
	for i, e := range log {
		if !e.EarlyMonitor {
			continue
		}
		excused := false
		for j := i - 1; j >= 0; j-- {
			p := log[j]
			if p.Env != e.Env || p.Status != 200 && p.Status != 202 {
				continue
			}
			if p.Path == e.Path && p.Outcome == "read" || p.Method == "POST" && p.Outcome == "accepted" {
				excused = lostAnswer(p)
				break
			}
		}
		if !excused {
			res.violate("#%d GET %s read at %s, before the Retry-After of the last answer about it", e.Seq, e.Path, e.Time.Format("15:04:05.000"))
		}
	}
	// 9. Nothing reaches the host before a received 429's Retry-After (the
	// budget's, which the simulator flags EarlyRetry, or an injected one).
	for _, e := range log {
		if e.Status != http.StatusTooManyRequests || e.RetryAt.IsZero() || lostAnswer(e) || e.Query == colleagueQuery {
			continue
		}
		for _, later := range log {
			if later.Time.After(e.Answered) && later.Time.Before(e.RetryAt) && later.Query != colleagueQuery {
				flag := ""
				if later.EarlyRetry {
					flag = " (EarlyRetry)"
				}
				res.violate("#%d %s %s at %s, before the Retry-After of #%d's 429 (until %s)%s", later.Seq, later.Method, later.Path,
					later.Time.Format("15:04:05.000"), e.Seq, e.RetryAt.Format("15:04:05.000"), flag)
				break
			}
		}
	}
}

// checkEnd checks how the run ended: by its deadline, with exit 0 only if
// every started environment runs and one was created, and otherwise a code a
// run can end with and a message.
func (s *asyncSchedule) checkEnd(res *chaosRun, srv *sim.Server, started map[string]bool) {
	if res.elapsed > chaosRunTimeout+chaosRequestTimeout {
		res.violate("the run took %s, past its deadline of %s", res.elapsed, chaosRunTimeout)
	}
	switch code := runbook.ExitCode(res.err); code {
	case 0:
		for id := range started {
			if st, _ := srv.AsyncState(id); st != "running" {
				res.violate("exit 0 but environment %s is %q", id, st)
			}
		}
		if n := countOutcome(res.log, "POST", "/async/environments", "created"); n != 1 {
			res.violate("exit 0 with %d environments created, not 1", n)
		}
		for _, e := range res.log {
			if e.Shown == "Failed" && !lostAnswer(e) {
				res.violate("exit 0 though #%d %s answered Failed", e.Seq, e.Path)
			}
		}
	case runbook.ExitFailed, runbook.ExitBusy, runbook.ExitDeadline:
		if res.err == nil || strings.TrimSpace(res.err.Error()) == "" {
			res.violate("exit %d without a message", code)
		}
	default:
		res.violate("exit %d is not a code a run can end with here: %v", code, res.err)
	}
	// However it ended, each environment was made to start at most once.
	for _, e := range res.log {
		if e.Method == "POST" && strings.HasSuffix(e.Path, "/start") && e.Outcome == "accepted" &&
			countOutcome(res.log, "POST", e.Path, "accepted") > 1 {
			res.violate("%s accepted more than once", e.Path)
			break
		}
	}
}
