package runbook

import (
	"slices"
	"testing"

	"github.com/expr-lang/expr/parser"
)

func TestAnswerReads(t *testing.T) {
	for _, c := range []struct {
		src string
		ids []string
		all bool
	}{
		{`steps.a.outputs.n + steps.b.attempts`, nil, false},
		{`steps.a.error != "" || steps.a.skipped`, nil, false},
		{`steps.a.response.status == 200 && steps.a.response.headers["etag"] != ""`, nil, false},
		{`steps.a.response.body.id`, []string{"a"}, false},
		{`steps.a.response`, []string{"a"}, false},
		{`steps.a.state.runstate`, []string{"a"}, false},
		{`steps.a?.state?.runstate`, []string{"a"}, false},
		{`steps.a`, []string{"a"}, false},
		{`toJSON(steps.a)`, []string{"a"}, false},
		{`len(steps.each)`, nil, false},
		{`steps.each[0].outputs.id`, nil, false},
		{`steps.each[0].state`, []string{"each"}, false},
		{`steps.each[vars.i].state`, []string{"each"}, false},
		{`map(steps.each, .outputs.id)`, nil, false},
		{`sum(map(steps.each, .outputs.count))`, nil, false},
		{`steps.each | map(.outputs.id)`, nil, false},
		{`all(steps.each, .error == "") && count(steps.each, .skipped) == 0`, nil, false},
		{`map(steps.each, .state.id)`, []string{"each"}, false},
		{`map(steps.each, #)`, []string{"each"}, false},
		{`map(steps.each, #.response.body)`, []string{"each"}, false},
		{`map(steps.each, #index)`, nil, false},
		{`filter(steps.each, .error != "")`, []string{"each"}, false},
		{`filter(steps.each, .error != "")[0].outputs.id`, nil, false},
		{`find(steps.each, .error != "").state`, []string{"each"}, false},
		{`map(steps.each, map(vars.l, #))`, []string{"each"}, false},
		{`map(vars.l, steps.a.state.x)`, []string{"a"}, false},
		{`steps.a.outputs.n > 0 ? steps.b.state : nil`, []string{"b"}, false},
		{`steps[vars.which].state`, nil, true},
		{`keys(steps)`, nil, true},
		{`vars.x + state.runstate`, nil, false},
	} {
		tree, err := parser.Parse(c.src)
		if err != nil {
			t.Fatalf("%s: %v", c.src, err)
		}
		ids, all := answerReads(tree.Node)
		if !slices.Equal(ids, c.ids) || all != c.all {
			t.Errorf("%s: reads the answers of %q (all: %v), want %q (all: %v)", c.src, ids, all, c.ids, c.all)
		}
	}
}
