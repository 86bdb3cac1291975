package runbook

import (
	"slices"

	"github.com/expr-lang/expr/ast"
)

// A step's result (steps.<id>) keeps its answer, the response's body and the
// state, only when a later expression may read them: a for_each step of a
// thousand items would otherwise hold a thousand answers to the run's end (and
// journal them) for later steps that read only their outputs. Expressions are
// read before they are compiled; anything this cannot follow keeps the answers.

// answerReads finds the steps whose answers an expression may read, by id;
// all is true when it reads steps in a way that names no step (steps[x]).
func answerReads(root ast.Node) (ids []string, all bool) {
	parent := map[ast.Node]ast.Node{}
	var refs []ast.Node
	ast.Walk(&root, visit(func(n ast.Node) {
		switch x := n.(type) {
		case *ast.MemberNode:
			parent[x.Node], parent[x.Property] = x, x
		case *ast.BuiltinNode:
			for _, a := range x.Arguments {
				parent[a] = x
			}
		case *ast.PredicateNode:
			parent[x.Node] = x
		case *ast.ChainNode:
			parent[x.Node] = x
		case *ast.IdentifierNode:
			if x.Value == "steps" {
				refs = append(refs, x)
			}
		}
	}))
	for _, ref := range refs {
		m, ok := parent[ref].(*ast.MemberNode)
		if !ok || m.Node != ref {
			return nil, true
		}
		id, named := m.Property.(*ast.StringNode)
		if !named {
			return nil, true
		}
		if readsAnswer(m, parent) && !slices.Contains(ids, id.Value) {
			ids = append(ids, id.Value)
		}
	}
	return ids, false
}

// readsAnswer says whether the answer in n, a step's result or a list of
// them (a for_each step's), may be read where n is used.
func readsAnswer(n ast.Node, parent map[ast.Node]ast.Node) bool {
	switch p := parent[n].(type) {
	case *ast.MemberNode:
		if p.Node != n {
			return true
		}
		if field, ok := p.Property.(*ast.StringNode); ok {
			return readsField(p, field.Value, parent)
		}
		return readsAnswer(p, parent) // an item's result: steps.each[0]
	case *ast.ChainNode:
		return readsAnswer(p, parent)
	case *ast.BuiltinNode:
		if p.Arguments[0] != n {
			return true
		}
		switch p.Name {
		case "len":
			return false
		case "all", "any", "none", "one", "count", "sum", "map", "findIndex", "findLastIndex":
			return readsElements(p, parent)
		case "filter", "find", "findLast", "sortBy":
			// They give items' results, read further on.
			return readsElements(p, parent) || readsAnswer(p, parent)
		}
	}
	return true
}

// readsElements says whether the predicate of a builtin over a list of
// results (map(steps.each, .outputs.id)) may read their answers.
func readsElements(b *ast.BuiltinNode, parent map[ast.Node]ast.Node) bool {
	if len(b.Arguments) < 2 {
		return false
	}
	pred, ok := b.Arguments[1].(*ast.PredicateNode)
	if !ok {
		return true
	}
	reads := false
	ast.Walk(&pred.Node, visit(func(n ast.Node) {
		switch x := n.(type) {
		case *ast.PredicateNode:
			reads = true // # there is another list's element: not followed
		case *ast.PointerNode:
			if x.Name != "" {
				return // #index, #acc
			}
			m, ok := parent[x].(*ast.MemberNode)
			if !ok || m.Node != x {
				reads = true
				return
			}
			if field, named := m.Property.(*ast.StringNode); !named || readsField(m, field.Value, parent) {
				reads = true
			}
		}
	}))
	return reads
}

// readsField says whether reading field of a step's result (m) reads its
// answer: its outputs, attempts, error, skipped and the response's status and
// headers do not.
func readsField(m *ast.MemberNode, field string, parent map[ast.Node]ast.Node) bool {
	switch field {
	case "outputs", "attempts", "error", "skipped":
		return false
	case "response":
		if pm, ok := parent[m].(*ast.MemberNode); ok && pm.Node == m {
			if s, ok := pm.Property.(*ast.StringNode); ok && (s.Value == "status" || s.Value == "headers") {
				return false
			}
		}
	}
	return true
}

// visit adapts a function to ast.Visitor.
type visit func(ast.Node)

func (v visit) Visit(n *ast.Node) { v(*n) }

// keptResult is a step's result as kept for later steps: without its answer
// when no later expression reads it.
func (s *Step) keptResult(res map[string]any) map[string]any {
	if s.keepAnswer || res == nil {
		return res
	}
	kept := make(map[string]any, len(res))
	for k, v := range res {
		kept[k] = v
	}
	kept["state"] = nil
	if resp, ok := res["response"].(map[string]any); ok {
		r := map[string]any{}
		for _, k := range []string{"status", "headers"} {
			if v, ok := resp[k]; ok {
				r[k] = v
			}
		}
		kept["response"] = r
	}
	return kept
}
