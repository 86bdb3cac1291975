package sim_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/runbookhq/runbook/sim"
)

// Every spelling clients use reaches the same resource.
func TestRouting(t *testing.T) {
	tests := []struct {
		method, path string
		status       int
		id           string // "" when the body is not a resource
	}{
		{"GET", "/configurations/1", 200, "1"},
		{"GET", "/configurations/1.json", 200, "1"},
		{"GET", "/v1/configurations/1", 200, "1"},
		{"GET", "/v2/configurations/1.json", 200, "1"},
		{"GET", "/v2/configurations/1/", 200, "1"},
		{"GET", "/configurations/1/vms/102", 200, "102"},
		{"GET", "/v2/configurations/1/vms/102.json", 200, "102"},
		{"GET", "/vms/102", 200, "102"},
		{"GET", "/v1/vms/102.json", 200, "102"},
		{"GET", "/templates/9", 200, "9"},
		{"GET", "/v2/templates/9.json", 200, "9"},
		{"GET", "/v2/configurations/1/user_data.json", 200, ""},
		{"GET", "/configurations/2", 404, ""},
		{"GET", "/configurations/1/vms/201", 404, ""},
		{"GET", "/vms/999", 404, ""},
		{"GET", "/nothing/here", 404, ""},
		{"POST", "/configurations/1", 405, ""},
		{"PUT", "/v2/configurations/1/vms", 405, ""},
	}
	synctest.Test(t, func(t *testing.T) {
		s := sim.New(testConfig())
		s.AddEnvironment(oneEnv())
		s.AddTemplate(sim.TemplateSpec{ID: "9", VMs: []sim.VMSpec{{}}})
		c := newClient(t, s)
		for _, tt := range tests {
			r := c.do(tt.method, tt.path, "")
			if r.status != tt.status || r.str("id") != tt.id {
				t.Errorf("%s %s: %d id %q, want %d id %q", tt.method, tt.path, r.status, r.str("id"), tt.status, tt.id)
			}
		}
		r := c.get("/v2/configurations/1/vms")
		if r.status != 200 || len(r.list) != 3 {
			t.Errorf("GET /v2/configurations/1/vms: %d, %d VMs; want 3", r.status, len(r.list))
		}
		if e := lastEntry(t, s); e.Target != "env/1" || e.Env != "1" || e.Outcome != "read" {
			t.Errorf("log entry %+v", e)
		}
	})
}

// v1 shows an environment's error as a string, v2 as lists; a VM's error is
// false when there is none, and v2 adds error_details.
func TestVersionShapes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sim.New(testConfig())
		s.AddEnvironment(oneEnv())
		c := newClient(t, s)

		v1 := c.get("/configurations/1")
		if v1.obj["error"] != "" || v1.obj["errors"] != nil || v1.obj["lockversion"] == nil {
			t.Errorf("v1 environment: error %#v errors %#v lockversion %#v", v1.obj["error"], v1.obj["errors"], v1.obj["lockversion"])
		}
		vm1 := v1.obj["vms"].([]any)[0].(map[string]any)
		if vm1["error"] != false || vm1["error_details"] != nil {
			t.Errorf("v1 VM: error %#v error_details %#v", vm1["error"], vm1["error_details"])
		}

		for _, r := range []result{c.get("/v2/configurations/1"), c.withAccept("application/vnd.skytap.api.v2+json").get("/configurations/1")} {
			if _, isStr := r.obj["error"]; isStr || fmt.Sprint(r.obj["errors"]) != "[]" || fmt.Sprint(r.obj["error_details"]) != "[]" {
				t.Errorf("v2 environment: error %#v errors %#v error_details %#v", r.obj["error"], r.obj["errors"], r.obj["error_details"])
			}
			vm := r.obj["vms"].([]any)[0].(map[string]any)
			if vm["error"] != false || vm["error_details"] != false {
				t.Errorf("v2 VM: error %#v error_details %#v", vm["error"], vm["error_details"])
			}
		}

		// lockversion changes with every accepted change.
		c.want(c.put("/configurations/1", `{"name":"renamed"}`), 200, "running")
		if after := c.get("/configurations/1"); after.obj["lockversion"] == v1.obj["lockversion"] || after.str("name") != "renamed" {
			t.Errorf("after a rename: lockversion %v (was %v), name %v", after.obj["lockversion"], v1.obj["lockversion"], after.obj["name"])
		}
	})
}

func (c *apiClient) withAccept(accept string) *apiClient {
	cc := *c
	cc.hc = &http.Client{Transport: acceptTransport{c.hc.Transport, accept}}
	return &cc
}

type acceptTransport struct {
	rt     http.RoundTripper
	accept string
}

func (a acceptTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Accept", a.accept)
	return a.rt.RoundTrip(r)
}

func TestAuth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		open := sim.New(testConfig())
		open.AddEnvironment(oneEnv())
		c := newClient(t, open)
		c.want(c.get("/configurations/1"), 200, "") // any credentials
		c.user = ""
		r := c.get("/configurations/1")
		c.want(r, 401, "")
		if r.obj["error"] != "Unauthorized" {
			t.Errorf("401 body %s", r.raw)
		}
		if e := lastEntry(t, open); e.Outcome != "unauthorized" || e.Busy || e.Runstate != "" {
			t.Errorf("log entry %+v", e)
		}

		cfg := testConfig()
		cfg.Credentials = map[string]string{"alice": "secret"}
		strict := sim.New(cfg)
		strict.AddEnvironment(oneEnv())
		c = newClient(t, strict)
		c.want(c.get("/configurations/1"), 200, "")
		c.token = "wrong"
		c.want(c.put("/vms/101", `{"runstate":"stopped"}`), 401, "")
		wantRunstate(t, strict, "vm/101", "running")
		c.user, c.token = "mallory", "secret"
		c.want(c.get("/configurations/1"), 401, "")
	})
}

func TestAutoProvision(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		cfg.AutoProvision = true
		s := sim.New(cfg)
		c := newClient(t, s)
		if _, ok := s.Runstate("env/1234"); ok {
			t.Fatal("Runstate provisioned an environment")
		}

		r := c.get("/v2/configurations/1234")
		c.want(r, 200, "running")
		var ids []string
		for _, v := range r.obj["vms"].([]any) {
			vm := v.(map[string]any)
			ids = append(ids, vm["id"].(string))
			if vm["runstate"] != "running" {
				t.Errorf("VM %v is %v, want running", vm["id"], vm["runstate"])
			}
		}
		if fmt.Sprint(ids) != "[123401 123402 123403]" {
			t.Errorf("VM ids %v", ids)
		}
		c.want(c.get("/configurations/1234/vms/999"), 404, "")

		// A bare VM id provisions its environment: the id less its last two digits.
		c.want(c.get("/vms/555502"), 200, "running")
		if r := c.get("/v2/configurations/5555"); r.obj["vm_count"] != 3.0 {
			t.Errorf("environment 5555 has %v VMs, want 3", r.obj["vm_count"])
		}
		c.want(c.get("/vms/777709"), 200, "running") // beyond VMsPerEnv: added
		if r := c.get("/v2/configurations/7777"); r.obj["vm_count"] != 4.0 {
			t.Errorf("environment 7777 has %v VMs, want 4", r.obj["vm_count"])
		}
		c.want(c.get("/vms/123409"), 404, "") // 1234 exists: its VMs are fixed

		r = c.get("/templates/42")
		if r.status != 200 || r.obj["busy"] != nil {
			t.Errorf("auto-provisioned template: %d busy %v", r.status, r.obj["busy"])
		}
	})
}

// POST /configurations makes an environment from a template: both are busy
// for Durations.Create, and a busy template refuses another create with 423.
func TestCreateFromTemplate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sim.New(testConfig())
		s.AddTemplate(sim.TemplateSpec{ID: "9", Name: "Base", VMs: []sim.VMSpec{{Name: "web"}, {Name: "db"}}})
		c := newClient(t, s)

		r := c.do(http.MethodPost, "/configurations.json", `{"template_id":9}`)
		c.want(r, 200, "busy")
		id := r.str("id")
		if id == "" || r.obj["vm_count"] != 2.0 || r.str("name") != "Base" {
			t.Fatalf("created %s", r.raw)
		}
		if e := lastEntry(t, s); e.Env != id || e.Outcome != "accepted" {
			t.Errorf("log entry %+v", e)
		}
		if r := c.get("/v2/templates/9"); r.obj["busy"] != true {
			t.Errorf("template busy %v while creating, want true", r.obj["busy"])
		}
		r = c.do(http.MethodPost, "/configurations", `{"template_id":"9"}`)
		c.want(r, 423, "")
		if r.header.Get("Retry-After") == "" {
			t.Error("423 for a busy template has no Retry-After")
		}
		if e := lastEntry(t, s); !e.Busy || e.Outcome != "busy-423" {
			t.Errorf("log entry %+v", e)
		}
		c.want(c.do(http.MethodPost, "/configurations", `{"template_id":"8"}`), 422, "")

		time.Sleep(time.Minute)
		c.want(c.get("/v2/configurations/"+id), 200, "stopped")
		if r := c.get("/v2/templates/9"); r.obj["busy"] != nil {
			t.Errorf("template busy %v after the create, want null", r.obj["busy"])
		}

		// Add a VM to it from the template: busy for AddVM, then one VM more.
		r = c.put("/configurations/"+id, `{"template_id":"9","vm_ids":["901"]}`)
		c.want(r, 200, "busy")
		if r.obj["vm_count"] != 3.0 {
			t.Errorf("vm_count %v, want 3", r.obj["vm_count"])
		}
		time.Sleep(30 * time.Second)
		c.want(c.get("/configurations/"+id), 200, "stopped")
		c.want(c.put("/configurations/"+id, `{"template_id":"9","vm_ids":["999"]}`), 422, "")
	})
}

func TestUserData(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sim.New(testConfig())
		s.AddEnvironment(oneEnv())
		c := newClient(t, s)
		if r := c.get("/v2/configurations/1/user_data.json"); r.status != 200 || r.obj["contents"] != "" {
			t.Fatalf("user_data: %d %s", r.status, r.raw)
		}
		c.want(c.put("/v2/configurations/1/user_data.json", `{"contents":"hello"}`), 200, "")
		if r := c.get("/v2/configurations/1/user_data"); r.obj["contents"] != "hello" {
			t.Errorf("user_data after PUT: %s", r.raw)
		}
	})
}

func TestListEnvironments(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sim.New(testConfig())
		s.AddEnvironment(sim.EnvSpec{ID: "10", Name: "web prod"})
		s.AddEnvironment(sim.EnvSpec{ID: "9", Name: "web test"})
		s.AddEnvironment(sim.EnvSpec{ID: "11", Name: "db"})
		c := newClient(t, s)
		r := c.get("/v2/configurations?scope=me&count=100&offset=0&query=name:web*")
		var ids []string
		for _, e := range r.list {
			ids = append(ids, e.(map[string]any)["id"].(string))
		}
		if fmt.Sprint(ids) != "[9 10]" {
			t.Errorf("ids %v, want [9 10]", ids)
		}
	})
}

// The control endpoints work through the transport too, and are not logged.
func TestControlEndpoints(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sim.New(testConfig())
		s.AddEnvironment(oneEnv())
		c := newClient(t, s)
		c.user = "" // no credentials needed

		c.want(c.do(http.MethodPost, "/__sim/inject", `{"target":"vm/101","method":"GET","status":503,"retry_after":2}`), 200, "")
		c.want(c.do(http.MethodPost, "/__sim/inject", `{"target":"vm/102","next_mutation":{"status":423,"retry_after":3,"times":2}}`), 200, "")
		c.want(c.do(http.MethodPost, "/__sim/busy", `{"target":"env/1","seconds":30}`), 200, "")
		c.want(c.do(http.MethodPost, "/__sim/fail_next", `{"vm":"102"}`), 200, "")
		c.want(c.do(http.MethodPost, "/__sim/inject", `{"drop":"sideways"}`), 400, "")
		wantRunstate(t, s, "env/1", "busy")

		c.user = "alice"
		r := c.get("/vms/101")
		c.want(r, 503, "")
		if r.header.Get("Retry-After") != "2" {
			t.Errorf("Retry-After %q, want 2", r.header.Get("Retry-After"))
		}
		for range 2 {
			if r := c.put("/vms/102", `{"runstate":"running"}`); r.status != 423 || r.header.Get("Retry-After") != "3" {
				t.Errorf("next_mutation fault: %d Retry-After %q", r.status, r.header.Get("Retry-After"))
			}
		}

		r = c.get("/__sim/log")
		if r.status != 200 || len(r.list) != 3 {
			t.Fatalf("log: %d with %d entries, want the 3 API requests: %s", r.status, len(r.list), r.raw)
		}
		first := r.list[0].(map[string]any)
		if first["path"] != "/vms/101" || first["status"] != 503.0 || first["busy"] != true || first["fault"] == nil {
			t.Errorf("first log entry %v", first)
		}
		time.Sleep(30 * time.Second)
		c.want(c.put("/vms/102", `{"runstate":"running"}`), 200, "busy")
		time.Sleep(35 * time.Second)
		if r := c.get("/vms/102"); r.obj["error"] != "Could not run VM 102" {
			t.Errorf("fail_next: error %v", r.obj["error"])
		}
	})
}

func TestScenarios(t *testing.T) {
	if got := sim.ScenarioNames(); !slices.Equal(got, []string{"default", "demo", "quiet"}) {
		t.Errorf("ScenarioNames() = %v", got)
	}
	for _, name := range sim.ScenarioNames() {
		if _, err := sim.Scenario(name); err != nil {
			t.Errorf("Scenario(%q): %v", name, err)
		}
	}
	_, err := sim.Scenario("chaos")
	if err == nil || !strings.Contains(err.Error(), "default, demo, quiet") {
		t.Errorf("Scenario(chaos) error %v, want one listing the names", err)
	}
	def, _ := sim.Scenario("default")
	if d := sim.DefaultConfig(); def.Rate != d.Rate || !def.AutoProvision || d.AutoProvision || d.Rate != 10 || d.Burst != 20 || d.VMsPerEnv != 3 ||
		d.MaxConcurrentOps != 3 || d.RetryAfter != 10*time.Second || d.RateRetryAfter != 5*time.Second ||
		d.Durations.Run != 30*time.Second || d.Busy != (sim.BusyWeights{Status422: 0.4, Status423: 0.4, Dropped200: 0.2}) || d.Clock == nil {
		t.Errorf("DefaultConfig() = %+v", d)
	}
	quiet, _ := sim.Scenario("quiet")
	if !quiet.AutoProvision || quiet.Rate >= 0 || quiet.Demo.BusyOnFirstUse != 0 || len(quiet.Demo.Script) != 0 {
		t.Errorf("quiet = %+v", quiet)
	}
	demo, _ := sim.Scenario("demo")
	if !demo.AutoProvision || demo.Rate >= 0 || demo.Demo.BusyOnFirstUse == 0 || len(demo.Demo.Script) != 2 {
		t.Errorf("demo = %+v", demo)
	}
	// Under ScaledClock(10) a client polls every 100 simulated seconds: every
	// operation of the demo must be done by the next poll.
	d := demo.Durations
	for _, op := range []time.Duration{d.Run + 3*d.RunPerVM, d.Resume, d.Suspend, d.Stop, d.Halt, d.Reset, d.Delete, d.Create, d.AddVM} {
		if float64(op)*(1+demo.Jitter) >= float64(100*time.Second) {
			t.Errorf("demo operation of %v may outlast a 10 s real poll at scale 10", op)
		}
	}
}

// The demo's promise, run through: a restart (suspend, then run) with a
// client that checks every 100 simulated seconds (10 s real at scale 10) is
// over in a few polls.
func TestDemoRestartTiming(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg, _ := sim.Scenario("demo")
		cfg.Clock = nil
		s := sim.New(cfg)
		c := newClient(t, s)
		const poll = 100 * time.Second
		start := time.Now()
		change := func(runstate string) {
			for {
				for c.get("/configurations/1234").runstate() == "busy" { // guard
					time.Sleep(poll)
				}
				r := c.put("/configurations/1234", `{"runstate":"`+runstate+`"}`)
				switch {
				case r.status == 423:
					time.Sleep(5 * time.Second)
					continue
				case r.status != 200:
					continue
				}
				break
			}
			for c.get("/configurations/1234").runstate() != runstate { // wait
				time.Sleep(poll)
			}
		}
		change("suspended")
		change("running")
		if d := time.Since(start); d > 600*time.Second {
			t.Errorf("restart took %v simulated (%v real at scale 10), want about a minute real", d, d/10)
		}
	})
}

// The real-server path: ServeHTTP over a socket, with a dropped connection
// that still applies the change.
func TestRealServer(t *testing.T) {
	s := sim.New(testConfig())
	s.AddEnvironment(oneEnv())
	srv := httptest.NewServer(s)
	defer srv.Close()
	c := &apiClient{t: t, hc: srv.Client(), base: srv.URL, user: "alice", token: "secret"}

	r := c.get("/v2/configurations/1")
	c.want(r, 200, "running")
	if !strings.HasPrefix(r.str("url"), srv.URL+"/v2/configurations/1") {
		t.Errorf("url %q does not point at the server", r.str("url"))
	}
	s.Inject(sim.Fault{Target: "vm/101", Drop: sim.DropBeforeWrite}) // acts after write on a real server
	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/vms/101", strings.NewReader(`{"name":"renamed"}`))
	req.SetBasicAuth("alice", "secret")
	if resp, err := srv.Client().Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("dropped connection answered %s", resp.Status)
	}
	if e := lastEntry(t, s); e.Fault == "" || e.Outcome != "accepted" {
		t.Errorf("log entry %+v", e)
	}
	if r := c.get("/vms/101"); r.str("name") != "renamed" {
		t.Errorf("the dropped request was not applied: name %q", r.str("name"))
	}
	c.want(c.put("/vms/102", `{"runstate":"running"}`), 200, "busy")

	resp, err := http.Post(srv.URL+"/__sim/busy", "application/json", strings.NewReader(`{"target":"vm/103","seconds":60}`))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("control endpoint: %v %v", resp, err)
	}
	resp.Body.Close()
	wantRunstate(t, s, "vm/103", "busy")
	resp, err = http.Get(srv.URL + "/__sim/log")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var log []sim.Entry
	if err := json.NewDecoder(resp.Body).Decode(&log); err != nil || len(log) != 4 {
		t.Errorf("log over HTTP: %d entries, %v; want 4", len(log), err)
	}
}

func TestScaledClock(t *testing.T) {
	clock := sim.ScaledClock(1000)
	start := clock.Now()
	realStart := time.Now()
	if err := clock.Sleep(context.Background(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if d := clock.Now().Sub(start); d < 5*time.Second {
		t.Errorf("5 s of scaled sleep advanced the clock by %v", d)
	}
	if d := time.Since(realStart); d > time.Second {
		t.Errorf("5 s at scale 1000 took %v of real time", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := clock.Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Sleep = %v, want context.Canceled", err)
	}
}

// Concurrent clients are safe (run with -race).
func TestConcurrentRequests(t *testing.T) {
	cfg := testConfig()
	cfg.AutoProvision = true
	s := sim.New(cfg)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			c := newClient(t, s)
			for j := range 20 {
				path := fmt.Sprintf("/v2/configurations/%d", 100+i)
				if j%3 == 0 {
					c.put(path, `{"runstate":"suspended"}`)
				} else {
					c.get(path)
				}
			}
		})
	}
	wg.Wait()
	log := s.Log()
	if len(log) != 160 {
		t.Fatalf("%d log entries, want 160", len(log))
	}
	for i, e := range log {
		if e.Seq != i+1 {
			t.Fatalf("entry %d has Seq %d", i, e.Seq)
		}
	}
}
