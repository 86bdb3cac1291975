package ui

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/runbookhq/runbook/runbook"
)

// Plain writes one timestamped line per event: for logs, cron mail and anything
// that is not a terminal. It never moves the cursor and never colours.
type Plain struct {
	mu      sync.Mutex
	w       io.Writer
	verbose bool
	fleet   map[int]bool // steps with many for_each items: summarized
	names   stepNames
}

// fleetSize is the number of for_each items from which a step is summarized (its
// progress, and its failed items) instead of told item by item.
const fleetSize = 20

var _ runbook.Observer = (*Plain)(nil)

// NewPlain returns a Plain observer writing to w; verbose adds a line for every
// request and its answer. What it writes is sanitized.
func NewPlain(w io.Writer, verbose bool) *Plain {
	return &Plain{w: Sanitized(w), verbose: verbose, names: stepNames{}}
}

// Observe writes the event's line.
func (p *Plain) Observe(e runbook.Event) {
	if e.Type == runbook.Request && !p.verbose {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if e.Type == runbook.Progress && e.Total > fleetSize {
		if p.fleet == nil {
			p.fleet = map[int]bool{}
		}
		p.fleet[e.Step] = true
	}
	// A big fleet's items are told only when they fail; a signal's stop is told
	// once, by the step.
	if p.fleet[e.Step] && e.ItemNo > 0 && (e.Type != runbook.StepFailed || e.Interrupted) {
		return
	}
	line := p.names.line(e)
	if line == "" {
		return
	}
	fmt.Fprintf(p.w, "%s %s\n", e.Time.UTC().Format(time.RFC3339), line)
	// -v: the bodies under their request, each line marked as curl -v does.
	for _, body := range []struct{ mark, text string }{{"> ", e.Sent}, {"< ", e.Received}} {
		if body.text != "" {
			fmt.Fprintf(p.w, "    %s%s\n", body.mark, strings.ReplaceAll(strings.TrimRight(body.text, "\n"), "\n", "\n    "+body.mark))
		}
	}
}

// stepNames remembers each step's own name (from its step_started event), so
// that an item's done or failed line names the item's own rendering of it (a
// for_each step's name that reads the item) when it differs.
type stepNames map[int]string

func (n stepNames) line(e runbook.Event) string {
	if e.Type == runbook.StepStarted && e.ItemNo == 0 {
		n[e.Step] = e.StepName
	}
	named := e.ItemNo > 0 && (e.Type == runbook.StepDone || e.Type == runbook.StepFailed) &&
		e.StepName != "" && e.StepName != n[e.Step]
	return line(e, named)
}

// Line renders an event as one line of text, "" for events not worth a line. It
// is not sanitized: its writer is.
func Line(e runbook.Event) string { return line(e, false) }

// line is Line; named puts the step's name after an item's label.
func line(e runbook.Event, named bool) string {
	var b strings.Builder
	if e.Step > 0 {
		if e.Path != "" {
			// A used runbook's step: where it is under the step that uses it.
			fmt.Fprintf(&b, "step %s", e.Path)
		} else {
			fmt.Fprintf(&b, "step %d", e.Step)
		}
		if e.ItemNo > 0 {
			fmt.Fprintf(&b, " [%d: %s]", e.ItemNo-1, e.Item)
		}
		if named {
			fmt.Fprintf(&b, " %s", e.StepName)
		}
		b.WriteString(": ")
	}
	d := runbook.FormatDuration
	switch e.Type {
	case runbook.RunStarted:
		fmt.Fprintf(&b, "run %q: %d step%s", e.Run, e.Steps, plural(e.Steps))
		if e.Reason != "" {
			fmt.Fprintf(&b, "; %s", e.Reason)
		}
	case runbook.CleanupStarted:
		what := map[string]string{"on_failure": "the run failed", "finally": "after every run"}[e.Reason]
		fmt.Fprintf(&b, "%s (%s): %d step%s", e.Reason, what, e.Steps, plural(e.Steps))
	case runbook.StepStarted:
		fmt.Fprintf(&b, "%s", e.StepName)
	case runbook.StepSkipped:
		fmt.Fprintf(&b, "skipped (%s)", e.Reason)
	case runbook.Probe:
		fmt.Fprintf(&b, "%s check %s -> %s", e.Phase, e.Target, e.Reason)
		if e.State != "" {
			fmt.Fprintf(&b, " (%s)", e.State)
		}
	case runbook.Attempt:
		fmt.Fprintf(&b, "attempt %d: %s -> %s", e.Attempt, e.Target, e.Reason)
		if e.State != "" {
			fmt.Fprintf(&b, " (%s)", e.State)
		}
	case runbook.Waiting:
		reason := strings.TrimRight(e.Reason, ".")
		switch e.Phase {
		case runbook.PhaseGuard, runbook.PhaseWait:
			fmt.Fprintf(&b, "%s, next check in %s", reason, d(e.Delay))
		case runbook.PhasePause:
			fmt.Fprintf(&b, "%s, pausing %s", reason, d(e.Delay))
		default:
			fmt.Fprintf(&b, "%s, sending again in %s", reason, d(e.Delay))
		}
	case runbook.Retrying:
		fmt.Fprintf(&b, "sending again: %s", e.Reason)
	case runbook.Progress:
		if e.Done+e.Failed+e.Stopped+e.Running == 0 {
			fmt.Fprintf(&b, "%d item%s", e.Total, plural(e.Total))
			break
		}
		b.WriteString(counts(e.Done, e.Failed, e.Stopped, e.Running, e.Total))
	case runbook.StepDone:
		fmt.Fprintf(&b, "done in %s", d(e.Elapsed))
		if e.Attempt > 0 {
			fmt.Fprintf(&b, ", %d attempt%s", e.Attempt, plural(e.Attempt))
		}
		if e.State != "" {
			fmt.Fprintf(&b, " (%s)", e.State)
		}
		if e.Reason != "" {
			fmt.Fprintf(&b, " (%s)", e.Reason)
		}
	case runbook.StepFailed:
		if e.Interrupted {
			fmt.Fprintf(&b, "interrupted after %s: %s", d(e.Elapsed), e.Err)
			break
		}
		fmt.Fprintf(&b, "FAILED after %s: %s", d(e.Elapsed), e.Err)
	case runbook.LogLine:
		b.WriteString(e.Reason)
	case runbook.Request:
		fmt.Fprintf(&b, "%s -> %s (%s)", e.Target, e.Reason, d(e.Duration))
	case runbook.Confirm:
		switch e.Phase {
		case runbook.PhaseGiven:
			b.WriteString("confirmed in advance (--confirm or --yes): ")
		case runbook.PhaseNeeded:
			b.WriteString("needs confirmation, and no one can be asked here: ")
		case runbook.PhaseNotAsked:
			b.WriteString("dry run: would ask for confirmation: ")
		default:
			b.WriteString("asks for confirmation: ")
		}
		b.WriteString(e.Reason)
	case runbook.DryRun:
		fmt.Fprintf(&b, "dry run: would %s %s", e.Phase, e.Target)
		if e.Reason != "" {
			fmt.Fprintf(&b, " (%s)", e.Reason)
		}
	case runbook.RunDone:
		if e.Err != "" && e.Interrupted {
			fmt.Fprintf(&b, "run stopped after %s", d(e.Elapsed))
		} else if e.Err != "" {
			fmt.Fprintf(&b, "run failed after %s", d(e.Elapsed))
		} else {
			fmt.Fprintf(&b, "run done in %s", d(e.Elapsed))
		}
		if e.Reason != "" {
			fmt.Fprintf(&b, "; %s", e.Reason)
		}
	default:
		return ""
	}
	// A message of many lines (a log step's, a server's) goes on indented, so
	// none of its lines can pass for an event of its own.
	return strings.ReplaceAll(b.String(), "\n", "\n    ")
}

// counts says how far a for_each step got; items a signal stopped in flight are
// counted only when there are any.
func counts(done, failed, stopped, running, total int) string {
	if stopped > 0 {
		return fmt.Sprintf("%d done, %d failed, %d stopped, %d running of %d", done, failed, stopped, running, total)
	}
	return fmt.Sprintf("%d done, %d failed, %d running of %d", done, failed, running, total)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
