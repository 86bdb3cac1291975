package runbook_test

import (
	"fmt"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/runbookhq/runbook/runbook"
	"github.com/runbookhq/runbook/sim"
	"github.com/runbookhq/runbook/steps"
)

// asyncFleet is a fleet of operations on the simulator's /async/ personality:
// ops environments started, concurrency at a time, each a POST answered
// 202 with a monitor, against a budget of asyncLimit requests per asyncWindow
// that only the answers' headers announce (the runbook sets no rate).
type asyncFleet struct {
	ops, concurrency int
}

const (
	asyncLimit  = 600
	asyncWindow = time.Minute
	// An operation is NotStarted for asyncQueued, then Running for asyncRun
	// (no jitter, so every operation needs the same reads); the 202 and every
	// unfinished monitor read ask to come back after asyncRetryAfter, which is
	// also the wait's default interval, so the run polls on that schedule.
	asyncQueued     = 2 * time.Second
	asyncRun        = 27 * time.Second
	asyncRetryAfter = 10 * time.Second
)

// asyncReads is how many monitor reads an operation needs when each comes as
// soon as the last answer's Retry-After allows: reads at 10s, 20s and 30s
// after the POST, the last the first at or after its end (29s). The end is
// 9s after the second read and 1s before the third, so a read held back by
// pacing (or by the wait's 10% spread) mostly needs no more and no fewer;
// one held back past the end makes one read fewer, which req/op shows.
func asyncReads() int {
	end := asyncQueued + asyncRun
	return int((end + asyncRetryAfter - 1) / asyncRetryAfter)
}

// lowerBound is the time the budget allows at best: every operation needs its
// change and asyncReads monitor reads, and the budget lets through asyncLimit
// requests per asyncWindow; the operations run in parallel (the API sets no
// limit on them), so the budget is the only bound: 1000 operations × (1 + 3)
// requests / 600 a minute = 400s. It leaves out the 29s the last operation
// takes after its POST, and a fixed window would let a client spend its
// last window's budget at once; the pacer spreads it instead.
func (f asyncFleet) lowerBound() time.Duration {
	requests := f.ops * (1 + asyncReads())
	return time.Duration(float64(requests) / asyncLimit * float64(asyncWindow))
}

func (f asyncFleet) source() string {
	return fmt.Sprintf(`version: 1
name: Async fleet
defaults:
  http:
    base_url: https://cloud.example.com/async
    basic_auth: {username: u, password: p}
vars:
  ids: ${{ map(1..%d, string(#)) }}
steps:
  - name: Start every environment
    for_each: vars.ids
    as: id
    concurrency: %d
    timeout: 3h
    http: POST /environments/${{ id }}/start
    guard: false   # the bound counts the change and its monitor: no guard read
`, f.ops, f.concurrency)
}

type asyncFleetResult struct {
	virtual, bound time.Duration
	requests       int
	throttled      int // answered 429
	early          int // monitor reads before their Retry-After, or requests before a 429's
	notRunning     int
	err            error
}

// run carries the fleet out inside a synctest bubble (call it from one).
func (f asyncFleet) run(t testing.TB) asyncFleetResult {
	srv := sim.New(sim.Config{Seed: 7, Rate: -1, Jitter: -1, Async: sim.AsyncAPI{
		Environments: f.ops, RunningShare: -1, // all stopped or suspended: each start is an operation
		Limit: asyncLimit, Window: asyncWindow,
		Queued: asyncQueued, Duration: asyncRun, RetryAfter: asyncRetryAfter,
	}})
	client := &http.Client{Transport: srv.Transport()}
	rb, err := runbook.Load("async-fleet.yaml", []byte(f.source()), steps.Kinds(client, nil))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res := asyncFleetResult{bound: f.lowerBound()}
	res.err = rb.Run(t.Context(), runbook.Options{})
	res.virtual = time.Since(start)
	for _, e := range srv.Log() {
		res.requests++
		if e.Status == http.StatusTooManyRequests {
			res.throttled++
		}
		if e.EarlyMonitor || e.EarlyRetry {
			res.early++
		}
	}
	res.notRunning = f.ops - srv.AsyncCount("running")
	return res
}

// BenchmarkAsyncFleet starts 1000 environments of the /async/ personality,
// 100 at a time (more than the budget serves: 100 operations polled on their
// schedule would ask for about 13 requests/s), against a budget of 600 requests a minute that the run
// learns only from the answers' RateLimit and X-RateLimit headers, in virtual
// time, and reports how close to the budget's bound it got.
//
//	go test -run '^$' -bench AsyncFleet -benchtime 1x ./runbook
func BenchmarkAsyncFleet(b *testing.B) {
	f := asyncFleet{ops: 1000, concurrency: 100}
	var res asyncFleetResult
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	runs := 0
	for b.Loop() {
		inBubble(b, func(t *testing.T) { res = f.run(t); runs++ })
	}
	wall := time.Since(start)
	runtime.ReadMemStats(&after)
	if res.err != nil {
		b.Fatalf("fleet failed: %v", res.err)
	}
	n := float64(f.ops * runs)
	b.ReportMetric(res.virtual.Seconds(), "virtual-s")
	b.ReportMetric(res.bound.Seconds(), "bound-s")
	b.ReportMetric(res.virtual.Seconds()/res.bound.Seconds(), "ratio")
	b.ReportMetric(float64(res.requests)/float64(f.ops), "req/op")
	// The share of what the budget allowed over the run that it used.
	b.ReportMetric(100*float64(res.requests)/(res.virtual.Seconds()*asyncLimit/asyncWindow.Seconds()), "%budget")
	b.ReportMetric(100*float64(res.throttled)/float64(res.requests), "%429")
	b.ReportMetric(float64(res.early), "early")
	b.ReportMetric(float64(res.notRunning), "not-running")
	b.ReportMetric(float64(wall.Nanoseconds())/n, "ns/env")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/n, "allocs/env")
}
