package metrics

import (
	"strconv"
	"strings"
	"sync"

	"github.com/runbookhq/runbook/runbook"
)

// Counts are the counters of one run, by label value.
type Counts struct {
	Requests map[string]float64 // by status code
	Retries  map[string]float64 // by reason
	Steps    map[string]float64 // by result
}

// Tally counts a run's events as an observer does; it is safe for concurrent
// use, as for_each items run in parallel.
type Tally struct {
	mu     sync.Mutex
	counts Counts
	// The status of each step's (or item's) last attempt: a retry event says
	// why only in words, so its reason is the answer the step sent again after.
	last map[[2]int]int
}

// NewTally returns a Tally with every step result at 0, so a query for
// failed steps finds a series even when none failed.
func NewTally() *Tally {
	return &Tally{
		counts: Counts{Requests: map[string]float64{}, Retries: map[string]float64{},
			Steps: map[string]float64{"done": 0, "failed": 0, "stopped": 0, "skipped": 0}},
		last: map[[2]int]int{},
	}
}

// Observe counts one event: every HTTP request (a command's run is not one),
// every re-send of a change, and every step's (not item's) end.
func (t *Tally) Observe(e runbook.Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	key := [2]int{e.Step, e.ItemNo}
	switch e.Type {
	case runbook.Request:
		if !strings.Contains(e.Target, "://") {
			return
		}
		code := "error"
		if e.Status > 0 {
			code = strconv.Itoa(e.Status)
		}
		t.counts.Requests[code]++
	case runbook.Attempt:
		t.last[key] = e.Status
	case runbook.Retrying:
		reason := "no_answer"
		switch s := t.last[key]; {
		case s >= 200 && s < 300:
			reason = "dropped"
		case s > 0:
			reason = strconv.Itoa(s)
		}
		t.counts.Retries[reason]++
	case runbook.StepDone, runbook.StepFailed, runbook.StepSkipped:
		if e.ItemNo > 0 || e.Path != "" {
			// An item's, or a used runbook's step's (uses:): the run's
			// steps are its top-level ones.
			return
		}
		result := "done"
		switch {
		case e.Type == runbook.StepSkipped:
			result = "skipped"
		case e.Type == runbook.StepFailed && e.Interrupted:
			result = "stopped"
		case e.Type == runbook.StepFailed:
			result = "failed"
		}
		t.counts.Steps[result]++
	}
}

// Counts returns a copy of the counts so far.
func (t *Tally) Counts() Counts {
	t.mu.Lock()
	defer t.mu.Unlock()
	cp := func(m map[string]float64) map[string]float64 {
		out := make(map[string]float64, len(m))
		for k, v := range m {
			out[k] = v
		}
		return out
	}
	return Counts{Requests: cp(t.counts.Requests), Retries: cp(t.counts.Retries), Steps: cp(t.counts.Steps)}
}
