package runbook

import (
	"fmt"
	"slices"
	"strings"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
)

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

// envRef is a strict read of an environment variable, at its offset.
type envRef struct {
	name string
	loc  file.Location
}

type exprProblem struct {
	loc file.Location
	msg string
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
	if id, ok := (*node).(*ast.IdentifierNode); ok {
		// The calls member access is rewritten to are the loader's own: one
		// written by hand would reach them with arguments they cannot take.
		if id.Value == memberFunc || id.Value == objectFunc || id.Value == lenientFunc {
			v.errs = append(v.errs, exprProblem{loc: id.Location(), msg: explainExprError("unknown name "+id.Value, "")})
			return
		}
		if !slices.Contains(v.reads, id.Value) {
			v.reads = append(v.reads, id.Value)
		}
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
	case "run":
		if !slices.Contains(runFields, key) {
			msg := fmt.Sprintf("run has no %q (it has %s)", key, strings.Join(runFields, ", "))
			if s := closest(key, runFields); s != "" {
				msg = fmt.Sprintf("run has no %q; did you mean %q? (it has %s)", key, s, strings.Join(runFields, ", "))
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
	case len(parts) == 3 && parts[2] == "outputs" && !slices.Contains(v.c.outputs[id], key) && !slices.Contains(v.c.opaque, id):
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
