package runbook

import (
	"fmt"
	"testing"
	"time"
)

func TestContained(t *testing.T) {
	env := map[string]any{"id": "1", "runstate": "running", "vms": []any{
		map[string]any{"id": "101", "runstate": "stopped", "error": false},
		map[string]any{"id": 102.0, "runstate": "running"},
		map[string]any{"id": "a b", "runstate": "running"},
		map[string]any{"id": "dup"}, map[string]any{"id": "dup"},
	}}
	const guard = "GET https://cloud.example.com/v2/configurations/1"
	for _, c := range []struct {
		guard, wait string
		want        any // the element's id, nil for none
	}{
		{guard, guard + "/vms/101", "101"},
		{guard + "/", guard + "/vms/101", "101"},
		{guard, guard + "/vms/102", 102.0},
		{guard, guard + "/vms/a%20b", "a b"},
		{guard, guard + "/vms/103", nil},                                          // not listed
		{guard, guard + "/vms/dup", nil},                                          // listed twice: which?
		{guard, guard + "/networks/101", nil},                                     // no such list
		{guard, guard + "/vms/101/interfaces", nil},                               // deeper
		{guard, guard + "/vms/101?fields=all", nil},                               // a query may change the representation
		{guard + "?x=1", guard + "?x=1/vms/101", nil},                             // likewise
		{guard, "GET https://other.example.com/v2/configurations/1/vms/101", nil}, // another host
		{guard, "PUT https://cloud.example.com/v2/configurations/1/vms/101", nil}, // not a read
		{"GET https://cloud.example.com/v2/configurations/10", guard + "/vms/101", nil},
	} {
		got := contained(c.guard, c.wait, env)
		switch {
		case c.want == nil && got != nil:
			t.Errorf("%s in %s: found %v, want none", c.wait, c.guard, got)
		case c.want != nil && (got == nil || got["id"] != c.want):
			t.Errorf("%s in %s: found %v, want the element %v", c.wait, c.guard, got, c.want)
		}
	}
	if got := contained(guard, guard+"/vms/101", "not an object"); got != nil {
		t.Errorf("found %v in a text answer", got)
	}
}

// The estimate moves toward when changes show: the first item sets it to the
// middle of its last "not yet" and its "seen"; an item seen only after the
// estimate raises it, one seen before lowers it, one whose change showed
// around it leaves it.
func TestTypicalLearns(t *testing.T) {
	var ty typical
	s := &Step{}
	if got := ty.first(s); got != 0 {
		t.Fatalf("first %s before anything was learned, want 0", got)
	}
	ty.learn(s, 20*time.Second, 30*time.Second)
	if got := ty.first(s); got != 25*time.Second {
		t.Fatalf("after the first item %s, want 25s", got)
	}
	ty.learn(s, 20*time.Second, 30*time.Second) // showed around 25s: no news
	if got := ty.first(s); got != 25*time.Second {
		t.Errorf("after an item that showed around it %s, want 25s", got)
	}
	ty.learn(s, 30*time.Second, 40*time.Second) // not yet at 30s
	up := ty.first(s)
	if up <= 25*time.Second {
		t.Errorf("after an item not shown at 30s %s, want more than 25s", up)
	}
	ty.learn(s, 0, 10*time.Second) // seen at its first check, at 10s
	if got := ty.first(s); got >= up {
		t.Errorf("after an item seen at 10s %s, want less than %s", got, up)
	}
	for range 200 {
		ty.learn(s, 30*time.Second, 40*time.Second)
	}
	if got := ty.first(s); got < 30*time.Second || got > 45*time.Second {
		t.Errorf("after 200 items that showed between 30s and 40s %s, want about 30s to 40s", got)
	}
	if other := (&Step{}); ty.first(other) != 0 {
		t.Errorf("another step learned from this one's items")
	}
}

// A kept read serves one guard, only while fresh, and not after a change.
func TestFreshReads(t *testing.T) {
	var f fresh
	s := &Step{Concurrency: 2}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	out := &Outcome{Status: 200}
	f.put(s, "GET a", out, at)
	if got := f.take(s, "GET a", at.Add(freshFor)); got != out {
		t.Errorf("a read %s old not taken", freshFor)
	}
	if got := f.take(s, "GET a", at); got != nil {
		t.Errorf("a read served two guards")
	}
	f.put(s, "GET a", out, at)
	if got := f.take(s, "GET a", at.Add(freshFor+time.Millisecond)); got != nil {
		t.Errorf("a read older than %s taken", freshFor)
	}
	f.put(s, "GET a", out, at)
	f.forget(s, "GET a")
	if got := f.take(s, "GET a", at); got != nil {
		t.Errorf("a read taken after a change")
	}
	if f.put(&Step{}, "GET a", out, at); f.take(s, "GET a", at) != nil {
		t.Errorf("another step's read taken")
	}
	for i := range 10 {
		f.put(s, fmt.Sprint("GET ", i), out, at.Add(time.Duration(i)))
	}
	if len(f.reads) > 4 || f.take(s, "GET 9", at) == nil {
		t.Errorf("%d reads kept for two slots, want the 4 newest", len(f.reads))
	}
}
