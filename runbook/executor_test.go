package runbook_test

import (
	"context"
	"errors"
	"fmt"
	"io"
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

// The executor's rules, each driven against the simulator through its in-memory
// transport under synctest: real 10 s intervals and Retry-After values, no real
// waiting. Every test asserts on what the server saw.

const header = `version: 1
name: test
defaults:
  http:
    base_url: https://cloud.example.com/v2
    basic_auth: {username: "${{ env.USER }}", password: "${{ env.TOKEN }}"}
`

// quietSim is a simulator without rate limits, jitter or queueing, with one
// environment "1" holding running VMs 101 and 102, unless vms says otherwise.
func quietSim(t *testing.T, tune func(*sim.Config), vms ...sim.VMSpec) *sim.Server {
	t.Helper()
	cfg := sim.Config{Seed: 1, Rate: -1, Jitter: -1, MaxConcurrentOps: -1}
	if tune != nil {
		tune(&cfg)
	}
	srv := sim.New(cfg)
	if len(vms) == 0 {
		vms = []sim.VMSpec{{ID: "101"}, {ID: "102"}}
	}
	srv.AddEnvironment(sim.EnvSpec{ID: "1", VMs: vms})
	return srv
}

// result is what a run did: its error, its events, what the server saw.
type result struct {
	err    error
	events []runbook.Event
	log    []sim.Entry
	start  time.Time
	end    time.Time
}

func (r result) code() int { return runbook.ExitCode(r.err) }

// mutations are the changes the server received.
func (r result) mutations() []sim.Entry {
	var out []sim.Entry
	for _, e := range r.log {
		if e.Mutation {
			out = append(out, e)
		}
	}
	return out
}

// at is the time of e relative to the start of the run.
func (r result) at(e sim.Entry) time.Duration { return e.Time.Sub(r.start) }

// execute loads src (appended to the standard header) and runs it against srv.
// It must be called inside a synctest bubble.
func execute(t *testing.T, srv *sim.Server, src string, opts ...func(*runbook.Options)) result {
	t.Helper()
	return executeCtx(t.Context(), t, srv, src, opts...)
}

// executeCtx is execute under ctx, for a run that a test stops.
func executeCtx(ctx context.Context, t *testing.T, srv *sim.Server, src string, opts ...func(*runbook.Options)) result {
	t.Helper()
	client := &http.Client{Transport: srv.Transport()}
	rb, err := runbook.Load("test.yaml", []byte(header+src), steps.Kinds(client, nil))
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	var mu sync.Mutex
	res := result{start: time.Now()}
	opt := runbook.Options{
		Env: map[string]string{"USER": "u", "TOKEN": "secret-token"},
		Observer: runbook.ObserverFunc(func(e runbook.Event) {
			mu.Lock()
			defer mu.Unlock()
			res.events = append(res.events, e)
		}),
	}
	for _, o := range opts {
		o(&opt)
	}
	res.err = rb.Run(ctx, opt)
	res.end = time.Now()
	res.log = srv.Log()
	return res
}

// assertManners checks the rules every run must keep, whatever happened: no change
// sent while its resource was busy, no request before a Retry-After had passed.
func assertManners(t *testing.T, r result) {
	t.Helper()
	for _, e := range r.mutations() {
		if e.Busy && e.Fault == "" {
			t.Errorf("change %s %s sent at %s while the resource was busy", e.Method, e.Path, r.at(e))
		}
	}
	for _, e := range r.log {
		if e.RetryAt.IsZero() {
			continue
		}
		// The client learns of the Retry-After when the answer is sent, which a
		// slow answer delays: requests sent before that are not in breach.
		for _, later := range r.log {
			if later.Time.After(e.Answered) && later.Time.Before(e.RetryAt) {
				t.Errorf("%s %s at %s came before the Retry-After of #%d (%s)", later.Method, later.Path, r.at(later), e.Seq, e.RetryAt.Sub(r.start))
			}
		}
	}
}

func sameBodies(t *testing.T, es []sim.Entry) {
	t.Helper()
	for _, e := range es[1:] {
		if e.Body != es[0].Body {
			t.Errorf("re-sent body %q differs from the first %q", e.Body, es[0].Body)
		}
	}
}

func wantCode(t *testing.T, r result, code int, contains ...string) {
	t.Helper()
	if got := r.code(); got != code {
		t.Fatalf("exit code %d, want %d (err: %v)", got, code, r.err)
	}
	for _, s := range contains {
		if r.err == nil || !strings.Contains(r.err.Error(), s) {
			t.Errorf("error %v does not say %q", r.err, s)
		}
	}
}

const stopVM = `steps:
  - name: Stop VM 101
    http:
      method: PUT
      url: /configurations/1/vms/101
      json: {runstate: stopped}
    guard:
      check: GET /configurations/1
    wait_for: state.runstate == "stopped"
`

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

func TestAcceptedChangeIsNotSentTwice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		r := execute(t, srv, stopVM)
		wantCode(t, r, 0)
		muts := r.mutations()
		if len(muts) != 1 || muts[0].Outcome != "accepted" {
			t.Fatalf("changes %+v, want one accepted PUT", muts)
		}
		// 200 said busy, so the step polled until the VM showed stopped (40 s).
		last := r.log[len(r.log)-1]
		if last.Method != "GET" || last.Runstate != "stopped" {
			t.Errorf("last request %s %s saw %q, want the GET that saw stopped", last.Method, last.Path, last.Runstate)
		}
		if got := r.end.Sub(r.start); got != 40*time.Second {
			t.Errorf("step took %s, want 40s (done at the first read showing stopped)", got)
		}
	})
}

func TestDroppedChangeIsSentAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, func(c *sim.Config) { c.Busy = sim.BusyWeights{Dropped200: 1} })
		srv.MakeBusy("vm/101", 25*time.Second)
		// No guard: the change reaches the busy VM and is silently dropped (200).
		r := execute(t, srv, strings.Replace(stopVM, "    guard:\n      check: GET /configurations/1\n", "    guard: false\n", 1))
		wantCode(t, r, 0)
		muts := r.mutations()
		if len(muts) != 2 {
			t.Fatalf("%d changes sent, want 2 (the dropped one, then again)", len(muts))
		}
		if muts[0].Outcome != "dropped-busy" || muts[1].Outcome != "accepted" {
			t.Errorf("outcomes %q, %q; want dropped-busy, accepted", muts[0].Outcome, muts[1].Outcome)
		}
		if muts[1].Busy {
			t.Errorf("the second change was sent while busy")
		}
		sameBodies(t, muts)
		if got, _ := srv.Runstate("vm/101"); got != "stopped" {
			t.Errorf("VM is %s, want stopped", got)
		}
	})
}

func TestRetryAfterIsHonoured(t *testing.T) {
	for _, date := range []bool{false, true} {
		name := "seconds"
		if date {
			name = "http-date"
		}
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := quietSim(t, func(c *sim.Config) { c.RetryAfterDate = date })
				srv.Inject(sim.Fault{Target: "vm/101", Status: 423, RetryAfter: 30 * time.Second})
				r := execute(t, srv, stopVM)
				wantCode(t, r, 0)
				assertManners(t, r)
				muts := r.mutations()
				if len(muts) != 2 || muts[0].Status != 423 {
					t.Fatalf("changes %+v, want a 423 then a retry", muts)
				}
				if gap := muts[1].Time.Sub(muts[0].Time); gap < 30*time.Second {
					t.Errorf("re-sent %s after the 423, before its Retry-After of 30s", gap)
				}
				sameBodies(t, muts)
				var saw bool
				for _, e := range r.events {
					if e.Type == runbook.Waiting && strings.Contains(e.Reason, "423 Retry-After 30s") && e.Delay == 30*time.Second {
						saw = true
					}
				}
				if !saw {
					t.Errorf("no waiting event said \"423 Retry-After 30s\" with a 30s delay")
				}
			})
		})
	}
}

func TestRetryAfterBeyondLimitsFailsAtOnce(t *testing.T) {
	cases := []struct {
		name, extra, says string
		retryAfter        time.Duration
	}{
		{"max_retry_after", "    retry: {max_retry_after: 15m}\n", "exceeds max_retry_after 15m", 20 * time.Minute},
		{"deadline", "    timeout: 5m\n", "would pass the deadline", 10 * time.Minute},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := quietSim(t, nil)
				srv.Inject(sim.Fault{Target: "vm/101", Status: 423, RetryAfter: c.retryAfter})
				r := execute(t, srv, stopVM+c.extra)
				wantCode(t, r, runbook.ExitBusy, c.says)
				if n := len(r.mutations()); n != 1 {
					t.Errorf("%d changes sent, want 1", n)
				}
				if got := r.end.Sub(r.start); got != 0 {
					t.Errorf("gave up after %s, want at once", got)
				}
			})
		})
	}
}

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

func TestBusy422WaitsAndSendsAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, func(c *sim.Config) { c.Busy = sim.BusyWeights{Status422: 1} })
		srv.MakeBusy("vm/101", 25*time.Second)
		r := execute(t, srv, strings.Replace(stopVM, "    guard:\n      check: GET /configurations/1\n", "    guard: false\n", 1))
		wantCode(t, r, 0)
		muts := r.mutations()
		if len(muts) != 2 || muts[0].Status != 422 || muts[1].Outcome != "accepted" {
			t.Fatalf("changes %+v, want a busy 422, then an accepted re-send", muts)
		}
		if muts[1].Busy || r.at(muts[1]) < 25*time.Second {
			t.Errorf("re-sent at %s (busy %v), want after the busy window of 25s", r.at(muts[1]), muts[1].Busy)
		}
		sameBodies(t, muts)
	})
}

func TestValidation422FailsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil, sim.VMSpec{ID: "101", Runstate: "stopped"})
		r := execute(t, srv, strings.Replace(stopVM, "runstate: stopped}", "runstate: suspended}", 1))
		wantCode(t, r, runbook.ExitFailed, "422", "not busy")
		if n := len(r.mutations()); n != 1 {
			t.Errorf("%d changes sent, want 1 (a validation error is never retried)", n)
		}
		if !strings.Contains(strings.ToLower(r.err.Error()), "suspend") {
			t.Errorf("error %v does not show the server's message", r.err)
		}
	})
}

func TestConflictWithoutBusyFailsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		srv.Inject(sim.Fault{Target: "vm/101", Status: 409, Body: `{"error":"Category already exists."}`})
		r := execute(t, srv, stopVM)
		wantCode(t, r, runbook.ExitFailed, "409", "Category already exists")
		if n := len(r.mutations()); n != 1 {
			t.Errorf("%d changes sent, want 1", n)
		}
	})
}

func TestServerErrorIsRetriedAfterTheInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		srv.Inject(sim.Fault{Target: "vm/101", Status: 502})
		srv.Inject(sim.Fault{Target: "vm/101", Drop: sim.DropBeforeWrite})
		r := execute(t, srv, stopVM)
		wantCode(t, r, 0)
		var puts []sim.Entry
		for _, e := range r.mutations() {
			if e.Status != 0 {
				puts = append(puts, e)
			}
		}
		if len(puts) != 2 || puts[0].Status != 502 {
			t.Fatalf("changes %+v, want a 502, then a dropped connection (not seen), then an accepted one", r.mutations())
		}
		if gap := puts[1].Time.Sub(puts[0].Time); gap < 20*time.Second {
			t.Errorf("accepted change came %s after the 502; want two retry intervals (10s each)", gap)
		}
		sameBodies(t, puts)
	})
}

const createEnv = `steps:
  - name: Create an environment
    http:
      method: POST
      url: /configurations
      json: {template_id: "7"}
`

func TestAmbiguousPOSTIsNotSentTwice(t *testing.T) {
	cases := []struct {
		name  string
		extra string
		fault sim.Fault
		code  int
		posts int
	}{
		{"502 fails", "", sim.Fault{Target: "*", Status: 502}, runbook.ExitFailed, 1},
		{"reset fails", "", sim.Fault{Target: "*", Drop: sim.DropAfterWrite}, runbook.ExitFailed, 1},
		{"idempotent re-sends", "    retry: {idempotent: true}\n", sim.Fault{Target: "*", Status: 502}, 0, 2},
		{"condition holds", "    wait_for:\n      check: GET /configurations\n      until: response.status == 200\n",
			sim.Fault{Target: "*", Drop: sim.DropAfterWrite}, 0, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := quietSim(t, nil)
				srv.AddTemplate(sim.TemplateSpec{ID: "7", VMs: []sim.VMSpec{{ID: "70"}}})
				srv.Inject(c.fault)
				r := execute(t, srv, createEnv+c.extra)
				wantCode(t, r, c.code)
				if c.code != 0 && !strings.Contains(r.err.Error(), "not idempotent") {
					t.Errorf("error %v does not explain why it was not re-sent", r.err)
				}
				if n := len(r.mutations()); n != c.posts {
					t.Errorf("%d POSTs, want %d", n, c.posts)
				}
			})
		})
	}
}

func TestUnauthorizedIsNeverRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, func(c *sim.Config) { c.Credentials = map[string]string{"u": "right"} })
		r := execute(t, srv, stopVM)
		wantCode(t, r, runbook.ExitFailed, "401", "credentials")
		if len(r.log) != 1 {
			t.Errorf("%d requests, want 1: a 401 is never retried", len(r.log))
		}
		if strings.Contains(r.err.Error(), "secret-token") {
			t.Errorf("the error shows the password: %v", r.err)
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
			if e.Type == runbook.StepDone && e.Step == 1 && e.ItemIndex < 0 {
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

func TestRunTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		srv.MakeBusy("env/1", time.Hour)
		r := execute(t, srv, stopVM, func(o *runbook.Options) { o.Timeout = 90 * time.Second })
		wantCode(t, r, runbook.ExitDeadline, "run timeout 1m30s", "runstate=busy")
		if len(r.mutations()) != 0 {
			t.Errorf("a change was sent to a busy resource")
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

func TestMissingEnvStopsBeforeAnythingIsSent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		r := execute(t, srv, stopVM, func(o *runbook.Options) { delete(o.Env, "TOKEN") })
		wantCode(t, r, runbook.ExitConfig, "TOKEN")
		if len(r.log) != 0 {
			t.Errorf("%d requests sent before failing", len(r.log))
		}
	})
}

func TestRetryBudgetWhileBusyIsExit75(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		srv.Inject(sim.Fault{Target: "vm/101", Status: 423, RetryAfter: 10 * time.Second, Times: -1})
		r := execute(t, srv, stopVM+"    retry: {max_attempts: 3}\n")
		wantCode(t, r, runbook.ExitBusy, "3 attempts", "423")
		if n := len(r.mutations()); n != 3 {
			t.Errorf("%d changes, want 3", n)
		}
		assertManners(t, r)
	})
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

// closeCounter counts response bodies closed, to prove the client drains and
// closes every one (connections are reused, nothing leaks).
type closeCounter struct {
	next           http.RoundTripper
	mu             sync.Mutex
	opened, closed int
}

func (c *closeCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.opened++
	c.mu.Unlock()
	resp.Body = &countedBody{ReadCloser: resp.Body, c: c}
	return resp, nil
}

type countedBody struct {
	io.ReadCloser
	c    *closeCounter
	once sync.Once
}

func (b *countedBody) Close() error {
	b.once.Do(func() {
		b.c.mu.Lock()
		b.c.closed++
		b.c.mu.Unlock()
	})
	return b.ReadCloser.Close()
}

func TestResponseBodiesAreClosed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		srv.Inject(sim.Fault{Target: "vm/101", Status: 423, RetryAfter: 5 * time.Second})
		counter := &closeCounter{next: srv.Transport()}
		client := &http.Client{Transport: counter}
		rb, err := runbook.Load("t.yaml", []byte(header+stopVM), steps.Kinds(client, nil))
		if err != nil {
			t.Fatal(err)
		}
		if err := rb.Run(t.Context(), runbook.Options{Env: map[string]string{"USER": "u", "TOKEN": "t"}}); err != nil {
			t.Fatal(err)
		}
		if counter.opened == 0 || counter.opened != counter.closed {
			t.Errorf("%d responses, %d closed", counter.opened, counter.closed)
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

func TestBusyAnswersAreNeverResentAtOnce(t *testing.T) {
	cases := []struct {
		name  string
		fault sim.Fault
	}{
		{"422 busy while the check reads idle", sim.Fault{Target: "vm/101", Status: 422, Times: -1}},
		{"429 Retry-After 0", sim.Fault{Target: "vm/101", Status: 429, RetryAfterRaw: "0", Times: -1}},
		{"423 Retry-After in the past", sim.Fault{Target: "vm/101", Status: 423, RetryAfterRaw: "Thu, 01 Jan 1970 00:00:00 GMT", Times: -1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := quietSim(t, nil)
				srv.Inject(c.fault)
				r := execute(t, srv, stopVM+"    retry: {max_attempts: 4}\n")
				wantCode(t, r, runbook.ExitBusy, "4 attempts")
				muts := r.mutations()
				if len(muts) != 4 {
					t.Fatalf("%d changes, want 4", len(muts))
				}
				for i := 1; i < len(muts); i++ {
					if gap := muts[i].Time.Sub(muts[i-1].Time); gap < 10*time.Second {
						t.Errorf("change %d sent %s after the previous one, want at least the 10s retry interval", i+1, gap)
					}
				}
			})
		})
	}
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
			if e.Type == runbook.StepFailed && e.ItemIndex < 0 && (e.Total != 6 || e.Done != 2 || e.Stopped != 2) {
				t.Errorf("the step's failed event counts %d done and %d stopped of %d, want 2, 2 of 6", e.Done, e.Stopped, e.Total)
			}
			if e.Type == runbook.StepFailed && e.ItemIndex >= 0 {
				if e.Phase != "stopped" {
					t.Errorf("item %d told as failed: %+v", e.ItemIndex, e)
				}
				stopped++
			}
			if e.Failed != 0 {
				t.Errorf("an event counts %d failed items: %+v", e.Failed, e)
			}
		}
		last := r.events[len(r.events)-1]
		if stopped != 2 || last.Type != runbook.RunDone || last.Phase != "stopped" {
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
				if e.Type == runbook.StepDone && e.ItemIndex == 1 {
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
			done = done || (e.Type == runbook.StepDone && e.Step == 1 && e.ItemIndex < 0)
		}
		if !done {
			t.Error("step 1 was not told done")
		}
	})
}

// An empty value in a URL (an unset --var, a null item) fails the step before
// anything is sent: DELETE /configurations/ is another resource than the one meant.
func TestEmptyValueInAURLSendsNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		r := execute(t, srv, `vars: {env_id: "1"}
steps:
  - name: Delete
    http: DELETE /configurations/${{ vars.env_id }}
`, func(o *runbook.Options) { o.Vars = map[string]string{"env_id": " "} })
		wantCode(t, r, runbook.ExitFailed, "${{ vars.env_id }} in the URL is empty, so the request would go to another resource")
		if len(r.log) != 0 {
			t.Errorf("%d requests sent, want none: %+v", len(r.log), r.log)
		}
		r = execute(t, srv, `steps:
  - name: Each
    for_each: '["101", nil, "", {"id": ""}, ["x"]]'
    continue_on_error: true
    http: GET /configurations/1/vms/${{ item?.id ?? item }}
`)
		var msgs []string
		for _, e := range r.events {
			if e.Type == runbook.StepFailed && e.ItemIndex < 0 {
				msgs = append(msgs, e.Err)
			}
		}
		empty := "${{ item?.id ?? item }} in the URL is empty, so the request would go to another resource; give it a value"
		want := `4 of 5 items failed: null: ` + empty + `; "": ` + empty + `; "": ` + empty + `; ["x"]: ${{ item?.id ?? item }} in the URL is a list of 1; a URL takes text, a number or true/false`
		if len(msgs) != 1 || msgs[0] != want {
			t.Errorf("step failures %q, want %q", msgs, want)
		}
		if n := len(srv.Log()); n != 1 {
			t.Errorf("%d requests sent, want only item 101's", n)
		}
		// Numbers (a JSON number is a float) and true/false are fine in a URL.
		r = execute(t, srv, "steps:\n  - http: GET /configurations/${{ 2.0 / 2 }}?keep=${{ 1 < 2 }}\n")
		wantCode(t, r, 0)
		if last := r.log[len(r.log)-1]; last.Path != "/v2/configurations/1" || last.Query != "keep=true" {
			t.Errorf("sent %s?%s, want /v2/configurations/1?keep=true", last.Path, last.Query)
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

// A sleep cut short by a deadline says which, not "context deadline exceeded".
func TestSleepCutShortSaysWhy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := execute(t, quietSim(t, nil), `steps:
  - sleep: 10m
    timeout: 1m
`)
		wantCode(t, r, runbook.ExitDeadline, "step timeout 1m passed")
		attempts := 0
		for _, e := range r.events {
			if e.Type == runbook.Attempt {
				attempts++
				if e.Reason != "cut short: step timeout 1m passed" {
					t.Errorf("the sleep's attempt says %q", e.Reason)
				}
			}
		}
		if attempts != 1 {
			t.Errorf("%d attempt events, want 1", attempts)
		}
	})
}

func TestElapsedAndAttemptAreSet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		r := execute(t, srv, `steps:
  - sleep: 30s
  - assert: attempt == 1 && elapsed >= duration("0s")
    message: attempt ${{ attempt }} elapsed ${{ elapsed }}
`)
		wantCode(t, r, 0)
	})
}

func TestRetryWhenNeverOverridesTheHardRules(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, func(c *sim.Config) { c.Credentials = map[string]string{"u": "right"} })
		r := execute(t, srv, `steps:
  - http: GET /configurations/1
    retry: {when: response.status >= 400, max_attempts: 5}
`)
		wantCode(t, r, runbook.ExitFailed, "401")
		if len(r.log) != 1 {
			t.Errorf("%d requests after a 401, want 1", len(r.log))
		}
	})
}

func TestRetryWhenRetriesWhatWouldFail(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		srv.Inject(sim.Fault{Target: "env/1", Method: "GET", Status: 400, Times: 2})
		r := execute(t, srv, `steps:
  - http: GET /configurations/1
    retry: {when: response.status == 400}
`)
		wantCode(t, r, 0)
		if len(r.log) != 3 || r.at(r.log[2]) != 20*time.Second {
			t.Errorf("%d requests, the last at %s; want 3, 10s apart", len(r.log), r.at(r.log[len(r.log)-1]))
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

func TestSecretEchoedByTheServerIsRedacted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		srv.Inject(sim.Fault{Target: "vm/101", Status: 400, Body: `{"error":"bad token secret-token for user u"}`})
		var events []string
		r := execute(t, srv, stopVM, func(o *runbook.Options) {
			o.Observer = runbook.ObserverFunc(func(e runbook.Event) { events = append(events, e.Reason+e.Err+e.Target+e.State) })
		})
		wantCode(t, r, runbook.ExitFailed, "bad token *** for user u")
		for _, e := range append(events, r.err.Error()) {
			if strings.Contains(e, "secret-token") {
				t.Errorf("the password shows: %s", e)
			}
		}
	})
}

// TestPathologicalExpressionsAreBounded: an expression that would build a huge
// value fails the step with expr's memory budget instead of exhausting memory.
func TestPathologicalExpressionsAreBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		r := execute(t, srv, "steps:\n  - assert: 'len(map(1..100000000, # * 2)) > 0'\n")
		wantCode(t, r, runbook.ExitFailed, "memory budget")
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

func TestTokenFromAnEarlierStepIsRedacted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		srv.Inject(sim.Fault{Target: "env/1", Method: "GET", Status: 200, Body: `{"token":"tok-SuperSecret-123"}`})
		var seen []string
		src := `steps:
  - id: login
    http: GET /configurations/1
    outputs: {token: response.body.token}
  - http:
      url: /configurations/1
      headers: {X-Auth-Token: "${{ steps.login.outputs.token }}"}
  - log: "token ${{ steps.login.outputs.token }}"
`
		r := execute(t, srv, src, func(o *runbook.Options) {
			o.Observer = runbook.ObserverFunc(func(e runbook.Event) { seen = append(seen, e.Reason+e.State+e.Target+e.Err) })
		})
		wantCode(t, r, 0)
		for _, s := range seen {
			if strings.Contains(s, "SuperSecret") {
				t.Errorf("the token shows: %s", s)
			}
		}
	})
}

func TestMissingProgramFailsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		r := execute(t, srv, "steps:\n  - exec: [no-such-program-here, version]\n")
		wantCode(t, r, runbook.ExitFailed, "cannot run no-such-program-here")
		if got := r.end.Sub(r.start); got != 0 {
			t.Errorf("retried for %s; a program that cannot start never will", got)
		}
	})
}

// createThenUse creates an environment from a template, waits for the new
// one (its check reads the answer's id), and uses its id in the next step.
const createThenUse = `steps:
  - id: create
    name: Create from the template
    http: {method: POST, url: /configurations, json: {template_id: "7", name: made}}
GUARD    wait_for:
      check: GET /configurations/${{ response.body.id }}
      until: state.runstate != "busy"
    outputs: {id: response.body.id}
  - name: Run it
    http: {method: PUT, url: "/configurations/${{ steps.create.outputs.id }}", json: {runstate: running}}
    wait_for: state.runstate == "running"
`

func TestCreateThenUse(t *testing.T) {
	for name, guard := range map[string]string{
		"default guard (none)":  "",
		"guard false":           "    guard: false\n",
		"guard on the template": "    guard: {check: GET /templates/7, busy_when: state.busy == true}\n",
	} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := quietSim(t, nil)
				srv.AddTemplate(sim.TemplateSpec{ID: "7", VMs: []sim.VMSpec{{ID: "70"}}})
				srv.MakeBusy("template/7", 25*time.Second)
				r := execute(t, srv, strings.Replace(createThenUse, "GUARD", guard, 1))
				wantCode(t, r, 0)
				first := r.mutations()[0]
				if strings.Contains(guard, "templates") {
					// The guard waited for the template: nothing was sent while it was busy.
					assertManners(t, r)
				} else if first.Outcome != "busy-423" {
					// Nothing to read first: the template's busy answer is what held it back.
					t.Errorf("the first POST got %s, want the template's busy 423", first.Outcome)
				}
				id := createdEnv(r.log)
				if id == "" || postCount(r.log) != 1 {
					t.Fatalf("%d environments created, want 1", postCount(r.log))
				}
				for _, e := range r.log {
					if e.Method == "GET" && e.Path == "/v2/configurations" {
						t.Errorf("the collection was read (%s %s): a create's wait reads what it made", e.Method, e.Path)
					}
				}
				if got, _ := srv.Runstate("env/" + id); got != "running" {
					t.Errorf("the created environment %s is %s, want running", id, got)
				}
			})
		})
	}
}

// TestCreateIsResumedFromItsAnswer: killed while waiting for what it created,
// a run resumes from the journaled answer: the same id, one environment.
func TestCreateIsResumedFromItsAnswer(t *testing.T) {
	file := writeRunbook(t, strings.Replace(createThenUse, "GUARD", "", 1))
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		srv.AddTemplate(sim.TemplateSpec{ID: "7", VMs: []sim.VMSpec{{ID: "70"}}})
		dir := t.TempDir()
		// run_started, step_started, intent, answer: killed with the answer journaled.
		crashRun(t, srv, file, dir, "r01", &crashRig{afterRecord: 4}, false)
		r := crashRun(t, srv, file, dir, "r02", &crashRig{}, true)
		wantCode(t, r, 0)
		log := srv.Log()
		id := createdEnv(log)
		if postCount(log) != 1 || id == "" {
			t.Fatalf("%d environments created, want 1", postCount(log))
		}
		if got, _ := srv.Runstate("env/" + id); got != "running" {
			t.Errorf("the created environment %s is %s, want running", id, got)
		}
	})
}

// TestAcceptedChangeIsNotSentAgain: what fails after a change was accepted (a
// busy_when written for the template, an output) never sends it again.
func TestAcceptedChangeIsNotSentAgain(t *testing.T) {
	for name, c := range map[string]struct{ src, want string }{
		"busy_when of the template on the created environment": {
			src: `steps:
  - id: create
    http: {method: POST, url: /configurations, json: {template_id: "7"}}
    guard: {check: GET /templates/7, busy_when: state.busy == true}
    wait_for: false
`},
		"an output that fails": {
			src: `steps:
  - id: create
    http: {method: POST, url: /configurations, json: {template_id: "7"}}
    wait_for: false
    outputs: {id: response.body.identifier}
  - log: made ${{ steps.create.outputs.id }}
`,
			want: `output id: `},
	} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := quietSim(t, nil)
				srv.AddTemplate(sim.TemplateSpec{ID: "7", VMs: []sim.VMSpec{{ID: "70"}}})
				r := execute(t, srv, c.src)
				if c.want == "" {
					wantCode(t, r, 0)
				} else {
					wantCode(t, r, runbook.ExitFailed, c.want, "after the change was accepted, 200 OK: it is not sent again", "steps.create.response")
				}
				if n := postCount(r.log); n != 1 {
					t.Errorf("%d POSTs, want 1", n)
				}
			})
		})
	}
}

// TestLastStateSaysWhose: a failure's last state names the read it came from
// when that is not the resource the step changes.
func TestLastStateSaysWhose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		r := execute(t, srv, `steps:
  - http: {method: PUT, url: /configurations/1/vms/101, json: {runstate: suspended}}
    wait_for: {check: GET /configurations/1, until: state.runstate == "stopped"}
    timeout: 2m
`)
		wantCode(t, r, runbook.ExitDeadline, "last state: runstate=", "(GET https://cloud.example.com/v2/configurations/1)")
	})
}
