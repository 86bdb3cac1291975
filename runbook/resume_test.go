package runbook_test

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/runbookhq/runbook/runbook"
	"github.com/runbookhq/runbook/sim"
)

func postsByName(log []sim.Entry) map[string]int {
	out := map[string]int{}
	for _, e := range log {
		if e.Method == "POST" && e.Outcome == "accepted" {
			i := strings.Index(e.Body, `"name":"`)
			name := e.Body[i+8:]
			name = name[:strings.Index(name, `"`)]
			out[name]++
		}
	}
	return out
}

// TestResumedFleetKnowsItemsByValue: a fleet's done items are known by what
// they are, not where: the list comes from a read whose answer was too large
// to journal, so the resume reads it again, and a list that changed in between
// does not make it skip an item never sent, nor send again a POST made.
func TestResumedFleetKnowsItemsByValue(t *testing.T) {
	src := `steps:
  - id: list
    http: GET /configurations/1
  - name: Create one per name
    for_each: steps.list.state.names
    as: n
    concurrency: 1
    http: {method: POST, url: /configurations, json: {template_id: "7", name: "${{ n }}"}}
    guard: false
    wait_for: false
`
	file := writeRunbook(t, src)
	dir := t.TempDir()
	blob := strings.Repeat("x", 1<<20+10)
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		srv.AddTemplate(sim.TemplateSpec{ID: "7", VMs: []sim.VMSpec{{ID: "70"}}})
		srv.Inject(sim.Fault{Target: "env/1", Method: "GET", Status: 200, Body: `{"names":["a","b","c"],"blob":"` + blob + `"}`})
		// Records: 1 run_started, 2 step_started, 3 step_done, 4 step_started, 5 intent a, 6 answer a, 7 item_done a
		crashRun(t, srv, file, dir, "r01", &crashRig{afterRecord: 7}, false)
		// The list has changed when the resume re-reads it (a new name first).
		srv.Inject(sim.Fault{Target: "env/1", Method: "GET", Status: 200, Body: `{"names":["z","a","b","c"],"blob":"` + blob + `"}`})
		r := crashRun(t, srv, file, dir, "r02", &crashRig{}, true)
		wantCode(t, r, 0)
		got := postsByName(srv.Log())
		if got["a"] > 1 {
			t.Errorf("POST for %q made %d times", "a", got["a"])
		}
		if got["z"] == 0 {
			t.Errorf("item %q was never sent, but the resume took it for done", "z")
		}
	})
}

// TestFleetItemsCutByTheRunDeadlineAreNotDone: with continue_on_error, an
// item's failure counts as done, but not when the run's own deadline cut it:
// the resume runs it.
func TestFleetItemsCutByTheRunDeadlineAreNotDone(t *testing.T) {
	src := `steps:
  - name: Run each VM
    for_each: '["101", "102"]'
    as: vm
    concurrency: 2
    continue_on_error: true
    http: {method: PUT, url: "/configurations/1/vms/${{ vm }}", json: {runstate: running}}
    guard: {check: GET /configurations/1}
    wait_for: state.runstate == "running"
`
	file := writeRunbook(t, src)
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		srv := sim.New(sim.Config{Seed: 1, Rate: -1, Jitter: -1, MaxConcurrentOps: -1})
		srv.AddEnvironment(sim.EnvSpec{ID: "1", VMs: []sim.VMSpec{{ID: "101", Runstate: "stopped"}, {ID: "102", Runstate: "stopped"}}})
		srv.AddTemplate(sim.TemplateSpec{ID: "7", VMs: []sim.VMSpec{{ID: "70"}}})
		// The guard's reads hang until the run's deadline.
		srv.Inject(sim.Fault{Target: "env/1", Method: "GET", Delay: time.Hour, Times: 2})
		r := crashRunWith(t, srv, file, dir, "r01", &crashRig{}, false, func(o *runbook.Options) { o.Timeout = time.Minute })
		wantCode(t, r, runbook.ExitDeadline)
		r = crashRun(t, srv, file, dir, "r02", &crashRig{}, true)
		wantCode(t, r, 0)
		puts := 0
		for _, e := range srv.Log() {
			if e.Method == "PUT" {
				puts++
			}
		}
		for _, vm := range []string{"vm/101", "vm/102"} {
			if got, _ := srv.Runstate(vm); got != "running" {
				t.Errorf("resume exit %d, but %s is %s (%d PUTs sent in all)", r.code(), vm, got, puts)
			}
		}
	})
}

// TestSecretAsANumberKeepsTheJournalReadable: the journal is redacted field by
// field, not as text: a secret that is also a number in an answer or in the
// state before a change (a numeric account id used as the username) is hidden
// without breaking the line, so a resume still knows the POST was made.
func TestSecretAsANumberKeepsTheJournalReadable(t *testing.T) {
	for name, c := range map[string]struct {
		create string
		fault  sim.Fault
	}{
		"in the answer": {
			create: "    guard: false\n    wait_for: false\n",
			fault:  sim.Fault{Target: "*", Method: "POST", Status: 201, Body: `{"id":"555","owner_account":4567123}`},
		},
		"in before": {
			create: "    guard: {check: GET /templates/7}\n    wait_for: {check: GET /templates/7, until: state.owner_account == 4567123}\n",
			fault:  sim.Fault{Target: "template/7", Method: "GET", Status: 200, Times: -1, Body: `{"id":"7","owner_account":4567123}`},
		},
	} {
		t.Run(name, func(t *testing.T) {
			src := "vars: {go: \"no\"}\nsteps:\n  - id: create\n    http: {method: POST, url: /configurations, json: {template_id: \"7\", name: made}}\n" +
				c.create + "  - assert: vars.go == \"yes\"\n    message: stop here\n"
			file, dir := writeRunbook(t, src), t.TempDir()
			synctest.Test(t, func(t *testing.T) {
				srv := quietSim(t, nil)
				srv.AddTemplate(sim.TemplateSpec{ID: "7", VMs: []sim.VMSpec{{ID: "70"}}})
				srv.Inject(c.fault)
				numericUser := func(o *runbook.Options) { o.Env = map[string]string{"USER": "4567123", "TOKEN": "secret-token"} }
				r := crashRunWith(t, srv, file, dir, "r01", &crashRig{}, false, numericUser)
				wantCode(t, r, runbook.ExitFailed, "stop here")
				r = crashRunWith(t, srv, file, dir, "r02", &crashRig{}, true, func(o *runbook.Options) {
					numericUser(o)
					o.Vars = map[string]string{"go": "yes"}
				})
				wantCode(t, r, 0)
				posts := 0
				for _, e := range srv.Log() {
					if e.Method == "POST" {
						posts++
					}
				}
				if posts != 1 {
					t.Errorf("the POST was sent %d times", posts)
				}
			})
		})
	}
}

// TestAmbiguousCreateWithACheckOfItsAnswer: a POST answered 5xx may have taken
// effect; its check reads the answer, which a failed one cannot give: it is
// refused as ambiguous, not read from the error body.
func TestAmbiguousCreateWithACheckOfItsAnswer(t *testing.T) {
	src := `steps:
  - id: create
    name: Create
    http: {method: POST, url: /configurations, json: {template_id: "7", name: made}}
    guard: false
    wait_for:
      check: GET /configurations/${{ response.body.id }}
      until: state.runstate == "running"
`
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		srv.AddTemplate(sim.TemplateSpec{ID: "7", VMs: []sim.VMSpec{{ID: "70"}}})
		srv.Inject(sim.Fault{Target: "*", Method: "POST", Status: 503, Body: `{"error":"backend timeout"}`})
		r := execute(t, srv, src)
		wantCode(t, r, runbook.ExitFailed, "the POST may have taken effect")
		if n := len(r.mutations()); n != 1 {
			t.Errorf("%d POSTs, want 1", n)
		}
	})
}

// TestInterruptedCommandIsNotRunAgain: a command marked not idempotent,
// stopped by a signal while it runs, may have done its work: a resume does not
// run it again.
func TestInterruptedCommandIsNotRunAgain(t *testing.T) {
	out := t.TempDir() + "/ran.txt"
	src := fmt.Sprintf(`steps:
  - name: Append
    shell: "echo ran >> %s; sleep 2"
    retry: {idempotent: false}
`, out)
	file := writeRunbook(t, src)
	dir := t.TempDir()
	srv := quietSim(t, nil)
	rig := &crashRig{}
	r := crashRunWith(t, srv, file, dir, "r01", rig, false, func(*runbook.Options) {
		time.AfterFunc(500*time.Millisecond, func() { rig.cancel(&runbook.Stopped{Signal: "SIGINT", Code: 130}) })
	})
	wantCode(t, r, runbook.ExitSIGINT)
	r = crashRun(t, srv, file, dir, "r02", &crashRig{}, true)
	wantCode(t, r, runbook.ExitFailed, "may have sent")
	b, _ := os.ReadFile(out)
	if n := strings.Count(string(b), "ran"); n != 1 {
		t.Errorf("the command ran %d times", n)
	}
}

// TestSignalLetsASentChangeFinish: Ctrl-C while a create is in flight does not
// cut it off: its answer comes back and is journaled, and the resume waits for
// what it made instead of refusing a create it cannot judge.
func TestSignalLetsASentChangeFinish(t *testing.T) {
	file := writeRunbook(t, strings.Replace(createThenUse, "GUARD", "", 1))
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		srv.AddTemplate(sim.TemplateSpec{ID: "7", VMs: []sim.VMSpec{{ID: "70"}}})
		srv.Inject(sim.Fault{Target: "*", Method: "POST", Delay: 20 * time.Second})
		dir := t.TempDir()
		rig := &crashRig{}
		r := crashRunWith(t, srv, file, dir, "r01", rig, false, func(*runbook.Options) {
			time.AfterFunc(5*time.Second, func() { rig.cancel(&runbook.Stopped{Signal: "SIGINT", Code: runbook.ExitSIGINT}) })
		})
		wantCode(t, r, runbook.ExitSIGINT)
		if n := postCount(srv.Log()); n != 1 {
			t.Fatalf("%d environments created by the stopped run, want 1", n)
		}
		r = crashRun(t, srv, file, dir, "r02", &crashRig{}, true)
		wantCode(t, r, 0)
		if n := postCount(srv.Log()); n != 1 {
			t.Errorf("%d environments created, want 1", n)
		}
	})
}

// TestResumeMergeVars: a resume keeps the stopped run's --var values unless
// given again, and refuses to go on without a secret one, which was not
// journaled.
func TestResumeMergeVars(t *testing.T) {
	res := &runbook.Resume{RunID: "r1", Vars: map[string]string{"env": "1", "zone": "a"}, SecretVars: []string{"token"}}
	given := map[string]string{"zone": "b"}
	err := res.MergeVars(given)
	var ce *runbook.ConfigError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "needs --var token=... again") {
		t.Fatalf("without the secret var: %v, want a configuration error that asks for it", err)
	}
	given["token"] = "t"
	if err := res.MergeVars(given); err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"env": "1", "zone": "b", "token": "t"}; fmt.Sprint(given) != fmt.Sprint(want) {
		t.Errorf("vars %v, want %v", given, want)
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
