package ui

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/runbookhq/runbook/runbook"
)

// Quiet prints nothing while all goes well, and on failure the failing step's
// whole story: every check, attempt and wait of that step (for a for_each step,
// of its failed items), then the failure. It is what cron mails.
type Quiet struct {
	mu     sync.Mutex
	w      io.Writer
	step   int
	story  []string         // the step's own lines
	items  map[int][]string // the lines of each item in flight
	failed []int            // items that failed, whose lines are kept
	told   bool             // a story was told: the run's end is told too
	clean  bool             // cleanup has begun: after a failure, its lines are told as they come
	names  stepNames
}

var _ runbook.Observer = (*Quiet)(nil)

// maxStories is how many failed items' stories a failure tells.
const maxStories = 3

// NewQuiet returns a Quiet observer writing to w. What it writes is sanitized.
func NewQuiet(w io.Writer) *Quiet {
	return &Quiet{w: Sanitized(w), items: map[int][]string{}, names: stepNames{}}
}

// Observe keeps the current step's lines, and tells them when it fails.
func (q *Quiet) Observe(e runbook.Event) {
	if e.Type == runbook.RunStarted || e.Type == runbook.Request {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if e.Type == runbook.RunDone {
		// After a failure that was continued, the mail must not end on "failed":
		// say that the run went on and how it ended. (A run that fails ends
		// with its error, printed by the caller.)
		if q.told && e.Err == "" {
			fmt.Fprintf(q.w, "runbook: %s\n", Line(e))
		}
		return
	}
	if e.Type == runbook.CleanupStarted && e.Path == "" {
		q.clean = true
	}
	if q.clean && q.told && e.ItemNo == 0 && e.Path == "" {
		// The mail of a failed run says what its cleanup did, not only
		// what it could not do.
		switch e.Type {
		case runbook.CleanupStarted, runbook.StepDone, runbook.StepSkipped, runbook.LogLine:
			fmt.Fprintf(q.w, "runbook: %s\n", q.names.line(e))
		}
	}
	if e.Step != q.step {
		q.reset(e.Step)
	}
	line := q.names.line(e)
	if line != "" {
		line = e.Time.UTC().Format(time.RFC3339) + " " + line
	}
	if e.ItemNo > 0 {
		if line != "" {
			q.items[e.ItemNo] = append(q.items[e.ItemNo], line)
		}
		switch {
		case e.Type == runbook.StepFailed && !e.Interrupted:
			// Stories of failed items only: one a signal stopped did not fail.
			q.failed = append(q.failed, e.ItemNo)
		case e.Type == runbook.StepFailed || e.Type == runbook.StepDone:
			delete(q.items, e.ItemNo)
		}
		return
	}
	if line != "" {
		q.story = append(q.story, line)
	}
	switch e.Type {
	case runbook.StepFailed:
		lines := elide(q.story[:max(len(q.story)-1, 0)])
		sort.Ints(q.failed)
		// A fleet's mail tells the first failed items' stories, not all of them.
		for n, i := range q.failed {
			if n == maxStories {
				more := len(q.failed) - maxStories
				lines = append(lines, fmt.Sprintf("(and %d more failed item%s)", more, plural(more)))
				break
			}
			lines = append(lines, elide(q.items[i])...)
		}
		lines = append(lines, q.story[len(q.story)-1])
		verb := "failed"
		if e.Interrupted {
			verb = "was stopped"
		}
		fmt.Fprintf(q.w, "runbook: step %d %q %s; its story:\n%s\n", e.Step, e.StepName, verb, strings.Join(lines, "\n"))
		q.told = true
		q.reset(e.Step)
	case runbook.StepDone, runbook.StepSkipped:
		q.reset(e.Step)
	}
}

// A story longer than storyMax lines (half an hour of checks every 10s) keeps
// its first storyHead and last storyTail lines: how it began, how it ended.
const storyMax, storyHead, storyTail = 60, 15, 30

func elide(lines []string) []string {
	if len(lines) <= storyMax {
		return append([]string(nil), lines...)
	}
	out := append([]string(nil), lines[:storyHead]...)
	out = append(out, fmt.Sprintf("... %d lines like these left out ...", len(lines)-storyHead-storyTail))
	return append(out, lines[len(lines)-storyTail:]...)
}

func (q *Quiet) reset(step int) {
	q.step, q.story, q.failed = step, q.story[:0], q.failed[:0]
	clear(q.items)
}
