package runbook

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"strings"
	"testing"
)

// errorsGoExitCodes reads the Exit* constants from errors.go's source, so a
// code added there and not to the table fails the test below.
func errorsGoExitCodes(t *testing.T) map[string]int {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "errors.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	consts := map[string]int{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if !strings.HasPrefix(name.Name, "Exit") || i >= len(vs.Values) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.INT {
					t.Fatalf("errors.go: %s is not an integer literal; teach this test to read it", name.Name)
				}
				v, err := strconv.Atoi(lit.Value)
				if err != nil {
					t.Fatal(err)
				}
				consts[name.Name] = v
			}
		}
	}
	if len(consts) == 0 {
		t.Fatal("errors.go: no Exit* constants found")
	}
	return consts
}

func TestExitCodeTableCoversErrorsGo(t *testing.T) {
	consts := errorsGoExitCodes(t)
	table := ExitCodes()
	seen := map[string]bool{}
	for i, e := range table {
		if i > 0 && table[i-1].Code >= e.Code {
			t.Errorf("table not in ascending order at %d (%s)", e.Code, e.Name)
		}
		v, ok := consts[e.Name]
		switch {
		case !ok:
			t.Errorf("table names %s, which errors.go does not declare", e.Name)
		case v != e.Code:
			t.Errorf("table gives %s code %d; errors.go says %d", e.Name, e.Code, v)
		}
		if seen[e.Name] {
			t.Errorf("%s is in the table twice", e.Name)
		}
		seen[e.Name] = true
		if e.Meaning == "" {
			t.Errorf("%s has no meaning", e.Name)
		}
		if got := e.Advice.String(); got == "unknown" {
			t.Errorf("%s has advice %d, which is none of the RetryAdvice values", e.Name, e.Advice)
		}
		if (e.Code == 0) != (e.Advice == Success) {
			t.Errorf("%s (%d) has advice %v: only 0 is a success", e.Name, e.Code, e.Advice)
		}
		if e.Code < 0 || e.Code > 255 {
			t.Errorf("%s (%d) is not a process exit status", e.Name, e.Code)
		}
	}
	for name, v := range consts {
		if !seen[name] {
			t.Errorf("errors.go declares %s = %d, which the exit-code table leaves out: add it to exitCodes in exitcodes.go with the advice for schedulers", name, v)
		}
	}
}

func TestExitCodesAdvised(t *testing.T) {
	total := 0
	for _, a := range []RetryAdvice{Success, RetryHelps, RetryCannotHelp, Resumable} {
		total += len(ExitCodesAdvised(a))
	}
	if total != len(ExitCodes()) {
		t.Errorf("the advice classes hold %d codes; the table has %d", total, len(ExitCodes()))
	}
	if got := ExitCodesAdvised(Success); len(got) != 1 || got[0] != ExitOK {
		t.Errorf("success codes = %v, want [0]", got)
	}
}
