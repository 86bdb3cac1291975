package runbook

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Template is a string with ${{ expr }} parts, compiled once at load. A template
// that is exactly one ${{ expr }} keeps the value's type, so JSON bodies stay typed.
type Template struct {
	Source string
	parts  []tplPart
}

type tplPart struct {
	lit  string
	expr *Expr
}

// Literal returns the text of a template without expressions.
func (t *Template) Literal() (string, bool) {
	if len(t.parts) == 0 {
		return "", true
	}
	if len(t.parts) == 1 && t.parts[0].expr == nil {
		return t.parts[0].lit, true
	}
	return "", false
}

// Render evaluates the template. A whole-string expression keeps its type.
func (t *Template) Render(s Scope) (any, error) {
	if len(t.parts) == 1 && t.parts[0].expr != nil {
		v, err := t.parts[0].expr.Eval(s)
		if _, ok := v.(unknown); ok {
			return nil, errUnknown
		}
		return v, err
	}
	return t.String(s)
}

// unknown stands for a value that exists only at run time (the for_each item, in
// a plan; what a change a dry run did not send would have answered): rendering
// a template that uses it fails, so the plan shows the template as written.
type unknown struct{}

func (unknown) String() string { return "(known only at run time)" }

// MarshalJSON shows it in JSON events as what it is.
func (u unknown) MarshalJSON() ([]byte, error) { return json.Marshal(u.String()) }

var errUnknown = errors.New("known only at run time")

// String evaluates the template into text.
func (t *Template) String(s Scope) (string, error) { return t.text(s) }

func (t *Template) text(s Scope) (string, error) {
	if lit, ok := t.Literal(); ok {
		return lit, nil
	}
	var b strings.Builder
	for _, p := range t.parts {
		if p.expr == nil {
			b.WriteString(p.lit)
			continue
		}
		v, err := p.expr.Eval(s)
		if err != nil {
			return "", err
		}
		if _, ok := v.(unknown); ok {
			return "", errUnknown
		}
		b.WriteString(Text(v))
	}
	return b.String(), nil
}

// Partial renders what can be rendered now and leaves the rest as written, for
// plans: "/vms/${{ vm }}" stays as is where vm is known only at run time.
func (t *Template) Partial(s Scope) string {
	var b strings.Builder
	for _, p := range t.parts {
		if p.expr == nil {
			b.WriteString(strings.ReplaceAll(p.lit, "${{", "$${{"))
			continue
		}
		v, err := p.expr.Eval(s)
		if _, isUnknown := v.(unknown); err != nil || isUnknown {
			b.WriteString("${{ " + p.expr.Source + " }}")
			continue
		}
		b.WriteString(Text(v))
	}
	return b.String()
}

// Text formats a value for a URL, a header or a log line: strings as they are,
// whole numbers without a decimal point, nil as empty, objects and lists as JSON.
func Text(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1e15 {
			return strconv.FormatInt(int64(v), 10)
		}
		return strconv.FormatFloat(v, 'f', -1, 64)
	case int, int64, bool:
		return fmt.Sprint(v)
	case fmt.Stringer:
		return v.String()
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Sprint(v)
		}
		return string(b)
	}
}

// tplSegment is one piece of a scanned template: literal text, or an expression
// with its rune offset in the template (for error positions).
type tplSegment struct {
	lit    string
	expr   string
	offset int
	isExpr bool
}

// scanTemplate splits s into literal text and ${{ }} expressions. `$${{` is a
// literal `${{`. Braces and quotes inside an expression are balanced, so
// `${{ {"a": 1} }}` works. It returns the rune offset of an unterminated `${{`.
func scanTemplate(s string) ([]tplSegment, error) {
	var segs []tplSegment
	var lit strings.Builder
	i := 0
	for i < len(s) {
		if strings.HasPrefix(s[i:], "$${{") {
			lit.WriteString("${{")
			i += 4
			continue
		}
		if !strings.HasPrefix(s[i:], "${{") {
			lit.WriteByte(s[i])
			i++
			continue
		}
		start := i + 3
		end, ok := exprEnd(s, start)
		if !ok {
			return nil, &scanError{offset: runeOffset(s, i), msg: "`${{` is never closed with `}}`"}
		}
		if lit.Len() > 0 {
			segs = append(segs, tplSegment{lit: lit.String()})
			lit.Reset()
		}
		body := s[start:end]
		trimmed := strings.TrimSpace(body)
		if trimmed == "" {
			return nil, &scanError{offset: runeOffset(s, i), msg: "empty `${{ }}`: put an expression inside"}
		}
		lead := len(body) - len(strings.TrimLeft(body, " \t\n"))
		segs = append(segs, tplSegment{expr: trimmed, isExpr: true, offset: runeOffset(s, start+lead)})
		i = end + 2
	}
	if lit.Len() > 0 {
		segs = append(segs, tplSegment{lit: lit.String()})
	}
	return segs, nil
}

type scanError struct {
	offset int
	msg    string
}

func (e *scanError) Error() string { return e.msg }

// exprEnd finds the `}}` that closes an expression starting at start, skipping
// quoted strings and nested braces.
func exprEnd(s string, start int) (int, bool) {
	depth := 0
	for i := start; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\'', '`':
			j := i + 1
			for j < len(s) && s[j] != c {
				if s[j] == '\\' && c != '`' {
					j++
				}
				j++
			}
			if j >= len(s) {
				return 0, false
			}
			i = j
		case '{':
			depth++
		case '}':
			if depth == 0 {
				if i+1 < len(s) && s[i+1] == '}' {
					return i, true
				}
				return 0, false
			}
			depth--
		}
	}
	return 0, false
}

func runeOffset(s string, byteOff int) int {
	return len([]rune(s[:byteOff]))
}

// Value is a typed tree from YAML (a JSON body, a header map) whose strings are
// templates.
type Value struct {
	lit  any
	tpl  *Template
	list []*Value
	keys []string
	vals []*Value
	kind valueKind
}

type valueKind int

const (
	valueLit valueKind = iota
	valueTpl
	valueList
	valueMap
)

// sample is a value of the type v renders to when that is known before a run:
// a literal, an empty list or map; nil for a template.
func (v *Value) sample() any {
	switch v.kind {
	case valueList:
		return []any{}
	case valueMap:
		return map[string]any{}
	case valueLit:
		return v.lit
	}
	return nil
}

// Render evaluates the tree into plain Go values ready for json.Marshal.
func (v *Value) Render(s Scope) (any, error) {
	switch v.kind {
	case valueTpl:
		return v.tpl.Render(s)
	case valueList:
		out := make([]any, len(v.list))
		for i, e := range v.list {
			r, err := e.Render(s)
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	case valueMap:
		out := make(map[string]any, len(v.keys))
		for i, k := range v.keys {
			r, err := v.vals[i].Render(s)
			if err != nil {
				return nil, err
			}
			out[k] = r
		}
		return out, nil
	}
	return v.lit, nil
}
