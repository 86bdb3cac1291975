package ui

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/runbookhq/runbook/runbook"
)

// Quiet prints nothing while all goes well, and on failure the failing step's
// whole story: every check, attempt and wait of that step, then the failure. It is
// what cron mails.
type Quiet struct {
	mu    sync.Mutex
	w     io.Writer
	story []string // the lines of the step in progress
	step  int
}

var _ runbook.Observer = (*Quiet)(nil)

// NewQuiet returns a Quiet observer writing to w.
func NewQuiet(w io.Writer) *Quiet { return &Quiet{w: w} }

// Observe keeps the current step's lines, and tells them when it fails.
func (q *Quiet) Observe(e runbook.Event) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if e.Step != q.step {
		q.story, q.step = q.story[:0], e.Step
	}
	if e.Type != runbook.RunStarted && e.Type != runbook.RunDone && e.Type != runbook.Request {
		if line := Line(e); line != "" {
			q.story = append(q.story, e.Time.UTC().Format(time.RFC3339)+" "+line)
		}
	}
	switch {
	case e.Type == runbook.StepFailed && e.ItemIndex < 0:
		fmt.Fprintf(q.w, "runbook: step %d %q failed; its story:\n%s\n", e.Step, e.StepName, strings.Join(q.story, "\n"))
		q.story = q.story[:0]
	case e.Type == runbook.StepDone && e.ItemIndex < 0, e.Type == runbook.StepSkipped:
		q.story = q.story[:0]
	}
}
