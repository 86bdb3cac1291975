package runbook_test

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/runbookhq/runbook/runbook"
	"github.com/runbookhq/runbook/sim"
)

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

// TestBusyAnswerSaysWhichConflictsAreBusy: retry.busy_answer, an expression
// on the answer, replaces the word search: a 409 whose code says "locked" is
// waited out and sent again, and a 422 that mentions busy but that the
// expression does not call busy fails at once.
func TestBusyAnswerSaysWhichConflictsAreBusy(t *testing.T) {
	const busyAnswer = "    retry: {busy_answer: 'response.body?.code == \"resource_locked\"'}\n"
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		srv.Inject(sim.Fault{Target: "vm/101", Status: 409, Body: `{"code":"resource_locked","error":"try later"}`})
		r := execute(t, srv, stopVM+busyAnswer)
		wantCode(t, r, 0)
		if muts := r.mutations(); len(muts) != 2 || muts[0].Status != 409 || muts[1].Outcome != "accepted" {
			t.Fatalf("changes %+v, want the 409, then an accepted re-send", muts)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		srv.Inject(sim.Fault{Target: "vm/101", Status: 422, Body: `{"code":"bad_request","error":"busy is not a runstate"}`})
		r := execute(t, srv, stopVM+busyAnswer)
		wantCode(t, r, runbook.ExitFailed, "422")
		if n := len(r.mutations()); n != 1 {
			t.Errorf("%d changes sent, want 1: the expression says it is not busy", n)
		}
	})
}
