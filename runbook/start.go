package runbook

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

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
	missing := rb.missingEnv(opt.Env)
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
	r := &run{rb: rb, id: opt.RunID, journal: opt.Journal, resume: opt.Resume, dryRun: opt.DryRun, verbose: opt.Verbose, obs: obs, clock: clock, steps: map[string]any{}, pauses: &pauses{until: map[string]time.Time{}}, memory: &memory{}, redact: NewRedactor()}
	r.ask, r.approved, r.yes = opt.Confirm, opt.Approve, opt.Yes
	for _, name := range rb.Secrets {
		r.redact.Add(opt.Env[name])
	}
	env := make(map[string]any, len(opt.Env))
	for k, v := range opt.Env {
		env[k] = v
	}
	r.pacers = &pacers{perSecond: rb.Rate, byHost: map[string]*pacer{}}
	r.gates = &gates{byKey: map[string]chan struct{}{}}
	r.typical = &typical{}
	r.fresh = &fresh{}
	r.base = Scope{"env": env, "steps": r.steps, "run": r.runScope()}
	if err := rb.renderVars(r.base, opt.Vars, false); err != nil {
		return nil, r.redact.Error(err)
	}
	if err := rb.emptyCredential(r.base); err != nil {
		return nil, err
	}
	r.names = make(map[int]string, len(rb.Steps))
	for _, s := range rb.AllSteps() {
		r.names[s.Index] = s.Name
		if s.Title != nil {
			r.names[s.Index] = s.Title.Partial(s.withoutItem(r.base))
		}
	}
	r.refreshSecrets()
	return r, nil
}

// missingEnv names the environment variables the runbook, and the runbooks
// it uses, read strictly and that are not set, and the credentials that
// are set but empty.
func (rb *Runbook) missingEnv(env map[string]string) []string {
	var missing []string
	for _, v := range rb.Env {
		if _, ok := env[v.Name]; !ok {
			missing = append(missing, fmt.Sprintf("%s:%d:%d: environment variable %s is not set: export it before running, or write env?.%s ?? \"default\" if it is optional",
				rb.File, v.Pos.Line, v.Pos.Col, v.Name, v.Name))
		}
	}
	missing = append(missing, rb.emptyCredentialEnv(env)...)
	for _, s := range rb.Steps {
		if s.Uses != nil {
			missing = append(missing, s.Uses.Book.missingEnv(env)...)
		}
	}
	return missing
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
	for _, s := range rb.AllSteps() {
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
