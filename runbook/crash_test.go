package runbook_test

import (
	"context"
	"errors"
	"fmt"
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

var errCrash = errors.New("killed (the test's SIGKILL)")

// crashRig stops a run the way SIGKILL would, at a chosen point: just after
// its afterRecord-th journal record is synced, or just after its
// afterChange-th change has reached the server, before the answer comes back.
// From then on nothing of the run reaches the server or the journal's file.
// Zero points: the run is not stopped, and the rig counts its records and
// changes.
type crashRig struct {
	afterRecord, afterChange int
	// afterLine, when set, kills once the record it is true of is synced.
	afterLine func(line []byte) bool
	lineSeen  bool

	mu               sync.Mutex
	records, changes int
	dead             bool
	lostAnswer       int // the server's sequence number of the answer the kill lost
	cancel           context.CancelCauseFunc
}

func (c *crashRig) kill() {
	c.dead = true
	c.cancel(errCrash)
}

// transport stands between the run and the server.
func (c *crashRig) transport(srv *sim.Server) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		c.mu.Lock()
		if c.dead {
			c.mu.Unlock()
			return nil, errCrash
		}
		change := req.Method != http.MethodGet
		if change {
			c.changes++
		}
		last := change && c.changes == c.afterChange
		c.mu.Unlock()
		resp, err := srv.Transport().RoundTrip(req)
		if !last {
			return resp, err
		}
		if resp != nil {
			resp.Body.Close()
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if log := srv.Log(); len(log) > 0 {
			c.lostAnswer = log[len(log)-1].Seq
		}
		c.kill()
		return nil, errCrash
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// crashFile stands between a journal and its file.
type crashFile struct {
	rig *crashRig
	f   runbook.SyncFile
}

func (c crashFile) Write(p []byte) (int, error) {
	c.rig.mu.Lock()
	defer c.rig.mu.Unlock()
	if c.rig.dead {
		return 0, errCrash
	}
	if c.rig.afterLine != nil && c.rig.afterLine(p) {
		c.rig.lineSeen = true
	}
	return c.f.Write(p)
}

func (c crashFile) Sync() error {
	c.rig.mu.Lock()
	defer c.rig.mu.Unlock()
	if c.rig.dead {
		return errCrash
	}
	err := c.f.Sync()
	c.rig.records++
	if c.rig.records == c.rig.afterRecord || c.rig.lineSeen {
		c.rig.kill()
	}
	return err
}

func (c crashFile) Close() error { return c.f.Close() }

// crashRun is one run of a runbook file as the command line makes it: its
// store's lock left aside, the last run read for a resume and for pauses, a
// journal of its own behind rig. It must be called inside a synctest bubble.
func crashRun(t *testing.T, srv *sim.Server, file, stateDir, runID string, rig *crashRig, resume bool) result {
	t.Helper()
	return crashRunWith(t, srv, file, stateDir, runID, rig, resume, nil)
}

// crashRunWith is crashRun with the options changed by tune just before the run.
func crashRunWith(t *testing.T, srv *sim.Server, file, stateDir, runID string, rig *crashRig, resume bool, tune func(*runbook.Options)) result {
	t.Helper()
	return crashRunVia(t, rig.transport(srv), file, stateDir, runID, rig, resume, tune)
}

// crashRunVia is crashRunWith through rt, which stops passing requests on
// once rig is dead.
func crashRunVia(t *testing.T, rt http.RoundTripper, file, stateDir, runID string, rig *crashRig, resume bool, tune func(*runbook.Options)) result {
	t.Helper()
	client := &http.Client{Transport: rt}
	rb, err := runbook.LoadFile(file, steps.Kinds(client, nil))
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	store, err := runbook.OpenStore(stateDir, true, file, false)
	if err != nil {
		t.Fatal(err)
	}
	last, err := store.LastSummary()
	if err != nil {
		t.Fatal(err)
	}
	opt := runbook.Options{RunID: runID, Env: map[string]string{"USER": "u", "TOKEN": "secret-token"}, Pauses: last.Pauses(time.Now())}
	if resume {
		if opt.Resume, err = runbook.FindResume(last, rb); err != nil {
			return result{err: err}
		}
	}
	j, err := store.Create(runID)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	runbook.WrapJournalFile(j, func(f runbook.SyncFile) runbook.SyncFile { return crashFile{rig: rig, f: f} })
	var mu sync.Mutex
	res := result{start: time.Now()}
	opt.Journal = j
	opt.Observer = runbook.ObserverFunc(func(e runbook.Event) {
		mu.Lock()
		defer mu.Unlock()
		res.events = append(res.events, e)
	})
	ctx, cancel := context.WithCancelCause(t.Context())
	defer cancel(nil)
	rig.cancel = cancel
	if tune != nil {
		tune(&opt)
	}
	res.err = rb.Run(ctx, opt)
	res.end = time.Now()
	return res
}

// crashCase is a runbook, the world it runs in, and its goal.
type crashCase struct {
	name  string
	src   string // after the standard header
	setup func(srv *sim.Server)
	// goal says what is wrong with the world at the end of a run that exited 0.
	goal func(srv *sim.Server, log []sim.Entry) string
	// refuse says an exit 1 that refuses to re-send a change is honest here.
	refuse bool
	// files are the files the runbook uses, by path relative to it.
	files map[string]string
}

func postCount(log []sim.Entry) int {
	n := 0
	for _, e := range log {
		if e.Method == "POST" && e.Outcome == "accepted" {
			n++
		}
	}
	return n
}

func oneCreated(_ *sim.Server, log []sim.Entry) string {
	if n := postCount(log); n != 1 {
		return fmt.Sprintf("%d environments created, want 1", n)
	}
	return ""
}

func runstates(want string, targets ...string) func(*sim.Server, []sim.Entry) string {
	return func(srv *sim.Server, _ []sim.Entry) string {
		for _, t := range targets {
			if got, _ := srv.Runstate(t); got != want {
				return fmt.Sprintf("%s is %s, want %s", t, got, want)
			}
		}
		return ""
	}
}

var crashCases = []crashCase{{
	name: "POST whose wait compares with before",
	src: `steps:
  - name: Create
    http: {method: POST, url: /configurations, json: {template_id: "7", name: made}}
    wait_for:
      check: GET /configurations
      until: len(state) > len(before)
`,
	goal: oneCreated, refuse: true,
}, {
	name: "POST without a wait",
	src: `steps:
  - name: Create
    http: {method: POST, url: /configurations, json: {template_id: "7", name: made}}
    wait_for: false
`,
	goal: oneCreated, refuse: true,
}, {
	name: "guarded PUTs",
	src: `steps:
  - name: Suspend
    http: {method: PUT, url: /configurations/1, json: {runstate: suspended}}
    wait_for: state.runstate == "suspended"
  - name: Run again
    http: {method: PUT, url: /configurations/1, json: {runstate: running}}
    wait_for: state.runstate == "running"
`,
	goal: runstates("running", "env/1", "vm/101", "vm/102"),
}, {
	name: "a change in finally",
	src: `steps:
  - name: Suspend
    http: {method: PUT, url: /configurations/1, json: {runstate: suspended}}
    wait_for: state.runstate == "suspended"
finally:
  - name: Run again
    http: {method: PUT, url: /configurations/1, json: {runstate: running}}
    wait_for: state.runstate == "running"
`,
	goal: runstates("running", "env/1", "vm/101", "vm/102"),
}, {
	name: "for_each",
	src: `steps:
  - name: Run each VM
    for_each: '["101", "102", "103"]'
    as: vm
    concurrency: 2
    http: {method: PUT, url: "/configurations/1/vms/${{ vm }}", json: {runstate: running}}
    guard: {check: GET /configurations/1}
    wait_for: state.runstate == "running"
`,
	setup: func(srv *sim.Server) {
		srv.AddEnvironment(sim.EnvSpec{ID: "1", VMs: []sim.VMSpec{{ID: "101", Runstate: "stopped"}, {ID: "102", Runstate: "stopped"}, {ID: "103", Runstate: "stopped"}}})
	},
	goal: runstates("running", "vm/101", "vm/102", "vm/103"),
}, {
	name: "Retry-After",
	src: `steps:
  - name: Stop
    http: {method: PUT, url: /configurations/1/vms/101, json: {runstate: stopped}}
    wait_for: state.runstate == "stopped"
`,
	setup: func(srv *sim.Server) {
		srv.AddEnvironment(sim.EnvSpec{ID: "1", VMs: []sim.VMSpec{{ID: "101"}}})
		srv.Inject(sim.Fault{Target: "vm/101", Method: "PUT", Status: 423, RetryAfter: 40 * time.Second, Times: 2})
	},
	goal: runstates("stopped", "vm/101"),
}, {
	name: "for_each over a used runbook",
	src: `steps:
  - id: cycle
    for_each: '["101", "102", "103"]'
    as: vm
    concurrency: 2
    uses: lib/cycle.yaml
    with: {vm_id: "${{ vm }}"}
  - assert: map(steps.cycle, .outputs.runstate) == ["running", "running", "running"]
`,
	files: map[string]string{"lib/cycle.yaml": header + cycleLib},
	setup: func(srv *sim.Server) {
		srv.AddEnvironment(sim.EnvSpec{ID: "1", VMs: []sim.VMSpec{{ID: "101"}, {ID: "102"}, {ID: "103"}}})
	},
	goal: func(srv *sim.Server, log []sim.Entry) string {
		// Each VM stopped, then run, never stopped again once run: a used
		// runbook resumed where it stopped, not from its start. A change
		// is sent again only if it was in flight at a kill (at most two).
		for _, vm := range []string{"101", "102", "103"} {
			stops, runs := 0, 0
			for _, e := range log {
				if e.Method != "PUT" || !strings.HasSuffix(e.Path, "/vms/"+vm) || e.Outcome != "accepted" {
					continue
				}
				switch {
				case !strings.Contains(e.Body, "stopped"):
					runs++
				case runs > 0:
					return fmt.Sprintf("vm %s stopped again after it was run", vm)
				default:
					stops++
				}
			}
			if stops < 1 || runs < 1 || stops > 2 || runs > 2 {
				return fmt.Sprintf("vm %s stopped %d times and run %d times", vm, stops, runs)
			}
		}
		return runstates("running", "vm/101", "vm/102", "vm/103")(srv, log)
	},
}, {
	name: "POST inside a used runbook",
	src: `steps:
  - id: made
    uses: lib/create.yaml
    with: {template: "7"}
  - log: made ${{ steps.made.outputs.count }}
`,
	files: map[string]string{"lib/create.yaml": header + `vars:
  template: null
steps:
  - log: creating from ${{ vars.template }}
  - id: create
    name: Create
    http: {method: POST, url: /configurations, json: {template_id: "${{ vars.template }}", name: made}}
    wait_for:
      check: GET /configurations
      until: len(state) > len(before)
outputs:
  count: len(steps.create.state)
`},
	goal: oneCreated, refuse: true,
}}

// crashWorld makes the simulator a case runs against.
func crashWorld(t *testing.T, c crashCase) *sim.Server {
	var srv *sim.Server
	if c.setup != nil {
		srv = sim.New(sim.Config{Seed: 1, Rate: -1, Jitter: -1, MaxConcurrentOps: -1})
		c.setup(srv)
	} else {
		srv = quietSim(t, nil)
	}
	srv.AddTemplate(sim.TemplateSpec{ID: "7", VMs: []sim.VMSpec{{ID: "70"}}})
	return srv
}

// TestCrashAtEveryJournalPoint kills a run at each of its journal records and
// just after each change it sends reaches the server, then resumes it (the
// first resume is killed too, at one of its own records, in every other
// trial), and checks from the server's log: no POST made twice, the goal
// reached or an honest refusal (exit 1) of a change that may have been sent,
// no request before a Retry-After the client had been told of, and no message
// that says a change was made unless the server received it.
func TestCrashAtEveryJournalPoint(t *testing.T) {
	for _, c := range crashCases {
		t.Run(c.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "crash.yaml")
			if err := os.WriteFile(file, []byte(header+c.src), 0o600); err != nil {
				t.Fatal(err)
			}
			writeFiles(t, filepath.Dir(file), c.files)
			// An uninterrupted run counts the points.
			counter := &crashRig{}
			synctest.Test(t, func(t *testing.T) {
				srv := crashWorld(t, c)
				r := crashRun(t, srv, file, t.TempDir(), "r00", counter, false)
				wantCode(t, r, 0)
				if msg := c.goal(srv, srv.Log()); msg != "" {
					t.Fatalf("uninterrupted: %s", msg)
				}
			})
			var points []*crashRig
			for n := 1; n <= counter.records; n++ {
				points = append(points, &crashRig{afterRecord: n})
			}
			for k := 1; k <= counter.changes; k++ {
				points = append(points, &crashRig{afterChange: k})
			}
			refusals := 0
			for i, p := range points {
				what := fmt.Sprintf("killed after record %d", p.afterRecord)
				if p.afterChange > 0 {
					what = fmt.Sprintf("killed after change %d reached the server", p.afterChange)
				}
				synctest.Test(t, func(t *testing.T) {
					srv := crashWorld(t, c)
					dir := t.TempDir()
					rigs := []*crashRig{p}
					crashRun(t, srv, file, dir, "r01", rigs[0], false)
					var last result
					for n := 2; n <= 4; n++ {
						rig := &crashRig{}
						if n == 2 && i%2 == 1 {
							rig.afterRecord = 1 + i%5
						}
						rigs = append(rigs, rig)
						sent := len(srv.Log())
						last = crashRun(t, srv, file, dir, fmt.Sprintf("r%02d", n), rig, true)
						checkClaims(t, what, last, srv.Log()[:sent])
						if !rig.dead {
							break
						}
					}
					log := srv.Log()
					if n := postCount(log); n > 1 {
						t.Errorf("%s: the POST was made %d times", what, n)
					}
					checkPauses(t, what, log, rigs)
					switch code := last.code(); {
					case code == 0:
						if msg := c.goal(srv, log); msg != "" {
							t.Errorf("%s: exit 0, but %s", what, msg)
						}
					case code == runbook.ExitUsage && strings.Contains(last.err.Error(), "nothing to resume"):
						// Killed after its last record: it had finished.
						if msg := c.goal(srv, log); msg != "" {
							t.Errorf("%s: nothing to resume, but %s", what, msg)
						}
					case code == runbook.ExitFailed && c.refuse && strings.Contains(last.err.Error(), "may have sent"):
						refusals++
					default:
						t.Errorf("%s: the resume exited %d: %v", what, code, last.err)
					}
				})
			}
			t.Logf("%d kill points, %d honest refusals", len(points), refusals)
		})
	}
}

// checkClaims checks that every message of a resumed run that says the
// server accepted a change is borne out by what the server received before.
func checkClaims(t *testing.T, what string, r result, before []sim.Entry) {
	t.Helper()
	for _, e := range r.events {
		head, _, ok := strings.Cut(e.Reason, " was accepted")
		_, target, found := strings.Cut(head, "the stopped run's ")
		if e.Type != runbook.LogLine || !ok || !found {
			continue
		}
		method, url, _ := strings.Cut(target, " ")
		accepted := false
		for _, s := range before {
			if s.Method == method && strings.HasSuffix(url, s.Path) && s.Status/100 == 2 {
				accepted = true
			}
		}
		if !accepted {
			t.Errorf("%s: %q, but the server never accepted %s", what, e.Reason, target)
		}
	}
}

// checkPauses checks that nothing reached the server between an answer with
// Retry-After that the client received and the time it named.
func checkPauses(t *testing.T, what string, log []sim.Entry, rigs []*crashRig) {
	t.Helper()
	lost := map[int]bool{}
	for _, r := range rigs {
		lost[r.lostAnswer] = true
	}
	for _, e := range log {
		if e.RetryAt.IsZero() || lost[e.Seq] {
			continue
		}
		for _, later := range log {
			if later.Time.After(e.Answered) && later.Time.Before(e.RetryAt) {
				t.Errorf("%s: %s %s came %s before the Retry-After of #%d ended", what, later.Method, later.Path, e.RetryAt.Sub(later.Time), e.Seq)
			}
		}
	}
}
