package ui

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/runbookhq/runbook/runbook"
)

func TestPlainLines(t *testing.T) {
	at := time.Date(2026, 11, 26, 13, 14, 15, 0, time.UTC)
	events := []runbook.Event{
		{Type: runbook.RunStarted, Run: "Restart", Steps: 2},
		{Type: runbook.StepStarted, Step: 1, StepName: "Suspend"},
		{Type: runbook.Probe, Step: 1, Phase: "guard", Target: "GET https://x/1", Reason: "200 OK", State: "runstate=busy"},
		{Type: runbook.Waiting, Step: 1, Phase: "guard", Reason: "busy (runstate=busy)", Delay: 10 * time.Second},
		{Type: runbook.Attempt, Step: 1, Attempt: 1, Target: "PUT https://x/1", Reason: "423 Retry-After 30s"},
		{Type: runbook.Waiting, Step: 1, Phase: "change", Reason: "423 Retry-After 30s", Delay: 30 * time.Second},
		{Type: runbook.Retrying, Step: 1, Reason: "the 30s wait has passed"},
		{Type: runbook.StepDone, Step: 2, ItemNo: 2, Item: "vm2", Attempt: 2, Elapsed: 75 * time.Second, State: "runstate=running"},
		{Type: runbook.StepFailed, Step: 2, Elapsed: 2 * time.Minute, Err: "deadline"},
		{Type: runbook.StepFailed, Step: 3, ItemNo: 1, Item: "vm1", Interrupted: true, Elapsed: time.Minute, Err: "stopped by SIGINT"},
		{Type: runbook.Progress, Step: 3, Total: 5, Done: 3, Stopped: 1},
		{Type: runbook.StepFailed, Step: 3, Interrupted: true, Elapsed: time.Minute, Err: "stopped by SIGINT: 3 of 5 items done, 1 stopped in flight, 1 not started"},
		{Type: runbook.RunDone, Elapsed: 3 * time.Minute, Err: "x"},
	}
	var b bytes.Buffer
	p := NewPlain(&b, false)
	for _, e := range events {
		e.Time = at
		p.Observe(e)
	}
	want := `2026-11-26T13:14:15Z run "Restart": 2 steps
2026-11-26T13:14:15Z step 1: Suspend
2026-11-26T13:14:15Z step 1: guard check GET https://x/1 -> 200 OK (runstate=busy)
2026-11-26T13:14:15Z step 1: busy (runstate=busy), next check in 10s
2026-11-26T13:14:15Z step 1: attempt 1: PUT https://x/1 -> 423 Retry-After 30s
2026-11-26T13:14:15Z step 1: 423 Retry-After 30s, sending again in 30s
2026-11-26T13:14:15Z step 1: sending again: the 30s wait has passed
2026-11-26T13:14:15Z step 2 [1: vm2]: done in 1m15s, 2 attempts (runstate=running)
2026-11-26T13:14:15Z step 2: FAILED after 2m: deadline
2026-11-26T13:14:15Z step 3 [0: vm1]: interrupted after 1m: stopped by SIGINT
2026-11-26T13:14:15Z step 3: 3 done, 0 failed, 1 stopped, 0 running of 5
2026-11-26T13:14:15Z step 3: interrupted after 1m: stopped by SIGINT: 3 of 5 items done, 1 stopped in flight, 1 not started
2026-11-26T13:14:15Z run failed after 3m
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

// Under -q a step stopped by a signal is told as stopped, not failed.
func TestQuietTellsAStopApart(t *testing.T) {
	var b bytes.Buffer
	q := NewQuiet(&b)
	q.Observe(runbook.Event{Type: runbook.StepStarted, Step: 1, StepName: "Wait"})
	// Stopped items are not told as failed, nor crowd out the one that failed.
	for i := range 4 {
		q.Observe(runbook.Event{Type: runbook.StepFailed, Step: 1, StepName: "Wait", ItemNo: i + 1, Item: "s", Interrupted: true, Err: "stopped by SIGTERM"})
	}
	q.Observe(runbook.Event{Type: runbook.StepFailed, Step: 1, StepName: "Wait", ItemNo: 10, Item: "vm9", Err: "422 Unprocessable Entity"})
	q.Observe(runbook.Event{Type: runbook.StepFailed, Step: 1, StepName: "Wait", Interrupted: true, Err: "stopped by SIGTERM"})
	got := b.String()
	if want := "runbook: step 1 \"Wait\" was stopped; its story:\n"; !strings.HasPrefix(got, want) {
		t.Errorf("got %q, want it to start %q", got, want)
	}
	if !strings.Contains(got, "[9: vm9]: FAILED after 0s: 422 Unprocessable Entity") || strings.Contains(got, "[0: s]") || strings.Contains(got, "more failed") {
		t.Errorf("the story should tell item 9's failure and no stopped item:\n%s", got)
	}
}

// A long story keeps its beginning and its end, and says how much it left out.
func TestQuietElidesALongStory(t *testing.T) {
	var b bytes.Buffer
	q := NewQuiet(&b)
	q.Observe(runbook.Event{Type: runbook.StepStarted, Step: 1, StepName: "Wait"})
	for i := range 200 {
		q.Observe(runbook.Event{Type: runbook.Probe, Step: 1, Phase: "guard", Target: fmt.Sprintf("GET /read/%d", i), Reason: "503"})
	}
	q.Observe(runbook.Event{Type: runbook.StepFailed, Step: 1, StepName: "Wait", Err: "step timeout 30m passed"})
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	// The header, 15 first lines (the step's start and 14 checks), the gap, 30 last checks, the failure.
	if len(lines) != 1+15+1+30+1 {
		t.Fatalf("%d lines:\n%s", len(lines), b.String())
	}
	for _, want := range []string{"GET /read/13 ", "... 156 lines like these left out ...", "GET /read/170 ", "GET /read/199 ", "FAILED after 0s: step timeout 30m passed"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("story lacks %q:\n%s", want, b.String())
		}
	}
	if strings.Contains(b.String(), "GET /read/14 ") || strings.Contains(b.String(), "GET /read/169 ") {
		t.Errorf("story keeps lines from the middle:\n%s", b.String())
	}
}

// A failure that was continued is followed by the run's end, so the mail does
// not end on "failed" when the run went on and finished.
func TestQuietTellsTheEndAfterAContinuedFailure(t *testing.T) {
	var b bytes.Buffer
	q := NewQuiet(&b)
	q.Observe(runbook.Event{Type: runbook.StepStarted, Step: 1, StepName: "Each"})
	q.Observe(runbook.Event{Type: runbook.StepFailed, Step: 1, StepName: "Each", Err: "1 of 3 items failed: 2: no"})
	q.Observe(runbook.Event{Type: runbook.StepStarted, Step: 2, StepName: "After"})
	q.Observe(runbook.Event{Type: runbook.StepDone, Step: 2, StepName: "After"})
	q.Observe(runbook.Event{Type: runbook.RunDone, Elapsed: time.Second, Reason: "1 step(s) failed and were continued: Each"})
	if want := "runbook: run done in 1s; 1 step(s) failed and were continued: Each\n"; !strings.HasSuffix(b.String(), want) {
		t.Errorf("got:\n%s\nwant it to end with %q", b.String(), want)
	}
	b.Reset()
	q = NewQuiet(&b)
	q.Observe(runbook.Event{Type: runbook.RunDone, Elapsed: time.Second})
	if b.Len() != 0 {
		t.Errorf("a run with nothing to tell printed %q", b.String())
	}
}

// TestConfirmLines: each way a confirm is decided is told on the step's line,
// and a multi-line text goes on indented.
func TestConfirmLines(t *testing.T) {
	for phase, want := range map[runbook.Phase]string{
		runbook.PhaseAsk:      "step 2: asks for confirmation: Delete 42?\n    (3 VMs)",
		runbook.PhaseGiven:    "step 2: confirmed in advance (--confirm or --yes): Delete 42?\n    (3 VMs)",
		runbook.PhaseNeeded:   "step 2: needs confirmation, and no one can be asked here: Delete 42?\n    (3 VMs)",
		runbook.PhaseNotAsked: "step 2: dry run: would ask for confirmation: Delete 42?\n    (3 VMs)",
	} {
		got := Line(runbook.Event{Type: runbook.Confirm, Step: 2, Phase: phase, Reason: "Delete 42?\n(3 VMs)", Target: "DELETE https://x/42"})
		if got != want {
			t.Errorf("%s: got %q, want %q", phase, got, want)
		}
	}
}
