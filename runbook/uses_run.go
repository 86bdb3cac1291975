package runbook

import (
	"context"
	"errors"
	"fmt"
	"strconv"
)

// frame is where a used runbook's steps run: under which step (and item) of
// the runbook that uses it, so that their events show under that step and
// their journal records are told apart from its own.
type frame struct {
	parent *run
	path   string // the journal's Path of its records
	step   int    // the using step's number
	name   string // the using step's name, for this item
	item   string // the using step's item, "" when none
	itemNo int
}

// emit shows a used runbook's event under the using step: its name before
// the inner step's, its number first in Path, its item when the inner step
// has none of its own.
func (f *frame) emit(e Event) {
	if e.Type == CleanupStarted {
		// The used runbook's own cleanup: part of the using step.
		e.Path, e.Step, e.StepName = strconv.Itoa(f.step), f.step, f.name
		if e.Item == "" {
			e.Item, e.ItemNo = f.item, f.itemNo
		}
	} else if e.Step > 0 {
		inner := e.Path
		if inner == "" {
			inner = strconv.Itoa(e.Step)
		}
		e.Path = strconv.Itoa(f.step) + "/" + inner
		e.Step = f.step
		e.StepName = f.name + " › " + e.StepName
		if e.Item == "" {
			e.Item, e.ItemNo = f.item, f.itemNo
		}
	}
	f.parent.emit(e)
}

// carryUses runs the used runbook's steps for this step (or item): in their
// own scope, with vars from with: rendered in the step's scope, through this
// run's pacers, pauses, gates, journal and observer. Its result's outputs are
// the used runbook's outputs.
func (p *pipeline) carryUses(ctx context.Context) (map[string]any, error) {
	r, s, u := p.r, p.s, p.s.Uses
	if s.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, r.clock.Real(s.Timeout), &deadlineCause{what: "step timeout " + fmtDur(s.Timeout)})
		defer cancel()
	}
	path := strconv.Itoa(s.Index)
	if p.itemKey != "" {
		path += "@" + p.itemKey
	}
	if r.frame != nil {
		path = r.frame.path + "/" + path
	}
	name := p.name
	if name == "" {
		name = r.names[s.Index]
	}
	sub := &run{rb: u.Book, id: r.id, journal: r.journal, resume: r.resume.frame(path), dryRun: r.dryRun, verbose: r.verbose,
		obs: r.obs, clock: r.clock, redact: r.redact, pauses: r.pauses, pacers: r.pacers, gates: r.gates, memory: r.memory, typical: r.typical, fresh: r.fresh,
		steps: map[string]any{}, frame: &frame{parent: r, path: path, step: s.Index, name: name, item: p.item, itemNo: p.itemIndex + 1},
		// A used runbook's confirm is asked, approved and held for as the
		// run's own are.
		ask: r.ask, approved: r.approved, yes: r.yes, deadline: r.deadline}
	vars, err := u.vars(p.scope, r.base["env"])
	if err != nil {
		err = r.redact.Error(err)
		return StepResult{Error: errMsg(err)}.scope(), &StepError{Why: Failed, Msg: err.Error(), Wrapped: err}
	}
	sub.base = Scope{"env": r.base["env"], "steps": sub.steps, "run": r.base["run"], "vars": vars}
	sub.names = make(map[int]string, len(u.Book.Steps))
	for _, is := range u.Book.AllSteps() {
		sub.names[is.Index] = is.Name
		if is.Title != nil {
			sub.names[is.Index] = is.Title.Partial(is.withoutItem(sub.base))
		}
	}
	sub.refreshSecrets()
	if err := u.Book.emptyCredential(sub.base); err != nil {
		// As at a run's start: an empty credential must not be sent.
		return StepResult{Error: errMsg(err)}.scope(), &StepError{Why: Failed, Msg: err.Error(), Wrapped: err}
	}
	if err := sub.runUsed(ctx); err != nil {
		return StepResult{Error: errMsg(err)}.scope(), usedFailure(u, err)
	}
	outputs := map[string]any{}
	for _, o := range u.Book.Outputs {
		v, err := o.Expr.Eval(sub.base)
		if err != nil {
			err = fmt.Errorf("%s: output %s: %w", u.Book.File, o.Name, err)
			return StepResult{Error: errMsg(err)}.scope(), &StepError{Why: Failed, Msg: err.Error(), Wrapped: err}
		}
		outputs[o.Name] = v
	}
	return StepResult{Outputs: outputs}.scope(), nil
}

// runUsed carries out a used runbook's steps in order, journaling each as the
// top level does, so that a resume goes on inside it; then its own on_failure
// and finally, as part of the step.
func (r *run) runUsed(ctx context.Context) error {
	var failed []string
	var err error
	var at *Step
	for _, s := range r.rb.Steps {
		if r.resume != nil && s.Index < r.resume.Next && r.restore(s) {
			continue
		}
		if err = r.runStep(ctx, s, &failed); err != nil {
			at = s
			break
		}
	}
	if at != nil {
		r.record(Record{Type: recStepFailed, Step: at.Index, StepName: r.names[at.Index], StepID: at.ID, Error: errMsg(err)})
	}
	if cerr := r.cleanup(ctx, at, err, outcomeOf(err)); cerr != nil {
		if err == nil && journalBroken(cerr) {
			return cerr
		}
		if err == nil {
			return &StepError{Why: Failed, Msg: "every step took effect, but " + cerr.Error(), Wrapped: cerr}
		}
		return &CleanupError{Err: err, Cleanup: cerr}
	}
	return err
}

// usedFailure is the using step's error for a used step's: its exit code
// (busy, a deadline, a stop), and its message with the file it is in.
func usedFailure(u *Uses, err error) error {
	var se *StepError
	if !errors.As(err, &se) {
		return err
	}
	// err's own words: a used runbook's cleanup failure is part of them.
	return &StepError{Why: se.Why, Signal: se.Signal, Until: se.Until, Msg: u.Book.File + ": " + err.Error(), Wrapped: err}
}

// vars renders the used runbook's vars: with:'s values in the using step's
// scope, each as its declared type, and the others as declared, over env and
// the vars before them.
func (u *Uses) vars(caller Scope, env any) (map[string]any, error) {
	vars := map[string]any{}
	scope := Scope{"env": env, "vars": vars}
	given := map[string]*Value{}
	for _, w := range u.With {
		given[w.Name] = w.Value
	}
	for _, v := range u.Book.Vars {
		if w, ok := given[v.Name]; ok {
			val, err := w.Render(caller)
			if err != nil {
				return nil, fmt.Errorf("with %s: %w", v.Name, err)
			}
			if vars[v.Name], err = withValue(u.Book.File, v, val); err != nil {
				return nil, err
			}
			continue
		}
		val, err := v.Value.Render(scope)
		if err != nil {
			return nil, fmt.Errorf("%s:%d:%d: var %s: %w", u.Book.File, v.Pos.Line, v.Pos.Col, v.Name, err)
		}
		vars[v.Name] = val
	}
	return vars, nil
}

// withValue is a with: value as its var's declared type: text as --var would
// give it, a value of the type as it is. The value is not quoted back: it
// may be a secret.
func withValue(file string, v Var, val any) (any, error) {
	declared := v.Value.sample()
	if text, ok := val.(string); ok {
		if _, isText := declared.(string); isText || v.Required {
			return text, nil
		}
		if out, err := overrideValue(file, v.Name, declared, text); err == nil {
			return out, nil
		}
	}
	switch declared.(type) {
	case nil:
		return val, nil
	case string:
		switch val.(type) {
		case []any, map[string]any, nil:
		default:
			return Text(val), nil
		}
	case int:
		if f, ok := val.(float64); ok && f == float64(int(f)) {
			return int(f), nil
		}
		if _, ok := val.(int); ok {
			return val, nil
		}
	case float64:
		switch n := val.(type) {
		case float64:
			return n, nil
		case int:
			return float64(n), nil
		}
	case bool:
		if _, ok := val.(bool); ok {
			return val, nil
		}
	case []any:
		if l, ok := asList(val); ok {
			return l, nil
		}
	case map[string]any:
		if _, ok := val.(map[string]any); ok {
			return val, nil
		}
	}
	got := "null"
	if val != nil {
		got = declaredKind(val)
	}
	return nil, fmt.Errorf("with %s: %s declares %s as %s, and the value is %s", v.Name, file, v.Name, declaredKind(declared), got)
}
