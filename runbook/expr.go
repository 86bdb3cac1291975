package runbook

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/checker"
	"github.com/expr-lang/expr/compiler"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/optimizer"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/types"
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

// exprEnv declares the names an expression may use; every value is dynamic (JSON).
func exprEnv(loopVar string) types.Map {
	env := types.Map{}
	for _, name := range []string{"vars", "env", "steps", "response", "state", "before", "attempt", "elapsed"} {
		env[name] = types.Any
	}
	// The item and its index exist only in a for_each step.
	if loopVar != "" {
		env[loopVar] = types.Any
		env["index"] = types.Any
	}
	return env
}

// exprChecker rewrites strict member accesses and checks, before the first
// request, the names an author can get wrong: vars, step ids, env names.
type exprChecker struct {
	c       *compileCtx
	text    map[ast.Node]string    // the source text of rewritten nodes, for messages
	chains  map[*ast.CallNode]bool // member calls made here, which a.b.c extends
	lenient map[ast.Node]bool      // member accesses on the left of ??: absent is nil
	errs    []exprProblem
	env     []envRef
	reads   []string // scope names the expression reads
}

// lenientFinder marks the member accesses of a chain on the left of ??, such
// as state.vm.runstate in `state.vm.runstate ?? "unknown"`: ?? says the value
// may be absent, so reading it must not fail.
type lenientFinder map[ast.Node]bool

func (f lenientFinder) Visit(node *ast.Node) {
	b, ok := (*node).(*ast.BinaryNode)
	if !ok || b.Operator != "??" {
		return
	}
	for n := b.Left; ; {
		switch m := n.(type) {
		case *ast.MemberNode:
			f[m] = true
			n = m.Node
		case *ast.ChainNode:
			n = m.Node
		default:
			return
		}
	}
}

// responseHeaders says whether the text of an object is a response's headers
// (response.headers, steps.id.response.headers, .response.headers in a
// predicate), whose names are read in any case: they are kept lower-cased.
func responseHeaders(text string) bool {
	text = strings.ReplaceAll(text, "?.", ".")
	return text == "response.headers" || strings.HasSuffix(text, ".response.headers")
}

// envRef is a strict read of an environment variable, at its offset.
type envRef struct {
	name string
	loc  file.Location
}

type exprProblem struct {
	loc file.Location
	msg string
}

func (v *exprChecker) nodeText(n ast.Node) string {
	if t, ok := v.text[n]; ok {
		return t
	}
	switch n := n.(type) {
	case *ast.PointerNode:
		return "the element"
	case *ast.ChainNode:
		return v.nodeText(n.Node)
	}
	return n.String()
}

func (v *exprChecker) Visit(node *ast.Node) {
	if id, ok := (*node).(*ast.IdentifierNode); ok && !slices.Contains(v.reads, id.Value) {
		v.reads = append(v.reads, id.Value)
	}
	m, ok := (*node).(*ast.MemberNode)
	if !ok || m.Method {
		return
	}
	base := v.nodeText(m.Node)
	prop, ok := m.Property.(*ast.StringNode)
	if !ok {
		// steps.x[0]: named as written in messages about what is read from it.
		index := "[" + v.nodeText(m.Property) + "]"
		if m.Optional {
			index = "?." + index
		}
		v.text[m] = base + index
		// response.headers[name]: a header name is read in any case too.
		switch m.Property.(type) {
		case *ast.IntegerNode, *ast.FloatNode:
		default:
			if responseHeaders(base) {
				m.Property = &ast.BuiltinNode{Name: "lower", Arguments: []ast.Node{m.Property}}
			}
		}
		return
	}
	if responseHeaders(base) {
		prop.Value = strings.ToLower(prop.Value)
	}
	v.checkName(m, base, prop.Value)
	if m.Optional {
		// x?.key on something that is not an object is nil, like a missing key,
		// so `state?.runstate` is safe on a list or a string.
		m.Node = &ast.CallNode{Callee: &ast.IdentifierNode{Value: objectFunc}, Arguments: []ast.Node{m.Node}}
		v.text[m.Node] = base
		v.text[m] = base + "?." + prop.Value
		return
	}
	text := base + "." + prop.Value
	// Walk visits children first, so in a.b.c the call for a.b is already made:
	// add c to it rather than wrap it in another call.
	call, ok := m.Node.(*ast.CallNode)
	if ok && v.chains[call] {
		call.Arguments = append(call.Arguments, m.Property)
	} else {
		fn := memberFunc
		if v.lenient[m] {
			fn = lenientFunc
		}
		call = &ast.CallNode{
			Callee:    &ast.IdentifierNode{Value: fn},
			Arguments: []ast.Node{m.Node, &ast.StringNode{Value: base}, m.Property},
		}
		v.chains[call] = true
	}
	ast.Patch(node, call)
	v.text[call] = text
}

// checkName checks vars.x, steps.id and records env.NAME.
func (v *exprChecker) checkName(m *ast.MemberNode, base, key string) {
	if v.c == nil {
		return
	}
	switch base {
	case "env":
		if !m.Optional && !v.lenient[m] {
			v.env = append(v.env, envRef{key, m.Property.Location()})
		}
	case "vars":
		if !slices.Contains(v.c.vars, key) {
			msg := fmt.Sprintf("unknown var %q", key)
			if s := closest(key, v.c.vars); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			}
			if len(v.c.vars) > 0 {
				msg += fmt.Sprintf(" (declared: %s)", strings.Join(v.c.vars, ", "))
			} else {
				msg += " (declare it under vars:)"
			}
			v.errs = append(v.errs, exprProblem{m.Property.Location(), msg})
		}
	case "steps":
		if !v.c.checkSteps {
			return
		}
		if !slices.Contains(v.c.stepIDs, key) {
			msg := fmt.Sprintf("unknown step id %q", key)
			if slices.Contains(v.c.laterIDs, key) {
				msg = fmt.Sprintf("step %q runs later; a step can only read the steps before it", key)
			} else if s := closest(key, v.c.stepIDs); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			} else if len(v.c.stepIDs) > 0 {
				msg += fmt.Sprintf(" (earlier steps with an id: %s)", strings.Join(v.c.stepIDs, ", "))
			} else {
				msg += " (no earlier step has an id: add id: to the step you want to read)"
			}
			v.errs = append(v.errs, exprProblem{m.Property.Location(), msg})
		}
	default:
		v.checkStepField(m, base, key)
	}
}

// stepFields are what steps.<id> holds.
var stepFields = []string{"response", "state", "outputs", "attempts", "error", "skipped"}

// checkStepField checks steps.<id>.<field> and steps.<id>.outputs.<name> against
// what the earlier step declares.
func (v *exprChecker) checkStepField(m *ast.MemberNode, base, key string) {
	if !v.c.checkSteps || !strings.HasPrefix(base, "steps.") {
		return
	}
	parts := strings.Split(base, ".")
	id := parts[1]
	if !slices.Contains(v.c.stepIDs, id) {
		return // reported where steps.<id> is read
	}
	problem := ""
	switch {
	case len(parts) == 2 && slices.Contains(v.c.forEachIDs, id):
		problem = fmt.Sprintf("steps.%s is a list, one result per for_each item: read it with map(steps.%s, .%s) or steps.%s[0].%s", id, id, key, id, key)
	case len(parts) == 2 && !slices.Contains(stepFields, key):
		problem = fmt.Sprintf("steps.%s has no %q (it has %s)", id, key, strings.Join(stepFields, ", "))
		if s := closest(key, stepFields); s != "" {
			problem += fmt.Sprintf("; did you mean %q?", s)
		}
	case len(parts) == 3 && parts[2] == "outputs" && !slices.Contains(v.c.outputs[id], key):
		outs := v.c.outputs[id]
		switch {
		case len(outs) == 0:
			problem = fmt.Sprintf("step %q has no outputs: declare %s under its outputs:", id, key)
		case closest(key, outs) != "":
			problem = fmt.Sprintf("step %q has no output %q; did you mean %q?", id, key, closest(key, outs))
		default:
			problem = fmt.Sprintf("step %q has no output %q (its outputs: %s)", id, key, strings.Join(outs, ", "))
		}
	}
	if problem != "" {
		v.errs = append(v.errs, exprProblem{m.Property.Location(), problem})
	}
}

// builtinNames are expr's functions, offered when a name is mistyped.
var builtinNames = []string{"len", "map", "filter", "all", "any", "none", "one", "count", "find", "first", "last", "upper", "lower",
	"trim", "split", "join", "sort", "sortBy", "flatten", "keys", "values", "now", "duration", "date", "int", "float", "string",
	"abs", "max", "min", "sum", "mean", "median", "round", "ceil", "floor", "contains", "startsWith", "endsWith", "toJSON", "fromJSON", "new_error", "path"}

// compileExpr compiles one expression; errors carry the offset of the problem in src.
func compileExpr(src string, c *compileCtx, loopVar string, asBool bool) (*vm.Program, []exprProblem, []envRef, []string) {
	chk := &exprChecker{c: c, text: map[ast.Node]string{}, chains: map[*ast.CallNode]bool{}, lenient: map[ast.Node]bool{}}
	var cfg *conf.Config
	if c != nil {
		cfg = c.exprConfig(loopVar, asBool)
	} else {
		cfg = newExprConfig(loopVar, asBool)
	}
	prog, err := compileWith(src, cfg, chk)
	if len(chk.errs) > 0 {
		return nil, chk.errs, nil, nil
	}
	if err != nil {
		var fe *file.Error
		if errors.As(err, &fe) {
			return nil, []exprProblem{{loc: fe.Location, msg: explainExprError(fe.Message, loopVar)}}, nil, nil
		}
		return nil, []exprProblem{{msg: explainExprError(err.Error(), loopVar)}}, nil, nil
	}
	return prog, nil, chk.env, chk.reads
}

// newExprConfig is expr's configuration for one kind of expression: the names,
// the functions, the limits, and whether it must be a condition. Building it is
// most of the cost of a compile, so a load builds each kind once.
func newExprConfig(loopVar string, asBool bool) *conf.Config {
	cfg := conf.CreateNew()
	opts := []expr.Option{
		expr.Env(exprEnv(loopVar)),
		expr.Function(memberFunc, member),
		expr.Function(objectFunc, object),
		expr.Function(lenientFunc, memberOrNil),
		expr.Function("new_error", newError, new(func(any, any) string)),
		expr.Function("path", pathFunc, new(func(any) PathValue)),
		expr.MaxNodes(2000),
	}
	if asBool {
		opts = append(opts, expr.AsBool())
	}
	for _, op := range opts {
		op(cfg)
	}
	cfg.Check()
	return cfg
}

// compileWith is expr.Compile with a configuration made beforehand. The checker
// rewrites the tree before the one type check; given to expr as a visitor it
// would cost two more checks of the whole tree.
func compileWith(src string, cfg *conf.Config, chk *exprChecker) (*vm.Program, error) {
	tree, err := parser.ParseWithConfig(src, cfg)
	if err != nil {
		return nil, err
	}
	ast.Walk(&tree.Node, lenientFinder(chk.lenient))
	if c := chk.c; c != nil {
		ids, all := answerReads(tree.Node)
		c.answerIDs, c.allAnswers = append(c.answerIDs, ids...), c.allAnswers || all
	}
	ast.Walk(&tree.Node, chk)
	if _, err := checker.Check(tree, cfg); err != nil {
		return nil, err
	}
	if cfg.Optimize {
		if err := optimizer.Optimize(&tree.Node, cfg); err != nil {
			var fe *file.Error
			if errors.As(err, &fe) {
				return nil, fe.Bind(tree.Source)
			}
			return nil, err
		}
	}
	return compiler.Compile(tree, cfg)
}

// explainExprError turns expr's compiler messages into advice, and hides the
// strict-access rewrite from authors.
func explainExprError(msg, loopVar string) string {
	switch {
	case strings.Contains(msg, memberFunc) || strings.Contains(msg, objectFunc) || strings.Contains(msg, lenientFunc):
		return "invalid member access"
	case strings.HasPrefix(msg, "expected bool, but got "):
		return "this must be a condition that gives true or false, but it gives " + strings.TrimPrefix(msg, "expected bool, but got ")
	case msg == `unexpected token Operator("=")`:
		return "= is not a comparison: write == to compare"
	case msg == "unexpected token EOF":
		return "the expression ends too early: something is missing after the last operator"
	case strings.HasPrefix(msg, "unknown name "):
		name := strings.TrimPrefix(msg, "unknown name ")
		names := []string{"vars", "env", "steps", "response", "state", "before", "attempt", "elapsed"}
		if loopVar != "" {
			names = append(names, loopVar, "index")
		} else if name == "item" || name == "index" {
			return fmt.Sprintf("%s exists only in a for_each step", name)
		}
		if s := closest(name, append(names, builtinNames...)); s != "" {
			return fmt.Sprintf("unknown name %s; did you mean %s?", name, s)
		}
		return fmt.Sprintf("unknown name %s (the names are %s; quote text: \"%s\")", name, strings.Join(names, ", "), name)
	}
	return msg
}
