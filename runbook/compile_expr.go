package runbook

import (
	"errors"
	"fmt"
	"slices"
	"strings"

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
	"go.yaml.in/yaml/v3"
)

// exprKind is what an expression compiles against besides its text: the
// for_each variable in scope, whether it must be a condition, and a name a
// kind adds for one field (page, in http.paginate).
type exprKind struct {
	loopVar string
	asBool  bool
	extra   string
}

type exprKey struct {
	exprKind
	src string
}

// compiled is a cached compile: programs are immutable, so identical expressions
// (vars.env_id in every URL) share one.
type compiled struct {
	prog  *vm.Program
	env   []envRef
	reads []string
}

// exprConfig returns the load's expr configuration for one kind of expression.
func (c *compileCtx) exprConfig(loopVar string, asBool bool) *conf.Config {
	key := exprKind{loopVar, asBool, c.extra}
	cfg, ok := c.configs[key]
	if !ok {
		if c.configs == nil {
			c.configs = map[exprKind]*conf.Config{}
		}
		cfg = newExprConfig(loopVar, asBool, c.extra)
		c.configs[key] = cfg
	}
	return cfg
}

// expr compiles an expression field. Expression fields are bare expr-lang; ${{ }}
// there is refused because it would be evaluated twice.
func (c *compileCtx) expr(n *yaml.Node, what string, asBool bool) *Expr {
	n = resolve(n)
	if n != nil && n.Kind == yaml.ScalarNode && n.Tag == "!!bool" && asBool {
		// `if: true` is a fine condition.
		return c.compile(n, n.Value, 0, true)
	}
	src, ok := c.str(n, what)
	if !ok {
		return nil
	}
	if strings.TrimSpace(src) == "" {
		c.errorf(n, "%s is empty: write an expression", what)
		return nil
	}
	if i := strings.Index(src, "${{"); i >= 0 {
		c.errorAt(c.posIn(n, len([]rune(src[:i]))), "%s is an expression already: write it without ${{ }}", what)
		return nil
	}
	return c.compile(n, src, 0, asBool)
}

// compile compiles src found at rune offset off inside the scalar n.
func (c *compileCtx) compile(n *yaml.Node, src string, off int, asBool bool) *Expr {
	// Whether steps.x is valid depends on where the expression is; anything else
	// compiles the same everywhere in the file.
	key := exprKey{exprKind{c.loopVar, asBool, c.extra}, src}
	cacheable := !strings.Contains(src, "steps")
	var prog *vm.Program
	var problems []exprProblem
	var env []envRef
	var reads []string
	if hit, ok := c.compiled[key]; ok && cacheable {
		prog, env, reads = hit.prog, hit.env, hit.reads
	} else {
		prog, problems, env, reads = compileExpr(src, c, c.loopVar, asBool)
		if prog != nil && cacheable {
			if c.compiled == nil {
				c.compiled = map[exprKey]*compiled{}
			}
			c.compiled[key] = &compiled{prog, env, reads}
		}
	}
	c.read = append(c.read, reads...)
	for _, p := range problems {
		c.errorAt(c.posIn(n, off+p.loc.From), "%s", p.msg)
	}
	if prog == nil {
		return nil
	}
	e := &Expr{Source: src, File: c.file, Pos: c.posIn(n, off), prog: prog, reads: reads}
	for _, r := range env {
		at := c.posIn(n, off+r.loc.From)
		c.requireEnv(r.name, at)
		e.Env = append(e.Env, r.name)
		e.envAt = append(e.envAt, at)
	}
	return e
}

// template compiles a text field that may contain ${{ }}.
func (c *compileCtx) template(n *yaml.Node, what string) *Template {
	n = resolve(n)
	if n == nil || n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		c.errorf(n, "%s must be text, not %s", what, nodeKindOrMissing(n))
		return nil
	}
	return c.templateAt(n, n.Value, 0)
}

// templateAt compiles text, found at rune offset off in the scalar n, as a
// template; every expression in it is compiled, so all its mistakes are found.
func (c *compileCtx) templateAt(n *yaml.Node, text string, off int) *Template {
	segs, err := scanTemplate(text)
	if err != nil {
		se := err.(*scanError)
		c.errorAt(c.posIn(n, off+se.offset), "%s", se.msg)
		return nil
	}
	t := &Template{Source: text}
	ok := true
	for _, s := range segs {
		if !s.isExpr {
			t.parts = append(t.parts, tplPart{lit: s.lit})
			continue
		}
		e := c.compile(n, s.expr, off+s.offset, false)
		if e == nil {
			ok = false
			continue
		}
		t.parts = append(t.parts, tplPart{expr: e})
	}
	if !ok {
		return nil
	}
	return t
}

// value compiles a YAML tree whose strings are templates (a JSON body, headers).
func (c *compileCtx) value(n *yaml.Node) *Value {
	n = resolve(n)
	if n == nil {
		return &Value{}
	}
	switch n.Kind {
	case yaml.MappingNode:
		v := &Value{kind: valueMap}
		for _, p := range c.pairs(n, "this mapping") {
			v.keys = append(v.keys, p.Key.Value)
			v.vals = append(v.vals, c.value(p.Value))
		}
		return v
	case yaml.SequenceNode:
		v := &Value{kind: valueList}
		for _, e := range n.Content {
			v.list = append(v.list, c.value(e))
		}
		return v
	case yaml.ScalarNode:
		if n.Tag == "!!str" {
			t := c.templateAt(n, n.Value, 0)
			if t == nil {
				return &Value{}
			}
			if lit, ok := t.Literal(); ok {
				return &Value{lit: lit}
			}
			return &Value{kind: valueTpl, tpl: t}
		}
		if lit, ok := plainScalar(n); ok {
			return &Value{lit: lit}
		}
		var lit any
		if err := n.Decode(&lit); err != nil {
			c.errorf(n, "%s", tagMismatch(n))
		}
		return &Value{lit: lit}
	}
	// yaml.v3 gives a value no other kind of node (after resolve); said in
	// full all the same, should one ever reach here.
	c.errorf(n, "expected text, a number, true or false, null, a list or a mapping, found a YAML node of another kind (%d)", n.Kind)
	return &Value{}
}

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

// newExprConfig is expr's configuration for one kind of expression: the names,
// the functions, the limits, and whether it must be a condition. Building it is
// most of the cost of a compile, so a load builds each kind once.
func newExprConfig(loopVar string, asBool bool, extra ...string) *conf.Config {
	cfg := conf.CreateNew()
	opts := []expr.Option{
		expr.Env(exprEnv(loopVar, extra...)),
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

// exprEnv declares the names an expression may use; every value is dynamic (JSON).
func exprEnv(loopVar string, extra ...string) types.Map {
	env := types.Map{}
	for _, name := range slices.Concat(scopeNames, extra) {
		if name != "" {
			env[name] = types.Any
		}
	}
	// The item and its index exist only in a for_each step.
	if loopVar != "" {
		env[loopVar] = types.Any
		env["index"] = types.Any
	}
	return env
}

// builtinNames are expr's functions, offered when a name is mistyped.
var builtinNames = []string{"len", "map", "filter", "all", "any", "none", "one", "count", "find", "first", "last", "upper", "lower",
	"trim", "split", "join", "sort", "sortBy", "flatten", "keys", "values", "now", "duration", "date", "int", "float", "string",
	"abs", "max", "min", "sum", "mean", "median", "round", "ceil", "floor", "contains", "startsWith", "endsWith", "toJSON", "fromJSON", "new_error", "path"}

// explainExprError turns expr's compiler messages into advice, and hides the
// strict-access rewrite from authors.
func explainExprError(msg, loopVar string) string {
	switch {
	case strings.Contains(msg, memberFunc) || strings.Contains(msg, objectFunc) || strings.Contains(msg, lenientFunc):
		// Member access is rewritten into calls of these functions, so only a
		// name the author wrote can bring them up: "unknown name __member_x".
		what := "this expression uses a name"
		if name, ok := strings.CutPrefix(msg, "unknown name "); ok {
			what = "unknown name " + name + ":"
		}
		return fmt.Sprintf("%s names that begin with %s or %s are the loader's own, for reading members; read a member as a.b, or a?.b if it may be absent", what, memberFunc, objectFunc)
	case strings.HasPrefix(msg, "expected bool, but got "):
		return "this must be a condition that gives true or false, but it gives " + strings.TrimPrefix(msg, "expected bool, but got ")
	case msg == `unexpected token Operator("=")`:
		return "= is not a comparison: write == to compare"
	case msg == "unexpected token EOF":
		return "the expression ends too early: something is missing after the last operator"
	case strings.HasPrefix(msg, "unknown name "):
		name := strings.TrimPrefix(msg, "unknown name ")
		names := slices.Clone(scopeNames)
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

// tagMismatch says, in the author's terms, why a scalar does not read as what
// its tag (!!int abc) says it is: yaml.v3's own words name Go types
// ("cannot unmarshal !!str `abc` into int").
func tagMismatch(n *yaml.Node) string {
	want, ok := map[string]string{
		"!!int":       "a whole number, such as 42",
		"!!float":     "a number, such as 2.5",
		"!!bool":      "true or false",
		"!!timestamp": "a date, such as 2024-01-31 or 2024-01-31T09:00:00Z",
		"!!binary":    "base64 data",
	}[n.Tag]
	if !ok {
		want = "what the tag " + n.Tag + " says"
	}
	return fmt.Sprintf("expected %s (the value is tagged %s), found the text %q: correct the value, or remove %s to keep it as text", want, n.Tag, truncate(n.Value, 30), n.Tag)
}
