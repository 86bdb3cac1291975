package runbook

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"
)

// writeJournal writes recs as a journal file, as Journal.write lays them out.
func writeJournal(t *testing.T, path string, recs []Record) {
	t.Helper()
	var content []byte
	for _, rec := range recs {
		line, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		content = append(append(content, line...), '\n')
	}
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestSummaryTellsWhatTheWholeJournalTells: a new run reads the last run's
// summary (its run-level records, without answers) instead of its whole
// journal. Whatever a run, history or the metrics read of it must be the
// same either way, and a resume handed the summary must find what it finds
// in the whole journal.
func TestSummaryTellsWhatTheWholeJournalTells(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 6, 0, 0, 0, time.UTC)
	item := func(i int) *int { return &i }
	body := map[string]any{"id": "1", "vms": []any{map[string]any{"id": "101", "runstate": "running"}}}
	result := map[string]any{"outputs": map[string]any{"vms": []any{"101"}}, "response": map[string]any{"status": 200.0}, "state": nil, "attempts": 1.0, "error": "", "skipped": false}
	unfinished := []Record{
		{Time: t0, RunID: "r1", Type: recRunStarted, File: "fleet.yaml", Hash: "h", Name: "fleet", PID: 42, Vars: map[string]string{"n": "2"}},
		{Time: t0, RunID: "r1", Type: recStepStarted, Step: 1, StepID: "read"},
		{Time: t0, RunID: "r1", Type: recStepDone, Step: 1, StepID: "read", Result: map[string]any{"outputs": map[string]any{"n": 2.0}, "state": body}},
		{Time: t0, RunID: "r1", Type: recStepStarted, Step: 2, StepID: "envs"},
		{Time: t0, RunID: "r1", Type: recItemDone, Step: 2, StepID: "envs", Item: item(0), ItemKey: "a.0", Result: result},
		{Time: t0, RunID: "r1", Type: recIntent, Step: 2, StepID: "envs", Item: item(1), ItemKey: "b.0", Attempt: 1, Target: "PUT https://h/configurations/2", Before: body, Key: "k"},
		{Time: t0, RunID: "r1", Type: recAnswer, Step: 2, StepID: "envs", Item: item(1), ItemKey: "b.0", Attempt: 1, Status: 200, Accepted: true, Response: map[string]any{"status": 200.0, "body": body}},
		{Time: t0, RunID: "r1", Type: recPause, Host: "h", Until: t0.Add(time.Hour)},
		{Time: t0, RunID: "r1", Type: recStepFailed, Step: 2, StepName: "Set", Error: "stopped"},
		{Time: t0, RunID: "r1", Type: recCleanup},
		{Time: t0, RunID: "r1", Type: recStepDone, Step: 4, Result: result},
		{Time: t0, RunID: "r1", Type: recRunDone, Step: 2, Outcome: "stopped", Error: "stopped"},
		{Time: t0, RunID: "r1", Type: recExit, Exit: item(130)},
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "000001-r1.jsonl")
	writeJournal(t, path, unfinished)

	whole, err := readJournal(path, false)
	if err != nil {
		t.Fatal(err)
	}
	summary, err := readJournal(path, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(whole.Records) != len(unfinished) {
		t.Fatalf("the whole journal reads %d records, want %d", len(whole.Records), len(unfinished))
	}
	var types []string
	for _, r := range summary.Records {
		types = append(types, r.Type)
		if r.Result != nil || r.Response != nil || r.Before != nil {
			t.Errorf("the summary's %s record keeps an answer: %+v", r.Type, r)
		}
	}
	if want := []string{recRunStarted, recStepDone, recPause, recStepFailed, recCleanup, recStepDone, recRunDone, recExit}; !slices.Equal(types, want) {
		t.Errorf("the summary holds %q, want %q", types, want)
	}

	id1, how1, step1, ok1 := whole.Unfinished()
	id2, how2, step2, ok2 := summary.Unfinished()
	if id1 != id2 || how1 != how2 || step1 != step2 || ok1 != ok2 || !ok1 || step1 != 2 {
		t.Errorf("unfinished: summary %q %q %d %v, whole journal %q %q %d %v", id2, how2, step2, ok2, id1, how1, step1, ok1)
	}
	if p1, p2 := whole.Pauses(t0), summary.Pauses(t0); !reflect.DeepEqual(p1, p2) || len(p1) != 1 {
		t.Errorf("pauses: summary %v, whole journal %v", p2, p1)
	}
	if p1, _ := pastRun(whole, 0); !reflect.DeepEqual(p1, mustPastRun(t, summary)) {
		t.Errorf("history: summary %+v, whole journal %+v", mustPastRun(t, summary), p1)
	}

	rb := &Runbook{File: "fleet.yaml", Hash: "h"}
	fromWhole, err := FindResume(whole, rb)
	if err != nil {
		t.Fatal(err)
	}
	fromSummary, err := FindResume(summary, rb)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromWhole, fromSummary) {
		t.Errorf("a resume from the summary differs from one from the whole journal:\n%+v\n%+v", fromSummary, fromWhole)
	}
	if fromSummary.Next != 2 || fromSummary.items[2]["a.0"].result == nil || fromSummary.flights["b.0"].answer.Response["body"] == nil {
		t.Errorf("a resume from the summary lacks the done item's result or the answer in flight: %+v", fromSummary)
	}

	// A run that ended well: its end is the last success either way.
	done := append(slices.Clone(unfinished[:5]), Record{Time: t0.Add(time.Minute), RunID: "r1", Type: recRunDone, Outcome: "ok"})
	file := filepath.Join(dir, "fleet.yaml")
	if err := os.WriteFile(file, []byte("steps: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	store, err := OpenStore(filepath.Join(dir, "state"), true, file, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(store.runsDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	writeJournal(t, filepath.Join(store.runsDir(), "000001-r1.jsonl"), done)
	if got := store.LastSuccess(); !got.Equal(t0.Add(time.Minute)) {
		t.Errorf("the last success read from the summary is %v, want %v", got, t0.Add(time.Minute))
	}
}

func mustPastRun(t *testing.T, log *RunLog) PastRun {
	t.Helper()
	p, ok := pastRun(log, 0)
	if !ok {
		t.Fatal("the run has no start")
	}
	return p
}
