package runbook

import (
	"fmt"
	"strings"
)

// PlanStep is one step as `runbook plan` shows it: what it will do, how it is
// guarded, what it waits for, how it retries, and its deadline. Nothing is sent to
// make it.
type PlanStep struct {
	Index    int
	Stage    Stage  // the list it is in: main, on_failure or finally
	Path     string // a used runbook's step (uses:): "3/1" for step 1 of the runbook step 3 uses; "" at the top level
	Name, ID string
	If       string // the condition, "" when none
	ForEach  string // "for each vm in <expr>, 2 at a time", "" when none
	Confirm  string // the confirm's text as written, "" when none
	Action   string
	Guard    string
	Wait     string
	Retry    string
	Deadline string
	Outputs  []string
}

// Plan describes the steps with templates rendered where they can be without
// running (vars, env); what depends on earlier steps stays as written. Secrets
// are redacted.
func (rb *Runbook) Plan(opt Options) ([]PlanStep, error) {
	scope, red, err := rb.varScope(opt)
	if err != nil {
		return nil, err
	}
	// How the run went is known only once it has: what reads run stays as
	// written.
	scope["run"] = unknown{}
	all := rb.AllSteps()
	out := make([]PlanStep, len(all))
	for i, s := range all {
		scope := s.withoutItem(scope)
		p := PlanStep{Index: s.Index, Stage: s.Stage, Name: s.Name, ID: s.ID, Action: s.Action.Describe(scope)}
		if s.Title != nil {
			p.Name = s.Title.Partial(scope)
		}
		if s.If != nil {
			p.If = s.If.Source
		}
		if s.ForEach != nil {
			p.ForEach = fmt.Sprintf("for each %s in %s", s.As, s.ForEach.Source)
			if s.Concurrency > 1 {
				p.ForEach += fmt.Sprintf(", %d at a time", s.Concurrency)
			}
			if s.MaxFailures != nil {
				p.ForEach += fmt.Sprintf("; up to %s of the items may fail before no new one starts", s.MaxFailures)
			}
		}
		if s.Confirm != nil {
			p.Confirm = s.Confirm.Source
		}
		p.Guard = rb.planGuard(s, scope)
		p.Wait = rb.planWait(s, scope)
		p.Retry = planRetry(s)
		p.Deadline = fmtDur(s.Timeout)
		switch {
		case s.Stage != StageMain && rb.CleanupTimeout < s.Timeout:
			p.Deadline += fmt.Sprintf(" (cleanup_timeout %s comes first)", fmtDur(rb.CleanupTimeout))
		case s.Stage == StageMain && rb.Timeout > 0 && rb.Timeout < s.Timeout:
			p.Deadline += fmt.Sprintf(" (the run's %s comes first)", fmtDur(rb.Timeout))
		}
		if s.ContinueOnError {
			p.Deadline += "; on failure the run continues"
		}
		for _, o := range s.Outputs {
			p.Outputs = append(p.Outputs, o.Name+" = "+o.Expr.Source)
		}
		for _, f := range []*string{&p.Name, &p.If, &p.ForEach, &p.Confirm, &p.Action, &p.Guard, &p.Wait} {
			*f = red.String(*f)
		}
		out[i] = p
	}
	return rb.planUses(out, scope, opt, red), nil
}

// PlanRequired describes the vars a run requires (declared null), and whether
// the command line gives them.
func (rb *Runbook) PlanRequired(overrides map[string]string) []string {
	var out []string
	for _, v := range rb.Vars {
		if !v.Required {
			continue
		}
		if _, ok := overrides[v.Name]; ok {
			out = append(out, v.Name+" (given)")
		} else {
			out = append(out, fmt.Sprintf("%s, not given: a run needs --var %s=VALUE", v.Name, v.Name))
		}
	}
	return out
}

// Describer renders actions as a run would see them before its first step:
// the vars (with --var) and env known, what earlier steps return not, a
// for_each item not; secrets redacted. When the run could not start (a
// resume's vars are still in its journal), it renders no var and no env, so
// what it shows is all as written or all as it would run, never a mix.
func (rb *Runbook) Describer(opt Options) func(s *Step, a Action) string {
	r, err := rb.start(opt)
	if err != nil {
		none := Scope{"vars": unknown{}, "env": unknown{}, "steps": unknown{}}
		return func(s *Step, a Action) string { return a.Describe(s.withoutItem(none)) }
	}
	return func(s *Step, a Action) string { return r.redact.String(a.Describe(s.withoutItem(r.base))) }
}

// withoutItem is scope for describing a for_each step as a whole: its item
// and index are known only per item, so what reads them stays as written.
func (s *Step) withoutItem(scope Scope) Scope {
	if s.ForEach == nil {
		return scope
	}
	scope = scope.Clone()
	scope[s.As], scope["index"] = unknown{}, unknown{}
	return scope
}

func checkOf(check Action, scope Scope) string {
	if check == nil {
		return "(no check)"
	}
	return check.Describe(scope)
}

func (rb *Runbook) planGuard(s *Step, scope Scope) string {
	g := s.Guard
	if !g.On {
		info := s.Action.Info()
		if info.Change && g.Check == nil && info.Method == "POST" {
			return "none: a POST to a top-level collection has no resource to read first (give it guard: {check: ...} if something must not be busy)"
		}
		if info.Change {
			return "off (guard: false): the change is sent even if the resource is busy"
		}
		return "none (not a change)"
	}
	d := fmt.Sprintf("%s every %s while %s", checkOf(g.Check, scope), fmtDur(g.Interval), g.BusyWhen.Source)
	if g.Timeout > 0 {
		d += fmt.Sprintf(", at most %s", fmtDur(g.Timeout))
	}
	return d
}

// monitorNames are the headers that name a status monitor, for plan.
const monitorNames = "Operation-Location, Azure-AsyncOperation, or a 202's Location"

func (rb *Runbook) planWait(s *Step, scope Scope) string {
	w := s.Wait
	// Whether the answer may name a status monitor that the wait polls.
	monitor := s.Action.Info().Monitor != nil && !w.Off && !w.OwnCheck
	operation := fmt.Sprintf("the monitor the answer names (%s) every %s until Succeeded", monitorNames, fmtDur(w.Interval))
	if !w.On {
		switch {
		case monitor:
			return operation + "; with none, a 2xx answer is taken as done"
		case s.Action.Info().Change:
			return "none: a 2xx answer is taken as done"
		}
		return "none"
	}
	d := fmt.Sprintf("%s every %s until %s", checkOf(w.Check, scope), fmtDur(w.Interval), w.Until.Source)
	if monitor {
		d = "the status monitor the answer names, if any, until Succeeded; then " + d
	}
	if g := checkOf(s.Guard.Check, scope); s.sharesGuardRead() && strings.HasPrefix(checkOf(w.Check, scope), g+"/") {
		d += fmt.Sprintf(" (read in the answer of %s when it lists the resource whole: that read also serves the next item's guard)", g)
	}
	if w.FailWhen != nil {
		d += "; fails when " + w.FailWhen.Source
	}
	if w.Timeout > 0 {
		d += fmt.Sprintf("; at most %s", fmtDur(w.Timeout))
	}
	return d
}

func planRetry(s *Step) string {
	r := s.Retry
	var parts []string
	every := "every " + fmtDur(r.Interval)
	if r.Backoff > 1 {
		every += fmt.Sprintf(", x%g each time", r.Backoff)
		if r.MaxInterval > 0 {
			every += " up to " + fmtDur(r.MaxInterval)
		}
	}
	if r.Jitter > 0 {
		every += fmt.Sprintf(" (±%g%%)", r.Jitter*100)
	}
	// Only a request is retried by the HTTP rules; anything else (a command
	// that failed) only when retry.when says so.
	info := s.Action.Info()
	request := info.Method != ""
	switch {
	case request:
		parts = append(parts, "after 5xx or connection errors "+every, "Retry-After honoured up to "+fmtDur(r.MaxRetryAfter))
		idem := !info.Change || info.Idempotent
		if r.Idempotent != nil {
			idem = *r.Idempotent
		}
		switch {
		case info.Change && !idem:
			parts = append(parts, "not re-sent after an ambiguous failure (not idempotent)")
		case info.Keyed && idem:
			parts = append(parts, "re-sent after an ambiguous failure with the same Idempotency-Key")
		}
		if info.Change && r.BusyAnswer != nil {
			parts = append(parts, "a 409 or 422 means busy when "+r.BusyAnswer.Source)
		}
	case r.When == nil:
		return "none"
	default:
		parts = append(parts, "when "+r.When.Source+", "+every)
	}
	if r.MaxAttempts > 0 {
		parts = append(parts, fmt.Sprintf("at most %d attempt%s", r.MaxAttempts, map[bool]string{true: "", false: "s"}[r.MaxAttempts == 1]))
	}
	if r.When != nil && request {
		parts = append(parts, "also when "+r.When.Source)
	}
	return strings.Join(parts, "; ")
}
