package runbook

import (
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestScanTemplate(t *testing.T) {
	cases := []struct {
		in   string
		want []tplSegment
		err  string
	}{
		{"plain", []tplSegment{{lit: "plain"}}, ""},
		{"/x/${{ vars.id }}", []tplSegment{{lit: "/x/"}, {expr: "vars.id", isExpr: true, offset: 7}}, ""},
		{"$${{ not }}", []tplSegment{{lit: "${{ not }}"}}, ""},
		{`${{ {"a": {"b": 1}} }}`, []tplSegment{{expr: `{"a": {"b": 1}}`, isExpr: true, offset: 4}}, ""},
		{`${{ "}}" + x }}!`, []tplSegment{{expr: `"}}" + x`, isExpr: true, offset: 4}, {lit: "!"}}, ""},
		{"a ${{ b", nil, "never closed"},
		{"${{ }}", nil, "empty"},
	}
	for _, c := range cases {
		got, err := scanTemplate(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("scan %q: error %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("scan %q = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
}

func TestNewError(t *testing.T) {
	cases := []struct {
		name          string
		before, state any
		want          string
	}{
		{"no errors", map[string]any{"error": false}, map[string]any{"error": false}, ""},
		{"lingering string", map[string]any{"error": "old"}, map[string]any{"error": "old"}, ""},
		{"new string", map[string]any{"error": ""}, map[string]any{"error": "boom"}, "boom"},
		{"v2 list", map[string]any{"errors": []any{"old"}}, map[string]any{"errors": []any{"old", "new"}}, "new"},
		{"error_details", map[string]any{}, map[string]any{"error_details": []any{"detail"}}, "detail"},
		{"false string", nil, map[string]any{"error": "false"}, ""},
		{"nil before", nil, map[string]any{"error": "boom"}, "boom"},
		{"nil state", map[string]any{"error": "old"}, nil, ""},
		{"not an object", "x", []any{1}, ""},
	}
	for _, c := range cases {
		got, _ := newError(c.before, c.state)
		if got != c.want {
			t.Errorf("%s: new_error = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestText(t *testing.T) {
	cases := map[any]string{nil: "", "s": "s", 3.0: "3", 2.5: "2.5", 7: "7", true: "true"}
	for in, want := range cases {
		if got := Text(in); got != want {
			t.Errorf("Text(%v) = %q, want %q", in, got, want)
		}
	}
	if got := Text(map[string]any{"a": 1.0}); got != `{"a":1}` {
		t.Errorf("Text(map) = %s", got)
	}
}

func TestSummarize(t *testing.T) {
	cases := []struct {
		in   any
		want string
	}{
		{map[string]any{"runstate": "busy", "rate_limited": false, "error": false, "name": "x"}, "runstate=busy"},
		{map[string]any{"runstate": "running", "rate_limited": true, "errors": []any{"e"}}, "runstate=running rate_limited=true errors=[\"e\"]"},
		{map[string]any{"b": 1.0, "a": "x", "c": true, "d": "y"}, "fields a, b, c, d"},
		{map[string]any{"token": "tok-123"}, "fields token"},
		{nil, ""},
		{map[string]any{}, "an empty object"},
		{[]any{1, 2}, "a list of 2"},
	}
	for _, c := range cases {
		if got := Summarize(c.in); got != c.want {
			t.Errorf("Summarize(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestRetryDelay(t *testing.T) {
	r := Retry{Interval: 10e9, Backoff: 2, MaxInterval: 60e9}
	want := []int64{10e9, 20e9, 40e9, 60e9, 60e9}
	for n, w := range want {
		if got := retryDelay(r, n); int64(got) != w {
			t.Errorf("retryDelay(n=%d) = %s, want %d", n, got, w)
		}
	}
	r = Retry{Interval: 10e9, Backoff: 1, Jitter: 0.5}
	for range 100 {
		if d := retryDelay(r, 3); d < 5e9 || d > 15e9 {
			t.Fatalf("jittered delay %s outside 5s..15s", d)
		}
	}
}

// FuzzScanTemplate: the ${{ }} scanner never panics, and what it splits can be
// written back (literals with ${{ escaped) and scanned to the same pieces.
func FuzzScanTemplate(f *testing.F) {
	for _, s := range []string{"plain", "/x/${{ vars.id }}", "$${{ x }}", `${{ {"a": {"b": 1}} }}`, `${{ "}}" }}`, "a ${{ b", "${{ }}", "${{'", "}}${{`}}`}}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		segs, err := scanTemplate(s)
		if err != nil {
			if se, ok := err.(*scanError); !ok || se.offset < 0 || se.offset > len([]rune(s)) {
				t.Fatalf("error %v without a valid offset", err)
			}
			return
		}
		var b strings.Builder
		for _, seg := range segs {
			if seg.isExpr {
				b.WriteString("${{ " + seg.expr + " }}")
			} else {
				b.WriteString(strings.ReplaceAll(seg.lit, "${{", "$${{"))
			}
		}
		again, err := scanTemplate(b.String())
		if err != nil || len(again) != len(segs) {
			t.Fatalf("%q -> %q: %v, %d pieces want %d", s, b.String(), err, len(again), len(segs))
		}
		for i := range segs {
			if again[i].expr != segs[i].expr || again[i].lit != segs[i].lit {
				t.Fatalf("%q: piece %d %+v became %+v", s, i, segs[i], again[i])
			}
		}
	})
}

// TestStrictChains checks that a chain of keys, compiled to one call, reads the
// value and names the exact prefix that lacks a key.
func TestStrictChains(t *testing.T) {
	scope := Scope{
		"state": map[string]any{"vm": map[string]any{"runstate": "running", "n": 3.0}, "none": nil},
		"env":   map[string]any{},
	}
	checkEvals(t, scope, false, []evalCase{
		{`state.vm.runstate`, "running", ""},
		{`state.vm.runstat`, nil, `state.vm has no key "runstat"`},
		{`state.vn.runstate`, nil, `state has no key "vn"`},
		{`state.none.x`, nil, `state.none is nil, so it has no key "x"; write state.none?.x`},
		{`state.vm.n.x`, nil, `state.vm.n is the number 3, not an object`},
		{`state?.vm.runstate`, "running", ""},
		{`state.vm?.missing ?? "d"`, "d", ""},
		{`env.TOKEN`, nil, `TOKEN`},
	})
}

// evalCase is an expression, and what it gives: a value, or an error that
// says err.
type evalCase struct {
	src  string
	want any
	err  string
}

// checkEvals compiles and evaluates each case against scope; noEnv says none
// may require an environment variable.
func checkEvals(t *testing.T, scope Scope, noEnv bool, cases []evalCase) {
	t.Helper()
	for _, c := range cases {
		prog, problems, env, _ := compileExpr(c.src, nil, "", false)
		if prog == nil {
			t.Fatalf("%s: %v", c.src, problems)
		}
		if noEnv && len(env) > 0 {
			t.Errorf("%s requires env %v", c.src, env)
		}
		e := &Expr{Source: c.src, prog: prog}
		got, err := e.Eval(scope)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want %q", c.src, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s = %#v, %v; want %#v", c.src, got, err, c.want)
		}
	}
}

// TestResponseHeadersInAnyCase: header names are kept lower-cased, and read in
// any case, strictly (a missing one names those present) or not (?. and ??).
func TestResponseHeadersInAnyCase(t *testing.T) {
	headers := map[string]any{"operation-location": "https://x/op/1", "content-type": "application/json"}
	response := map[string]any{"status": 202, "headers": headers}
	scope := Scope{
		"response": response,
		"steps":    map[string]any{"create": map[string]any{"response": response}, "each": []any{map[string]any{"response": response}}},
		"vars":     map[string]any{"h": "Operation-Location"},
		"state":    map[string]any{"vm": map[string]any{"runstate": "running"}, "none": nil},
		"env":      map[string]any{},
	}
	checkEvals(t, scope, true, []evalCase{
		{`response.headers["Operation-Location"]`, "https://x/op/1", ""},
		{`response.headers["operation-location"]`, "https://x/op/1", ""},
		{`response.headers["OPERATION-LOCATION"]`, "https://x/op/1", ""},
		{`response.headers?.["Operation-Location"]`, "https://x/op/1", ""},
		{`response?.headers?.["Operation-Location"]`, "https://x/op/1", ""},
		{`steps.create.response.headers["Operation-Location"]`, "https://x/op/1", ""},
		{`map(steps.each, .response.headers["Operation-Location"])[0]`, "https://x/op/1", ""},
		{`response.headers[vars.h]`, "https://x/op/1", ""},
		{`response.headers["Retry-After"]`, nil, `response.headers has no key "retry-after" (has: content-type, operation-location); write response.headers?.["retry-after"] if it may be absent`},
		{`response.headers?.["Location"]`, nil, ""},
		{`steps.each[0].response.headers["Retry-After"]`, nil, `steps.each[0].response.headers has no key "retry-after"`},
		{`response.headers["Location"] ?? "none"`, "none", ""},
		{`response.body.Location ?? "none"`, "none", ""},
		// ?? says "may be absent" for the whole chain on its left.
		{`state.vm.missing ?? "d"`, "d", ""},
		{`state.none.x ?? "d"`, "d", ""},
		{`state.vm.runstate ?? "d"`, "running", ""},
		{`env.NOT_SET ?? "d"`, "d", ""},
		{`state.vm.missing`, nil, `state.vm has no key "missing"`},
		// The text of an optional access is the one written.
		{`state?.none.x`, nil, `state?.none is nil, so it has no key "x"; write state?.none?.x if it may be absent`},
	})
}

// TestVerboseBody: -v shows a body redacted before it is cut, so no part of a
// secret at the cut survives (its control characters are escaped by the
// output's writer, as all text from outside: ui's TestPlainSanitizes).
func TestVerboseBody(t *testing.T) {
	red := NewRedactor("s3cret-value")
	long := strings.Repeat("a", maxShownBody-5) + "s3cret-value" + strings.Repeat("b", 100)
	got := shownBody(red, []byte(long))
	if strings.Contains(got, "s3cr") || !strings.HasSuffix(got, "aaa***bb ... (98 more bytes not shown)") {
		t.Errorf("a secret across the cut: ...%s", got[len(got)-60:])
	}
	if got := shownBody(red, []byte(strings.Repeat("é", maxShownBody))); !utf8.ValidString(got) || !strings.HasSuffix(got, "é ... (4096 more bytes not shown)") {
		t.Errorf("a cut inside a character: ...%q", got[len(got)-50:])
	}
}
