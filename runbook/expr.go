package runbook

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
)

// Scope holds the names an expression can read: vars, env, steps, response, state,
// before, attempt, elapsed, index and the loop variable. One pipeline owns a scope
// and updates it in place as it reads and sends, so evaluation allocates nothing
// for the environment.
type Scope map[string]any

// Clone returns a copy that can be changed without touching s.
func (s Scope) Clone() Scope {
	c := make(Scope, len(s)+4)
	for k, v := range s {
		c[k] = v
	}
	return c
}

// Expr is an expr-lang expression compiled once at load.
type Expr struct {
	Source string
	File   string
	Pos    Pos
	Env    []string // environment variables it reads strictly
	reads  []string // the names of the scope it reads (response, before, ...)
	envAt  []Pos    // where it reads each
	prog   *vm.Program
}

// Reads says whether the expression reads a name of the scope, such as
// `response` or `before`.
func (e *Expr) Reads(name string) bool { return e != nil && slices.Contains(e.reads, name) }

// machines are reusable expr VMs: a poll evaluates conditions many times, and
// a fresh VM per evaluation was most of its allocations.
var machines = sync.Pool{New: func() any { return new(vm.VM) }}

// Eval runs the expression against the scope.
func (e *Expr) Eval(s Scope) (any, error) {
	m := machines.Get().(*vm.VM)
	out, err := m.Run(e.prog, map[string]any(s))
	machines.Put(m)
	if err != nil {
		var nk *NilKeyError
		if errors.As(err, &nk) && nk.Path == "state" {
			if why, ok := s[stateNote].(string); ok {
				nk.Why = why
			}
		}
		return nil, e.evalError(err)
	}
	return out, nil
}

// Bool evaluates a condition. A non-boolean result is an error, never "false".
func (e *Expr) Bool(s Scope) (bool, error) {
	out, err := e.Eval(s)
	if err != nil {
		return false, err
	}
	b, ok := out.(bool)
	if !ok {
		return false, &EvalError{Expr: e.Source, File: e.File, Pos: e.Pos, Msg: fmt.Sprintf("is %s, not true or false", describe(out))}
	}
	return b, nil
}

// EvalError is an expression that could not be evaluated at run time, such as a
// strict member access on a missing key. It fails the step at once: a typo must not
// poll silently until the deadline.
type EvalError struct {
	Expr string
	File string
	Pos  Pos
	Msg  string
	Err  error
}

func (e *EvalError) Error() string {
	if e.Pos.Line == 0 {
		return fmt.Sprintf("`%s`: %s", e.Expr, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: `%s`: %s", e.File, e.Pos.Line, e.Pos.Col, e.Expr, e.Msg)
}
func (e *EvalError) Unwrap() error { return e.Err }

// MissingEnvError is an environment variable the runbook reads strictly but that
// is not set (exit 78).
type MissingEnvError struct {
	Name string
}

func (e *MissingEnvError) Error() string {
	return fmt.Sprintf("environment variable %s is not set; export it, or write env?.%s ?? \"default\" if it is optional", e.Name, e.Name)
}
func (e *MissingEnvError) ExitCode() int { return ExitConfig }

// MissingKeyError is a strict member access on an object without that key.
type MissingKeyError struct {
	Path, Key string
	Keys      []string
}

func (e *MissingKeyError) Error() string {
	if len(e.Keys) == 0 {
		return fmt.Sprintf("%s has no key %q (it is empty); write %s if it may be absent", e.Path, e.Key, optionalAccess(e.Path, e.Key))
	}
	hint := ""
	if s := closest(e.Key, e.Keys); s != "" {
		hint = fmt.Sprintf("did you mean %q? ", s)
	}
	keys := e.Keys
	if len(keys) > 12 {
		keys = append(slices.Clip(keys[:12]), "...")
	}
	return fmt.Sprintf("%s has no key %q (%shas: %s); write %s if it may be absent",
		e.Path, e.Key, hint, strings.Join(keys, ", "), optionalAccess(e.Path, e.Key))
}

// optionalAccess writes the access of key in path that gives nil when it is
// absent: path?.key, or path?.["key"] for a key that is not a name (a header
// such as operation-location would read as a subtraction).
func optionalAccess(path, key string) string {
	if idPattern.MatchString(key) {
		return path + "?." + key
	}
	return fmt.Sprintf("%s?.[%q]", path, key)
}

// NilKeyError is a strict member access on nil.
type NilKeyError struct {
	Path, Key string
	Why       string // why it is nil, when known: "the answer was not valid JSON (...)"
}

func (e *NilKeyError) Error() string {
	if e.Why != "" {
		return fmt.Sprintf("%s, so %s has no key %q", e.Why, e.Path, e.Key)
	}
	return fmt.Sprintf("%s is nil, so it has no key %q; write %s?.%s if it may be absent", e.Path, e.Key, e.Path, e.Key)
}

func (e *Expr) evalError(err error) error {
	var env *MissingEnvError
	if errors.As(err, &env) {
		return env
	}
	msg := err.Error()
	var fe *file.Error
	if errors.As(err, &fe) {
		msg = fe.Message
		if fe.Prev != nil {
			msg = fe.Prev.Error()
		}
	}
	return &EvalError{Expr: e.Source, File: e.File, Pos: e.Pos, Msg: msg, Err: err}
}

func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "nil"
	case string:
		return fmt.Sprintf("the string %q", truncate(v, 40))
	case float64, int:
		return fmt.Sprintf("the number %v", v)
	case bool:
		return fmt.Sprintf("%v", v)
	case []any:
		return fmt.Sprintf("a list of %d", len(v))
	case map[string]any:
		return fmt.Sprintf("an object with %d key%s", len(v), plural(len(v)))
	case PathValue:
		return fmt.Sprintf("the path %q", truncate(v.String(), 40))
	default:
		return fmt.Sprintf("%T %v", v, truncate(fmt.Sprint(v), 40))
	}
}

// memberFunc is the function strict member access is rewritten to; objectFunc
// guards the base of an optional access; lenientFunc is the access on the left
// of ??, which says "may be absent" for the whole chain.
const (
	memberFunc  = "__member"
	objectFunc  = "__object"
	lenientFunc = "__member_or_nil"
)

// memberOrNil reads a chain of keys as member does, but gives nil where member
// would fail: a missing key, or something that is not an object.
func memberOrNil(params ...any) (any, error) {
	obj := params[0]
	for _, p := range params[2:] {
		if s, ok := obj.(Scope); ok {
			obj = map[string]any(s)
		}
		if _, ok := obj.(unknown); ok {
			return obj, nil
		}
		m, ok := obj.(map[string]any)
		if !ok {
			return nil, nil
		}
		obj = m[p.(string)]
	}
	return obj, nil
}

// object returns v when it is an object, else nil; a value known only at run
// time stays unknown, so a plan does not take x?.y ?? "default" for "default".
func object(params ...any) (any, error) {
	switch v := params[0].(type) {
	case map[string]any, unknown:
		return v, nil
	}
	return nil, nil
}

// member implements strict access: obj.k1.k2 on an object without a key is an
// error that names the keys that exist. One call walks a whole chain of keys,
// so steps.id.response.body costs one function call, not four. Its arguments
// are the object, the text of the object, then the keys. Optional access
// (obj?.key) is not rewritten.
func member(params ...any) (any, error) {
	obj := params[0]
	for i, p := range params[2:] {
		v, err := memberKey(obj, p.(string), params[1:2+i])
		if err != nil {
			return nil, err
		}
		obj = v
	}
	return obj, nil
}

// memberKey reads one key; path (the object's text, then the keys read so far)
// is joined only for a message.
func memberKey(obj any, key string, path []any) (any, error) {
	if s, ok := obj.(Scope); ok {
		obj = map[string]any(s)
	}
	switch o := obj.(type) {
	case map[string]any:
		if v, ok := o[key]; ok {
			return v, nil
		}
		if len(path) == 1 && path[0] == "env" {
			return nil, &MissingEnvError{Name: key}
		}
		keys := make([]string, 0, len(o))
		for k := range o {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return nil, &MissingKeyError{Path: joinPath(path), Key: key, Keys: keys}
	case nil:
		return nil, &NilKeyError{Path: joinPath(path), Key: key}
	case unknown:
		// What is read of a value known only at run time is too.
		return o, nil
	default:
		return nil, fmt.Errorf("%s is %s, not an object, so it has no key %q", joinPath(path), describe(obj), key)
	}
}

func joinPath(path []any) string {
	parts := make([]string, len(path))
	for i, p := range path {
		parts[i] = p.(string)
	}
	return strings.Join(parts, ".")
}

// newError returns the error message present in state but not in before, "" when
// none. It understands Skytap's shapes: `error` (a string, or false), `errors` and
// `error_details` (lists or strings).
func newError(params ...any) (any, error) {
	seen := map[string]bool{}
	for _, m := range errorMessages(params[0]) {
		seen[m] = true
	}
	for _, m := range errorMessages(params[1]) {
		if !seen[m] {
			return m, nil
		}
	}
	return "", nil
}

func errorMessages(state any) []string {
	obj, ok := state.(map[string]any)
	if !ok {
		return nil
	}
	var out []string
	add := func(v any) {
		switch v := v.(type) {
		case string:
			if s := strings.TrimSpace(v); s != "" && s != "false" {
				out = append(out, s)
			}
		case bool:
			if v {
				out = append(out, "error")
			}
		case []any:
			for _, e := range v {
				if s, ok := e.(string); ok && strings.TrimSpace(s) != "" {
					out = append(out, strings.TrimSpace(s))
				} else if e != nil {
					if m, ok := e.(map[string]any); ok {
						if s, ok := m["message"].(string); ok {
							out = append(out, s)
							continue
						}
					}
					out = append(out, fmt.Sprint(e))
				}
			}
		}
	}
	add(obj["error"])
	add(obj["errors"])
	add(obj["error_details"])
	return out
}
