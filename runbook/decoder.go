package runbook

import (
	"slices"
	"time"

	"go.yaml.in/yaml/v3"
)

// Node is a value of the runbook file as a step kind sees it. It is opaque, so
// kinds read the file only through the Decoder, which judges shapes and reports
// positions the same way for every kind. The zero Node is a key not written.
// Its shapes (IsText, IsList...) are those of the value as written, as kinds
// have always seen it: an alias (*name) has none of them, while the Decoder's
// helpers follow it to its value.
type Node struct{ y *yaml.Node }

// IsZero says the node is absent: a key not written.
func (n Node) IsZero() bool { return n.y == nil }

// IsNull says the value is written null (or left empty, as in `key:`).
func (n Node) IsNull() bool { return n.is(yaml.ScalarNode) && n.y.Tag == "!!null" }

// IsText says the value is a scalar YAML reads as text (not a number, a
// boolean or null).
func (n Node) IsText() bool { return n.is(yaml.ScalarNode) && n.y.Tag == "!!str" }

// IsMapping says the value is a mapping (key: value lines, or { }).
func (n Node) IsMapping() bool { return n.is(yaml.MappingNode) }

// IsList says the value is a list (- lines, or [ ]).
func (n Node) IsList() bool { return n.is(yaml.SequenceNode) }

// Text is a scalar's text as written, "" for a list or a mapping.
func (n Node) Text() string {
	if n.y == nil {
		return ""
	}
	return n.y.Value
}

// Items are a list's items; nil when the value is not a list.
func (n Node) Items() []Node {
	if !n.IsList() {
		return nil
	}
	out := make([]Node, len(n.y.Content))
	for i, e := range n.y.Content {
		out[i] = Node{e}
	}
	return out
}

func (n Node) is(kind yaml.Kind) bool { return n.y != nil && n.y.Kind == kind }

// Pair is a mapping entry, in file order.
type Pair struct {
	Key   Node
	Value Node
}

// Decoder is what a Kind sees while decoding: its node, the step around it, and
// helpers that judge a node's shape (text, a number, a duration, a mapping with
// known keys), compile templates and expressions, and record positioned errors.
type Decoder struct {
	Node     Node       // the value under the kind's key; zero in DecodeDefaults when absent
	Defaults any        // what the kind's DecodeDefaults returned
	step     *yaml.Node // the step mapping, for the kind's Fields; nil for probes
	c        *compileCtx
}

// Field returns a sibling key of the step (one of the kind's Fields); ok is
// false when the step does not have it.
func (d *Decoder) Field(name string) (Node, bool) {
	if d.step == nil {
		return Node{}, false
	}
	for i := 0; i+1 < len(d.step.Content); i += 2 {
		if d.step.Content[i].Value == name {
			return Node{d.step.Content[i+1]}, true
		}
	}
	return Node{}, false
}

// Fields decodes a mapping whose keys must be among allowed: an unknown key is
// reported with a "did you mean", and left out. Only the keys written are in
// the map.
func (d *Decoder) Fields(n Node, what string, allowed ...string) map[string]Node {
	m := d.c.fields(n.y, what, allowed...)
	out := make(map[string]Node, len(m))
	for k, v := range m {
		out[k] = Node{v}
	}
	return out
}

// Pairs returns a mapping's entries in order (<< merges included), or reports
// that n is not a mapping.
func (d *Decoder) Pairs(n Node, what string) []Pair {
	ps := d.c.pairs(n.y, what)
	out := make([]Pair, len(ps))
	for i, p := range ps {
		out[i] = Pair{Node{p.Key}, Node{p.Value}}
	}
	return out
}

// String decodes plain text.
func (d *Decoder) String(n Node, what string) (string, bool) { return d.c.str(n.y, what) }

// Template compiles a text field with ${{ }}.
func (d *Decoder) Template(n Node, what string) *Template { return d.c.template(n.y, what) }

// TemplateAt compiles part of a scalar's text (such as the URL in "GET /x") as a
// template, keeping positions right.
func (d *Decoder) TemplateAt(n Node, text string, runeOff int) *Template {
	return d.c.templateAt(n.y, text, runeOff)
}

// Value compiles a typed YAML tree whose strings are templates.
func (d *Decoder) Value(n Node) *Value { return d.c.value(n.y) }

// Expr compiles an expression field.
func (d *Decoder) Expr(n Node, what string, asBool bool) *Expr {
	return d.c.expr(n.y, what, asBool)
}

// ExprWith compiles an expression field that may also read name, which the
// kind puts in its scope (page, for http.paginate).
func (d *Decoder) ExprWith(n Node, what string, name string) *Expr {
	d.c.extra = name
	defer func() { d.c.extra = "" }()
	return d.c.expr(n.y, what, false)
}

// Duration decodes a duration such as 10s.
func (d *Decoder) Duration(n Node, what string) (time.Duration, bool) {
	return d.c.duration(n.y, what)
}

// SetDuration sets *dst from m[key] when the key is there and valid; a bad
// value is reported and leaves *dst as it was.
func (d *Decoder) SetDuration(m map[string]Node, key, what string, dst *time.Duration) {
	d.c.setDuration(m[key].y, what, dst)
}

// Int decodes a whole number of at least minimum.
func (d *Decoder) Int(n Node, what string, minimum int) (int, bool) {
	return d.c.integer(n.y, what, minimum)
}

// Bool decodes true or false.
func (d *Decoder) Bool(n Node, what string) (bool, bool) { return d.c.boolean(n.y, what) }

// Errorf records a problem at n.
func (d *Decoder) Errorf(n Node, format string, args ...any) {
	d.c.errorf(n.y, format, args...)
}

// ErrorAt records a problem at a rune offset inside the scalar n.
func (d *Decoder) ErrorAt(n Node, runeOff int, format string, args ...any) {
	d.c.errorAt(d.c.posIn(n.y, runeOff), format, args...)
}

// Warnf records a warning at n; name is one of the Warn names, by which a
// runbook can ignore it.
func (d *Decoder) Warnf(n Node, name, format string, args ...any) {
	d.c.warnf(n.y, name, format, args...)
}

// ErrorCount is the number of errors recorded so far (in the step being
// decoded, for a step), so a kind can tell whether its own decoding added any.
func (d *Decoder) ErrorCount() int { return len(d.c.errs) }

// Secret marks a template's value as a secret (a password, a token): it is
// replaced by *** in every output.
func (d *Decoder) Secret(t *Template) {
	if t != nil {
		d.c.secret(t)
	}
}

// SecretJoin marks the values of ts joined by sep as a secret too: a
// credential that carries them together, such as basic auth's user:password,
// whose base64 is what the Authorization header holds.
func (d *Decoder) SecretJoin(sep string, ts ...*Template) {
	for _, t := range ts {
		if t == nil {
			return
		}
	}
	d.c.joined = append(d.c.joined, joinedSecret{sep, ts})
}

// joinedSecret is a secret made of several templates' values.
type joinedSecret struct {
	sep   string
	parts []*Template
}

func (c *compileCtx) secret(t *Template) {
	c.auth = append(c.auth, t)
	for _, p := range t.parts {
		if p.expr != nil {
			for _, name := range p.expr.Env {
				if !slices.Contains(c.authEnv, name) {
					c.authEnv = append(c.authEnv, name)
				}
			}
		}
	}
}
