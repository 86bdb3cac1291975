package runbook

import (
	"slices"
	"testing"
)

// TestResumeLeavesOutWhatDoneItemsSent: of a fleet stopped in flight, a
// resume keeps the changes of the items not done, to judge them, and carries
// them into its own journal; a done item is not run again, so the change it
// sent is neither kept nor journaled again, only that it is done.
func TestResumeLeavesOutWhatDoneItemsSent(t *testing.T) {
	item := func(i int) *int { return &i }
	body := map[string]any{"runstate": "stopped"}
	recs := []Record{
		{Type: recRunStarted, RunID: "r1"},
		{Type: recStepStarted, Step: 1},
		{Type: recIntent, Step: 1, Item: item(0), ItemKey: "a.0", Attempt: 1, Before: body},
		{Type: recIntent, Step: 1, Item: item(1), ItemKey: "b.0", Attempt: 1, Before: body},
		{Type: recAnswer, Step: 1, Item: item(0), ItemKey: "a.0", Attempt: 1, Status: 200, Accepted: true, Response: map[string]any{"body": body}},
		{Type: recAnswer, Step: 1, Item: item(1), ItemKey: "b.0", Attempt: 1, Status: 200, Accepted: true, Response: map[string]any{"body": body}},
		{Type: recItemDone, Step: 1, Item: item(0), ItemKey: "a.0"},
	}
	res := newResume(recs[0], nil)
	res.fill(recs)
	if res.Next != 1 || len(res.items[1]) != 1 {
		t.Fatalf("next step %d, done items %v; want step 1 with item a done", res.Next, res.items)
	}
	if f := res.flights["b.0"]; len(res.flights) != 1 || f == nil || f.answer == nil {
		t.Errorf("in flight: %v, want item b's change and its answer only", res.flights)
	}
	var carried []string
	for _, r := range res.carry {
		carried = append(carried, r.Type+" "+r.ItemKey)
	}
	if want := []string{"intent b.0", "answer b.0", "item_done a.0"}; !slices.Equal(carried, want) {
		t.Errorf("a resume journals again %q, want %q", carried, want)
	}
}

// TestMainRecords: a resume continues the main steps, so what follows the
// run's cleanup, or a used runbook's, is not theirs.
func TestMainRecords(t *testing.T) {
	rec := func(typ, path string, step int) Record { return Record{Type: typ, Path: path, Step: step} }
	for _, c := range []struct {
		name string
		recs []Record
		want []int // the steps of the records kept
	}{
		{"no cleanup", []Record{rec(recStepDone, "", 1), rec(recItemDone, "", 2), rec(recStepDone, "2", 1)}, []int{1, 2, 1}},
		{"the run's cleanup", []Record{rec(recStepDone, "", 1), rec(recCleanup, "", 0), rec(recStepDone, "", 3)}, []int{1}},
		{"a used runbook's cleanup first", []Record{
			rec(recStepDone, "2", 1), rec(recCleanup, "2", 0), rec(recStepDone, "2", 4), rec(recStepDone, "2/1", 5),
			rec(recStepDone, "", 2), rec(recCleanup, "", 0), rec(recStepDone, "", 3)}, []int{1, 2}},
	} {
		var got []int
		for _, r := range (&RunLog{Records: c.recs}).mainRecords() {
			got = append(got, r.Step)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: main records of steps %v, want %v", c.name, got, c.want)
		}
	}
}
