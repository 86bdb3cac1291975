package runbook

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
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
	// Confirm asks the person at the terminal for a step's confirm; nil when
	// no one can be asked: such a step stops the run before it (exit 75)
	// unless Approve names it or Yes approves every confirm.
	Confirm ConfirmFunc
	Approve []string // --confirm: steps approved in advance, by id or index
	Yes     bool     // --yes: every confirm approved in advance
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
	pauses  *pauses // shared with the frames of used runbooks (uses:), as are pacers, gates and memory
	pacers  *pacers
	gates   *gates
	memory  *memory
	typical *typical       // when a step's changes usually show
	fresh   *fresh         // reads that can serve the next item's guard
	steps   map[string]any // steps.<id>, written between steps only
	base    Scope          // vars, env, steps

	ask      ConfirmFunc  // nil: no one to ask
	approved []string     // --confirm
	yes      bool         // --yes
	deadline *runDeadline // the run's timeout, held while a person decides
	frame    *frame       // a used runbook's steps (uses:): where they run; nil for the top level
}

// Run executes the runbook. The error, if any, carries the exit code; its text
// and every event are free of secrets.
func (rb *Runbook) Run(ctx context.Context, opt Options) error {
	r, err := rb.start(opt)
	if err != nil {
		return err
	}
	return r.redact.Error(r.execute(ctx, opt))
}

// execute carries out the steps in order.
func (r *run) execute(ctx context.Context, opt Options) error {
	rb := r.rb

	timeout := rb.Timeout
	if opt.Timeout > 0 {
		timeout = opt.Timeout
	}
	runCtx := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = r.startDeadline(ctx, timeout)
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
	at, continued, err := r.mainSteps(runCtx)
	if err == nil && r.dryRun {
		continued = append(continued, "dry run: no change was sent")
	}
	return r.end(ctx, start, at, err, continued)
}

// mainSteps carries out the main steps in order, until one fails. It returns
// that step, what failed but was continued, and the failure.
func (r *run) mainSteps(ctx context.Context) (at *Step, continued []string, err error) {
	var failed []string
	for _, s := range r.rb.Steps {
		if r.resume != nil && s.Index < r.resume.Next && r.restore(s) {
			continue
		}
		if err := r.runStep(ctx, s, &failed); err != nil {
			return s, nil, err
		}
	}
	if len(failed) > 0 {
		continued = []string{fmt.Sprintf("%d step(s) failed and were continued: %s", len(failed), strings.Join(failed, ", "))}
	}
	return nil, continued, nil
}

// runStep journals and carries out one step. A failure it continues past
// (continue_on_error) is added to failed and counts as done: a resume goes on
// after it.
func (r *run) runStep(ctx context.Context, s *Step, failed *[]string) error {
	err := r.record(Record{Type: recStepStarted, Step: s.Index, StepName: r.names[s.Index], StepID: s.ID})
	if err == nil {
		err = r.step(ctx, s)
	}
	if err != nil && !(s.ContinueOnError && ctx.Err() == nil && !journalBroken(err) && !unconfirmed(err)) {
		return err
	}
	rec := Record{Type: recStepDone, Step: s.Index, StepName: r.names[s.Index], StepID: s.ID}
	if s.ForEach == nil {
		// A fleet's results are in its item_done records.
		rec.Result = r.steps[s.ID]
	}
	if err != nil {
		rec.Error = errMsg(err)
		*failed = append(*failed, r.names[s.Index])
	}
	if jerr := r.record(rec); jerr != nil {
		return r.journalFailure(s, jerr)
	}
	return nil
}

// outcomeOf is how err ended a run: ok, failed, or stopped (by a signal or a
// cancel). A run waiting for a confirmation is paused, not failed: on_failure
// would undo what the person is asked to let go on.
func outcomeOf(err error) string {
	if err == nil {
		return "ok"
	}
	var se *StepError
	if c := ExitCode(err); interrupted(err) || c == ExitSIGINT || c == ExitSIGTERM || errors.As(err, &se) && se.Why == Unconfirmed {
		return "stopped"
	}
	return "failed"
}

// end runs the cleanup lists, then journals and reports how the run ended:
// err at step at (nil: after the last step, when the journal broke). notes
// say what else the run's last line should.
func (r *run) end(ctx context.Context, start time.Time, at *Step, err error, notes []string) error {
	outcome := outcomeOf(err)
	if at != nil {
		// A broken journal takes no more records; the rest are best effort.
		r.record(Record{Type: recStepFailed, Step: at.Index, StepName: r.names[at.Index], StepID: at.ID, Error: errMsg(err)})
	}
	if cerr := r.cleanup(ctx, at, err, outcome); cerr != nil {
		switch {
		case err == nil && journalBroken(cerr):
			err, outcome = cerr, "failed"
		case err == nil:
			// The main steps all took effect; what the runbook asked for
			// after them did not. The run failed: monitoring must not count
			// it a success, and a resume runs only the cleanup again.
			err = &StepError{Why: Failed, Msg: "every step took effect, but " + cerr.Error(), Wrapped: cerr}
			outcome = "failed"
		default:
			err = &CleanupError{Err: err, Cleanup: cerr}
		}
	}
	ev := Event{Type: RunDone, Run: r.rb.Name, Elapsed: r.since(start), Reason: strings.Join(notes, "; ")}
	done := Record{Type: recRunDone, Outcome: outcome}
	if err != nil {
		ev.Err, done.Error = err.Error(), err.Error()
	}
	if at != nil {
		ev.Reason, done.Step = fmt.Sprintf("stopped at step %d", at.Index), at.Index
	}
	if jerr := r.record(done); jerr != nil && err == nil {
		// Every step took effect, but a resume would not know it.
		err = jerr
		ev.Err = err.Error()
	}
	ev.Interrupted = outcome == "stopped"
	r.emit(ev)
	return err
}

func (r *run) since(t time.Time) time.Duration { return r.clock.Now().Sub(t) }

// emit stamps an event with the wall-clock time (durations in it are on the
// run's clock, which --sim scales) and redacts it.
func (r *run) emit(e Event) {
	if r.frame != nil {
		r.frame.emit(e)
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.RunID = r.id
	r.obs.Observe(r.redact.Event(e))
}

// step runs one step: a plain step's pipeline, or every for_each item's.
func (r *run) step(ctx context.Context, s *Step) error {
	start := r.clock.Now()
	stepEvent := func(e Event) Event {
		e.Step, e.StepName, e.StepID = s.Index, r.names[s.Index], s.ID
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
				r.steps[s.ID] = StepResult{Skipped: true}.scope()
			}
			return nil
		}
	}
	if err := r.confirm(ctx, s, scope, stepEvent); err != nil {
		return r.fail(s, stepEvent, err, start, 0)
	}
	start = r.clock.Now() // the time a person took to answer is not the step's
	if s.ForEach != nil {
		return r.forEach(ctx, s, scope, start, stepEvent)
	}
	p := &pipeline{r: r, s: s, scope: scope, start: start, itemIndex: -1, flight: r.flight(s, "")}
	res, err := p.carry(ctx)
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

// failedEvent makes e the failed event of err, marked when it was a stop.
func failedEvent(err error, e Event) Event {
	// A step waiting for its confirmation has not failed either.
	e.Type, e.Err, e.Interrupted = StepFailed, errMsg(err), interrupted(err) || outcomeOf(err) == "stopped"
	return e
}

// interrupted reports whether err is a signal's stop rather than a failure.
func interrupted(err error) bool {
	var se *StepError
	return errors.As(err, &se) && se.Why == Interrupted
}

// record appends to the journal. A record that cannot be written is an error
// (exit 74): the run must not send what a resume could not know of.
func (r *run) record(recs ...Record) error {
	if r.journal == nil {
		return nil
	}
	now := time.Now()
	for i := range recs {
		recs[i].Time, recs[i].RunID = now, r.id
		if r.frame != nil && recs[i].Path == "" {
			recs[i].Path = r.frame.path
		}
	}
	return r.journal.write(recs...)
}

// journalErr is the journal's first write error: once there is one, nothing
// more is sent.
func (r *run) journalErr() error {
	if r.journal == nil {
		return nil
	}
	return r.journal.Err()
}

// journalFailure is the step error of a journal that cannot be written.
func (r *run) journalFailure(s *Step, err error) error {
	se := &StepError{Why: JournalBroken, Msg: err.Error(), Wrapped: err}
	if s != nil {
		se.Step, se.Index = r.names[s.Index], s.Index
	}
	return se
}

func journalBroken(err error) bool {
	var je *JournalError
	return errors.As(err, &je)
}
