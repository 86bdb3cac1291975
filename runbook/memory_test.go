package runbook

import (
	"context"
	"runtime"
	"testing"
	"testing/synctest"
	"weak"
)

// acquireAsync asks for n bytes for p in a goroutine; the channel gets the
// result once granted (or refused).
func acquireAsync(ctx context.Context, m *memory, p *pipeline, n int64) chan error {
	done := make(chan error, 1)
	go func() { done <- m.acquire(ctx, p, n, func(int64) {}) }()
	return done
}

func granted(t *testing.T, done chan error) bool {
	t.Helper()
	synctest.Wait()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("refused: %v", err)
		}
		return true
	default:
		return false
	}
}

// An answer that would pass the budget waits until an item in flight lets go
// of its own.
func TestMemoryWaitsItsTurn(t *testing.T) {
	defer SetAnswerBudget(256)()
	synctest.Test(t, func(t *testing.T) {
		var m memory
		a, b := &pipeline{}, &pipeline{}
		if !granted(t, acquireAsync(t.Context(), &m, a, 200)) {
			t.Fatal("the first answer waits with nothing held")
		}
		wait := acquireAsync(t.Context(), &m, b, 100)
		if granted(t, wait) {
			t.Fatal("200 + 100 bytes passed a budget of 256")
		}
		m.release(a, 200)
		if !granted(t, wait) {
			t.Fatal("still waiting once the first let go")
		}
		if m.used != 100 || m.by[b] != 100 || m.by[a] != 0 {
			t.Errorf("used %d, by %v", m.used, m.by)
		}
	})
}

// An answer larger than the whole budget goes alone: at once when nothing is
// held, else once the others let go; and the others then wait for it.
func TestMemoryTooLargeGoesAlone(t *testing.T) {
	defer SetAnswerBudget(256)()
	synctest.Test(t, func(t *testing.T) {
		var m memory
		a, b, c := &pipeline{}, &pipeline{}, &pipeline{}
		if !granted(t, acquireAsync(t.Context(), &m, a, 1000)) {
			t.Fatal("an answer larger than the budget waits with nothing held: it would never go")
		}
		small := acquireAsync(t.Context(), &m, b, 1)
		if granted(t, small) {
			t.Fatal("an answer went while one larger than the budget was held")
		}
		m.release(a, 1000)
		if !granted(t, small) {
			t.Fatal("still waiting once the large one let go")
		}
		large := acquireAsync(t.Context(), &m, c, 1000)
		if granted(t, large) {
			t.Fatal("a large answer went while another item held memory it may let go of")
		}
		m.release(b, 1)
		if !granted(t, large) {
			t.Fatal("a large answer waits with nothing else held")
		}
	})
}

// Items that hold memory and all wait for more do not wait for each other for
// ever: the first in line goes.
func TestMemoryHoldersWaitingForEachOtherGoInTurn(t *testing.T) {
	defer SetAnswerBudget(256)()
	synctest.Test(t, func(t *testing.T) {
		var m memory
		a, b := &pipeline{}, &pipeline{}
		granted(t, acquireAsync(t.Context(), &m, a, 200))
		granted(t, acquireAsync(t.Context(), &m, b, 50))
		moreA := acquireAsync(t.Context(), &m, a, 100)
		if granted(t, moreA) {
			t.Fatal("a went past the budget while b could still let go")
		}
		moreB := acquireAsync(t.Context(), &m, b, 100)
		if !granted(t, moreA) {
			t.Fatal("a and b wait for each other: a deadlock")
		}
		if granted(t, moreB) {
			t.Fatal("b went too, while a holds memory it may let go of")
		}
		m.release(a, 300)
		if !granted(t, moreB) {
			t.Fatal("b still waits once a let go")
		}
	})
}

// First come, first served: a small answer that would fit waits behind a large
// one that came first, so the large one is not starved.
func TestMemoryFirstComeFirstServed(t *testing.T) {
	defer SetAnswerBudget(256)()
	synctest.Test(t, func(t *testing.T) {
		var m memory
		a, b, c := &pipeline{}, &pipeline{}, &pipeline{}
		granted(t, acquireAsync(t.Context(), &m, a, 200))
		large := acquireAsync(t.Context(), &m, b, 100)
		synctest.Wait()
		small := acquireAsync(t.Context(), &m, c, 10)
		if granted(t, small) || granted(t, large) {
			t.Fatal("an answer went ahead of one that came first")
		}
		m.release(a, 200)
		if !granted(t, large) || !granted(t, small) {
			t.Fatal("waiters not served once room was made")
		}
	})
}

// A wait cut short by the deadline or a signal takes nothing, and leaves the
// line moving.
func TestMemoryWaitEndsWithTheContext(t *testing.T) {
	defer SetAnswerBudget(256)()
	synctest.Test(t, func(t *testing.T) {
		var m memory
		a, b, c := &pipeline{}, &pipeline{}, &pipeline{}
		granted(t, acquireAsync(t.Context(), &m, a, 200))
		ctx, cancel := context.WithCancel(t.Context())
		cut := acquireAsync(ctx, &m, b, 100)
		next := acquireAsync(t.Context(), &m, c, 50)
		synctest.Wait()
		cancel()
		synctest.Wait()
		if err := <-cut; err == nil {
			t.Fatal("a cancelled wait was granted")
		}
		if !granted(t, next) {
			t.Fatal("the next in line still waits behind a cancelled wait")
		}
		if m.used != 250 || len(m.queue) != 0 {
			t.Errorf("used %d, %d waiting", m.used, len(m.queue))
		}
	})
}

// A served item is not kept by the line: its answers are freed once it ends,
// while others still wait.
func TestMemoryLetsGoOfServedItems(t *testing.T) {
	defer SetAnswerBudget(256)()
	var m memory
	ctx := context.Background()
	x, a, b, c := &pipeline{}, &pipeline{}, &pipeline{}, &pipeline{}
	gone := weak.Make(b)
	for _, h := range []struct {
		p *pipeline
		n int64
	}{{x, 50}, {a, 150}} {
		if err := m.acquire(ctx, h.p, h.n, func(int64) {}); err != nil {
			t.Fatal(err)
		}
	}
	waits := make(chan bool)
	served := make(chan error, 2)
	for _, w := range []struct {
		p *pipeline
		n int64
	}{{b, 200}, {c, 300}} {
		go func() { served <- m.acquire(ctx, w.p, w.n, func(int64) { waits <- true }) }()
		<-waits
	}
	m.release(a, 150) // b goes; c, larger than the budget, waits for x
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	m.release(b, 200)
	b = nil
	// Its goroutine may take a moment to end.
	for i := 0; gone.Value() != nil && i < 100; i++ {
		runtime.GC()
		runtime.Gosched()
	}
	if gone.Value() != nil {
		t.Error("the memory's line still holds an item it served, and with it its answers")
	}
	m.release(x, 50)
	<-served // c, alone
}

// An item holding memory while it waits at a gate held by an item that waits
// for memory lets go of nothing: the other goes, rather than both waiting.
func TestMemoryStalledHolderDoesNotBlock(t *testing.T) {
	defer SetAnswerBudget(256)()
	synctest.Test(t, func(t *testing.T) {
		var m memory
		a, b := &pipeline{holds: []hold{{n: 200}}}, &pipeline{}
		granted(t, acquireAsync(t.Context(), &m, a, 200))
		wait := acquireAsync(t.Context(), &m, b, 100)
		if granted(t, wait) {
			t.Fatal("went past the budget while a may let go")
		}
		unstall := m.stall(a)
		if !granted(t, wait) {
			t.Fatal("b waits for a, which waits at b's gate: a deadlock")
		}
		unstall()
		if len(m.stalled) != 0 {
			t.Errorf("a still marked stalled")
		}
	})
}
