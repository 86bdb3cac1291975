package runbook

import (
	"slices"
	"time"

	"go.yaml.in/yaml/v3"
)

// Decoder is what a Kind sees while decoding: its node, the step around it, and
// helpers that compile templates and expressions and record positioned errors.
type Decoder struct {
	Node     *yaml.Node // the value under the kind's key; nil in DecodeDefaults when absent
	Step     *yaml.Node // the step mapping, for the kind's Fields; nil for probes
	Defaults any        // what the kind's DecodeDefaults returned
	c        *compileCtx
}

// Field returns a sibling key of the step (one of the kind's Fields), or nil.
func (d *Decoder) Field(name string) *yaml.Node {
	if d.Step == nil {
		return nil
	}
	for i := 0; i+1 < len(d.Step.Content); i += 2 {
		if d.Step.Content[i].Value == name {
			return d.Step.Content[i+1]
		}
	}
	return nil
}

// Fields decodes a mapping with the allowed keys.
func (d *Decoder) Fields(n *yaml.Node, what string, allowed ...string) map[string]*yaml.Node {
	return d.c.fields(n, what, allowed...)
}

// Pairs returns a mapping's entries in order.
func (d *Decoder) Pairs(n *yaml.Node, what string) []Pair {
	ps := d.c.pairs(n, what)
	out := make([]Pair, len(ps))
	for i, p := range ps {
		out[i] = Pair(p)
	}
	return out
}

// Pair is a mapping entry.
type Pair struct {
	Key   *yaml.Node
	Value *yaml.Node
}

// String decodes plain text.
func (d *Decoder) String(n *yaml.Node, what string) (string, bool) { return d.c.str(n, what) }

// Template compiles a text field with ${{ }}.
func (d *Decoder) Template(n *yaml.Node, what string) *Template { return d.c.template(n, what) }

// TemplateAt compiles part of a scalar's text (such as the URL in "GET /x") as a
// template, keeping positions right.
func (d *Decoder) TemplateAt(n *yaml.Node, text string, runeOff int) *Template {
	return d.c.templateAt(n, text, runeOff)
}

// Value compiles a typed YAML tree whose strings are templates.
func (d *Decoder) Value(n *yaml.Node) *Value { return d.c.value(n) }

// Expr compiles an expression field.
func (d *Decoder) Expr(n *yaml.Node, what string, asBool bool) *Expr {
	return d.c.expr(n, what, asBool)
}

// Duration decodes a duration such as 10s.
func (d *Decoder) Duration(n *yaml.Node, what string) (time.Duration, bool) {
	return d.c.duration(n, what)
}

// SetDuration sets *dst from m[key] when the key is there and valid.
func (d *Decoder) SetDuration(m map[string]*yaml.Node, key, what string, dst *time.Duration) {
	d.c.setDuration(m, key, what, dst)
}

// Int decodes a whole number of at least minimum.
func (d *Decoder) Int(n *yaml.Node, what string, minimum int) (int, bool) {
	return d.c.integer(n, what, minimum)
}

// Bool decodes true or false.
func (d *Decoder) Bool(n *yaml.Node, what string) (bool, bool) { return d.c.boolean(n, what) }

// Errorf records a problem at n.
func (d *Decoder) Errorf(n *yaml.Node, format string, args ...any) {
	d.c.errorf(n, format, args...)
}

// ErrorAt records a problem at a rune offset inside the scalar n.
func (d *Decoder) ErrorAt(n *yaml.Node, runeOff int, format string, args ...any) {
	d.c.errorAt(d.c.posIn(n, runeOff), format, args...)
}

// Warnf records a warning at n; name is one of the Warn names, by which a
// runbook can ignore it.
func (d *Decoder) Warnf(n *yaml.Node, name, format string, args ...any) {
	d.c.warnf(n, name, format, args...)
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
