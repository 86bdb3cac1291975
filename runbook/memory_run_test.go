package runbook_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/runbookhq/runbook/runbook"
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
