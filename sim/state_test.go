package sim_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/runbookhq/runbook/sim"
)

// Each accepted transition answers 200 with the VM already busy, stays busy
// for its duration, and then rests where the state machine says.
func TestVMTransitions(t *testing.T) {
	tests := []struct {
		from, target, final string
		dur                 time.Duration
	}{
		{"stopped", "running", "running", 35 * time.Second}, // Run + RunPerVM
		{"running", "stopped", "stopped", 40 * time.Second},
		{"running", "halted", "stopped", 5 * time.Second},
		{"running", "suspended", "suspended", 20 * time.Second},
		{"running", "reset", "running", 15 * time.Second},
		{"suspended", "running", "running", 20 * time.Second},
		{"suspended", "halted", "stopped", 5 * time.Second}, // forced, unless StrictSuspendedHalt
	}
	for _, tt := range tests {
		t.Run(tt.from+"->"+tt.target, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := sim.New(testConfig())
				s.AddEnvironment(sim.EnvSpec{ID: "1", VMs: []sim.VMSpec{{ID: "101", Runstate: tt.from}}})
				c := newClient(t, s)

				c.want(c.put("/v2/configurations/1/vms/101", `{"runstate":"`+tt.target+`"}`), 200, "busy")
				if e := lastEntry(t, s); e.Outcome != "accepted" || e.Busy || e.Runstate != tt.from {
					t.Fatalf("log entry %+v: want accepted, not busy, runstate %s on arrival", e, tt.from)
				}
				c.want(c.get("/v2/configurations/1"), 200, "busy") // a busy VM makes its environment busy

				time.Sleep(tt.dur - time.Second)
				c.want(c.get("/v2/configurations/1/vms/101"), 200, "busy")
				time.Sleep(time.Second)
				r := c.get("/v2/configurations/1/vms/101")
				c.want(r, 200, tt.final)
				if r.obj["error"] != false {
					t.Errorf("error = %v, want false", r.obj["error"])
				}
				c.want(c.get("/v2/configurations/1"), 200, tt.final)
			})
		})
	}
}

func TestNoopTransitions(t *testing.T) {
	for _, tt := range []struct{ from, target string }{
		{"stopped", "stopped"}, {"stopped", "halted"}, {"running", "running"}, {"suspended", "suspended"},
	} {
		t.Run(tt.from+"->"+tt.target, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := sim.New(testConfig())
				s.AddEnvironment(sim.EnvSpec{ID: "1", VMs: []sim.VMSpec{{ID: "101", Runstate: tt.from}}})
				c := newClient(t, s)
				c.want(c.put("/vms/101", `{"runstate":"`+tt.target+`"}`), 200, tt.from)
				if e := lastEntry(t, s); e.Outcome != "noop" {
					t.Errorf("outcome %q, want noop", e.Outcome)
				}
				wantRunstate(t, s, "env/1", tt.from)
			})
		})
	}
}

func TestInvalidTransitions(t *testing.T) {
	tests := []struct {
		name   string
		cfg    func(*sim.Config)
		vm     sim.VMSpec
		path   string
		body   string
		reason string
	}{
		{"stopped->suspended", nil, sim.VMSpec{ID: "101", Runstate: "stopped"}, "/vms/101", `{"runstate":"suspended"}`, "Cannot suspend VM 101"},
		{"stopped->reset", nil, sim.VMSpec{ID: "101", Runstate: "stopped"}, "/vms/101", `{"runstate":"reset"}`, "Cannot reset VM 101"},
		{"suspended->stopped", nil, sim.VMSpec{ID: "101", Runstate: "suspended"}, "/vms/101", `{"runstate":"stopped"}`, "Cannot stop VM 101"},
		{"suspended->reset", nil, sim.VMSpec{ID: "101", Runstate: "suspended"}, "/vms/101", `{"runstate":"reset"}`, "Cannot reset VM 101"},
		{"suspended->halted strict", func(c *sim.Config) { c.StrictSuspendedHalt = true }, sim.VMSpec{ID: "101", Runstate: "suspended"}, "/vms/101", `{"runstate":"halted"}`, "Cannot halt VM 101"},
		{"no suspend support", nil, sim.VMSpec{ID: "101", NoSuspend: true}, "/vms/101", `{"runstate":"suspended"}`, "does not support suspend"},
		{"busy is no target", nil, sim.VMSpec{ID: "101"}, "/vms/101", `{"runstate":"busy"}`, "Invalid runstate for a VM"},
		{"reset of an environment", nil, sim.VMSpec{ID: "101"}, "/configurations/1", `{"runstate":"reset"}`, "Invalid runstate for an environment"},
		{"environment, one VM invalid", nil, sim.VMSpec{ID: "101", Runstate: "suspended"}, "/configurations/1", `{"runstate":"stopped"}`, "Cannot stop VM 101"},
		{"hardware of a running VM", nil, sim.VMSpec{ID: "101"}, "/vms/101", `{"hardware":{"cpus":2}}`, "must be stopped"},
		{"not JSON", nil, sim.VMSpec{ID: "101"}, "/vms/101", `{"runstate":`, "not valid JSON"},
		{"unknown multiselect VM", nil, sim.VMSpec{ID: "101"}, "/configurations/1", `{"runstate":"stopped","multiselect":["999"]}`, "VM 999 is not in environment 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := testConfig()
				if tt.cfg != nil {
					tt.cfg(&cfg)
				}
				s := sim.New(cfg)
				s.AddEnvironment(sim.EnvSpec{ID: "1", VMs: []sim.VMSpec{tt.vm}})
				before, _ := s.Runstate("vm/101")
				c := newClient(t, s)
				r := c.put(tt.path, tt.body)
				c.want(r, 422, "")
				errs, _ := r.obj["errors"].([]any)
				if len(errs) != 1 || !strings.Contains(fmt.Sprint(errs[0]), tt.reason) {
					t.Fatalf("body %s, want errors [%q...]", r.raw, tt.reason)
				}
				if strings.Contains(r.raw, "busy") {
					t.Errorf("a validation 422 must not mention busy: %s", r.raw)
				}
				if e := lastEntry(t, s); e.Outcome != "invalid" {
					t.Errorf("outcome %q, want invalid", e.Outcome)
				}
				wantRunstate(t, s, "vm/101", before)
			})
		})
	}
}

// An environment's runstate is derived from its VMs, and a change of the
// environment applies to every VM (or the multiselect ones) as one operation.
func TestEnvironmentRunstate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sim.New(testConfig())
		s.AddEnvironment(oneEnv()) // running, stopped, suspended
		s.AddEnvironment(sim.EnvSpec{ID: "2", VMs: []sim.VMSpec{{ID: "201", Runstate: "stopped"}, {ID: "202", Runstate: "suspended"}}})
		s.AddEnvironment(sim.EnvSpec{ID: "3", VMs: []sim.VMSpec{{ID: "301", Runstate: "stopped"}}})
		s.AddEnvironment(sim.EnvSpec{ID: "4"})
		wantRunstate(t, s, "env/1", "running")
		wantRunstate(t, s, "env/2", "suspended")
		wantRunstate(t, s, "env/3", "stopped")
		wantRunstate(t, s, "env/4", "stopped") // empty

		c := newClient(t, s)
		// Query-string form: run all; 102 runs (35s with one VM started), 103 resumes (20s).
		r := c.put("/configurations/1?runstate=running", "")
		c.want(r, 200, "busy")
		if vms := r.obj["vms"].([]any); vms[0].(map[string]any)["runstate"] != "running" || vms[1].(map[string]any)["runstate"] != "busy" {
			t.Errorf("a VM already running is a no-op and stays running; the others go busy: %s", r.raw)
		}
		time.Sleep(34 * time.Second)
		wantRunstate(t, s, "vm/103", "busy") // one operation: everything waits for the slowest VM
		time.Sleep(time.Second)
		for _, vm := range []string{"vm/101", "vm/102", "vm/103", "env/1"} {
			wantRunstate(t, s, vm, "running")
		}

		// Multiselect: suspend only 101; the environment is busy meanwhile and
		// the other VMs keep their runstate.
		c.want(c.put("/v2/configurations/1", `{"runstate":"suspended","multiselect":["101"]}`), 200, "busy")
		wantRunstate(t, s, "vm/102", "running")
		c.want(c.put("/vms/102", `{"runstate":"stopped"}`), 422, "") // busy environment: busy answer (422 with seed 1)
		time.Sleep(20 * time.Second)
		wantRunstate(t, s, "vm/101", "suspended")
		wantRunstate(t, s, "env/1", "running")
	})
}

// Runs of many VMs at once take longer: Run + RunPerVM for each VM started.
func TestRunDurationGrowsWithVMs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sim.New(testConfig())
		s.AddEnvironment(sim.EnvSpec{ID: "1", VMs: []sim.VMSpec{{ID: "101", Runstate: "stopped"}, {ID: "102", Runstate: "stopped"}, {ID: "103", Runstate: "stopped"}}})
		c := newClient(t, s)
		c.want(c.put("/configurations/1", `{"runstate":"running"}`), 200, "busy")
		time.Sleep(44 * time.Second)
		wantRunstate(t, s, "env/1", "busy")
		time.Sleep(time.Second)
		wantRunstate(t, s, "env/1", "running")
	})
}

// A change sent to a busy resource is answered by a seeded choice; with one
// weight set, that answer every time.
func TestBusyAnswers(t *testing.T) {
	tests := []struct {
		weights    sim.BusyWeights
		status     int
		outcome    string
		bodyHas    string
		retryAfter string
	}{
		{sim.BusyWeights{Status422: 1}, 422, "busy-422", `{"errors":["The machine was busy. Try again later."]}`, ""},
		{sim.BusyWeights{Status423: 1}, 423, "busy-423", `"Resource is busy"`, "10"},
		{sim.BusyWeights{Dropped200: 1}, 200, "dropped-busy", `"runstate":"busy"`, ""},
		{sim.BusyWeights{Status409: 1}, 409, "busy-409", "busy", ""},
	}
	for _, tt := range tests {
		t.Run(tt.outcome, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := testConfig()
				cfg.Busy = tt.weights
				s := sim.New(cfg)
				s.AddEnvironment(oneEnv())
				s.MakeBusy("env/1", 30*time.Second)
				c := newClient(t, s)

				r := c.put("/v2/configurations/1/vms/102", `{"runstate":"running"}`)
				c.want(r, tt.status, "")
				if !strings.Contains(r.raw, tt.bodyHas) {
					t.Errorf("body %s, want it to contain %s", r.raw, tt.bodyHas)
				}
				if got := r.header.Get("Retry-After"); got != tt.retryAfter {
					t.Errorf("Retry-After %q, want %q", got, tt.retryAfter)
				}
				e := lastEntry(t, s)
				if e.Outcome != tt.outcome || !e.Busy || e.RetryAfter != tt.retryAfter {
					t.Errorf("log entry %+v, want outcome %s, busy, Retry-After %q", e, tt.outcome, tt.retryAfter)
				}
				if tt.retryAfter != "" && !e.RetryAt.Equal(e.Time.Add(10*time.Second)) {
					t.Errorf("RetryAt %v, want arrival + 10s", e.RetryAt)
				}
				// Whatever the answer, the change did not happen.
				time.Sleep(time.Minute)
				wantRunstate(t, s, "vm/102", "stopped")
				// GETs are never refused for busyness.
				s.MakeBusy("vm/101", time.Minute)
				c.want(c.get("/vms/102"), 200, "stopped")
				c.want(c.get("/configurations/1"), 200, "busy")
			})
		})
	}
}

// The seeded choice is reproducible, and the default weights give a mix.
func TestBusyAnswersDeterministic(t *testing.T) {
	run := func(seed uint64) []string {
		var outcomes []string
		synctest.Test(t, func(t *testing.T) {
			cfg := testConfig()
			cfg.Seed = seed
			s := sim.New(cfg)
			s.AddEnvironment(oneEnv())
			s.MakeBusy("env/1", time.Hour)
			c := newClient(t, s)
			for range 30 {
				c.put("/vms/102", `{"runstate":"running"}`)
				outcomes = append(outcomes, lastEntry(t, s).Outcome)
			}
		})
		return outcomes
	}
	a, b, other := run(7), run(7), run(8)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("same seed, different answers:\n%v\n%v", a, b)
	}
	if fmt.Sprint(a) == fmt.Sprint(other) {
		t.Errorf("seeds 7 and 8 gave the same 30 answers: %v", a)
	}
	for _, want := range []string{"busy-422", "busy-423", "dropped-busy"} {
		if !strings.Contains(fmt.Sprint(a), want) {
			t.Errorf("default weights never gave %s in 30 answers: %v", want, a)
		}
	}
	if strings.Contains(fmt.Sprint(a), "busy-409") {
		t.Errorf("409 has weight 0 by default: %v", a)
	}
}

func TestRetryAfterDate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		cfg.Busy = sim.BusyWeights{Status423: 1}
		cfg.RetryAfterDate = true
		cfg.RetryAfter = 12500 * time.Millisecond
		s := sim.New(cfg)
		s.AddEnvironment(oneEnv())
		s.MakeBusy("vm/101", time.Minute)
		c := newClient(t, s)
		time.Sleep(300 * time.Millisecond)
		r := c.put("/vms/101", `{"runstate":"stopped"}`)
		c.want(r, 423, "")
		at, err := http.ParseTime(r.header.Get("Retry-After"))
		if err != nil {
			t.Fatalf("Retry-After %q is not an HTTP-date: %v", r.header.Get("Retry-After"), err)
		}
		// 00:00:00.3 + 12.5s = 00:00:12.8, rounded up to the whole second the date can say.
		if want := time.Now().Add(12700 * time.Millisecond); !at.Equal(want) {
			t.Errorf("Retry-After %v, want %v", at, want)
		}
		if e := lastEntry(t, s); !e.RetryAt.Equal(at) {
			t.Errorf("log RetryAt %v, want the header's %v", e.RetryAt, at)
		}
	})
}

// The token bucket refuses any method, GET included, with 429 and Retry-After,
// per credential, and refills with time.
func TestRateLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		cfg.Rate, cfg.Burst = 1, 2
		s := sim.New(cfg)
		s.AddEnvironment(oneEnv())
		c := newClient(t, s)
		c.want(c.get("/configurations/1"), 200, "")
		c.want(c.get("/configurations/1"), 200, "")
		r := c.get("/configurations/1")
		c.want(r, 429, "")
		if r.header.Get("Retry-After") != "5" || r.obj["error"] != "Too many requests" {
			t.Errorf("429 with Retry-After %q body %s; want 5 and Too many requests", r.header.Get("Retry-After"), r.raw)
		}
		if e := lastEntry(t, s); e.Outcome != "rate-limited" || e.Mutation || !e.RetryAt.Equal(e.Time.Add(5*time.Second)) {
			t.Errorf("log entry %+v", e)
		}
		c.want(c.put("/vms/101", `{"name":"x"}`), 429, "")

		other := newClient(t, s)
		other.user = "bob"
		other.want(other.get("/configurations/1"), 200, "") // bob has his own bucket

		time.Sleep(time.Second) // one token back
		c.want(c.get("/configurations/1"), 200, "")
		c.want(c.get("/configurations/1"), 429, "")
	})
}

// Beyond MaxConcurrentOps, accepted operations queue with rate_limited: true
// and start by themselves when a slot frees up.
func TestQueuedOperations(t *testing.T) {
	for _, stale := range []bool{false, true} {
		t.Run(fmt.Sprint("stale=", stale), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := testConfig()
				cfg.MaxConcurrentOps = 1
				cfg.QueueStale = stale
				s := sim.New(cfg)
				s.AddEnvironment(sim.EnvSpec{ID: "1", VMs: []sim.VMSpec{{ID: "101", Runstate: "stopped"}}})
				s.AddEnvironment(sim.EnvSpec{ID: "2", VMs: []sim.VMSpec{{ID: "201", Runstate: "stopped"}}})
				c := newClient(t, s)

				c.want(c.put("/configurations/1", `{"runstate":"running"}`), 200, "busy")
				r := c.put("/configurations/2", `{"runstate":"running"}`)
				queued := "busy"
				if stale {
					queued = "stopped"
				}
				c.want(r, 200, queued)
				if r.obj["rate_limited"] != true {
					t.Fatalf("queued environment has rate_limited %v, want true: %s", r.obj["rate_limited"], r.raw)
				}
				if e := lastEntry(t, s); e.Outcome != "queued" {
					t.Errorf("outcome %q, want queued", e.Outcome)
				}
				r = c.get("/v2/configurations/2/vms/201")
				c.want(r, 200, queued)
				if r.obj["rate_limited"] != true {
					t.Errorf("queued VM has rate_limited %v, want true", r.obj["rate_limited"])
				}
				// A queued resource is busy for changes even when it shows its old state.
				c.want(c.put("/configurations/2", `{"name":"x"}`), 422, "")
				if e := lastEntry(t, s); !e.Busy {
					t.Errorf("change to a queued environment logged as not busy: %+v", e)
				}

				time.Sleep(35 * time.Second) // env 1 done; env 2 starts at this instant
				wantRunstate(t, s, "env/1", "running")
				r = c.get("/configurations/2")
				c.want(r, 200, "busy")
				if r.obj["rate_limited"] != false {
					t.Errorf("started operation still rate_limited: %s", r.raw)
				}
				time.Sleep(34 * time.Second)
				wantRunstate(t, s, "env/2", "busy")
				time.Sleep(time.Second)
				wantRunstate(t, s, "env/2", "running")
			})
		})
	}
}

// Without a client request in between, a queued operation still starts when
// the slot freed, not when the next request arrives.
func TestQueueStartsAtSlotTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		cfg.MaxConcurrentOps = 1
		s := sim.New(cfg)
		s.AddEnvironment(sim.EnvSpec{ID: "1", VMs: []sim.VMSpec{{ID: "101"}}})
		c := newClient(t, s)
		c.want(c.put("/vms/101", `{"runstate":"halted"}`), 200, "busy") // 5s
		c.want(c.put("/vms/101", `{"runstate":"running"}`), 422, "")    // busy
		s.AddEnvironment(sim.EnvSpec{ID: "2", VMs: []sim.VMSpec{{ID: "201"}}})
		c.want(c.put("/vms/201", `{"runstate":"suspended"}`), 200, "busy") // queued, 20s
		time.Sleep(25 * time.Second)                                       // 5s + 20s, no request between
		wantRunstate(t, s, "vm/201", "suspended")
	})
}

// A graceful stop without VMware Tools fails after its duration: the VM is
// back to running with an error that lingers across unrelated requests until
// a later runstate change succeeds.
func TestLingeringError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sim.New(testConfig())
		s.AddEnvironment(sim.EnvSpec{ID: "1", VMs: []sim.VMSpec{{ID: "101", NoTools: true}, {ID: "102"}}})
		c := newClient(t, s)
		const msg = "VM 101 could not be shut down gracefully: VMware Tools is not running"

		c.want(c.put("/v2/configurations/1/vms/101", `{"runstate":"stopped"}`), 200, "busy")
		time.Sleep(40 * time.Second)
		r := c.get("/v2/configurations/1/vms/101")
		c.want(r, 200, "running")
		if r.obj["error"] != msg || r.obj["error_details"] == false {
			t.Fatalf("VM error %v, details %v; want %q and a detail", r.obj["error"], r.obj["error_details"], msg)
		}
		r = c.get("/v2/configurations/1")
		if fmt.Sprint(r.obj["errors"]) != "["+msg+"]" {
			t.Errorf("v2 environment errors %v, want [%s]", r.obj["errors"], msg)
		}
		if r := c.get("/configurations/1"); r.obj["error"] != msg {
			t.Errorf("v1 environment error %v, want %q", r.obj["error"], msg)
		}

		// A rename, a user_data edit and a change of the other VM leave it in place.
		c.want(c.put("/vms/101", `{"name":"renamed"}`), 200, "running")
		c.want(c.put("/v2/configurations/1/user_data.json", `{"contents":"x"}`), 200, "")
		c.want(c.put("/vms/102", `{"runstate":"halted"}`), 200, "busy")
		time.Sleep(5 * time.Second)
		r = c.get("/vms/101")
		if r.obj["error"] != msg || r.str("name") != "renamed" {
			t.Fatalf("after a rename: error %v name %v", r.obj["error"], r.obj["name"])
		}
		if r := c.get("/v2/configurations/1"); fmt.Sprint(r.obj["errors"]) != "["+msg+"]" {
			t.Errorf("environment error cleared by another VM's change: %v", r.obj["errors"])
		}

		// A successful runstate change of the VM clears it, on the VM and the environment.
		c.want(c.put("/vms/101", `{"runstate":"halted"}`), 200, "busy")
		r = c.get("/vms/101")
		if r.obj["error"] != msg {
			t.Errorf("error cleared while the change is still busy: %v", r.obj["error"])
		}
		time.Sleep(5 * time.Second)
		r = c.get("/v2/configurations/1/vms/101")
		c.want(r, 200, "stopped")
		if r.obj["error"] != false || r.obj["error_details"] != false {
			t.Errorf("after a successful change: error %v details %v, want false", r.obj["error"], r.obj["error_details"])
		}
		if r := c.get("/v2/configurations/1"); len(r.obj["errors"].([]any)) != 0 {
			t.Errorf("environment errors %v, want []", r.obj["errors"])
		}
		if r := c.get("/configurations/1"); r.obj["error"] != "" {
			t.Errorf("v1 environment error %v, want \"\"", r.obj["error"])
		}
	})
}

func TestFailNext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sim.New(testConfig())
		s.AddEnvironment(oneEnv())
		s.FailNext("102")
		c := newClient(t, s)
		c.want(c.put("/vms/102", `{"runstate":"halted"}`), 200, "stopped") // a no-op does not use it up
		c.want(c.put("/vms/102", `{"runstate":"running"}`), 200, "busy")
		time.Sleep(35 * time.Second)
		r := c.get("/vms/102")
		c.want(r, 200, "stopped")
		if r.obj["error"] != "Could not run VM 102" {
			t.Fatalf("error %v, want Could not run VM 102", r.obj["error"])
		}
		c.want(c.put("/vms/102", `{"runstate":"running"}`), 200, "busy")
		time.Sleep(35 * time.Second)
		r = c.get("/vms/102")
		c.want(r, 200, "running")
		if r.obj["error"] != false {
			t.Errorf("error %v after a successful run, want false", r.obj["error"])
		}
	})
}

// DELETE answers 200, the resource reads busy for Durations.Delete, then 404
// for every method, and auto-provisioning does not bring it back.
func TestDelete(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		cfg.AutoProvision = true
		s := sim.New(cfg)
		s.AddEnvironment(oneEnv())
		c := newClient(t, s)

		c.want(c.do(http.MethodDelete, "/vms/102", ""), 200, "busy")
		if e := lastEntry(t, s); e.Outcome != "deleted" {
			t.Errorf("outcome %q, want deleted", e.Outcome)
		}
		c.want(c.get("/configurations/1"), 200, "busy")
		time.Sleep(10 * time.Second)
		c.want(c.get("/vms/102"), 404, "")
		r := c.get("/v2/configurations/1")
		if r.obj["vm_count"] != 2.0 {
			t.Errorf("vm_count %v after deleting a VM, want 2", r.obj["vm_count"])
		}

		c.want(c.do(http.MethodDelete, "/configurations/1", ""), 200, "busy")
		c.want(c.do(http.MethodDelete, "/configurations/1", ""), 422, "") // busy answer (seed 1)
		time.Sleep(9 * time.Second)
		c.want(c.get("/configurations/1"), 200, "busy")
		c.want(c.get("/vms/101"), 200, "busy")
		time.Sleep(time.Second)
		r = c.get("/configurations/1")
		c.want(r, 404, "")
		if r.obj["error"] != "Not found" {
			t.Errorf("404 body %s", r.raw)
		}
		c.want(c.get("/vms/101"), 404, "")
		c.want(c.do(http.MethodDelete, "/configurations/1", ""), 404, "")
		if e := lastEntry(t, s); e.Outcome != "not-found" {
			t.Errorf("outcome %q, want not-found", e.Outcome)
		}
		if _, ok := s.Runstate("env/1"); ok {
			t.Error("Runstate reports a deleted environment")
		}
	})
}

// With LagReads, the first GETs after a change still show the state before it.
func TestLagReads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		cfg.LagReads = 2
		s := sim.New(cfg)
		s.AddEnvironment(oneEnv())
		c := newClient(t, s)
		c.want(c.put("/vms/102", `{"runstate":"running"}`), 200, "busy") // the answer itself is not lagged
		c.want(c.get("/vms/102"), 200, "stopped")
		if e := lastEntry(t, s); e.Outcome != "stale" || e.Runstate != "busy" {
			t.Errorf("lagged read logged as %q with truth %q; want stale, busy", e.Outcome, e.Runstate)
		}
		c.want(c.get("/vms/102"), 200, "stopped")
		c.want(c.get("/vms/102"), 200, "busy")
		if e := lastEntry(t, s); e.Outcome != "read" {
			t.Errorf("outcome %q, want read", e.Outcome)
		}
	})
}

func TestLockedEnvironment(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sim.New(testConfig())
		env := oneEnv()
		env.Locked = true
		s.AddEnvironment(env)
		c := newClient(t, s)
		for range 2 {
			r := c.put("/vms/101", `{"runstate":"stopped"}`)
			c.want(r, 423, "")
			if r.header.Get("Retry-After") != "" || r.obj["error"] != "Environment is locked" {
				t.Fatalf("locked: Retry-After %q body %s", r.header.Get("Retry-After"), r.raw)
			}
			time.Sleep(time.Hour) // it never clears on its own
		}
		if e := lastEntry(t, s); e.Outcome != "locked" {
			t.Errorf("outcome %q, want locked", e.Outcome)
		}
		c.want(c.get("/configurations/1"), 200, "running")
	})
}

// Another actor's operation: a busy VM makes its environment busy, and a busy
// environment makes its VMs busy.
func TestMakeBusy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		cfg.Busy = sim.BusyWeights{Status423: 1}
		s := sim.New(cfg)
		s.AddEnvironment(oneEnv())
		c := newClient(t, s)
		s.MakeBusy("vm/101", 10*time.Second)
		wantRunstate(t, s, "vm/101", "busy")
		wantRunstate(t, s, "env/1", "busy")
		wantRunstate(t, s, "vm/102", "stopped")
		c.want(c.put("/vms/102", `{"runstate":"running"}`), 423, "") // its environment is busy
		time.Sleep(10 * time.Second)
		wantRunstate(t, s, "env/1", "running")

		s.MakeBusy("env/1", 10*time.Second)
		wantRunstate(t, s, "vm/102", "busy")
		c.want(c.put("/vms/102", `{"runstate":"running"}`), 423, "")
		time.Sleep(10 * time.Second)
		c.want(c.put("/vms/102", `{"runstate":"running"}`), 200, "busy")
	})
}

// A hardware change is accepted only for a stopped VM, keeps it (and its
// environment) busy like any other change, and shows once it is done.
func TestHardwareEdit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sim.New(testConfig())
		s.AddEnvironment(oneEnv())
		c := newClient(t, s)
		hw := func(r result) string {
			return fmt.Sprint(r.obj["hardware"].(map[string]any)["cpus"], "/", r.obj["hardware"].(map[string]any)["ram"])
		}

		r := c.put("/v2/configurations/1/vms/101", `{"hardware":{"cpus":4,"ram":4096}}`)
		c.want(r, 422, "")
		if !strings.Contains(r.raw, "must be stopped (powered off)") || strings.Contains(r.raw, "busy") {
			t.Errorf("a running VM's hardware change: %s", r.raw)
		}
		if e := lastEntry(t, s); e.Outcome != "invalid" || e.Busy {
			t.Errorf("logged %+v", e)
		}

		r = c.put("/v2/configurations/1/vms/102", `{"hardware":{"cpus":4,"ram":4096}}`)
		c.want(r, 200, "busy")
		if got := hw(r); got != "1/1024" {
			t.Errorf("the answer shows hardware %s before the edit is done", got)
		}
		wantRunstate(t, s, "env/1", "busy")
		// Busy while the edit runs: another change is refused as busy.
		c.put("/vms/102", `{"runstate":"running"}`)
		if e := lastEntry(t, s); !e.Busy || !strings.Contains(e.Outcome, "busy") {
			t.Errorf("a change during the edit: %s %d, busy %v", e.Outcome, e.Status, e.Busy)
		}
		time.Sleep(5 * time.Second)
		if r = c.get("/vms/102"); r.runstate() != "busy" || hw(r) != "1/1024" {
			t.Errorf("halfway: %s %s", r.runstate(), hw(r))
		}
		time.Sleep(5 * time.Second)
		r = c.get("/vms/102")
		c.want(r, 200, "stopped")
		if got := hw(r); got != "4/4096" {
			t.Errorf("hardware %s after the edit, want 4/4096", got)
		}
		// The hardware it has already: nothing to do, nothing busy.
		c.want(c.put("/vms/102", `{"hardware":{"cpus":4}}`), 200, "stopped")
		if e := lastEntry(t, s); e.Outcome != "noop" {
			t.Errorf("the same hardware again: %s", e.Outcome)
		}
		c.want(c.put("/vms/102", `{"hardware":{"cpus":64}}`), 422, "")
		c.want(c.put("/vms/102", `{"hardware":{"cpus":2},"runstate":"running"}`), 422, "")
		if r = c.get("/vms/102"); hw(r) != "4/4096" {
			t.Errorf("refused changes left hardware %s", hw(r))
		}
	})
}

// Jitter spreads each duration by up to ±Jitter, the same way for the same seed.
func TestJitter(t *testing.T) {
	doneAt := func(seed uint64) time.Duration {
		var d time.Duration
		synctest.Test(t, func(t *testing.T) {
			cfg := testConfig()
			cfg.Seed, cfg.Jitter = seed, 0.2
			cfg.Durations.Halt = 100 * time.Second
			s := sim.New(cfg)
			s.AddEnvironment(sim.EnvSpec{ID: "1", VMs: []sim.VMSpec{{ID: "101"}}})
			c := newClient(t, s)
			start := time.Now()
			c.want(c.put("/vms/101", `{"runstate":"halted"}`), 200, "busy")
			for {
				if rs, _ := s.Runstate("vm/101"); rs == "stopped" {
					break
				}
				time.Sleep(time.Second)
			}
			d = time.Since(start)
		})
		return d
	}
	seen := map[time.Duration]bool{}
	for seed := range uint64(6) {
		d := doneAt(seed)
		if d < 80*time.Second || d > 121*time.Second {
			t.Errorf("seed %d: a 100 s halt with 20%% jitter took %v", seed, d)
		}
		if again := doneAt(seed); again != d {
			t.Errorf("seed %d: %v, then %v", seed, d, again)
		}
		seen[d] = true
	}
	if len(seen) < 3 {
		t.Errorf("6 seeds gave only %d different durations", len(seen))
	}
}

// Errors present when an environment is added show as lingering errors.
func TestSeededErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sim.New(testConfig())
		s.AddEnvironment(sim.EnvSpec{ID: "1", Error: "old trouble", VMs: []sim.VMSpec{{ID: "101", Error: "VM trouble"}}})
		c := newClient(t, s)
		if r := c.get("/configurations/1"); r.obj["error"] != "old trouble; VM trouble" {
			t.Errorf("v1 error %v", r.obj["error"])
		}
		if r := c.get("/v2/configurations/1"); fmt.Sprint(r.obj["errors"]) != "[old trouble VM trouble]" {
			t.Errorf("v2 errors %v", r.obj["errors"])
		}
		if r := c.get("/vms/101"); r.obj["error"] != "VM trouble" {
			t.Errorf("VM error %v", r.obj["error"])
		}
	})
}

// The webhook sink takes a POST without credentials, answers 200, and keeps
// the body in the log; it is never busy or rate-limited, but faults reach it.
func TestWebhook(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		cfg.Rate, cfg.Burst = 1, 1
		s := sim.New(cfg)
		c := newClient(t, s)
		c.user = ""
		for i := range 3 {
			r := c.do(http.MethodPost, "/webhook/ops/chat", fmt.Sprintf(`{"text":"n%d"}`, i))
			c.want(r, 200, "")
			if r.obj["ok"] != true {
				t.Errorf("answer %s", r.raw)
			}
			e := lastEntry(t, s)
			if e.Outcome != "received" || e.Target != "webhook/ops/chat" || !e.Mutation || e.Body != fmt.Sprintf(`{"text":"n%d"}`, i) {
				t.Errorf("logged %+v", e)
			}
		}
		c.want(c.do(http.MethodPost, "/webhook", `{}`), 200, "")
		c.want(c.get("/webhook/ops/chat"), 405, "")

		s.Inject(sim.Fault{Target: "webhook/ops/chat", Status: 503})
		c.want(c.do(http.MethodPost, "/webhook/ops/chat", `{"text":"again"}`), 503, "")
		if e := lastEntry(t, s); e.Outcome != "fault" || e.Body != `{"text":"again"}` {
			t.Errorf("logged %+v", e)
		}
		// Not a Skytap path: /v2/webhook is not the sink.
		c.user = "alice"
		c.want(c.do(http.MethodPost, "/v2/webhook/x", `{}`), 404, "")
	})
}
