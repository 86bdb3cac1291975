package sim_test

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/runbookhq/runbook/sim"
)

// asyncConfig is the second personality with no budget and exact times;
// tests turn on what they exercise.
func asyncConfig() sim.Config {
	c := testConfig()
	c.Async = sim.AsyncAPI{Environments: 10, RunningShare: 1, Limit: -1, Queued: 2 * time.Second, Duration: 20 * time.Second, RetryAfter: 5 * time.Second}
	return c
}

// asyncDo sends one request to the /async/ personality with Basic
// credentials and the given headers.
func asyncDo(t *testing.T, s *sim.Server, method, path, body string, header ...string) result {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, "http://sim.test"+path, rd)
	req.SetBasicAuth("alice", "secret")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := s.Transport().RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return newResult(resp, b)
}

func wantStatus(t *testing.T, r result, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.raw)
	}
}

// An action is 202 with a monitor that goes NotStarted, Running, Succeeded,
// asking for Retry-After while not done; the environment shows the change
// only once it has succeeded, and refuses another action meanwhile.
func TestAsyncOperationMonitor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sim.New(asyncConfig())
		r := asyncDo(t, s, "POST", "/async/environments/3/suspend", "")
		wantStatus(t, r, 202)
		mon := r.header.Get("Operation-Location")
		if !strings.HasPrefix(mon, "/async/operations/") || r.header.Get("Retry-After") != "5" || r.str("status") != "NotStarted" {
			t.Fatalf("202: Operation-Location %q, Retry-After %q, body %s", mon, r.header.Get("Retry-After"), r.raw)
		}
		env := asyncDo(t, s, "GET", "/async/environments/3", "")
		if env.str("state") != "suspending" || env.str("operation") == "" {
			t.Errorf("environment during the operation: %s", env.raw)
		}
		wantStatus(t, asyncDo(t, s, "POST", "/async/environments/3/start", ""), 409)

		var seen []string
		for range 10 {
			time.Sleep(5 * time.Second)
			m := asyncDo(t, s, "GET", mon, "")
			wantStatus(t, m, 200)
			seen = append(seen, m.str("status"))
			if m.str("status") == "Succeeded" {
				if m.header.Get("Retry-After") != "" {
					t.Errorf("a finished monitor still says Retry-After %q", m.header.Get("Retry-After"))
				}
				break
			}
			if m.header.Get("Retry-After") != "5" {
				t.Errorf("an unfinished monitor (%s) says Retry-After %q, want 5", m.str("status"), m.header.Get("Retry-After"))
			}
		}
		if got := strings.Join(seen, " "); got != "Running Running Running Running Succeeded" {
			t.Errorf("monitor statuses %q", got)
		}
		if st, _ := s.AsyncState("3"); st != "suspended" {
			t.Errorf("state after success %q, want suspended", st)
		}
		for _, e := range s.Log() {
			if e.EarlyMonitor {
				t.Errorf("a read after each Retry-After was logged early: %+v", e)
			}
		}

		// A monitor read before its Retry-After is logged as early.
		r = asyncDo(t, s, "POST", "/async/environments/4/suspend", "")
		asyncDo(t, s, "GET", r.header.Get("Operation-Location"), "")
		if e := lastEntry(t, s); !e.EarlyMonitor || e.Env != "4" {
			t.Errorf("a monitor read at once: %+v, want early_monitor", e)
		}
	})
}

// A failed operation says why in error {code, message} and leaves the
// environment as it was.
func TestAsyncOperationFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := asyncConfig()
		cfg.Async.FailShare = 1
		s := sim.New(cfg)
		r := asyncDo(t, s, "POST", "/async/environments/1/suspend", "")
		time.Sleep(30 * time.Second)
		m := asyncDo(t, s, "GET", r.header.Get("Operation-Location"), "")
		errObj, _ := m.obj["error"].(map[string]any)
		if m.str("status") != "Failed" || errObj["code"] != "OperationFailed" || errObj["message"] == "" {
			t.Fatalf("failed monitor: %s", m.raw)
		}
		if st, _ := s.AsyncState("1"); st != "running" {
			t.Errorf("state after a failure %q, want running", st)
		}
	})
}

// The share of failures follows FailShare, from the seed.
func TestAsyncFailShareIsSeeded(t *testing.T) {
	failed := func() int {
		n := 0
		synctest.Test(t, func(t *testing.T) {
			cfg := asyncConfig()
			cfg.Async.Environments, cfg.Async.FailShare = 200, 0.25
			s := sim.New(cfg)
			for i := 1; i <= 200; i++ {
				asyncDo(t, s, "POST", "/async/environments/"+strconv.Itoa(i)+"/suspend", "")
			}
			time.Sleep(time.Minute)
			n = s.AsyncCount("running")
		})
		return n
	}
	a, b := failed(), failed()
	if a != b || a < 30 || a > 70 {
		t.Errorf("%d then %d of 200 failed with FailShare 0.25; want the same number, near 50", a, b)
	}
}

// Every answer says what is left of the client's budget; past it a 429 says
// to come back at the reset, and the window then starts over.
func TestAsyncBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := asyncConfig()
		cfg.Async.Limit, cfg.Async.Window = 3, 60*time.Second
		s := sim.New(cfg)
		start := time.Now()
		for i, want := range []string{`"default";r=2;t=60`, `"default";r=1;t=50`, `"default";r=0;t=40`} {
			r := asyncDo(t, s, "GET", "/async/environments/1", "")
			wantStatus(t, r, 200)
			if got := r.header.Get("RateLimit"); got != want {
				t.Errorf("request %d: RateLimit %q, want %q", i+1, got, want)
			}
			if got := r.header.Get("RateLimit-Policy"); got != `"default";q=3;w=60` {
				t.Errorf("RateLimit-Policy %q", got)
			}
			reset := strconv.FormatInt(start.Add(60*time.Second).Unix(), 10)
			if r.header.Get("X-RateLimit-Limit") != "3" || r.header.Get("X-RateLimit-Remaining") != strconv.Itoa(2-i) || r.header.Get("X-RateLimit-Reset") != reset {
				t.Errorf("request %d: X-RateLimit-* %v, want reset %s", i+1, r.header, reset)
			}
			if e := lastEntry(t, s); e.Remaining == nil || *e.Remaining != int64(3-i) || e.BudgetZero {
				t.Errorf("request %d logged %+v", i+1, e)
			}
			time.Sleep(10 * time.Second)
		}
		r := asyncDo(t, s, "GET", "/async/environments/1", "")
		wantStatus(t, r, 429)
		if r.header.Get("Retry-After") != "30" || r.header.Get("RateLimit") != `"default";r=0;t=30` {
			t.Errorf("429: Retry-After %q, RateLimit %q", r.header.Get("Retry-After"), r.header.Get("RateLimit"))
		}
		if e := lastEntry(t, s); !e.BudgetZero || e.EarlyRetry || e.Outcome != "rate-limited" {
			t.Errorf("429 logged %+v", e)
		}
		time.Sleep(10 * time.Second)
		wantStatus(t, asyncDo(t, s, "GET", "/async/environments/1", ""), 429)
		if e := lastEntry(t, s); !e.EarlyRetry {
			t.Errorf("a request before the 429's Retry-After: %+v, want early_retry", e)
		}
		time.Sleep(20 * time.Second)
		r = asyncDo(t, s, "GET", "/async/environments/1", "")
		wantStatus(t, r, 200)
		if e := lastEntry(t, s); e.EarlyRetry || e.BudgetZero || *e.Remaining != 3 {
			t.Errorf("after the reset: %+v", e)
		}

		// Budgets are per client.
		req, _ := http.NewRequest("GET", "http://sim.test/async/environments/1", nil)
		req.Header.Set("Authorization", "Bearer other")
		resp, err := s.Transport().RoundTrip(req)
		if err != nil || resp.StatusCode != 200 || resp.Header.Get("X-RateLimit-Remaining") != "2" {
			t.Errorf("another client: %v %v", resp, err)
		}
	})
}

// The search route is GitHub's kind: past the budget a 403 with
// X-RateLimit-Remaining: 0 and the reset as a Unix time, and no Retry-After.
func TestAsyncGitHubStyle403(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := asyncConfig()
		cfg.Async.Limit = 1
		s := sim.New(cfg)
		r := asyncDo(t, s, "GET", "/async/search/environments?q=env-1*", "")
		wantStatus(t, r, 200)
		if len(r.list) != 2 || r.header.Get("RateLimit") != "" || r.header.Get("X-RateLimit-Remaining") != "0" {
			t.Errorf("search: %d items, headers %v", len(r.list), r.header)
		}
		r = asyncDo(t, s, "GET", "/async/search/environments?q=env-1", "")
		wantStatus(t, r, 403)
		reset := strconv.FormatInt(time.Now().Add(time.Minute).Unix(), 10)
		if r.header.Get("Retry-After") != "" || r.header.Get("X-RateLimit-Remaining") != "0" || r.header.Get("X-RateLimit-Reset") != reset {
			t.Errorf("403 headers %v, want remaining 0, reset %s and no Retry-After", r.header, reset)
		}
		if e := lastEntry(t, s); !e.BudgetZero || e.Outcome != "rate-limited" {
			t.Errorf("403 logged %+v", e)
		}
	})
}

// A list is paged with Link rel="next", each page counted against the budget.
func TestAsyncPages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := asyncConfig()
		cfg.Async.Environments, cfg.Async.Limit = 250, 100
		s := sim.New(cfg)
		next, ids := "/async/environments?per_page=100", map[string]bool{}
		var sizes []int
		for next != "" {
			r := asyncDo(t, s, "GET", next, "")
			wantStatus(t, r, 200)
			sizes = append(sizes, len(r.list))
			for _, item := range r.list {
				ids[item.(map[string]any)["id"].(string)] = true
			}
			next = ""
			if link := r.header.Get("Link"); link != "" {
				u, rel, _ := strings.Cut(link, ">; ")
				if rel != `rel="next"` {
					t.Fatalf("Link %q", link)
				}
				next = strings.TrimPrefix(u, "<")
			}
		}
		if len(sizes) != 3 || sizes[0] != 100 || sizes[2] != 50 || len(ids) != 250 {
			t.Errorf("pages of %v, %d distinct ids; want 100, 100, 50 and 250", sizes, len(ids))
		}
		if e := lastEntry(t, s); *e.Remaining != 98 || e.Query != "page=3&per_page=100" {
			t.Errorf("last page logged %+v", e)
		}
		// per_page is capped, and a page past the end is empty.
		if r := asyncDo(t, s, "GET", "/async/environments?per_page=1000", ""); len(r.list) != 100 {
			t.Errorf("per_page=1000 gave %d", len(r.list))
		}
		if r := asyncDo(t, s, "GET", "/async/environments?page=99999999999999999", ""); r.status != 200 || len(r.list) != 0 || r.header.Get("Link") != "" {
			t.Errorf("a page past the end: %d %s %v", r.status, r.raw, r.header)
		}
	})
}

// A POST with an Idempotency-Key acts once: the same key gets the first
// answer again; without a key, each POST creates.
func TestAsyncIdempotencyKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sim.New(asyncConfig())
		first := asyncDo(t, s, "POST", "/async/environments", `{"name":"web"}`, "Idempotency-Key", "k1")
		wantStatus(t, first, 201)
		again := asyncDo(t, s, "POST", "/async/environments", `{"name":"web"}`, "Idempotency-Key", "k1")
		if again.status != 201 || again.raw != first.raw || again.header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("the same key again: %d %s %v", again.status, again.raw, again.header)
		}
		if n := s.AsyncCount(""); n != 11 {
			t.Errorf("%d environments after one create sent twice with a key, want 11", n)
		}
		if e := lastEntry(t, s); e.IdempotencyKey != "k1" || e.Outcome != "replayed" {
			t.Errorf("replay logged %+v", e)
		}
		wantStatus(t, asyncDo(t, s, "POST", "/async/environments", `{"name":"db"}`, "Idempotency-Key", "k1"), 422)

		asyncDo(t, s, "POST", "/async/environments", `{"name":"web"}`)
		asyncDo(t, s, "POST", "/async/environments", `{"name":"web"}`)
		if n := s.AsyncCount(""); n != 13 {
			t.Errorf("%d environments after two creates without a key, want 13", n)
		}

		// An action's key: the same operation, not a 409 for a second one.
		a := asyncDo(t, s, "POST", "/async/environments/2/stop", "", "Idempotency-Key", "k2")
		b := asyncDo(t, s, "POST", "/async/environments/2/stop", "", "Idempotency-Key", "k2")
		if a.status != 202 || b.status != 202 || a.header.Get("Operation-Location") != b.header.Get("Operation-Location") {
			t.Errorf("an action sent twice with one key: %d %v, %d %v", a.status, a.header, b.status, b.header)
		}
	})
}

// Without credentials, 401; a bearer token is a client; unknown paths 404;
// faults reach the personality's targets.
func TestAsyncRoutes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sim.New(asyncConfig())
		req, _ := http.NewRequest("GET", "http://sim.test/async/environments/1", nil)
		resp, _ := s.Transport().RoundTrip(req)
		if resp.StatusCode != 401 {
			t.Errorf("no credentials: %d", resp.StatusCode)
		}
		for path, status := range map[string]int{
			"/async/environments/1": 200, "/async/environments/999": 404, "/async/nothing": 404,
			"/async/operations/op-9": 404, "/async/environments/1%2F..": 404,
		} {
			if r := asyncDo(t, s, "GET", path, ""); r.status != status {
				t.Errorf("GET %s: %d, want %d", path, r.status, status)
			}
		}
		wantStatus(t, asyncDo(t, s, "DELETE", "/async/environments/1", ""), 405)
		wantStatus(t, asyncDo(t, s, "POST", "/async/environments/1/explode", ""), 404)
		s.Inject(sim.Fault{Target: "async/env/1", Method: "GET", Status: 503})
		wantStatus(t, asyncDo(t, s, "GET", "/async/environments/1", ""), 503)
		wantStatus(t, asyncDo(t, s, "GET", "/async/environments/1", ""), 200)
		// Skytap's routes are untouched.
		if r := asyncDo(t, s, "GET", "/configurations", ""); r.status != 200 {
			t.Errorf("GET /configurations: %d", r.status)
		}
	})
}

// The same seed makes the same world.
func TestAsyncSeeded(t *testing.T) {
	states := func(seed uint64) string {
		cfg := sim.Config{Seed: seed}
		s := sim.New(cfg)
		var b strings.Builder
		for i := 1; i <= 250; i++ {
			st, _ := s.AsyncState(strconv.Itoa(i))
			b.WriteString(st[:2])
		}
		return b.String()
	}
	a, b, c := states(7), states(7), states(8)
	if a != b || a == c {
		t.Errorf("seed 7 twice differ (%v) or seed 8 is the same (%v)", a != b, a == c)
	}
	if n := strings.Count(a, "ru"); n < 120 || n > 180 {
		t.Errorf("%d of 250 running, want about 60%%", n)
	}
}

// The demo's scripted 423 and 422 are Skytap's answers: they stay on its
// routes, and /async/ answers for itself.
func TestAsyncDemoScriptStaysOnSkytap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg, _ := sim.Scenario("demo")
		cfg.Clock = nil
		s := sim.New(cfg)
		if r := asyncDo(t, s, "POST", "/async/environments/1/start", ""); r.status != 202 && r.status != 200 {
			t.Errorf("an /async/ action in the demo: %d %s", r.status, r.raw)
		}
		wantStatus(t, asyncDo(t, s, "PUT", "/configurations/1", `{"runstate":"suspended"}`), 423)
	})
}
