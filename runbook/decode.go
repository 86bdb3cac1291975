package runbook

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

func nodePos(n *yaml.Node) Pos {
	if n == nil {
		return Pos{1, 1}
	}
	return Pos{n.Line, n.Column}
}

// posIn maps a rune offset inside a scalar's value to a file position.
func (c *compileCtx) posIn(n *yaml.Node, off int) Pos {
	// One pass over the first off runes: the lines they span and the column
	// in the last; this runs for every expression, so it does not allocate.
	off = max(off, 0)
	nl, col, seen := 0, 0, 0
	for _, r := range n.Value {
		if seen == off {
			break
		}
		seen++
		col++
		if r == '\n' {
			nl, col = nl+1, 0
		}
	}
	off = seen
	switch n.Style {
	case yaml.LiteralStyle, yaml.FoldedStyle:
		line := n.Line + 1 + nl
		if line <= len(c.lines) {
			src := c.lines[line-1]
			indent := len(src) - len(strings.TrimLeft(src, " "))
			return Pos{line, indent + 1 + col}
		}
	case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
		if nl == 0 {
			return Pos{n.Line, n.Column + 1 + off}
		}
	default:
		if nl == 0 {
			return Pos{n.Line, n.Column + off}
		}
	}
	return nodePos(n)
}

// resolve follows aliases so every helper sees the real node.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// pair is one key and value of a mapping, in file order.
type pair struct {
	Key   *yaml.Node
	Value *yaml.Node
}

// pairs returns a mapping's entries, or records an error when n is not a mapping.
func (c *compileCtx) pairs(n *yaml.Node, what string) []pair {
	n = resolve(n)
	if n == nil {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return nil
		}
		c.errorf(n, "%s must be a mapping (key: value lines), not %s", what, nodeKind(n))
		return nil
	}
	out := make([]pair, 0, len(n.Content)/2)
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Value == "<<" {
			out = append(out, c.pairs(v, what)...)
			continue
		}
		if seen[k.Value] {
			c.errorf(k, "duplicate key %q in %s", k.Value, what)
			continue
		}
		seen[k.Value] = true
		out = append(out, pair{k, v})
	}
	return out
}

// fields decodes a mapping whose keys must be among allowed, reporting unknown keys
// at their position with a "did you mean".
func (c *compileCtx) fields(n *yaml.Node, what string, allowed ...string) map[string]*yaml.Node {
	m := map[string]*yaml.Node{}
	for _, p := range c.pairs(n, what) {
		if !slices.Contains(allowed, p.Key.Value) {
			c.unknownKey(p.Key, what, allowed, nil)
			continue
		}
		m[p.Key.Value] = p.Value
	}
	return m
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "empty"
		case "!!int", "!!float":
			return "a number"
		case "!!bool":
			return "a boolean"
		}
		return fmt.Sprintf("the text %q", truncate(n.Value, 30))
	}
	return "something else"
}

// str decodes a scalar as text.
func (c *compileCtx) str(n *yaml.Node, what string) (string, bool) {
	n = resolve(n)
	if n == nil || n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		c.errorf(n, "%s must be text, not %s", what, nodeKindOrMissing(n))
		return "", false
	}
	return n.Value, true
}

func nodeKindOrMissing(n *yaml.Node) string {
	if n == nil {
		return "missing"
	}
	return nodeKind(n)
}

func (c *compileCtx) boolean(n *yaml.Node, what string) (bool, bool) {
	n = resolve(n)
	if n == nil || n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		c.errorf(n, "%s must be true or false, not %s", what, nodeKindOrMissing(n))
		return false, false
	}
	var b bool
	_ = n.Decode(&b)
	return b, true
}

func (c *compileCtx) integer(n *yaml.Node, what string, minimum int) (int, bool) {
	n = resolve(n)
	if n == nil || n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		c.errorf(n, "%s must be a whole number, not %s", what, nodeKindOrMissing(n))
		return 0, false
	}
	v, err := strconv.Atoi(n.Value)
	if err != nil || v < minimum {
		c.errorf(n, "%s must be a whole number of at least %d, not %s", what, minimum, n.Value)
		return 0, false
	}
	return v, true
}

func (c *compileCtx) number(n *yaml.Node, what string, lo, hi float64) (float64, bool) {
	n = resolve(n)
	if n == nil || n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") {
		c.errorf(n, "%s must be a number, not %s", what, nodeKindOrMissing(n))
		return 0, false
	}
	v, err := strconv.ParseFloat(n.Value, 64)
	if err != nil || v < lo || v > hi {
		c.errorf(n, "%s must be a number from %g to %g, not %s", what, lo, hi, n.Value)
		return 0, false
	}
	return v, true
}

// setDuration sets *dst from n when it is written and valid; a bad value is
// reported and leaves the default.
func (c *compileCtx) setDuration(n *yaml.Node, what string, dst *time.Duration) {
	if n != nil {
		if d, ok := c.duration(n, what); ok {
			*dst = d
		}
	}
}

// setNumber is setDuration for a number between lo and hi.
func (c *compileCtx) setNumber(n *yaml.Node, what string, lo, hi float64, dst *float64) {
	if n != nil {
		if v, ok := c.number(n, what, lo, hi); ok {
			*dst = v
		}
	}
}

// duration decodes "10s", "1h30m". A bare number is refused: the unit is the
// kind of mistake that matters at 3am.
func (c *compileCtx) duration(n *yaml.Node, what string) (time.Duration, bool) {
	n = resolve(n)
	if n == nil || n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		c.errorf(n, "%s must be a duration such as 10s, 5m or 1h, not %s", what, nodeKindOrMissing(n))
		return 0, false
	}
	if n.Tag == "!!int" || n.Tag == "!!float" {
		c.errorf(n, "%s needs a unit: write %ss for seconds, or m, h", what, n.Value)
		return 0, false
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil || d <= 0 {
		c.errorf(n, "%s must be a positive duration such as 10s, 5m or 1h, not %q", what, n.Value)
		return 0, false
	}
	return d, true
}

// plainScalar decodes the common forms of a number, a boolean and null as
// yaml.v3 would, without the decoder Node.Decode builds for each value (most of
// the cost of a long list of numbers); ok is false for any other form.
func plainScalar(n *yaml.Node) (any, bool) {
	switch n.Tag {
	case "!!null":
		return nil, true
	case "!!bool":
		switch n.Value {
		case "true":
			return true, true
		case "false":
			return false, true
		}
	case "!!int":
		// A leading 0 is octal to yaml.v3: left to it.
		if v := n.Value; v != "" && len(v) < 16 && (v[0] != '0' || v == "0") && strings.IndexFunc(v, func(r rune) bool { return r < '0' || r > '9' }) == -1 {
			v, err := strconv.Atoi(n.Value)
			return v, err == nil
		}
	case "!!float":
		if strings.IndexFunc(n.Value, func(r rune) bool { return !strings.ContainsRune("0123456789.-+eE", r) }) == -1 {
			v, err := strconv.ParseFloat(n.Value, 64)
			return v, err == nil
		}
	}
	return nil, false
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "..."
}
