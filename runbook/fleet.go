package runbook

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"
)

// forEach runs the step's whole pipeline per item, at most Concurrency at a time,
// each item under the step's deadline. The first failure stops new items (unless
// continue_on_error), or the first past max_failures; items in flight finish.
// The step fails when any item failed.
func (r *run) forEach(ctx context.Context, s *Step, scope Scope, start time.Time, stepEvent func(Event) Event) error {
	v, err := s.ForEach.Eval(scope)
	if err != nil {
		return r.fail(s, stepEvent, &StepError{Why: Failed, Msg: err.Error(), Wrapped: err}, start, 0)
	}
	items, ok := asList(v)
	if !ok {
		return r.fail(s, stepEvent, &StepError{Why: Failed, Msg: fmt.Sprintf("for_each: %s is %s, not a list", s.ForEach.Source, describe(v))}, start, 0)
	}
	results := make([]any, len(items))
	errs := make([]error, len(items))
	took := make([]time.Duration, len(items))
	prog := progress{total: len(items)}
	lastProgress := r.clock.Now()
	r.emit(stepEvent(Event{Type: Progress, Total: len(items)}))
	sem := make(chan struct{}, s.Concurrency)
	var wg sync.WaitGroup
	var mu sync.Mutex
	stop := false
	attempts := 0
	stopped := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return stop
	}
	var restored map[string]doneItem
	if r.resume != nil && s.Index == r.resume.Next {
		restored = r.resume.items[s.Index]
	}
	keys := itemKeys(items)
	var order []int
	for i := range items {
		if done, ok := restored[keys[i]]; ok {
			// Done in the resumed run: not sent again. Items are known by what
			// they are, not where: the list may have been read again.
			results[i] = done.result
			prog.done++
			continue
		}
		order = append(order, i)
	}
	turns := r.newTurns(s, scope, items)
	for len(order) > 0 {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		// Checked after the slot is taken: the item that freed it may have failed.
		if ctx.Err() != nil || stopped() {
			break
		}
		var i int
		var itemScope Scope
		i, itemScope, order = turns.next(order)
		item := items[i]
		p := &pipeline{r: r, s: s, scope: itemScope, start: r.clock.Now(), item: ItemLabel(item), itemIndex: i, itemKey: keys[i], flight: r.flight(s, keys[i])}
		if s.Title != nil {
			p.name, _ = s.Title.String(itemScope)
		}
		mu.Lock()
		prog.running++
		mu.Unlock()
		wg.Go(func() {
			defer func() { <-sem }()
			defer turns.done(i)
			res, err := p.carry(ctx)
			res = s.keptResult(res)
			// A failure continued past counts as done, unless the run itself
			// ended (a deadline, a signal): then the item is in flight.
			if err == nil || s.ContinueOnError && ctx.Err() == nil && !interrupted(err) && !journalBroken(err) && !unconfirmed(err) {
				// Done (or failed and continued): a resume does not run it again.
				rec := Record{Type: recItemDone, Step: s.Index, StepID: s.ID, Item: &i, ItemKey: keys[i]}
				if s.ID != "" {
					rec.Result = res
				}
				if err != nil {
					rec.Error = errMsg(err)
				}
				if jerr := r.record(rec); jerr != nil {
					err = r.journalFailure(nil, jerr)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			attempts += p.attempts
			if s.ID != "" {
				// Only a step with an id can be read later; other results are dropped,
				// so a fleet does not hold every item's answers.
				results[i] = res
			}
			took[i] = r.since(p.start)
			prog.running--
			switch {
			case err == nil:
				prog.done++
			case interrupted(err):
				prog.stopped++
			default:
				prog.failed++
			}
			if err != nil {
				var se *StepError
				if errors.As(err, &se) {
					it := p.item
					se.Item = &it
					se.Step, se.Index = r.names[s.Index], s.Index
				}
				errs[i] = err
				if s.stopsFleet(err, prog.failed, len(items)) {
					stop = true
				}
				r.emit(p.event(failedEvent(err, Event{Attempt: p.attempts})))
			} else {
				r.emit(p.event(Event{Type: StepDone, Attempt: p.attempts, State: p.summary(p.lastState()), Outputs: outputsOf(res)}))
			}
			// A fleet's progress, not a line per item: every 30s, and at the end.
			if now := r.clock.Now(); now.Sub(lastProgress) >= progressEvery || prog.done+prog.failed+prog.stopped == prog.total {
				lastProgress = now
				r.emit(stepEvent(prog.event()))
			}
		})
	}
	wg.Wait()
	if s.ID != "" {
		r.steps[s.ID] = results
		r.refreshSecrets()
	}
	var failures []string
	var first error
	for i, err := range errs {
		if err == nil {
			continue
		}
		// The most severe wins: a broken journal, a stop, a deadline, busy.
		if first == nil || severity(err) > severity(first) {
			first = err
		}
		if !interrupted(err) {
			failures = append(failures, fmt.Sprintf("%s: %v", ItemLabel(items[i]), errMsg(err)))
		}
	}
	if first == nil && ctx.Err() != nil && prog.done < len(items) {
		// Stopped between items: some never started. When every item is done,
		// so is the step, and the signal stops the run at the next one.
		first = ctxError(ctx, nil, "")
	}
	summary := prog.event()
	summary.Reason = fmt.Sprintf("%d item%s", len(items), plural(len(items))) + slowest(items, took)
	if first == nil {
		summary.Type, summary.Attempt, summary.Elapsed = StepDone, attempts, r.since(start)
		r.emit(stepEvent(summary))
		return nil
	}
	var se *StepError
	if !errors.As(first, &se) {
		se = &StepError{Why: Failed, Wrapped: first}
	}
	shown := failures
	if len(shown) > 5 {
		shown = append(shown[:5:5], fmt.Sprintf("and %d more", len(failures)-5))
	}
	budget := ""
	if b := s.MaxFailures; b != nil {
		budget = fmt.Sprintf(" (max_failures %s", b)
		if b.Percent {
			budget += fmt.Sprintf(" of %d: %d", len(items), b.Allowed(len(items)))
		}
		if notStarted := len(items) - prog.done - prog.failed - prog.stopped; notStarted > 0 {
			budget += fmt.Sprintf("; %d not started", notStarted)
		}
		budget += ")"
	}
	agg := &StepError{Why: se.Why, Signal: se.Signal, Wrapped: first,
		Msg: fmt.Sprintf("%d of %d item%s failed%s: %s", len(failures), len(items), plural(len(items)), budget, strings.Join(shown, "; "))}
	switch {
	case se.Why == Interrupted:
		// A stopped item did not fail: say how far the fleet got, and any
		// failures apart.
		agg.Msg = fmt.Sprintf("%s: %d of %d item%s done, %d stopped in flight, %d not started", se.Msg,
			prog.done, len(items), plural(len(items)), prog.stopped, len(items)-prog.done-prog.failed-prog.stopped)
		if len(failures) > 0 {
			agg.Msg += fmt.Sprintf("; %d failed: %s", len(failures), strings.Join(shown, "; "))
		}
	case len(failures) == 0:
		agg.Msg = se.Msg
	}
	// The step's failed event carries the counts, as its done event does.
	withCounts := func(e Event) Event {
		e = stepEvent(e)
		e.Total, e.Done, e.Failed, e.Stopped = prog.total, prog.done, prog.failed, prog.stopped
		return e
	}
	return r.fail(s, withCounts, agg, start, attempts)
}

// stopsFleet says whether an item's failure, the failed-th of items, stops
// new items: with max_failures, one past it (or a broken journal, which takes
// no more records); without, any failure unless the step continues on error.
func (s *Step) stopsFleet(err error, failed, items int) bool {
	if s.MaxFailures != nil {
		return journalBroken(err) || failed > s.MaxFailures.Allowed(items)
	}
	return !s.ContinueOnError
}

// asList reads any list expr makes as []any: JSON lists are []any already,
// a range (1..vars.n) is []int, and other functions make other slices.
func asList(v any) ([]any, bool) {
	switch v := v.(type) {
	case []any:
		return v, true
	case []int:
		out := make([]any, len(v))
		for i, n := range v {
			out[i] = n
		}
		return out, true
	case nil, string, []byte:
		return nil, false
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
		return nil, false
	}
	out := make([]any, rv.Len())
	for i := range out {
		out[i] = rv.Index(i).Interface()
	}
	return out, true
}

// ItemLabel names a for_each item in output: an object by its id or name (the
// item {env: "1", id: "101"} is "101"), anything else as text, kept short.
func ItemLabel(v any) string {
	if m, ok := v.(map[string]any); ok {
		for _, k := range []string{"id", "name", "key"} {
			if s, ok := m[k]; ok && s != nil {
				v = s
				break
			}
		}
	}
	// An empty item must still show in a list of failures.
	switch v {
	case nil:
		return "null"
	case "":
		return `""`
	}
	return truncate(Text(v), 40)
}

// progressEvery is how often a for_each step reports its counts.
const progressEvery = 30 * time.Second

// progress counts a for_each step's items.
type progress struct {
	total, done, failed, stopped, running int
}

func (p progress) event() Event {
	return Event{Type: Progress, Total: p.total, Done: p.done, Failed: p.failed, Stopped: p.stopped, Running: p.running}
}

// slowest names the three items that took longest, for a fleet's summary.
func slowest(items []any, took []time.Duration) string {
	if len(items) < 4 {
		return ""
	}
	idx := make([]int, len(items))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return took[idx[a]] > took[idx[b]] })
	var parts []string
	for _, i := range idx[:3] {
		if took[i] > 0 {
			parts = append(parts, fmt.Sprintf("%s (%s)", ItemLabel(items[i]), fmtDur(took[i])))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "; slowest: " + strings.Join(parts, ", ")
}

// severity ranks an item's error for the step's: a stop (a signal, or a
// cancel, whose exit code is 1) outranks any failure but a broken journal.
func severity(err error) int {
	code := ExitCode(err)
	switch {
	case code == ExitIOErr:
		return 5
	case interrupted(err), code == ExitSIGINT, code == ExitSIGTERM:
		return 4
	}
	switch code {
	case ExitDeadline:
		return 3
	case ExitBusy:
		return 2
	case ExitOK:
		return 0
	}
	return 1
}

// turns chooses which item of a for_each starts next. Items whose guard reads
// the same resource take turns anyway (a busy environment keeps its next VM
// waiting), so a free slot goes to the first item, a little way down the list,
// whose guard no item in flight shares: a fleet listed environment by
// environment keeps every environment busy, and no item spends reads waiting
// for a sibling. With none free, the next in order starts, as without a guard.
type turns struct {
	mu       sync.Mutex
	s        *Step
	base     Scope
	items    []any
	keyer    *pipeline      // renders an item's guard check; nil: items start in order
	scopes   map[int]Scope  // items looked at, until they start
	keys     map[int]string // their guard's check
	inFlight map[string]int // items started and not done, by key
	started  map[int]string
}

func (r *run) newTurns(s *Step, scope Scope, items []any) *turns {
	t := &turns{s: s, base: scope, items: items, scopes: map[int]Scope{}, keys: map[int]string{}, inFlight: map[string]int{}, started: map[int]string{}}
	if s.Guard.On && s.Guard.Check != nil && s.Concurrency > 1 {
		t.keyer = &pipeline{r: r, s: s}
	}
	return t
}

// scope is item i's scope, made once.
func (t *turns) scope(i int) Scope {
	if sc, ok := t.scopes[i]; ok {
		return sc
	}
	sc := t.base.Clone()
	sc[t.s.As] = t.items[i]
	sc["index"] = i
	t.scopes[i] = sc
	return sc
}

// key is what item i's guard reads.
func (t *turns) key(i int) string {
	key, ok := t.keys[i]
	if !ok {
		q := *t.keyer
		q.scope = t.scope(i)
		key = q.gateKey()
		t.keys[i] = key
	}
	return key
}

// next takes the item to start from order, and returns it with its scope and
// what is left of order.
func (t *turns) next(order []int) (int, Scope, []int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	pick := 0
	if t.keyer != nil {
		// A little way down the list: as far as the slots could use.
		for j, i := range order[:min(len(order), 4*t.s.Concurrency)] {
			if key := t.key(i); key == "" || t.inFlight[key] == 0 {
				pick = j
				break
			}
		}
	}
	i := order[pick]
	sc := t.scope(i)
	if t.keyer != nil {
		key := t.key(i)
		t.inFlight[key]++
		t.started[i] = key
	}
	delete(t.scopes, i)
	delete(t.keys, i)
	if pick == 0 {
		return i, sc, order[1:]
	}
	return i, sc, append(order[:pick:pick], order[pick+1:]...)
}

// done marks item i no longer in flight.
func (t *turns) done(i int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if key, ok := t.started[i]; ok {
		t.inFlight[key]--
		delete(t.started, i)
	}
}
