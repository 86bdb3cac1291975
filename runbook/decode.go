package runbook

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/vm"
	"go.yaml.in/yaml/v3"
)

// compileCtx collects what loading one runbook learns and every problem it finds,
// so an author sees all mistakes at once.
type compileCtx struct {
	file       string
	lines      []string
	errs       Errors
	warns      Errors
	kinds      map[string]Kind
	defaults   map[string]any               // decoded defaults.<kind>
	vars       []string                     // declared var names
	checkSteps bool                         // steps.<id> references are checked (while compiling steps)
	outputs    map[string][]string          // the outputs each earlier step declares, by id
	forEachIDs []string                     // ids of earlier for_each steps (steps.<id> is a list)
	stepIDs    []string                     // ids of the steps before the one being compiled
	laterIDs   []string                     // ids of that step and the steps after it
	env        []EnvVar                     // env names read strictly, in order of first use
	loopVar    string                       // the for_each variable of the step being compiled
	auth       []*Template                  // templates whose values are secrets (auth)
	configs    map[exprKind]*conf.Config    // expr configurations, one per kind of expression
	compiled   map[exprKey]*compiled        // expressions compiled so far that do not read steps
	owners     map[string]map[string]string // per kind: the other kinds' fields, for messages
	authEnv    []string                     // env names those templates read
	read       []string                     // scope names read by the expressions compiled so far
	ignore     []string                     // the warnings the runbook ignores (ignore_warnings)
	stepIgnore []string                     // the warnings the step being compiled ignores
	joined     []joinedSecret               // secrets made of several auth values
	answerIDs  []string                     // steps whose answers an expression may read
	allAnswers bool                         // an expression reads steps without naming one
}

// exprKind is what an expression compiles against besides its text: the
// for_each variable in scope, and whether it must be a condition.
type exprKind struct {
	loopVar string
	asBool  bool
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
	key := exprKind{loopVar, asBool}
	cfg, ok := c.configs[key]
	if !ok {
		if c.configs == nil {
			c.configs = map[exprKind]*conf.Config{}
		}
		cfg = newExprConfig(loopVar, asBool)
		c.configs[key] = cfg
	}
	return cfg
}

func (c *compileCtx) requireEnv(name string, at Pos) {
	if !slices.ContainsFunc(c.env, func(v EnvVar) bool { return v.Name == name }) {
		c.env = append(c.env, EnvVar{Name: name, Pos: at})
	}
}

func (c *compileCtx) newError(p Pos, warning bool, format string, args ...any) *Error {
	e := &Error{File: c.file, Pos: p, Msg: fmt.Sprintf(format, args...), Warning: warning}
	if p.Line >= 1 && p.Line <= len(c.lines) {
		e.Source = c.lines[p.Line-1]
	}
	return e
}

func (c *compileCtx) errorAt(p Pos, format string, args ...any) {
	c.errs = append(c.errs, c.newError(p, false, format, args...))
}

func (c *compileCtx) errorf(n *yaml.Node, format string, args ...any) {
	c.errorAt(nodePos(n), format, args...)
}

// warnf records a warning named name at n, unless the runbook or the step
// ignores it.
func (c *compileCtx) warnf(n *yaml.Node, name, format string, args ...any) {
	c.warnAt(nodePos(n), name, format, args...)
}

func (c *compileCtx) warnAt(p Pos, name, format string, args ...any) {
	if c.ignored(name) {
		return
	}
	e := c.newError(p, true, format, args...)
	e.Name = name
	c.warns = append(c.warns, e)
}

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

// unknownKey reports a key that is not allowed; elsewhere names keys that belong to
// another context, so the message can say where the key goes.
func (c *compileCtx) unknownKey(k *yaml.Node, what string, allowed []string, elsewhere map[string]string) {
	if where, ok := elsewhere[k.Value]; ok {
		c.errorf(k, "%q is not allowed here: %s", k.Value, where)
		return
	}
	msg := fmt.Sprintf("unknown key %q in %s", k.Value, what)
	if s := closest(k.Value, allowed); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	} else {
		msg += fmt.Sprintf(" (allowed: %s)", strings.Join(allowed, ", "))
	}
	c.errorf(k, "%s", msg)
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

// duration decodes "10s", "1h30m". A bare number is refused: the unit is the
// kind of mistake that matters at 3am.
// setDuration sets *dst from m[key] when the key is there and valid; a bad
// value is reported and leaves the default.
func (c *compileCtx) setDuration(m map[string]*yaml.Node, key, what string, dst *time.Duration) {
	if n := m[key]; n != nil {
		if d, ok := c.duration(n, what); ok {
			*dst = d
		}
	}
}

// setNumber is setDuration for a number between lo and hi.
func (c *compileCtx) setNumber(m map[string]*yaml.Node, key, what string, lo, hi float64, dst *float64) {
	if n := m[key]; n != nil {
		if v, ok := c.number(n, what, lo, hi); ok {
			*dst = v
		}
	}
}

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
	key := exprKey{exprKind{c.loopVar, asBool}, src}
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
			c.errorf(n, "cannot read this value: %v", err)
		}
		return &Value{lit: lit}
	}
	c.errorf(n, "unsupported YAML value")
	return &Value{}
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

// closest returns the candidate nearest to word when it is near enough to be the
// intended one, else "".
func closest(word string, candidates []string) string {
	best, bestD := "", 1<<30
	lw := strings.ToLower(word)
	for _, cand := range candidates {
		d := editDistance(lw, strings.ToLower(cand))
		if d < bestD {
			best, bestD = cand, d
		}
	}
	limit := 2
	if len(word) >= 6 {
		limit = 3
	}
	if bestD <= limit && bestD < len(word) {
		return best
	}
	return ""
}

// editDistance is the optimal string alignment distance: insertions, deletions,
// substitutions and adjacent transpositions each cost one.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "..."
}

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

// Warnf records a warning at n; name is one of the Warn names, by which a
// runbook can ignore it.
func (d *Decoder) Warnf(n *yaml.Node, name, format string, args ...any) {
	d.c.warnf(n, name, format, args...)
}

// ErrorCount is the number of errors recorded so far (in the step being
// decoded, for a step), so a kind can tell whether its own decoding added any.
func (d *Decoder) ErrorCount() int { return len(d.c.errs) }
