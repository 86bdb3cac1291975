package runbook

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"unsafe"
)

// answerBudget is how much the answers that items in flight hold may take once
// decoded. A body's cap (max_body) bounds its bytes, not its decoded size: a
// 9 MB list of small objects is some 250 MB of maps.
var answerBudget int64 = 256 << 20

// memory is a run's budget for decoded answers. An answer that would pass it
// waits, in order of arrival, until items in flight let go of theirs; an item
// that already holds answers (a wait polling its check) goes before those that
// hold none, since it cannot let go before it is served. One larger than the
// whole budget goes when no item that could let go of memory holds any, so it
// runs alone rather than never. Waits are on channels, so they are durable for
// testing/synctest. The zero value is ready to use.
type memory struct {
	mu      sync.Mutex
	used    int64
	by      map[*pipeline]int64 // what each item holds
	queue   []*memWaiter
	stalled map[*pipeline]bool // items waiting for another item (at a gate)
}

type memWaiter struct {
	p     *pipeline
	n     int64
	ready chan struct{}
}

// acquire takes n bytes for p, waiting its turn; waiting is told how much is
// held when it must wait.
func (m *memory) acquire(ctx context.Context, p *pipeline, n int64, waiting func(used int64)) error {
	m.mu.Lock()
	if m.by == nil {
		m.by = map[*pipeline]int64{}
	}
	w := &memWaiter{p: p, n: n, ready: make(chan struct{})}
	at := len(m.queue)
	if m.by[p] > 0 {
		at = 0
		for at < len(m.queue) && m.by[m.queue[at].p] > 0 {
			at++
		}
	}
	m.queue = slices.Insert(m.queue, at, w)
	m.grant()
	used := m.used
	m.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	default:
	}
	waiting(used)
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		m.mu.Lock()
		defer m.mu.Unlock()
		select {
		case <-w.ready:
			m.take(p, -n)
		default:
			m.queue = slices.DeleteFunc(m.queue, func(x *memWaiter) bool { return x == w })
		}
		m.grant()
		return ctx.Err()
	}
}

// release gives back n bytes p held.
func (m *memory) release(p *pipeline, n int64) {
	if n == 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.take(p, -n)
	m.grant()
}

func (m *memory) take(p *pipeline, n int64) {
	m.used += n
	if m.by[p] += n; m.by[p] == 0 {
		delete(m.by, p)
	}
}

// grant lets waiters in, in line: the first goes when its answer fits, or when
// every other item holding memory waits too.
func (m *memory) grant() {
	for len(m.queue) > 0 {
		w := m.queue[0]
		if m.used+w.n > answerBudget && m.othersMayRelease(w.p) {
			return
		}
		// Deleted, not resliced: the line must not keep a served item's answers.
		m.queue = slices.Delete(m.queue, 0, 1)
		m.take(w.p, w.n)
		close(w.ready)
	}
}

// othersMayRelease says whether an item other than p holds memory and is not
// waiting, for more or for another item, so it may let go of some.
func (m *memory) othersMayRelease(p *pipeline) bool {
	for q := range m.by {
		if q != p && !m.stalled[q] && !slices.ContainsFunc(m.queue, func(w *memWaiter) bool { return w.p == q }) {
			return true
		}
	}
	return false
}

// stall marks p, while it waits for another item (at a gate held by an item
// that may itself wait for memory), as letting go of nothing, so the items
// waiting for its memory do not wait for it; the result ends the mark.
func (m *memory) stall(p *pipeline) func() {
	if len(p.holds) == 0 {
		return func() {}
	}
	set := func(on bool) {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.stalled == nil {
			m.stalled = map[*pipeline]bool{}
		}
		if on {
			m.stalled[p] = true
		} else {
			delete(m.stalled, p)
		}
		m.grant()
	}
	set(true)
	return func() { set(false) }
}

// hold is an answer decoded under the budget, known by the address of its
// decoded body, which an item keeps while it may still read it.
type hold struct {
	root uintptr
	n    int64
}

// decode builds an outcome's large body once the budget has room for it.
func (r *run) decode(ctx context.Context, p *pipeline, out *Outcome, t Target) error {
	if out.Decode == nil {
		return nil
	}
	p.settle()
	err := r.memory.acquire(ctx, p, out.Cost, func(used int64) {
		p.emit(Event{Type: LogLine, Reason: fmt.Sprintf("the answer to %s takes %s once decoded: it waits for answers in flight to let go of theirs (%s of the run's %s for answers are held)",
			t, fmtBytes(out.Cost), fmtBytes(used), fmtBytes(answerBudget))})
	})
	if err != nil {
		return err
	}
	out.Decode()
	p.holds = append(p.holds, hold{root: bodyRoot(out.Body), n: out.Cost})
	return nil
}

// rootHolds makes the answers of the pages read hold items, the list their
// items were gathered into: the pages' budget is let go with it.
func (p *pipeline) rootHolds(items []any) {
	root := bodyRoot(items)
	for i, h := range p.holds {
		for _, b := range p.pageBodies {
			if h.root == bodyRoot(b) {
				p.holds[i].root = root
			}
		}
	}
}

// settle gives back the budget of the answers p no longer holds: the state,
// response, before and pending read it keeps are what it may still read.
func (p *pipeline) settle() {
	if len(p.holds) == 0 {
		return
	}
	live := []uintptr{bodyRoot(p.before), bodyRoot(p.actionState), bodyRoot(p.scope["state"]), bodyRoot(p.scope["before"])}
	for _, resp := range []any{p.actionResponse, p.scope["response"]} {
		if m, ok := resp.(map[string]any); ok {
			live = append(live, bodyRoot(m["body"]))
		}
	}
	if p.reguard.from != nil {
		live = append(live, bodyRoot(p.reguard.from.Body))
	}
	for _, b := range p.pageBodies {
		live = append(live, bodyRoot(b))
	}
	var freed int64
	p.holds = slices.DeleteFunc(p.holds, func(h hold) bool {
		if slices.Contains(live, h.root) {
			return false
		}
		freed += h.n
		return true
	})
	p.r.memory.release(p, freed)
}

// releaseAll gives back everything p holds, when it ends: a step that keeps
// its answers for later steps keeps them as the runbook asks.
func (p *pipeline) releaseAll() {
	var n int64
	for _, h := range p.holds {
		n += h.n
	}
	p.holds = nil
	p.r.memory.release(p, n)
}

// bodyRoot is the address of a decoded body's data, which tells one answer
// from another; 0 for values too small to matter.
func bodyRoot(v any) uintptr {
	switch v := v.(type) {
	case map[string]any:
		return uintptr(reflect.ValueOf(v).UnsafePointer())
	case []any:
		return uintptr(unsafe.Pointer(unsafe.SliceData(v)))
	case string:
		return uintptr(unsafe.Pointer(unsafe.StringData(v)))
	}
	return 0
}

// fmtBytes prints a size the way operators read it: 330 MiB, 12 KiB.
func fmtBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}
