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
// middle of its last "not yet" and its "seen"; an item not seen at the
// estimate raises it; one seen at a first check due at the estimate (the
// pipeline's case: seen is then a little after it) lowers it; one whose first
// check was due at another time and saw it says nothing.
func TestTypicalLearns(t *testing.T) {
	var ty typical
	s := &Step{}
	if got := ty.first(s); got != 0 {
		t.Fatalf("first %s before anything was learned, want 0", got)
	}
	ty.learn(s, 10*time.Second, false, 20*time.Second, 30*time.Second)
	if got := ty.first(s); got != 25*time.Second {
		t.Fatalf("after the first item %s, want 25s", got)
	}
	ty.learn(s, 40*time.Second, true, 0, 40*time.Second) // due after the estimate (an interval)
	if got := ty.first(s); got != 25*time.Second {
		t.Errorf("after an item first read past the estimate %s, want 25s", got)
	}
	ty.learn(s, 25*time.Second, false, 25*time.Second, 35*time.Second) // not yet at 25s
	up := ty.first(s)
	if up <= 25*time.Second {
		t.Errorf("after an item not shown at the estimate %s, want more than 25s", up)
	}
	ty.learn(s, up, true, 0, up+20*time.Millisecond) // seen at a check due at the estimate
	if got := ty.first(s); got >= up {
		t.Errorf("after an item seen at its first check %s, want less than %s", got, up)
	}
	if other := (&Step{}); ty.first(other) != 0 {
		t.Errorf("another step learned from this one's items")
	}
}

// One slow item does not hold the estimate up: after a first item that showed
// at about 60s, items that all show at 5s, each first read at the estimate
// and seeing it there, bring it down to where they show.
func TestTypicalComesDownAfterASlowItem(t *testing.T) {
	var ty typical
	s := &Step{}
	ty.learn(s, 10*time.Second, false, 50*time.Second, 70*time.Second)
	for range 100 {
		est := ty.first(s)
		if est > 5*time.Second {
			ty.learn(s, est, true, 0, est+20*time.Millisecond)
		} else {
			// Read at the estimate, before it showed; seen an interval later.
			ty.learn(s, est, false, est, est+time.Second)
		}
	}
	if got := ty.first(s); got > 7*time.Second || got < 3*time.Second {
		t.Errorf("after 100 items that showed at 5s the estimate is %s, want about 5s", got)
	}
}

// A kept read serves one guard, only while fresh, and not after a change sent
// under its check since it was sent, whenever its answer came.
func TestFreshReads(t *testing.T) {
	var f fresh
	s := &Step{Concurrency: 2}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	out := &Outcome{Status: 200}
	f.put(s, "GET a", "", f.generation("GET a"), out, at)
	if got := f.take(s, "GET a", "", at.Add(freshFor)); got != out {
		t.Errorf("a read sent %s ago not taken", freshFor)
	}
	if got := f.take(s, "GET a", "", at); got != nil {
		t.Errorf("a read served two guards")
	}
	f.put(s, "GET a", "", f.generation("GET a"), out, at)
	if got := f.take(s, "GET a", "", at.Add(freshFor+time.Millisecond)); got != nil {
		t.Errorf("a read sent longer than %s ago taken", freshFor)
	}
	f.put(s, "GET a", "", f.generation("GET a"), out, at)
	f.changing("GET a")()
	if got := f.take(s, "GET a", "", at); got != nil {
		t.Errorf("a read taken after a change")
	}
	// Sent before a change, answered after it: not kept.
	gen := f.generation("GET a")
	f.changing("GET a")()
	f.put(s, "GET a", "", gen, out, at)
	if got := f.take(s, "GET a", "", at); got != nil {
		t.Errorf("a read sent before a change taken")
	}
	// Sent while a change is on its way (it may reach the server first), and
	// answered before or after the change's answer: not kept.
	answered := f.changing("GET a")
	gen = f.generation("GET a")
	f.put(s, "GET a", "", gen, out, at)
	if got := f.take(s, "GET a", "", at); got != nil {
		t.Errorf("a read answered while a change was in flight taken")
	}
	answered()
	f.put(s, "GET a", "", gen, out, at)
	if got := f.take(s, "GET a", "", at); got != nil {
		t.Errorf("a read sent while a change was in flight taken after its answer")
	}
	// Another step's change under the same check counts too.
	f.put(s, "GET a", "", f.generation("GET a"), out, at)
	f.changing("GET a")()
	if f.take(s, "GET a", "", at) != nil {
		t.Errorf("a read taken after another step's change under its check")
	}
	if f.put(&Step{}, "GET a", "", f.generation("GET a"), out, at); f.take(s, "GET a", "", at) != nil {
		t.Errorf("another step's read taken")
	}
	if f.put(s, "GET a", "X-Tenant: 1", f.generation("GET a"), out, at); f.take(s, "GET a", "X-Tenant: 2", at) != nil {
		t.Errorf("a read made with other headers taken")
	}
	for i := range 10 {
		k := fmt.Sprint("GET ", i)
		f.put(s, k, "", f.generation(k), out, at.Add(time.Duration(i)))
	}
	if len(f.reads) > 4 || f.take(s, "GET 9", "", at) == nil {
		t.Errorf("%d reads kept for two slots, want the 4 newest", len(f.reads))
	}
}

// The first check's delay leaves at least half of what is left of wait_for:
// after a re-send, the wait counts from the first.
func TestTypicalFirstLeavesHalfOfTheWaitLeft(t *testing.T) {
	s := &Step{Wait: Wait{Timeout: 10 * time.Second}}
	r := &run{typical: &typical{}, clock: RealClock{}}
	r.typical.learn(s, 0, false, 4*time.Second, 4*time.Second)
	p := &pipeline{r: r, s: s, itemIndex: 0}
	if got := p.typicalFirst(sendInput{}); got != 4*time.Second {
		t.Errorf("first wait: %s, want the estimate, 4s", got)
	}
	p.waitStart = time.Now().Add(-8 * time.Second)
	if got := p.typicalFirst(sendInput{}); got > time.Second+10*time.Millisecond {
		t.Errorf("with 2s of wait_for left: %s, want at most 1s", got)
	}
}

// An estimate of 0 (changes that showed at once) rises at once when one does
// not.
func TestTypicalRisesFromNothing(t *testing.T) {
	var ty typical
	s := &Step{}
	ty.learn(s, 0, true, 0, 0)
	ty.learn(s, 0, false, 20*time.Second, 30*time.Second)
	if got := ty.first(s); got < 10*time.Second {
		t.Errorf("after an item not shown at 20s: %s, want at least 10s", got)
	}
}
