package ui

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/runbookhq/runbook/runbook"
)

func TestLiveFrames(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	var b bytes.Buffer
	st := NewStyles(&b, os.Getenv) // not a terminal: no colour
	l := NewLive(&b, st, func() time.Time { return now }, func() int { return 80 }, "Restart", []string{"Read", "Suspend the environment", "Run"})
	ev := l.Observe
	ev(runbook.Event{Type: runbook.StepStarted, Step: 1})
	ev(runbook.Event{Type: runbook.Attempt, Step: 1})
	now = now.Add(200 * time.Millisecond)
	ev(runbook.Event{Type: runbook.StepDone, Step: 1, State: "runstate=running"})
	ev(runbook.Event{Type: runbook.StepStarted, Step: 2})
	ev(runbook.Event{Type: runbook.Probe, Step: 2, State: "runstate=busy"})
	ev(runbook.Event{Type: runbook.Waiting, Step: 2, Phase: "guard", Reason: "busy (runstate=busy)", Delay: 10 * time.Second, State: "runstate=busy"})
	now = now.Add(3 * time.Second)
	l.draw()
	frame := b.String()
	for _, want := range []string{
		"Restart  3.2s\n",
		"✓  1  Read  200ms · 1 attempt · runstate=running\n",
		"  2  Suspend the environment  3s · 1 check\n",
		"·  3  Run\n",
		" next check in 7s · busy (runstate=busy)\n",
	} {
		if !strings.Contains(frame, want) {
			t.Errorf("frame lacks %q:\n%s", want, frame)
		}
	}
	b.Reset()
	ev(runbook.Event{Type: runbook.Attempt, Step: 2})
	ev(runbook.Event{Type: runbook.Waiting, Step: 2, Phase: "change", Reason: "423 Retry-After 30s", Delay: 30 * time.Second})
	now = now.Add(time.Second)
	l.draw()
	if !strings.Contains(b.String(), "\x1b[5A\x1b[J") || !strings.Contains(b.String(), "sending again in 29s · 423 Retry-After 30s") {
		t.Errorf("second frame does not redraw over the first or lacks the 423 countdown:\n%q", b.String())
	}
	b.Reset()
	ev(runbook.Event{Type: runbook.StepFailed, Step: 2, Err: "gave up"})
	ev(runbook.Event{Type: runbook.RunDone, Err: "gave up"})
	l.draw()
	if !strings.Contains(b.String(), "✗  2  Suspend the environment") || !strings.Contains(b.String(), "✗ failed after 4.2s") || strings.Contains(b.String(), "sending again") {
		t.Errorf("final frame:\n%s", b.String())
	}
}

// TestLiveCleanupRows: cleanup steps get rows as they start, under the name
// of their list, numbered as the run numbers them.
func TestLiveCleanupRows(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	var b bytes.Buffer
	l := NewLive(&b, NewStyles(&b, os.Getenv), func() time.Time { return now }, func() int { return 80 }, "Resize", []string{"Stop", "Resize"})
	l.Observe(runbook.Event{Type: runbook.StepStarted, Step: 1})
	l.Observe(runbook.Event{Type: runbook.StepFailed, Step: 1, Err: "busy for too long"})
	l.Observe(runbook.Event{Type: runbook.CleanupStarted, Phase: "finally", Reason: "finally", Steps: 1})
	l.Observe(runbook.Event{Type: runbook.StepStarted, Step: 4, StepName: "Tell the channel"})
	l.Observe(runbook.Event{Type: runbook.StepDone, Step: 4})
	l.draw()
	frame := b.String()
	for _, want := range []string{"✗  1  Stop", "·  2  Resize\n", "finally:\n✓  4  Tell the channel"} {
		if !strings.Contains(frame, want) {
			t.Errorf("frame lacks %q:\n%s", want, frame)
		}
	}
}

func TestLiveCutsLinesToTheTerminal(t *testing.T) {
	var b bytes.Buffer
	now := time.Now()
	l := NewLive(&b, NewStyles(&b, os.Getenv), func() time.Time { return now }, func() int { return 30 }, "A runbook with a long name indeed", []string{"A step whose name is far too long for thirty columns"})
	l.Observe(runbook.Event{Type: runbook.StepStarted, Step: 1})
	l.draw()
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if n := len([]rune(line)); n > 30 {
			t.Errorf("line of %d runes wraps a 30-column terminal: %q", n, line)
		}
	}
}

// A fleet stopped by a signal: its row counts the stopped items apart from the
// failed ones and is marked stopped, not failed.
func TestLiveStoppedFleet(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	var b bytes.Buffer
	l := NewLive(&b, NewStyles(&b, os.Getenv), func() time.Time { return now }, func() int { return 120 }, "Fleet", []string{"Run each"})
	l.Observe(runbook.Event{Type: runbook.StepStarted, Step: 1})
	l.Observe(runbook.Event{Type: runbook.Progress, Step: 1, Total: 5})
	l.Observe(runbook.Event{Type: runbook.StepDone, Step: 1, ItemNo: 1, Item: "a"})
	l.Observe(runbook.Event{Type: runbook.StepFailed, Step: 1, ItemNo: 2, Item: "b", Err: "422"})
	l.Observe(runbook.Event{Type: runbook.StepFailed, Step: 1, ItemNo: 3, Item: "c", Interrupted: true, Err: "stopped by SIGINT"})
	l.Observe(runbook.Event{Type: runbook.StepFailed, Step: 1, Interrupted: true, Err: "stopped by SIGINT"})
	l.draw()
	if want := "■  1  Run each  0s · 1 done, 1 failed, 1 stopped, 0 running of 5 · stopped by SIGINT"; !strings.Contains(b.String(), want) {
		t.Errorf("frame lacks %q:\n%s", want, b.String())
	}
}

// TestLiveHoldsForAQuestion: when a confirm is asked, the frame is drawn and
// the view stops redrawing, so the question below it stays; the next event
// starts a new frame below the answer instead of moving back over it.
func TestLiveHoldsForAQuestion(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	var b bytes.Buffer
	l := NewLive(&b, NewStyles(&b, os.Getenv), func() time.Time { return now }, func() int { return 80 }, "Delete", []string{"Read", "Delete"})
	l.Observe(runbook.Event{Type: runbook.StepStarted, Step: 1})
	l.draw()
	b.Reset()
	l.Observe(runbook.Event{Type: runbook.Confirm, Step: 1, Phase: runbook.PhaseAsk, Reason: "Delete?"})
	if !strings.Contains(b.String(), "\x1b[3A") || !strings.Contains(b.String(), "1  Read") {
		t.Errorf("the frame is not drawn when the question is asked:\n%q", b.String())
	}
	if !l.held {
		t.Fatal("the view goes on redrawing over the question")
	}
	b.Reset()
	l.Observe(runbook.Event{Type: runbook.Probe, Step: 1})
	if l.held {
		t.Error("the view is still held after the answer")
	}
	l.draw()
	if strings.Contains(b.String(), "A\x1b[J") {
		t.Errorf("the first frame after the answer moves back over it:\n%q", b.String())
	}
}
