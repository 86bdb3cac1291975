package runbook_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/runbookhq/runbook/runbook"
)

// journaled creates a run's journal in store holding recs (each given its
// run id), as a run would have written them; it returns its path.
func journaled(t *testing.T, store *runbook.Store, id string, recs ...runbook.Record) string {
	t.Helper()
	j, err := store.Create(id)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	f, err := os.OpenFile(j.Path(), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, r := range recs {
		r.RunID = id
		b, _ := json.Marshal(r)
		f.Write(append(b, '\n'))
	}
	return j.Path()
}

func historyStore(t *testing.T) (*runbook.Store, string, string) {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "rb.yaml")
	os.WriteFile(file, []byte("version: 1\nname: RB\nsteps: [{log: hi}]\n"), 0o600)
	state := filepath.Join(dir, "state")
	store, err := runbook.OpenStore(state, true, file, false)
	if err != nil {
		t.Fatal(err)
	}
	return store, state, file
}

func remaining(t *testing.T, state string) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(state, "runs", "*", "*.jsonl"))
	for i, f := range files {
		files[i] = filepath.Base(f)
	}
	return files
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func started(min int) runbook.Record {
	return runbook.Record{Type: "run_started", Time: t0.Add(time.Duration(min) * time.Minute), Name: "RB", File: "rb.yaml", PID: 1}
}

func TestPruneKeepsTheNewestRuns(t *testing.T) {
	store, state, _ := historyStore(t)
	for i := range 5 {
		journaled(t, store, "run"+string(rune('a'+i)), started(i))
	}
	removed, err := store.Prune(3, "")
	if err != nil || len(removed) != 2 {
		t.Fatalf("Prune(3) removed %v, %v; want the 2 oldest", removed, err)
	}
	got := remaining(t, state)
	want := []string{"000003-runc.jsonl", "000004-rund.jsonl", "000005-rune.jsonl"}
	if len(got) != 3 || got[0] != want[0] || got[2] != want[2] {
		t.Errorf("left %v, want %v", got, want)
	}
	// The next run is numbered after the newest, not after how many are left.
	if p := journaled(t, store, "runf", started(6)); filepath.Base(p) != "000006-runf.jsonl" {
		t.Errorf("next journal %s, want 000006-runf.jsonl", filepath.Base(p))
	}
}

func TestPruneNeverRemovesTheRunBeingResumed(t *testing.T) {
	store, state, _ := historyStore(t)
	var paths []string
	for i := range 4 {
		paths = append(paths, journaled(t, store, "run"+string(rune('a'+i)), started(i)))
	}
	// The resumed run is the oldest here (the newer ones never started a
	// step): kept whatever --keep-runs says.
	if _, err := store.Prune(1, paths[0]); err != nil {
		t.Fatal(err)
	}
	if got := remaining(t, state); len(got) != 2 || got[0] != "000001-runa.jsonl" || got[1] != "000004-rund.jsonl" {
		t.Errorf("left %v, want the resumed run and the newest", got)
	}
}

func TestPruneZeroKeepsAll(t *testing.T) {
	store, state, _ := historyStore(t)
	for i := range 3 {
		journaled(t, store, "run"+string(rune('a'+i)), started(i))
	}
	if removed, err := store.Prune(0, ""); err != nil || len(removed) != 0 {
		t.Fatalf("Prune(0) removed %v, %v", removed, err)
	}
	if got := remaining(t, state); len(got) != 3 {
		t.Errorf("left %v, want all 3", got)
	}
}

func TestHistoryTellsEachRun(t *testing.T) {
	store, state, file := historyStore(t)
	seventyFive := 75
	journaled(t, store, "ok1", started(0), runbook.Record{Type: "run_done", Time: t0.Add(90 * time.Second), Outcome: "ok"},
		runbook.Record{Type: "exit", Exit: new(int)})
	journaled(t, store, "busy2", started(10),
		runbook.Record{Type: "step_failed", Step: 2, StepName: "Run", Error: "423 Locked"},
		runbook.Record{Type: "run_done", Time: t0.Add(12 * time.Minute), Outcome: "failed", Step: 2, Error: "step 2 \"Run\": 423 Locked: password ***"},
		runbook.Record{Type: "exit", Exit: &seventyFive})
	journaled(t, store, "never") // stopped before its start was journaled: not a run
	resumed := started(20)
	resumed.ResumedFrom = "busy2"
	journaled(t, store, "cut3", resumed)

	runs, err := runbook.History(state, true, file)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 3 {
		t.Fatalf("%d runs, want 3: %+v", len(runs), runs)
	}
	if r := runs[0]; r.RunID != "ok1" || r.Result != "ok" || r.Duration() != 90*time.Second || r.ExitCode == nil || *r.ExitCode != 0 {
		t.Errorf("first run %+v", r)
	}
	if r := runs[1]; r.Result != "failed" || r.FailedStep != 2 || r.StepName != "Run" || *r.ExitCode != 75 || r.Error != "step 2 \"Run\": 423 Locked: password ***" {
		t.Errorf("second run %+v", r)
	}
	if r := runs[2]; r.Result != "cut off" || r.ResumedFrom != "busy2" || r.ExitCode != nil || r.Duration() != 0 {
		t.Errorf("third run %+v", r)
	}
	if all, _ := runbook.History(state, true, ""); len(all) != 3 {
		t.Errorf("every runbook's history has %d runs, want 3", len(all))
	}
	if got := store.LastSuccess(); !got.Equal(t0.Add(90 * time.Second)) {
		t.Errorf("LastSuccess %v, want the end of ok1", got)
	}
}

func TestHistoryOfAMissingStateDirCreatesNothing(t *testing.T) {
	state := filepath.Join(t.TempDir(), "none")
	runs, err := runbook.History(state, true, "")
	if err != nil || len(runs) != 0 {
		t.Fatalf("History = %v, %v; want no runs", runs, err)
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("History created %s", state)
	}
}
