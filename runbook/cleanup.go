package runbook

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// CleanupError is a run's failure together with what its cleanup steps could
// not do. The exit code is the failure's: cleanup does not change why the run
// failed.
type CleanupError struct {
	Err     error // the main steps' failure
	Cleanup error // what failed in on_failure or finally
}

func (e *CleanupError) Error() string { return e.Err.Error() + "; " + e.Cleanup.Error() }
func (e *CleanupError) Unwrap() error { return e.Err }
func (e *CleanupError) ExitCode() int { return ExitCode(e.Err) }

// cleanup runs on_failure (when the main steps failed, not stopped) and then
// finally, each step whatever the one before did. They run under the
// runbook's cleanup_timeout from now, not under the deadline or the signal
// that may have ended the main steps: cleanup must not be starved by what
// made it necessary. A broken journal runs nothing: nothing more may be sent
// that a resume could not know of. The error lists the cleanup steps that
// failed; nil when none did.
func (r *run) cleanup(parent context.Context, at *Step, err error, outcome string) error {
	lists := [][]*Step{}
	if outcome == "failed" {
		lists = append(lists, r.rb.OnFailure)
	}
	lists = append(lists, r.rb.Finally)
	if journalBroken(err) || len(r.rb.OnFailure)+len(r.rb.Finally) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeoutCause(context.WithoutCancel(parent), r.clock.Real(r.rb.CleanupTimeout),
		&deadlineCause{what: "cleanup_timeout " + fmtDur(r.rb.CleanupTimeout)})
	defer cancel()
	r.setRunScope(at, err, outcome)
	var failed []string
	for _, steps := range lists {
		if len(steps) == 0 {
			continue
		}
		stage := steps[0].Stage
		r.emit(Event{Type: CleanupStarted, Phase: Phase(stage), Steps: len(steps), Reason: string(stage)})
		if jerr := r.record(Record{Type: recCleanup, Outcome: string(stage)}); jerr != nil {
			return jerr
		}
		for _, s := range steps {
			var continued []string
			serr := r.runStep(ctx, s, &continued)
			if serr == nil {
				continue
			}
			r.record(Record{Type: recStepFailed, Step: s.Index, StepName: r.names[s.Index], StepID: s.ID, Error: errMsg(serr)})
			if journalBroken(serr) {
				// Nothing more is sent; the journal's error says what to do.
				return serr
			}
			failed = append(failed, fmt.Sprintf("%s step %d %q failed: %s", stage, s.Index, r.names[s.Index], errMsg(serr)))
		}
	}
	if len(failed) > 0 {
		return errors.New(strings.Join(failed, "; "))
	}
	return nil
}

// setRunScope tells cleanup steps how the main steps ended, through run.
func (r *run) setRunScope(at *Step, err error, outcome string) {
	run := r.runScope()
	run["result"] = outcome
	if err != nil {
		run["error"] = r.redact.String(errMsg(err))
		run["exit_code"] = ExitCode(err)
	}
	if at != nil {
		run["failed_step"], run["failed_step_id"] = r.names[at.Index], at.ID
	}
	r.base["run"] = run
	// A step that never ran reads as skipped, so that a cleanup step can ask
	// steps.resize.skipped rather than fail on a missing name.
	for _, s := range r.rb.AllSteps() {
		if _, ok := r.steps[s.ID]; s.ID != "" && !ok {
			r.steps[s.ID] = StepResult{Skipped: true}.scope()
		}
	}
}
