package sim_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/runbookhq/runbook/sim"
)

// traced sends a request with an httptrace hook and reports whether the
// transport said the request was written.
func traced(t *testing.T, hc *http.Client, method, url, body string) (resp *http.Response, wrote bool, err error) {
	t.Helper()
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) { wrote = true },
	})
	req, _ := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	req.SetBasicAuth("alice", "secret")
	resp, err = hc.Do(req)
	if resp != nil {
		resp.Body.Close()
	}
	return resp, wrote, err
}

func TestDropBeforeWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sim.New(testConfig())
		s.AddEnvironment(oneEnv())
		s.Inject(sim.Fault{Target: "vm/102", Drop: sim.DropBeforeWrite})
		hc := &http.Client{Transport: s.Transport()}

		_, wrote, err := traced(t, hc, http.MethodPut, "http://sim.test/vms/102", `{"runstate":"running"}`)
		if err == nil || !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("err = %v, want a connection reset", err)
		}
		if wrote {
			t.Error("WroteRequest fired for a request dropped before it was written")
		}
		wantRunstate(t, s, "vm/102", "stopped") // never reached the state machine
		if e := lastEntry(t, s); e.Outcome != "dropped" || e.Status != 0 || e.Fault == "" || e.Target != "vm/102" {
			t.Errorf("log entry %+v: want a dropped request with its fault", e)
		}

		// The fault is used up: the retry goes through and is written, and the
		// response is a complete one.
		req, _ := http.NewRequest(http.MethodGet, "http://sim.test/vms/102", nil)
		req.SetBasicAuth("alice", "secret")
		resp, err := s.Transport().RoundTrip(req)
		if err != nil || resp.Request != req || resp.Body == nil || resp.ContentLength <= 0 {
			t.Fatalf("RoundTrip: %+v, %v", resp, err)
		}
		resp.Body.Close()
		resp, wrote, err = traced(t, hc, http.MethodPut, "http://sim.test/vms/102", `{"runstate":"running"}`)
		if err != nil || resp.StatusCode != 200 || !wrote {
			t.Fatalf("retry: %v, %v, wrote=%v", resp, err, wrote)
		}
		wantRunstate(t, s, "vm/102", "busy")
	})
}

func TestDropAfterWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sim.New(testConfig())
		s.AddEnvironment(oneEnv())
		s.Inject(sim.Fault{Target: "vm/102", Drop: sim.DropAfterWrite})
		hc := &http.Client{Transport: s.Transport()}

		_, wrote, err := traced(t, hc, http.MethodPut, "http://sim.test/vms/102", `{"runstate":"running"}`)
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("err = %v, want a connection reset", err)
		}
		if !wrote {
			t.Error("WroteRequest did not fire, but the request was written")
		}
		wantRunstate(t, s, "vm/102", "busy") // the change took effect
		if e := lastEntry(t, s); e.Outcome != "accepted" || e.Fault != "drop after write" {
			t.Errorf("log entry %+v", e)
		}
		time.Sleep(35 * time.Second)
		wantRunstate(t, s, "vm/102", "running")
	})
}

// A slow response honours the client's timeout, returns the context's error
// and leaves nothing running (synctest.Test fails if a goroutine is left).
func TestDelayWithClientTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sim.New(testConfig())
		s.AddEnvironment(oneEnv())
		s.Inject(sim.Fault{Target: "env/1", Method: "GET", Delay: time.Minute})
		hc := &http.Client{Transport: s.Transport(), Timeout: 5 * time.Second}
		start := time.Now()
		req, _ := http.NewRequest(http.MethodGet, "http://sim.test/configurations/1", nil)
		req.SetBasicAuth("alice", "secret")
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			t.Fatal("a one-minute response beat a 5s client timeout")
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("err = %v, want a timeout", err)
		}
		if d := time.Since(start); d != 5*time.Second {
			t.Errorf("gave up after %v, want 5s", d)
		}
		if e := lastEntry(t, s); e.Fault != "delay 1m0s" {
			t.Errorf("log entry %+v", e)
		}

		// Without a timeout the answer comes, late.
		s.Inject(sim.Fault{Target: "env/1", Method: "GET", Delay: time.Minute})
		c := newClient(t, s)
		start = time.Now()
		c.want(c.get("/configurations/1"), 200, "running")
		if d := time.Since(start); d != time.Minute {
			t.Errorf("answered after %v, want 1m", d)
		}
	})
}

func TestStatusFaults(t *testing.T) {
	tests := []struct {
		name       string
		cfg        func(*sim.Config)
		fault      sim.Fault
		method     string
		status     int
		body       string
		retryAfter string
	}{
		{"500 on GET", nil, sim.Fault{Target: "env/1", Method: "GET", Status: 500}, "GET", 500, `{"error":"internal server error"}`, ""},
		{"502 any method", nil, sim.Fault{Target: "*", Method: "ANY", Status: 502, Body: "<html>bad gateway</html>"}, "GET", 502, "<html>bad gateway</html>", ""},
		{"423 default Retry-After", nil, sim.Fault{Target: "env/1", Status: 423}, "PUT", 423, `{"error":"Resource is busy"}`, "10"},
		{"423 own Retry-After", nil, sim.Fault{Target: "env/1", Status: 423, RetryAfter: 2 * time.Second}, "PUT", 423, "", "2"},
		{"423 garbage Retry-After", nil, sim.Fault{Target: "env/1", Status: 423, RetryAfterRaw: "soon"}, "PUT", 423, "", "soon"},
		{"423 no Retry-After", nil, sim.Fault{Target: "env/1", Status: 423, RetryAfterRaw: "-"}, "PUT", 423, "", ""},
		{"429 as a date", func(c *sim.Config) { c.RetryAfterDate = true }, sim.Fault{Target: "env/1", Method: "GET", Status: 429}, "GET", 429, `{"error":"Too many requests"}`, "Sat, 01 Jan 2000 00:00:05 GMT"},
		{"422 busy", nil, sim.Fault{Target: "env/1", Status: 422}, "PUT", 422, `{"errors":["The machine was busy. Try again later."]}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := testConfig()
				if tt.cfg != nil {
					tt.cfg(&cfg)
				}
				s := sim.New(cfg)
				s.AddEnvironment(oneEnv())
				s.Inject(tt.fault)
				c := newClient(t, s)
				r := c.do(tt.method, "/configurations/1", `{"runstate":"halted"}`)
				c.want(r, tt.status, "")
				if tt.body != "" && r.raw != tt.body {
					t.Errorf("body %s, want %s", r.raw, tt.body)
				}
				if got := r.header.Get("Retry-After"); got != tt.retryAfter {
					t.Errorf("Retry-After %q, want %q", got, tt.retryAfter)
				}
				if e := lastEntry(t, s); e.Outcome != "fault" || e.Status != tt.status {
					t.Errorf("log entry %+v", e)
				}
				wantRunstate(t, s, "env/1", "running") // a status fault replaces the state machine
				// Used up: the same request now goes through.
				if r := c.do(tt.method, "/configurations/1", `{"runstate":"halted"}`); r.status != 200 {
					t.Errorf("second request: %d %s", r.status, r.raw)
				}
			})
		})
	}
}

// A fault with Method "" applies to mutations only, Times counts matching
// requests, and other targets are left alone.
func TestFaultMatching(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sim.New(testConfig())
		s.AddEnvironment(oneEnv())
		s.Inject(sim.Fault{Target: "vm/101", Status: 500, Times: 2})
		c := newClient(t, s)
		c.want(c.get("/vms/101"), 200, "running")
		c.want(c.put("/vms/102", `{"name":"x"}`), 200, "")
		c.want(c.put("/vms/101", `{"name":"x"}`), 500, "")
		c.want(c.do(http.MethodDelete, "/v2/configurations/1/vms/101", ""), 500, "")
		c.want(c.put("/vms/101", `{"name":"y"}`), 200, "")
	})
}

func TestStaleFault(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sim.New(testConfig())
		s.AddEnvironment(oneEnv())
		c := newClient(t, s)
		c.want(c.put("/configurations/1", `{"runstate":"suspended","multiselect":["101"]}`), 200, "busy")
		time.Sleep(20 * time.Second)
		s.Inject(sim.Fault{Target: "env/1", Method: "GET", Stale: true})
		c.want(c.get("/configurations/1"), 200, "running") // as before the change
		if e := lastEntry(t, s); e.Outcome != "stale" || e.Runstate != "suspended" {
			t.Errorf("log entry %+v", e)
		}
		c.want(c.get("/configurations/1"), 200, "suspended")
	})
}

// The demo script applies to the first matching requests across the server.
func TestDemoScript(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg, err := sim.Scenario("demo")
		if err != nil {
			t.Fatal(err)
		}
		cfg.Clock = nil // the bubble's clock
		cfg.Jitter = -1
		s := sim.New(cfg)
		c := newClient(t, s)

		c.want(c.get("/v2/configurations/1234"), 200, "busy") // a colleague's operation
		time.Sleep(15 * time.Second)
		c.want(c.get("/v2/configurations/1234"), 200, "running")
		r := c.put("/configurations/1234", `{"runstate":"suspended"}`)
		c.want(r, 423, "")
		if r.header.Get("Retry-After") != "5" {
			t.Errorf("Retry-After %q, want 5", r.header.Get("Retry-After"))
		}
		c.want(c.get("/configurations/1234"), 200, "running") // reads are not scripted
		r = c.put("/configurations/1234", `{"runstate":"suspended"}`)
		c.want(r, 422, "")
		if !strings.Contains(r.raw, "busy") {
			t.Errorf("second scripted answer %s should say busy", r.raw)
		}
		c.want(c.put("/configurations/1234", `{"runstate":"suspended"}`), 200, "busy")
	})
}
