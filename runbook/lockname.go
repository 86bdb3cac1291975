package runbook

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// A runbook's `lock:` names what it acts on ("skytap-env-${{ vars.env_id }}"),
// so runbooks that act on one target take turns whatever their file, and runs
// of one runbook on different targets do not wait for each other.

// loadLock compiles lock:, a template over vars and env only: the name is
// needed before the lock is taken, so before anything runs.
func (c *compileCtx) loadLock(rb *Runbook, n *yaml.Node) {
	t := c.template(n, "lock")
	if t == nil {
		return
	}
	if lit, ok := t.Literal(); ok && strings.TrimSpace(lit) == "" {
		c.errorf(n, "lock is empty: name what the runbook acts on, such as skytap-env-${{ vars.env_id }}, or remove lock: to lock the runbook file")
		return
	}
	ok := true
	for _, p := range t.parts {
		if p.expr == nil {
			continue
		}
		for _, name := range p.expr.reads {
			if slices.Contains(scopeNames, name) && name != "vars" && name != "env" {
				c.errorAt(p.expr.Pos, "lock: ${{ %s }} reads %s, which is known only once the run has started; a lock name is taken before, from vars and env only", p.expr.Source, name)
				ok = false
			}
		}
		for i, name := range p.expr.Env {
			if slices.Contains(rb.Secrets, name) {
				c.errorAt(p.expr.envAt[i], "lock: reads env.%s, which secrets: hides; a lock name appears in messages and file names: build it from what is not secret", name)
				ok = false
			}
		}
	}
	if ok {
		rb.Lock, rb.LockPos = t, nodePos(resolve(n))
	}
}

// LockName renders the runbook's lock: with the vars (opt.Vars holds --var
// and var files) and env; "" when it has none, and the runbook file is
// locked. A name that would hold a secret is refused: it appears in messages
// and in a file name.
func (rb *Runbook) LockName(opt Options) (string, error) {
	if rb.Lock == nil {
		return "", nil
	}
	scope, red, err := rb.varScope(opt)
	if err != nil {
		return "", err
	}
	vars := scope["vars"].(map[string]any)
	for _, v := range rb.Vars {
		if _, given := vars[v.Name]; v.Required && !given {
			vars[v.Name] = unknown{}
		}
	}
	var b strings.Builder
	for _, p := range rb.Lock.parts {
		if p.expr == nil {
			b.WriteString(p.lit)
			continue
		}
		where := fmt.Sprintf("%s:%d:%d: lock: ${{ %s }}", rb.File, p.expr.Pos.Line, p.expr.Pos.Col, p.expr.Source)
		v, err := p.expr.Eval(scope)
		if _, isUnknown := v.(unknown); isUnknown {
			return "", &UsageError{Msg: where + " reads a required var that is not given: give it with --var, on a --resume too (the lock is taken before the stopped run's vars are read)"}
		}
		if err != nil {
			return "", &UsageError{Msg: red.String(fmt.Sprintf("cannot name the lock before the run: %v", err))}
		}
		text := Text(v)
		if strings.TrimSpace(text) == "" {
			return "", &UsageError{Msg: where + " is empty, so the lock would name no target: give it a value with --var"}
		}
		b.WriteString(text)
	}
	name := b.String()
	if red.String(name) != name {
		return "", &UsageError{Msg: fmt.Sprintf("%s:%d:%d: lock: the name would hold a secret (a value of secrets:, or a credential); a lock name appears in messages and file names: build it from vars that are not secret", rb.File, rb.LockPos.Line, rb.LockPos.Col)}
	}
	return name, nil
}

// PlanLock is the lock: name as a plan shows it: rendered where it can be,
// secrets hidden; "" when the runbook has none.
func (rb *Runbook) PlanLock(opt Options) (string, error) {
	if rb.Lock == nil {
		return "", nil
	}
	scope, red, err := rb.varScope(opt)
	if err != nil {
		return "", err
	}
	return red.String(rb.Lock.Partial(scope)), nil
}

// varScope is what is known before a run starts: env, and the vars rendered
// with opt.Vars, leaving out those that cannot be yet (a required one not
// given); and a redactor of the secrets among them.
func (rb *Runbook) varScope(opt Options) (Scope, *Redactor, error) {
	if err := rb.checkVarNames(opt.Vars); err != nil {
		return nil, nil, err
	}
	red := NewRedactor()
	env := make(map[string]any, len(opt.Env))
	for k, v := range opt.Env {
		env[k] = v
	}
	for _, name := range rb.Secrets {
		red.Add(opt.Env[name])
	}
	scope := Scope{"env": env, "steps": map[string]any{}}
	if err := rb.renderVars(scope, opt.Vars, true); err != nil {
		return nil, nil, red.Error(err)
	}
	rb.hideSecrets(red, scope)
	return scope, red, nil
}

// lockKey names a lock name in file names: its safe characters, cut short,
// and a hash of the whole name, so any text gives a distinct name of bounded
// length with no path separator in it.
func lockKey(name string) string {
	var b strings.Builder
	for _, r := range name {
		if b.Len() >= 40 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	sum := sha256.Sum256([]byte("runbook lock\x00" + name))
	return b.String() + "-" + hex.EncodeToString(sum[:6])
}
