package runbook_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/runbookhq/runbook/runbook"
	"github.com/runbookhq/runbook/sim"
	"github.com/runbookhq/runbook/steps"
)

// bigAnswers answers every request with a JSON list of n small objects. The
// first object's id is 1 until a path has been asked for 3 times, then 0.
type bigAnswers struct {
	n    int
	mu   sync.Mutex
	seen map[string]int
}

func (b *bigAnswers) RoundTrip(r *http.Request) (*http.Response, error) {
	b.mu.Lock()
	b.seen[r.URL.Path]++
	first := 1
	if b.seen[r.URL.Path] > 3 {
		first = 0
	}
	b.mu.Unlock()
	var body bytes.Buffer
	fmt.Fprintf(&body, `[{"id":%d}`, first)
	for i := 1; i < b.n; i++ {
		fmt.Fprintf(&body, `,{"id":%d}`, 1000+i)
	}
	body.WriteByte(']')
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(&body), ContentLength: int64(body.Len()), Request: r}, nil
}

// Items whose answers would together pass the run's budget for decoded answers
// take turns: each holds its answer while it polls its check, and the next
// decodes its own once the first is done. Nothing deadlocks, though an item
// polling holds more answers than the budget allows.
func TestAnswersTakeTurnsWithinTheBudget(t *testing.T) {
	src := `version: 1
name: big
steps:
  - name: Read
    for_each: '[1, 2, 3, 4]'
    as: n
    concurrency: 4
    http: GET https://api.example.com/big/${{ n }}
    wait_for:
      until: state[0].id == 0
      interval: 5s
`
	run := func(budget int64) (time.Duration, []string) {
		defer runbook.SetAnswerBudget(budget)()
		var took time.Duration
		var waits []string
		synctest.Test(t, func(t *testing.T) {
			rb, err := runbook.Load("big.yaml", []byte(src), steps.Kinds(&http.Client{Transport: &bigAnswers{n: 2000, seen: map[string]int{}}}, nil))
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			start := time.Now()
			err = rb.Run(t.Context(), runbook.Options{Observer: runbook.ObserverFunc(func(e runbook.Event) {
				if e.Type == runbook.LogLine && strings.Contains(e.Reason, "waits for answers in flight") {
					mu.Lock()
					waits = append(waits, e.Reason)
					mu.Unlock()
				}
			})})
			if err != nil {
				t.Fatal(err)
			}
			took = time.Since(start)
		})
		return took, waits
	}
	// An answer of 2000 objects is some 700 KB decoded: one fits in 1 MiB, two
	// do not.
	free, waits := run(1 << 40)
	if len(waits) != 0 {
		t.Fatalf("with room for all, answers waited: %q", waits)
	}
	inTurn, waits := run(1 << 20)
	if inTurn < 3*free {
		t.Errorf("with room for one answer, the items took %s; all at once they take %s: want them in turn", inTurn, free)
	}
	if len(waits) != 3 {
		t.Errorf("%d waits told, want 3 (every item but the first):\n%s", len(waits), strings.Join(waits, "\n"))
	}
	for _, w := range waits {
		if !strings.Contains(w, "takes 703 KiB once decoded: it waits for answers in flight to let go of theirs (") || !strings.HasSuffix(w, " of the run's 1 MiB for answers are held)") {
			t.Errorf("a wait is told as %q", w)
		}
	}
}

// A step's result keeps its answer for the steps after it only when one of
// them may read it: what the journal holds, and later steps see, is the same.
func TestResultsKeepAnswersOnlyForLaterReaders(t *testing.T) {
	for _, c := range []struct {
		later string
		kept  bool
	}{
		{"  - log: ${{ steps.read.outputs.n }} VMs, status ${{ steps.read.response.status }}\n", false},
		{"  - log: ${{ steps.read.state.runstate }}\n", true},
		{"  - log: ${{ map(steps.each, .outputs.n) }}\n", false},
	} {
		src := "steps:\n  - id: read\n    http: GET /configurations/1\n    outputs:\n      n: len(state.vms)\n" +
			"  - id: each\n    for_each: '[1]'\n    http: GET /configurations/1\n    outputs:\n      n: len(state.vms)\n" + c.later
		file, dir := writeRunbook(t, src), t.TempDir()
		var logged []string
		synctest.Test(t, func(t *testing.T) {
			r := crashRun(t, quietSim(t, nil), file, dir, "r01", &crashRig{}, false)
			wantCode(t, r, 0)
			for _, e := range r.events {
				if e.Type == runbook.LogLine {
					logged = append(logged, e.Reason)
				}
			}
		})
		store, _ := runbook.OpenStore(dir, true, file, false)
		last, err := store.Last()
		if err != nil || last == nil {
			t.Fatal(err)
		}
		for _, rec := range last.Records {
			// A fleet's results are journaled per item.
			if rec.Type != "step_done" && rec.Type != "item_done" || rec.StepID == "" || rec.Result == nil {
				continue
			}
			state := rec.Result.(map[string]any)["state"]
			if (state != nil) != (c.kept && rec.StepID == "read") {
				t.Errorf("with %q, step %s kept state %v", strings.TrimSpace(c.later), rec.StepID, state)
			}
		}
		if len(logged) != 1 || strings.Contains(logged[0], "nil") || strings.Contains(logged[0], "<nil>") {
			t.Errorf("with %q, the later step logged %q", strings.TrimSpace(c.later), logged)
		}
	}
}

// A fleet's items keep only what later steps read, and a resume restores
// them as the journal has them: a later step sees the same values whether
// the fleet ran whole or was killed after two items and resumed. One that
// reads the outputs gets them from results without the answers; one that
// reads the bodies gets the bodies, journaled for it.
func TestFleetResultsReadLaterAreTheSameAfterAResume(t *testing.T) {
	for _, c := range []struct {
		later, want string
		kept        bool
	}{
		{`${{ map(steps.envs, .outputs.vms) }}`, `[["101","102"],["201"],["301"]]`, false},
		{`${{ map(steps.envs, .response.body.id) }}`, `["1","2","3"]`, true},
	} {
		src := `steps:
  - id: envs
    for_each: '["1", "2", "3"]'
    as: e
    concurrency: 1
    http: GET /configurations/${{ e }}
    outputs:
      vms: map(state.vms, .id)
  - log: '` + c.later + `'
`
		world := func(t *testing.T) *sim.Server {
			srv := quietSim(t, nil)
			srv.AddEnvironment(sim.EnvSpec{ID: "2", VMs: []sim.VMSpec{{ID: "201"}}})
			srv.AddEnvironment(sim.EnvSpec{ID: "3", VMs: []sim.VMSpec{{ID: "301"}}})
			return srv
		}
		logged := func(r result) []string {
			var out []string
			for _, e := range r.events {
				if e.Type == runbook.LogLine {
					out = append(out, e.Reason)
				}
			}
			return out
		}
		file, dir := writeRunbook(t, src), t.TempDir()
		var fresh, resumed []string
		var answers []bool // per done item of the stopped run: whether its journaled result has its answer
		synctest.Test(t, func(t *testing.T) {
			r := crashRun(t, world(t), file, dir, "r1", &crashRig{}, false)
			wantCode(t, r, 0)
			fresh = logged(r)
		})
		store, err := runbook.OpenStore(dir, true, file, false)
		if err != nil {
			t.Fatal(err)
		}
		whole, err := store.Last()
		if err != nil {
			t.Fatal(err)
		}
		kill, items := 0, 0
		for i, rec := range whole.Records {
			if rec.Type == "item_done" {
				if items++; items == 2 {
					kill = i + 1
				}
			}
		}
		synctest.Test(t, func(t *testing.T) {
			srv := world(t)
			wantCode(t, crashRun(t, srv, file, dir, "r2", &crashRig{afterRecord: kill}, false), runbook.ExitFailed)
			stopped, err := store.Last()
			if err != nil {
				t.Fatal(err)
			}
			for _, rec := range stopped.Records {
				if rec.Type == "item_done" {
					res := rec.Result.(map[string]any)
					body := res["response"].(map[string]any)["body"]
					answers = append(answers, res["state"] != nil && body != nil)
				}
			}
			r := crashRun(t, srv, file, dir, "r3", &crashRig{}, true)
			wantCode(t, r, 0)
			resumed = logged(r)
		})
		if len(fresh) != 1 || fresh[0] != c.want {
			t.Errorf("%s: a fresh run logged %q, want %q", c.later, fresh, c.want)
		}
		if !slices.Equal(resumed, fresh) {
			t.Errorf("%s: the resumed run logged %q, the fresh one %q", c.later, resumed, fresh)
		}
		if len(answers) != 2 || answers[0] != c.kept || answers[1] != c.kept {
			t.Errorf("%s: the stopped run's done items journaled their answers: %v, want %v for both", c.later, answers, c.kept)
		}
	}
}
