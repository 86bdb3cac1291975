package runbook

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Options configure one run.
type Options struct {
	Vars     map[string]string // --var overrides
	Env      map[string]string // the process environment
	Observer Observer
	Timeout  time.Duration // --timeout: overrides the runbook's run timeout
	Clock    Clock         // nil: real time
	RunID    string        // stamped on every event and journal record
	Journal  *Journal      // nil: no journal
	Resume   *Resume       // continue an unfinished run
	DryRun   bool          // send reads only; show changes, commands and sleeps
	// Pauses are the Retry-After pauses an earlier run of the runbook
	// journaled that have not ended (wall-clock times, by host): nothing is
	// sent to such a host before its pause ends.
	Pauses  map[string]time.Time
	Verbose bool // request events carry the bodies sent and received
}

// deadlineCause is the cause of a context that ended because a deadline passed,
// so a step's deadline, a wait's and the run's are told apart from Ctrl-C.
type deadlineCause struct {
	what string // "step timeout 30m", "run timeout 1h", "wait_for timeout 20m"
}

func (d *deadlineCause) Error() string { return d.what + " passed" }

// run is one execution of a runbook.
type run struct {
	rb      *Runbook
	names   map[int]string // step names, rendered
	id      string
	journal *Journal
	resume  *Resume
	dryRun  bool
	verbose bool
	obs     Observer
	clock   Clock
	redact  *Redactor
	pauses  pauses
	pacers  pacers
	gates   gates
	memory  memory
	steps   map[string]any // steps.<id>, written between steps only
	base    Scope          // vars, env, steps
}

// Run executes the runbook. The error, if any, carries the exit code; its text
// and every event are free of secrets.
func (rb *Runbook) Run(ctx context.Context, opt Options) error {
	r, err := rb.start(opt)
	if err != nil {
		return err
	}
	return r.redact.Error(r.run(ctx, opt))
}

// Check does what Run does before its first step, and no more: the --var names
// and types, the environment variables the runbook reads, the vars' values. A
// caller can so tell such a mistake before it takes a lock or waits for one.
func (rb *Runbook) Check(opt Options) error {
	_, err := rb.start(opt)
	return err
}

// start checks what a run needs before anything is sent, and evaluates the vars.
// Its errors are free of secrets.
func (rb *Runbook) start(opt Options) (*run, error) {
	if err := rb.CheckVars(opt.Vars); err != nil {
		return nil, err
	}
	var missing []string
	for _, v := range rb.Env {
		if _, ok := opt.Env[v.Name]; !ok {
			missing = append(missing, fmt.Sprintf("%s:%d:%d: environment variable %s is not set: export it before running, or write env?.%s ?? \"default\" if it is optional",
				rb.File, v.Pos.Line, v.Pos.Col, v.Name, v.Name))
		}
	}
	missing = append(missing, rb.emptyCredentialEnv(opt.Env)...)
	if len(missing) > 0 {
		return nil, &ConfigError{Msg: strings.Join(missing, "\n") + "\nnothing was sent"}
	}
	obs := opt.Observer
	if obs == nil {
		obs = ObserverFunc(func(Event) {})
	}
	clock := opt.Clock
	if clock == nil {
		clock = RealClock{}
	}
	r := &run{rb: rb, id: opt.RunID, journal: opt.Journal, resume: opt.Resume, dryRun: opt.DryRun, verbose: opt.Verbose, obs: obs, clock: clock, steps: map[string]any{}, pauses: pauses{until: map[string]time.Time{}}, redact: NewRedactor()}
	for _, name := range rb.Secrets {
		r.redact.Add(opt.Env[name])
	}
	env := make(map[string]any, len(opt.Env))
	for k, v := range opt.Env {
		env[k] = v
	}
	r.pacers = pacers{perSecond: rb.Rate, byHost: map[string]*pacer{}}
	r.gates = gates{byKey: map[string]chan struct{}{}}
	r.base = Scope{"env": env, "steps": r.steps}
	if err := rb.renderVars(r.base, opt.Vars, false); err != nil {
		return nil, r.redact.Error(err)
	}
	if err := rb.emptyCredential(r.base); err != nil {
		return nil, err
	}
	r.names = make(map[int]string, len(rb.Steps))
	for _, s := range rb.Steps {
		r.names[s.Index] = s.Name
		if s.Title != nil {
			r.names[s.Index] = s.Title.Partial(s.withoutItem(r.base))
		}
	}
	r.refreshSecrets()
	return r, nil
}

// credentialUse says what a credential is used for, in messages.
const credentialUse = "a credential (in basic_auth or an Authorization-like header)"

// emptyCredentialEnv names the environment variables a credential reads that
// are set but empty: sent, an empty password or token fails at best, and at
// worst reaches a server that takes it for anonymous.
func (rb *Runbook) emptyCredentialEnv(env map[string]string) []string {
	var empty []string
	seen := map[string]bool{}
	for _, t := range rb.secrets {
		for _, p := range t.parts {
			if p.expr == nil {
				continue
			}
			for i, name := range p.expr.Env {
				if v, set := env[name]; set && strings.TrimSpace(v) == "" && !seen[name] {
					seen[name] = true
					at := p.expr.envAt[i]
					empty = append(empty, fmt.Sprintf("%s:%d:%d: environment variable %s is set but empty, and the runbook uses it as %s: export its value before running",
						rb.File, at.Line, at.Col, name, credentialUse))
				}
			}
		}
	}
	return empty
}

// emptyCredential refuses a credential that comes out empty before the run,
// from a var (--var token=, or a var of an empty env variable) or a default:
// like an empty env variable, it would be sent as is. Credentials that read
// what only the run knows (an earlier step's output, the item) are judged
// when they are sent.
func (rb *Runbook) emptyCredential(base Scope) error {
	scope := base.Clone()
	for _, name := range []string{"response", "state", "before", "attempt", "elapsed", "index"} {
		scope[name] = unknown{}
	}
	scope["steps"] = unknown{}
	for _, s := range rb.Steps {
		if s.As != "" {
			scope[s.As] = unknown{}
		}
	}
	var empty []string
	for _, t := range rb.secrets {
		for _, p := range t.parts {
			if p.expr == nil {
				continue
			}
			v, err := p.expr.Eval(scope)
			if err != nil {
				continue
			}
			if s, ok := v.(string); v == nil || ok && strings.TrimSpace(s) == "" {
				msg := fmt.Sprintf("%s:%d:%d: ${{ %s }} is empty, and the runbook uses it as %s: give it a value",
					rb.File, p.expr.Pos.Line, p.expr.Pos.Col, p.expr.Source, credentialUse)
				if !slices.Contains(empty, msg) {
					empty = append(empty, msg)
				}
			}
		}
	}
	if len(empty) > 0 {
		return &ConfigError{Msg: strings.Join(empty, "\n") + "\nnothing was sent"}
	}
	return nil
}

// refreshSecrets hides the auth values the runbook uses, wherever they came from
// (env, vars, --var, an earlier step's output): rendered at the start and again
// after every step, before its result is shown or journaled.
func (r *run) refreshSecrets() { r.rb.hideSecrets(r.redact, r.base) }

// hideSecrets has red hide the auth values as s renders them, each on its own
// and joined as the credential carries them (user:password).
func (rb *Runbook) hideSecrets(red *Redactor, s Scope) {
	for _, t := range rb.secrets {
		if v, err := t.String(s); err == nil {
			red.Add(v)
		}
	}
	for _, j := range rb.joined {
		parts := make([]string, 0, len(j.parts))
		for _, t := range j.parts {
			if v, err := t.String(s); err == nil {
				parts = append(parts, v)
			}
		}
		if len(parts) == len(j.parts) {
			red.Add(strings.Join(parts, j.sep))
		}
	}
}

// run carries out the steps in order.
func (r *run) run(ctx context.Context, opt Options) error {
	rb := r.rb

	timeout := rb.Timeout
	if opt.Timeout > 0 {
		timeout = opt.Timeout
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, r.clock.Real(timeout), &deadlineCause{what: "run timeout " + fmtDur(timeout)})
		defer cancel()
	}

	start := r.clock.Now()
	if r.journal != nil {
		r.journal.redact = r.redact
	}
	// --var values that are secrets are not journaled (a resume asks for them
	// again): the journal is redacted, and *** would replace the real value.
	started := Record{Type: recRunStarted, File: rb.File, Hash: rb.Hash, Name: rb.Name, PID: os.Getpid(), Vars: map[string]string{}}
	for k, v := range opt.Vars {
		if r.redact.String(v) != v {
			started.SecretVars = append(started.SecretVars, k)
		} else {
			started.Vars[k] = v
		}
	}
	sort.Strings(started.SecretVars)
	begin := Event{Type: RunStarted, Run: rb.Name, Steps: len(rb.Steps)}
	if r.resume != nil {
		started.ResumedFrom = r.resume.RunID
		begin.Reason = fmt.Sprintf("resuming run %s at step %d", r.resume.RunID, r.resume.Next)
	}
	if err := r.inherit(started, opt.Pauses); err != nil {
		return err
	}
	r.emit(begin)
	var failed []string
	for _, s := range rb.Steps {
		if r.resume != nil && s.Index < r.resume.Next && r.restore(s) {
			continue
		}
		err := r.record(Record{Type: recStepStarted, Step: s.Index, StepName: r.names[s.Index], StepID: s.ID})
		if err == nil {
			err = r.step(ctx, s)
		}
		if err == nil || (s.ContinueOnError && ctx.Err() == nil && !journalBroken(err)) {
			// A continued failure counts as done: a resume goes on after it.
			rec := Record{Type: recStepDone, Step: s.Index, StepName: r.names[s.Index], StepID: s.ID}
			if s.ForEach == nil {
				// A fleet's results are in its item_done records.
				rec.Result = r.steps[s.ID]
			}
			if err != nil {
				rec.Error = errMsg(err)
				failed = append(failed, r.names[s.Index])
			}
			if jerr := r.record(rec); jerr != nil {
				return r.end(start, s, r.journalFailure(s, jerr))
			}
			continue
		}
		return r.end(start, s, err)
	}
	done := Event{Type: RunDone, Run: rb.Name, Elapsed: r.since(start)}
	if len(failed) > 0 {
		done.Reason = fmt.Sprintf("%d step(s) failed and were continued: %s", len(failed), strings.Join(failed, ", "))
	}
	if r.dryRun {
		done.Reason = strings.TrimPrefix(done.Reason+"; dry run: no change was sent", "; ")
	}
	if err := r.record(Record{Type: recRunDone, Outcome: "ok"}); err != nil {
		// Every step took effect, but a resume would not know it.
		return r.end(start, nil, err)
	}
	r.emit(done)
	return nil
}

// end journals and reports a run that stopped at step s (nil: after its last
// step) with err.
func (r *run) end(start time.Time, s *Step, err error) error {
	outcome := "failed"
	if c := ExitCode(err); c == ExitSIGINT || c == ExitSIGTERM {
		outcome = "stopped"
	}
	ev := Event{Type: RunDone, Run: r.rb.Name, Err: err.Error(), Elapsed: r.since(start)}
	if s != nil {
		// A broken journal takes no more records; the rest are best effort.
		r.record(Record{Type: recStepFailed, Step: s.Index, StepName: r.names[s.Index], StepID: s.ID, Error: errMsg(err)})
		r.record(Record{Type: recRunDone, Outcome: outcome, Step: s.Index, Error: err.Error()})
		ev.Reason = fmt.Sprintf("stopped at step %d", s.Index)
	}
	if outcome == "stopped" {
		ev.Phase = PhaseStopped
	}
	r.emit(ev)
	return err
}

func (r *run) since(t time.Time) time.Duration { return r.clock.Now().Sub(t) }

// emit stamps an event with the wall-clock time (durations in it are on the
// run's clock, which --sim scales) and redacts it.
func (r *run) emit(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if e.Step == 0 {
		e.ItemIndex = -1
	}
	e.RunID = r.id
	r.obs.Observe(r.redact.Event(e))
}

// step runs one step: a plain step's pipeline, or every for_each item's.
func (r *run) step(ctx context.Context, s *Step) error {
	start := r.clock.Now()
	stepEvent := func(e Event) Event {
		e.Step, e.StepName, e.StepID, e.ItemIndex = s.Index, r.names[s.Index], s.ID, -1
		return e
	}
	r.emit(stepEvent(Event{Type: StepStarted}))
	scope := r.base.Clone()
	if s.If != nil {
		ok, err := s.If.Bool(scope)
		if err != nil {
			return r.fail(s, stepEvent, &StepError{Why: Failed, Msg: err.Error(), Wrapped: err}, start, 0)
		}
		if !ok {
			r.emit(stepEvent(Event{Type: StepSkipped, Reason: "if: " + s.If.Source + " is false"}))
			if s.ID != "" {
				r.steps[s.ID] = map[string]any{"skipped": true, "response": nil, "state": nil, "outputs": map[string]any{}, "attempts": 0, "error": ""}
			}
			return nil
		}
	}
	if s.ForEach != nil {
		return r.forEach(ctx, s, scope, start, stepEvent)
	}
	p := &pipeline{r: r, s: s, scope: scope, start: start, itemIndex: -1, flight: r.flight(s, "")}
	res, err := p.run(ctx)
	if s.ID != "" {
		r.steps[s.ID] = s.keptResult(res)
		r.refreshSecrets()
	}
	if err != nil {
		return r.fail(s, stepEvent, err, start, p.attempts)
	}
	r.emit(stepEvent(Event{Type: StepDone, Attempt: p.attempts, State: p.summary(p.lastState()), Elapsed: r.since(start), Outputs: outputsOf(res)}))
	return nil
}

// fail reports a step failure and fills in the step's name.
func (r *run) fail(s *Step, stepEvent func(Event) Event, err error, start time.Time, attempts int) error {
	var se *StepError
	if !errors.As(err, &se) {
		se = &StepError{Why: Failed, Msg: err.Error(), Wrapped: err}
		err = se
	}
	se.Step, se.Index = r.names[s.Index], s.Index
	if se.Why == StillBusy {
		se.Until = r.pauses.last(r)
	}
	r.emit(stepEvent(failedEvent(err, Event{Elapsed: r.since(start), State: se.Last, Attempt: attempts})))
	return err
}

// failedEvent makes e the failed event of err, marked when a signal stopped it.
func failedEvent(err error, e Event) Event {
	e.Type, e.Err = StepFailed, errMsg(err)
	if interrupted(err) {
		e.Phase = PhaseStopped
	}
	return e
}

// interrupted reports whether err is a signal's stop rather than a failure.
func interrupted(err error) bool {
	var se *StepError
	return errors.As(err, &se) && se.Why == Interrupted
}

// forEach runs the step's whole pipeline per item, at most Concurrency at a time,
// each item under the step's deadline. The first failure stops new items (unless
// continue_on_error); items in flight finish.
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
	for i, item := range items {
		if done, ok := restored[keys[i]]; ok {
			// Done in the resumed run: not sent again. Items are known by what
			// they are, not where: the list may have been read again.
			mu.Lock()
			results[i] = done.result
			prog.done++
			mu.Unlock()
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		// Checked after the slot is taken: the item that freed it may have failed.
		if ctx.Err() != nil || stopped() {
			break
		}
		itemScope := scope.Clone()
		itemScope[s.As] = item
		itemScope["index"] = i
		p := &pipeline{r: r, s: s, scope: itemScope, start: r.clock.Now(), item: ItemLabel(item), itemIndex: i, itemKey: keys[i], flight: r.flight(s, keys[i])}
		if s.Title != nil {
			p.name, _ = s.Title.String(itemScope)
		}
		mu.Lock()
		prog.running++
		mu.Unlock()
		wg.Go(func() {
			defer func() { <-sem }()
			res, err := p.run(ctx)
			res = s.keptResult(res)
			// A failure continued past counts as done, unless the run itself
			// ended (a deadline, a signal): then the item is in flight.
			if err == nil || s.ContinueOnError && ctx.Err() == nil && !interrupted(err) && !journalBroken(err) {
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
				if !s.ContinueOnError {
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
	code := ExitOK
	for i, err := range errs {
		if err == nil {
			continue
		}
		// The most severe exit code wins: a signal, then a deadline, then busy.
		if c := ExitCode(err); first == nil || severity(c) > severity(code) {
			code = c
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
	agg := &StepError{Why: se.Why, Signal: se.Signal, Wrapped: first,
		Msg: fmt.Sprintf("%d of %d item%s failed: %s", len(failures), len(items), plural(len(items)), strings.Join(shown, "; "))}
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

func severity(code int) int {
	switch code {
	case ExitIOErr:
		return 5
	case ExitSIGINT, ExitSIGTERM:
		return 4
	case ExitDeadline:
		return 3
	case ExitBusy:
		return 2
	case ExitOK:
		return 0
	}
	return 1
}

func errMsg(err error) string {
	var se *StepError
	if errors.As(err, &se) {
		s := se.Msg
		if se.Expect != "" {
			s += "; expected " + se.Expect
		}
		if se.Last != "" {
			s += "; last state: " + se.Last
		}
		return s
	}
	return err.Error()
}

// pauses holds the Retry-After pause of each host: a 429 or 423 on any request
// pauses every request to that host, guard reads included.
type pauses struct {
	mu    sync.Mutex
	until map[string]time.Time
}

func (p *pauses) get(host string) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.until[host]
}

// last is when the longest pause that has not passed ends, as a wall-clock
// time; zero when none.
func (p *pauses) last(r *run) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	var end time.Time
	now := r.clock.Now()
	for _, t := range p.until {
		if t.After(now) && t.After(end) {
			end = t
		}
	}
	if end.IsZero() {
		return end
	}
	return time.Now().Add(r.clock.Real(end.Sub(now)))
}

// extend makes the host's pause last until t at least; it says whether it
// grew.
func (p *pauses) extend(host string, t time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !t.After(p.until[host]) {
		return false
	}
	p.until[host] = t
	return true
}

// verdict is what one read or one answer means for the step.
type verdict int

const (
	keepWaiting verdict = iota // busy, queued, stale, not yet
	done                       // the condition holds
	resend                     // not busy any more, but the change did not take effect
)

// pipeline carries one step (or one for_each item) through guard, send, retry and
// wait. It owns its scope.
type pipeline struct {
	r              *run
	s              *Step
	scope          Scope
	start          time.Time
	item           string
	itemIndex      int
	itemKey        string // the item by what it is, for the journal
	name           string // the step's name rendered for this item; "": the step's
	attempts       int
	retries        int            // re-sends after transient failures, for backoff
	before         any            // the state the guard read just before the change
	actionResponse map[string]any // the response to the step's own action
	actionState    any
	checked        bool       // a check has been read, so state is the check's
	mustGuard      bool       // wait until not busy before the next send, even with guard: false
	firstRead      *Outcome   // a check read already made, for the next guard to start from
	lastRead       string     // the target of the last check read since the last send
	confirm        int        // consecutive not-busy reads on which until did not hold
	flight         *flight    // the change the resumed run sent, or may have, for this step or item
	goneReads      int        // consecutive reads that found a deleted resource gone
	rng            *rand.Rand // jitter of this item's intervals
	lastBusy       bool       // the last answer said busy, locked or slow down
	accepted       string     // the change's accepted answer ("200 OK"), once there is one
	target         string     // the URL (or command) of the step's action, once prepared
	stateOf        string     // the check read that the scope's state came from
	lastAnswer     string     // what the last answer was, for give-up messages
	checkFailed    string     // why the last check read failed, "" when it did not
	expect         string     // the condition being waited for, for deadline messages
	waitStart      time.Time  // when the step first waited for its change (wait_for timeout)
	holds          []hold     // answers decoded under the run's budget, which it may still hold
}

func (p *pipeline) event(e Event) Event {
	e.Step, e.StepName, e.StepID = p.s.Index, p.r.names[p.s.Index], p.s.ID
	if p.name != "" {
		e.StepName = p.name
	}
	e.Item, e.ItemIndex = p.item, p.itemIndex
	if e.Elapsed == 0 {
		e.Elapsed = p.r.since(p.start)
	}
	return e
}

func (p *pipeline) emit(e Event) { p.r.emit(p.event(e)) }

// summary is Summarize with the run's secrets hidden.
func (p *pipeline) summary(state any) string { return summarize(state, p.r.redact) }

// gateKey names what the guard reads, so changes gated by one check take turns.
func (p *pipeline) gateKey() string {
	check := p.s.Guard.Check
	if check == nil {
		return ""
	}
	call, err := check.Prepare(p.scope)
	if err != nil {
		return ""
	}
	return call.Target().String()
}

// gates are one-at-a-time passages keyed by a guard's check. They are channels,
// not mutexes, so a wait on one is durable for testing/synctest.
type gates struct {
	mu    sync.Mutex
	byKey map[string]chan struct{}
}

// enter waits for the key's gate, and returns its release.
func (g *gates) enter(ctx context.Context, key string) (func(), error) {
	if key == "" {
		return func() {}, nil
	}
	g.mu.Lock()
	ch, ok := g.byKey[key]
	if !ok {
		ch = make(chan struct{}, 1)
		g.byKey[key] = ch
	}
	g.mu.Unlock()
	select {
	case ch <- struct{}{}:
		var once sync.Once
		return func() { once.Do(func() { <-ch }) }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// jitter spreads the checks of concurrent for_each items over up to a tenth of
// the interval, never shorter, so a fleet does not poll in lockstep.
func (p *pipeline) jitter(d time.Duration) time.Duration {
	if p.itemIndex < 0 || p.s.Concurrency < 2 {
		return d
	}
	if p.rng == nil {
		p.rng = rand.New(rand.NewPCG(uint64(p.s.Index), uint64(p.itemIndex)))
	}
	return d + time.Duration(p.rng.Float64()*0.1*float64(d))
}

func (p *pipeline) lastState() any {
	if p.checked {
		return p.scope["state"]
	}
	return p.actionState
}

// run carries the pipeline out under the step's deadline. The result is
// steps.<id> (for a for_each step, one element of it), also when it failed.
func (p *pipeline) run(ctx context.Context) (map[string]any, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, p.r.clock.Real(p.s.Timeout), &deadlineCause{what: "step timeout " + fmtDur(p.s.Timeout)})
	defer cancel()
	defer p.releaseAll()
	res, err := p.execute(ctx)
	if err != nil {
		res = map[string]any{"skipped": false, "response": p.actionResponse, "state": p.lastState(),
			"outputs": map[string]any{}, "attempts": p.attempts, "error": errMsg(err)}
	}
	return res, err
}

// what names the step's action in messages: its method, or "command".
func (p *pipeline) what() string {
	if m := p.s.Action.Info().Method; m != "" {
		return m
	}
	return "command"
}

// idempotent says whether the step's action is safe to send again after an
// ambiguous failure: its kind's default, or what retry.idempotent says.
func (p *pipeline) idempotent() bool {
	if i := p.s.Retry.Idempotent; i != nil {
		return *i
	}
	info := p.s.Action.Info()
	return !info.Mutating || info.Idempotent
}

// execute runs the pipeline to a result.
func (p *pipeline) execute(ctx context.Context) (map[string]any, error) {
	s := p.s
	info := s.Action.Info()
	idempotent := p.idempotent()
	if f := p.flight; f != nil && p.r.dryRun {
		return p.dryResume(ctx, f)
	}
	if f := p.flight; f != nil {
		p.flight = nil
		next, err := p.recover(ctx, f, idempotent)
		if err != nil {
			return nil, err
		}
		if next == done {
			return p.result()
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, p.ctxError(ctx)
		}
		if p.r.dryRun && info.Effects {
			return p.dryRun(ctx)
		}
		out, err := p.send(ctx)
		if err != nil {
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, p.ctxError(ctx)
		}
		if !info.Mutating && p.attempts == 1 {
			p.before = out.State
		}
		next, err := p.decide(ctx, out, idempotent)
		if err != nil {
			return nil, err
		}
		if next == done {
			return p.result()
		}
	}
}

// send is one attempt: the guard, the snapshot of `before`, and the change. Two
// changes gated by the same check (VMs of one environment) must not both read
// "not busy" before either is sent, so guard and send hold the check's gate,
// released on every way out. A change's intent is journaled before it is sent
// and its answer after.
func (p *pipeline) send(ctx context.Context) (*Outcome, error) {
	s := p.s
	info := s.Action.Info()
	if s.Guard.On || p.mustGuard {
		stalled := p.r.memory.stall(p)
		release, err := p.r.gates.enter(ctx, p.gateKey())
		stalled()
		if err != nil {
			return nil, p.ctxError(ctx)
		}
		defer release()
		first := p.firstRead
		p.firstRead, p.mustGuard = nil, false
		if err := p.guard(ctx, first); err != nil {
			return nil, err
		}
	}
	if info.Effects && s.Wait.On {
		if err := p.snapshot(ctx); err != nil {
			return nil, err
		}
	}
	if s.Retry.MaxAttempts > 0 && p.attempts >= s.Retry.MaxAttempts {
		return nil, p.giveUp()
	}
	p.attempts++
	p.scope["attempt"] = p.attempts
	p.scope["before"] = p.before
	p.scope["elapsed"] = p.r.since(p.start)
	call, err := s.Action.Prepare(p.scope)
	if err != nil {
		return nil, p.failure(Failed, err, err.Error())
	}
	target := call.Target()
	p.target = target.URL
	var intent func() error
	if info.Effects {
		intent = func() error {
			return p.r.record(p.record(Record{Type: recIntent, Attempt: p.attempts, Target: target.String(), Before: p.before}))
		}
	}
	out := p.r.do(ctx, p, call, intent, info.Method != "" && info.Mutating)
	if err := p.journalFailure(out); err != nil {
		return nil, err
	}
	p.took(out)
	if info.Method != "" || info.Effects || !out.Accepted {
		p.emit(Event{Type: Attempt, Phase: "change", Attempt: p.attempts, Status: out.Status, Target: target.String(),
			Reason: answer(out), State: p.summary(out.State)})
	}
	if info.Effects {
		rec := p.record(Record{Type: recAnswer, Attempt: p.attempts, Status: out.Status, Accepted: out.Accepted, Response: out.Response})
		if out.Err != nil {
			rec.Error, rec.Written = out.Err.Error(), out.Written
		}
		if err := p.r.record(rec); err != nil {
			// The change was sent: say so, and what came back (a created id),
			// since the journal can no longer tell a resume.
			msg := fmt.Sprintf("%s was sent and answered %s", target, answer(out))
			if out.Snippet != "" && out.Status < 400 {
				msg += " (" + truncate(out.Snippet, 160) + ")"
			}
			return nil, p.failure(JournalBroken, err, msg+", but "+err.Error()+"; a resume will not send it again unless its wait shows it did not take effect and it is idempotent")
		}
	}
	if out.Message != "" && out.Accepted {
		p.emit(Event{Type: LogLine, Reason: out.Message})
	}
	return out, nil
}

// took makes an answer to the step's action the scope's response (and its
// state, until a check has been read).
func (p *pipeline) took(out *Outcome) {
	p.lastRead = "" // reads before this send no longer describe the resource
	p.actionResponse, p.actionState = out.Response, out.State
	p.scope["response"] = out.Response
	if !p.checked {
		p.scope["state"], p.scope[stateNote] = out.State, notJSON(out)
	}
}

// dryRun shows the change a real run would send, with one guard read to say
// whether it would have to wait, and sends nothing.
//
// What a change the dry run did not send would have answered is unknown: a
// later step that reads it is shown as written, not failed.
func (p *pipeline) dryRun(ctx context.Context) (map[string]any, error) {
	var t Target
	note := ""
	call, err := p.s.Action.Prepare(p.scope)
	switch {
	case errors.Is(err, errUnknown):
		t = Target{Method: p.s.Action.Info().Method, URL: p.s.Action.Describe(p.scope)}
		if t.Method != "" {
			t.URL = strings.TrimPrefix(t.URL, t.Method+" ")
		}
		note = "it reads what an earlier change answers, known only at run time"
	case err != nil:
		return nil, p.failure(Failed, err, err.Error())
	default:
		t = call.Target()
	}
	if g := p.s.Guard; g.On && g.Check != nil {
		if _, err := g.Check.Prepare(p.scope); !errors.Is(err, errUnknown) {
			out, err := p.read(ctx, g.Check, "guard")
			if err != nil {
				return nil, err
			}
			if busy, _ := p.busyState(out); busy {
				note = "busy now (" + p.summary(out.State) + "): a real run would wait"
			}
		}
	}
	target := t.String()
	if t.Body != "" {
		target += " " + t.Body
	}
	phase := "send"
	if t.Method == "" {
		phase = "run"
	}
	if f := p.flight; f != nil {
		note = strings.TrimSuffix(p.resumeNote(f)+"; "+note, "; ")
	}
	p.emit(Event{Type: DryRun, Phase: phase, Target: target, Reason: note})
	return p.result()
}

// decide classifies the answer to a send and does what it calls for: wait for
// the change, wait out a busy or locked resource, back off, or fail.
func (p *pipeline) decide(ctx context.Context, out *Outcome, idempotent bool) (verdict, error) {
	s := p.s
	p.lastAnswer = answer(out)
	p.lastBusy = false
	if out.Accepted {
		if s.Action.Info().Mutating {
			p.accepted = answer(out)
		}
		if s.Action.Info().Mutating && p.busyLenient(out) {
			if !idempotent {
				// A create answered busy has been taken in (it is being made):
				// inferring "dropped" and sending it again could make two.
				if s.Wait.On {
					return p.wait(ctx)
				}
				return done, nil
			}
			// Accepted with a busy body: taken in, or dropped because the resource
			// was busy. Only the resource can tell, once it is not busy.
			p.lastBusy = true
			return p.waitNotBusyThenCheck(ctx, out)
		}
		if s.Wait.On {
			return p.wait(ctx)
		}
		return done, nil
	}
	switch {
	case out.Err != nil && out.Permanent:
		return 0, p.failure(Failed, out.Err, answer(out)+" (not retried)")
	case out.Err != nil && (!out.Written || idempotent):
		return p.backoff(ctx, answer(out), out)
	case out.Err != nil:
		return p.ambiguous(ctx, out)
	case out.Status == http.StatusLocked || out.Status == http.StatusTooManyRequests:
		p.lastBusy = true
		return p.retryAfter(ctx, out)
	case out.Status == http.StatusConflict || out.Status == http.StatusUnprocessableEntity:
		return p.conflict(ctx, out)
	case out.Status >= 500 || out.Status == http.StatusRequestTimeout:
		if idempotent {
			return p.backoff(ctx, answer(out), out)
		}
		return p.ambiguous(ctx, out)
	}
	msg := answer(out)
	if out.Status == http.StatusUnauthorized || out.Status == http.StatusForbidden {
		return 0, p.failure(Failed, nil, msg+" (check the credentials; never retried)")
	}
	// retry.when may ask for a re-send of an answer that would otherwise fail the
	// step; it never overrides the rules above (401/403, ambiguous changes).
	if s.Retry.When != nil {
		retry, err := s.Retry.When.Bool(p.scope)
		if err != nil {
			return 0, p.failure(Failed, err, err.Error())
		}
		if retry {
			return p.backoff(ctx, fmt.Sprintf("%s, and retry.when %s holds", msg, s.Retry.When.Source), out)
		}
	}
	return 0, p.failure(Failed, nil, msg)
}

// busyLenient judges with busy_when a change's own accepted answer, or a read
// of the wait's check, leniently: either may be another resource than the
// guard reads (a create answers with what it made, its guard reads a
// template), so a field it lacks is not busy, and an expression that cannot
// be evaluated on it does not fail a change already made.
func (p *pipeline) busyLenient(out *Outcome) bool {
	if out.State == nil {
		return false
	}
	p.scope["state"] = out.State
	busy, err := p.s.Guard.BusyWhen.Bool(p.scope)
	return err == nil && busy
}

// busyState evaluates busy_when on an outcome's state (nil state: not busy). An
// error in busy_when fails the step: it must not silently mean "not busy".
func (p *pipeline) busyState(out *Outcome) (bool, error) {
	if out == nil || out.State == nil {
		return false, nil
	}
	p.scope["state"] = out.State
	b, err := p.s.Guard.BusyWhen.Bool(p.scope)
	if err != nil {
		return false, p.failure(Failed, err, err.Error())
	}
	return b, nil
}

// retryAfter waits out a 423 or 429, never less than Retry-After, or fails now
// when the wait would pass the deadline or max_retry_after.
func (p *pipeline) retryAfter(ctx context.Context, out *Outcome) (verdict, error) {
	// Missing, unreadable, zero or past: the retry interval, so a server that
	// says "now" cannot make the step hammer it.
	d := retryDelay(p.s.Retry, p.retries)
	if out.RetryAfter != nil && *out.RetryAfter > 0 {
		d = *out.RetryAfter
	}
	if d > p.s.Retry.MaxRetryAfter {
		return 0, p.failure(StillBusy, nil, fmt.Sprintf("%s: the wait of %s exceeds max_retry_after %s; raise retry.max_retry_after to wait longer",
			answer(out), fmtDur(d), fmtDur(p.s.Retry.MaxRetryAfter)))
	}
	if dl, ok := ctx.Deadline(); ok && p.r.clock.Real(d) > time.Until(dl) {
		left := time.Duration(float64(time.Until(dl)) * float64(d) / float64(max(p.r.clock.Real(d), 1)))
		return 0, p.failure(StillBusy, nil, fmt.Sprintf("%s: waiting %s would pass the deadline (%s left); raise the step's timeout to wait longer",
			answer(out), fmtDur(d), fmtDur(left)))
	}
	if s := p.s.Retry.MaxAttempts; s > 0 && p.attempts >= s {
		return 0, p.giveUp()
	}
	p.emit(Event{Type: Waiting, Phase: "change", Attempt: p.attempts, Status: out.Status, Reason: answer(out), Delay: d})
	if err := p.r.clock.Sleep(ctx, d); err != nil {
		return 0, p.ctxError(ctx)
	}
	p.emit(Event{Type: Retrying, Attempt: p.attempts, Reason: fmt.Sprintf("the %s wait has passed", fmtDur(d))})
	return resend, nil
}

// conflict handles 409 and 422: busy (the body says so, or the resource reads
// busy) waits and re-sends; anything else is a real error.
func (p *pipeline) conflict(ctx context.Context, out *Outcome) (verdict, error) {
	if strings.Contains(strings.ToLower(out.Snippet), "busy") {
		// The server says busy even if a check may not show it yet: never re-send
		// sooner than the retry interval, then wait until the check reads not busy
		// (with or without a guard before each send).
		p.lastBusy = true
		p.mustGuard = true
		return p.backoff(ctx, answer(out), out)
	}
	probe, err := p.read(ctx, p.s.Guard.Check, "guard")
	if err != nil {
		return 0, err
	}
	if ctx.Err() != nil {
		return 0, p.ctxError(ctx)
	}
	busy, err := p.busyState(probe)
	if err != nil {
		return 0, err
	}
	if !busy {
		return 0, p.failure(Failed, nil, fmt.Sprintf("%s (a validation error, not busy: fix the request)", answer(out)))
	}
	p.lastBusy = true
	if s := p.s.Retry.MaxAttempts; s > 0 && p.attempts >= s {
		return 0, p.giveUp()
	}
	// The check read busy: the guard waits it out from that read.
	p.mustGuard, p.firstRead = true, probe
	p.emit(Event{Type: Retrying, Attempt: p.attempts, Reason: "the resource is busy (the change got " + answer(out) + "); sending again once it is not"})
	return resend, nil
}

// backoff waits the retry interval (with backoff and jitter) before a re-send.
func (p *pipeline) backoff(ctx context.Context, why string, out *Outcome) (verdict, error) {
	r := p.s.Retry
	if r.MaxAttempts > 0 && p.attempts >= r.MaxAttempts {
		return 0, p.giveUp()
	}
	d := retryDelay(r, p.retries)
	p.retries++
	if out != nil && out.RetryAfter != nil && *out.RetryAfter > d {
		d = *out.RetryAfter // a 5xx that says when to come back
	}
	p.emit(Event{Type: Waiting, Phase: "change", Attempt: p.attempts, Reason: why, Delay: d})
	if err := p.r.clock.Sleep(ctx, d); err != nil {
		return 0, p.ctxError(ctx)
	}
	p.emit(Event{Type: Retrying, Attempt: p.attempts, Reason: "after " + why})
	return resend, nil
}

// retryDelay is the n-th re-send delay: interval × backoff^n, capped, jittered.
func retryDelay(r Retry, n int) time.Duration {
	d := float64(r.Interval)
	for i := 0; i < n && r.Backoff > 1; i++ {
		d *= r.Backoff
		if r.MaxInterval > 0 && d > float64(r.MaxInterval) {
			break
		}
	}
	if r.MaxInterval > 0 && d > float64(r.MaxInterval) {
		d = float64(r.MaxInterval)
	}
	if r.Jitter > 0 {
		d *= 1 + r.Jitter*(2*rand.Float64()-1)
	}
	return time.Duration(d)
}

// ambiguous handles a non-idempotent change that may or may not have taken
// effect: done if its condition already holds, re-sent only when the runbook says
// it is safe.
func (p *pipeline) ambiguous(ctx context.Context, out *Outcome) (verdict, error) {
	s := p.s
	// A check that reads the answer cannot be made from a failed one: it
	// would read something else (an error body's request id).
	if s.Wait.On && s.Wait.Until != nil && !s.Wait.AfterSend {
		probe, err := p.read(ctx, s.Wait.Check, "wait")
		if err != nil {
			return 0, err
		}
		if ctx.Err() != nil {
			return 0, p.ctxError(ctx)
		}
		if probe != nil && probe.Err == nil && probe.Status != 0 {
			ok, err := s.Wait.Until.Bool(p.scope)
			if err == nil && ok {
				return done, nil
			}
		}
	}
	method := p.what()
	return 0, p.failure(Failed, nil, fmt.Sprintf("%s after the request was sent: the %s may have taken effect, and %s is not idempotent, so it was not re-sent. Check the resource before running again; set retry.idempotent: true if re-sending is safe",
		answer(out), method, method))
}

// giveUp is the retry budget used up.
func (p *pipeline) giveUp() error {
	why := Failed
	if p.lastBusy {
		why = StillBusy
	}
	return p.failure(why, nil, fmt.Sprintf("gave up after %d attempt%s (retry.max_attempts); the last answer was %s", p.attempts, plural(p.attempts), p.lastAnswer))
}

// failure is the step's error. Once a change was accepted, it is never sent
// again whatever fails after (a condition, an output): the message says so.
func (p *pipeline) failure(why Failure, err error, msg string) error {
	if p.accepted != "" && why == Failed && !strings.Contains(msg, "was accepted") {
		msg += fmt.Sprintf(" (after the change was accepted, %s: it is not sent again", p.accepted)
		if p.s.ID != "" {
			msg += "; its answer is in steps." + p.s.ID + ".response"
		}
		msg += ")"
	}
	return &StepError{Why: why, Msg: msg, Wrapped: err, Last: p.lastSeen()}
}

// lastSeen is the last state seen, for messages, saying whose it is when it
// is not the resource the step acts on (the environment a VM's guard reads).
func (p *pipeline) lastSeen() string {
	sum := p.summary(p.lastState())
	if sum == "" || !p.checked || p.stateOf == "" || p.stateOf == "GET "+p.target {
		return sum
	}
	return sum + " (" + p.stateOf + ")"
}

// ctxError explains why the context ended: a deadline (124) or a signal.
func (p *pipeline) ctxError(ctx context.Context) error {
	return ctxError(ctx, p, p.expect)
}

func ctxError(ctx context.Context, p *pipeline, expect string) error {
	cause := context.Cause(ctx)
	var last string
	if p != nil {
		last = p.lastSeen()
		if last == "" {
			if resp, ok := p.scope["response"].(map[string]any); ok && resp["status"] != nil {
				last = fmt.Sprintf("status %v", resp["status"])
			}
		}
	}
	var dc *deadlineCause
	if errors.As(cause, &dc) {
		msg := dc.Error()
		if p != nil && expect == "" && p.lastAnswer != "" {
			msg += fmt.Sprintf(" while %s (%d attempt%s, the last answered %s)", p.doing(), p.attempts, plural(p.attempts), p.lastAnswer)
		}
		if p != nil && p.checkFailed != "" {
			// Waiting on a check that never answered is not waiting on the resource.
			msg += "; the last check failed: " + p.checkFailed
		}
		return &StepError{Why: DeadlinePassed, Msg: msg, Expect: expect, Last: last, Wrapped: cause}
	}
	var st *Stopped
	if errors.As(cause, &st) {
		return &StepError{Why: Interrupted, Signal: st.Code, Msg: st.Error(), Last: last, Wrapped: cause}
	}
	return &StepError{Why: Interrupted, Signal: ExitSIGINT, Msg: "cancelled", Last: last, Wrapped: cause}
}

// doing says what the step's own action does, for messages: "sending the
// change", "reading", "running the command".
func (p *pipeline) doing() string {
	switch info := p.s.Action.Info(); {
	case info.Mutating:
		return "sending the change"
	case info.Method != "":
		return "reading"
	}
	return "running the command"
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// result is steps.<id> for this pipeline.
// An output that cannot be computed fails the step: it is a broken promise to
// later steps (an empty id in the next step's URL).
func (p *pipeline) result() (map[string]any, error) {
	var response, state any = p.actionResponse, p.lastState()
	if p.r.dryRun && p.s.Action.Info().Effects && p.actionResponse == nil {
		// A dry run sent nothing, so nothing was answered: what reads it is
		// shown as written.
		response, state = unknown{}, unknown{}
	}
	p.scope["response"], p.scope["state"] = response, state
	outputs := map[string]any{}
	for _, o := range p.s.Outputs {
		v, err := o.Expr.Eval(p.scope)
		if err != nil {
			return nil, p.failure(Failed, err, fmt.Sprintf("output %s: %v", o.Name, err))
		}
		outputs[o.Name] = v
	}
	return map[string]any{"skipped": false, "response": response, "state": state,
		"outputs": outputs, "attempts": p.attempts, "error": ""}, nil
}

// answer describes an outcome in a few words: "423 Retry-After 30s".
func answer(out *Outcome) string {
	switch {
	case out.Err != nil:
		return out.Err.Error()
	case out.Status == 0:
		if out.Accepted {
			return "ok"
		}
		if out.Message != "" {
			return out.Message
		}
		return fmt.Sprintf("exit code %d", out.ExitCode)
	}
	s := fmt.Sprintf("%d %s", out.Status, http.StatusText(out.Status))
	if out.Status == http.StatusLocked || out.Status == http.StatusTooManyRequests {
		if out.RetryAfter != nil {
			s = fmt.Sprintf("%d Retry-After %s", out.Status, fmtDur(*out.RetryAfter))
		} else {
			s = fmt.Sprintf("%d without Retry-After", out.Status)
		}
	}
	if out.Status >= 400 {
		msg := out.Said
		if msg == "" {
			msg = ServerMessage(out)
		}
		if msg != "" {
			s += ": " + msg
		}
	}
	return s
}

// ServerMessage is what a server said in an error body: the `error`, `errors` or
// `message` of a JSON body, else the start of the text.
func ServerMessage(out *Outcome) string {
	if obj, ok := out.Body.(map[string]any); ok {
		if msgs := errorMessages(obj); len(msgs) > 0 {
			return strings.Join(msgs, "; ")
		}
		if m, ok := obj["message"].(string); ok && m != "" {
			return m
		}
	}
	return out.Snippet
}

// fmtDur prints durations the way operators write them: 10s, 1m30s, 1h, 250ms.
func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	}
	d = d.Round(time.Second)
	s := d.String()
	// time.Duration prints 1h0m0s; operators write 1h.
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// FormatDuration is fmtDur for presentation packages.
func FormatDuration(d time.Duration) string { return fmtDur(d) }
