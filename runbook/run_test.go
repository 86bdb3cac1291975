package runbook_test

import (
	"context"
	"io"
	"net/http"
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
	return executeVia(ctx, t, srv.Transport(), srv, src, opts...)
}

// executeVia is executeCtx through rt, which stands between the run and srv.
func executeVia(ctx context.Context, t *testing.T, rt http.RoundTripper, srv *sim.Server, src string, opts ...func(*runbook.Options)) result {
	t.Helper()
	client := &http.Client{Transport: rt}
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

// A run its caller cancels, with no signal, says so and claims no signal's
// exit code; it is told as stopped, not failed, as a signal's stop is.
func TestCancelIsNotASignal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(25*time.Second, cancel)
		r := executeCtx(ctx, t, srv, `steps:
  - name: Each
    for_each: '[1, 2, 3]'
    http: GET /configurations/1
    wait_for: {until: 'index < 1', timeout: 1h}
`)
		wantCode(t, r, runbook.ExitFailed, "stopped: the run was cancelled: 1 of 3 items done, 1 stopped in flight, 1 not started")
		if strings.Contains(r.err.Error(), "SIGINT") {
			t.Errorf("error %q claims a signal", r.err)
		}
		last := r.events[len(r.events)-1]
		if last.Type != runbook.RunDone || !last.Interrupted {
			t.Errorf("last event %+v, want run_done told as stopped", last)
		}
	})
}
