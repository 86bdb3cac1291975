package runbook

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"
)

// Runbook is a loaded, compiled runbook: every template and expression compiled,
// every reference checked. Nothing in it is evaluated yet.
type Runbook struct {
	File        string
	Hash        string // sha256 of the file, for the journal and --resume
	Name        string
	Description string
	Vars        []Var
	Secrets     []string      // env names whose values never appear in output
	Timeout     time.Duration // the whole run; 0 means none
	Rate        float64       // requests per second to each host; 0: adaptive
	Steps       []*Step
	Env         []EnvVar // env names read strictly: they must be set before the run
	AuthEnv     []string // the env names credentials are read from (--sim stands in for them)
	Warnings    Errors
	secrets     []*Template // auth values: secrets wherever they came from
	joined      []joinedSecret
}

// EnvVar is an environment variable the runbook reads, where it first does.
type EnvVar struct {
	Name string
	Pos  Pos
}

// Var is one input. Its value may be a template over env and earlier vars.
type Var struct {
	Name     string
	Value    *Value
	Pos      Pos
	Required bool // declared null: a run needs --var
}

// Step is one step of a runbook.
type Step struct {
	Index           int       // 1-based
	Name            string    // as written
	Title           *Template // the name, when it has ${{ }}: rendered with the vars, and per for_each item
	ID              string
	Pos             Pos
	Kind            string
	Action          Action
	If              *Expr
	Guard           Guard
	Wait            Wait
	Retry           Retry
	Timeout         time.Duration
	Outputs         []Output
	ForEach         *Expr
	As              string
	Concurrency     int
	ContinueOnError bool
	keepAnswer      bool // a later expression may read its response's body or state
}

// Guard is the check made before every send of a change.
type Guard struct {
	On       bool   // run before every send
	Check    Action // what the guard reads (by default the resource the change acts on); nil: nothing
	BusyWhen *Expr
	Interval time.Duration
	Timeout  time.Duration // 0: bounded by the step's deadline only
}

// Wait is the check made after a change until it has taken effect.
type Wait struct {
	On        bool
	Check     Action // what the wait reads; nil: nothing
	AfterSend bool   // the check reads response: it is made only after the change, and before is null
	Until     *Expr
	FailWhen  *Expr
	Interval  time.Duration
	Timeout   time.Duration
	Gone      bool // the default wait of a DELETE: until the check reads 404
}

// Retry is the re-send policy.
type Retry struct {
	Interval      time.Duration
	Backoff       float64
	MaxInterval   time.Duration
	Jitter        float64
	MaxAttempts   int // sends, the first included; 0 = bounded by the deadline only
	MaxRetryAfter time.Duration
	When          *Expr
	Idempotent    *bool
}

// Output is a named value computed after the step.
type Output struct {
	Name string
	Expr *Expr
}

// Defaults (docs/language.md).
const (
	DefaultInterval      = 10 * time.Second
	DefaultStepTimeout   = 30 * time.Minute
	DefaultMaxRetryAfter = 15 * time.Minute
	DefaultBusyWhen      = `state?.runstate == "busy" || state?.rate_limited == true`
	DefaultFailWhen      = `new_error(before, state) != ""`
	goneUntil            = `response.status == 404`
)

var (
	topKeys      = []string{"version", "name", "description", "vars", "secrets", "timeout", "defaults", "steps", "ignore_warnings"}
	stepKeys     = []string{"name", "id", "if", "guard", "wait_for", "retry", "timeout", "outputs", "for_each", "as", "concurrency", "continue_on_error", "ignore_warnings"}
	guardKeys    = []string{"check", "busy_when", "interval", "timeout"}
	waitKeys     = []string{"check", "until", "fail_when", "interval", "timeout"}
	retryKeys    = []string{"interval", "backoff", "max_interval", "jitter", "max_attempts", "max_retry_after", "when", "idempotent"}
	defaultsKeys = []string{"guard", "wait", "retry", "timeout"}
	defGuardKeys = []string{"busy_when", "interval", "timeout"}
	defWaitKeys  = []string{"fail_when", "interval", "timeout"}
	idPattern    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// Vocabularizer is a kind with keys of its own below its key (such as http's
// method and url), named by place: "http", "defaults.http", ...
type Vocabularizer interface {
	Vocabulary() map[string][]string
}

// Vocabulary lists the keys the loader accepts in each place of a runbook, so a
// test can hold the JSON Schema to exactly the same language.
func Vocabulary(kinds map[string]Kind) map[string][]string {
	v := map[string][]string{
		"":               topKeys,
		"defaults":       slices.Clone(defaultsKeys),
		"defaults.guard": defGuardKeys,
		"defaults.wait":  defWaitKeys,
		"retry":          retryKeys,
		"step":           slices.Clone(stepKeys),
		"guard":          guardKeys,
		"wait_for":       waitKeys,
	}
	for name, k := range kinds {
		v["step"] = append(v["step"], name)
		for _, f := range k.Fields() {
			if !slices.Contains(v["step"], f) {
				v["step"] = append(v["step"], f)
			}
		}
		if vz, ok := k.(Vocabularizer); ok {
			for place, keys := range vz.Vocabulary() {
				v[place] = keys
				if strings.HasPrefix(place, "defaults.") {
					v["defaults"] = append(v["defaults"], strings.TrimPrefix(place, "defaults."))
				}
			}
		}
	}
	return v
}

// LoadFile reads and loads a runbook file.
func LoadFile(path string, kinds map[string]Kind) (*Runbook, error) {
	src, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Load(path, src, kinds)
}

// Load parses and compiles a runbook. Every problem is returned at once as Errors.
func Load(file string, src []byte, kinds map[string]Kind) (*Runbook, error) {
	doc, err := Parse(file, src)
	if err != nil {
		return nil, err
	}
	return Compile(file, src, doc, kinds)
}

// Parse reads src as one YAML document, and refuses one whose aliases stand
// for more than MaxAliasNodes nodes or that has more than MaxNodes, so no
// reader of the tree (the loader, the schema check) copies without end. A caller that checks the document
// further (against the JSON Schema) parses once and hands it to Compile.
// yaml.v3 keeps comments in the tree: Compile reads a line comment that
// cut a value short ("name: Deploy #42") as the mistake it is.
func Parse(file string, src []byte) (*yaml.Node, error) {
	doc, err := parse(file, src)
	if err != nil {
		return nil, err
	}
	c := newCompileCtx(file, src, nil)
	c.checkSize(doc)
	if len(c.errs) > 0 {
		return nil, c.errs
	}
	return doc, nil
}

func parse(file string, src []byte) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		c := newCompileCtx(file, src, nil)
		pos, msg := yamlErrorPos(err), yamlErrorMessage(err)
		if p, ok := misindented(c.lines, pos.Line); ok {
			switch raw := err.Error(); {
			case strings.Contains(raw, "did not find expected key"), strings.Contains(raw, "did not find expected '-' indicator"):
				// yaml.v3 names the line where the block began; point at the line
				// that broke it.
				pos = p
			case strings.Contains(raw, "mapping values are not allowed") && p.Line == pos.Line:
				pos = p
				msg = "YAML syntax: this key is indented deeper than the line above, so YAML reads it as part of that line's value; line it up with the keys around it"
			}
		}
		c.errorAt(pos, "%s", msg)
		return nil, c.errs
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		c := newCompileCtx(file, src, nil)
		c.errorAt(Pos{1, 1}, "the file is empty: a runbook needs version: 1, a name and steps")
		return nil, c.errs
	}
	return &doc, nil
}

func newCompileCtx(file string, src []byte, kinds map[string]Kind) *compileCtx {
	return &compileCtx{
		file:     file,
		lines:    strings.Split(strings.ReplaceAll(string(src), "\r\n", "\n"), "\n"),
		kinds:    kinds,
		defaults: map[string]any{},
	}
}

// Compile checks and compiles the document Parse made of src.
func Compile(file string, src []byte, doc *yaml.Node, kinds map[string]Kind) (*Runbook, error) {
	sum := sha256.Sum256(src)
	c := newCompileCtx(file, src, kinds)
	rb := &Runbook{File: file, Hash: hex.EncodeToString(sum[:])}
	root := doc.Content[0]
	c.traps(root, aliased(root, map[*yaml.Node]bool{}))
	c.load(rb, root)
	if len(c.errs) > 0 {
		sort.SliceStable(c.errs, func(i, j int) bool {
			a, b := c.errs[i].Pos, c.errs[j].Pos
			return a.Line < b.Line || (a.Line == b.Line && a.Col < b.Col)
		})
		return nil, c.errs
	}
	for _, d := range c.defaults {
		if p, ok := d.(Pacer); ok && p.RequestRate() > 0 {
			rb.Rate = p.RequestRate()
		}
	}
	rb.Env = c.env
	rb.AuthEnv = c.authEnv
	rb.Warnings = c.warns
	rb.secrets = c.auth
	rb.joined = c.joined
	return rb, nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// yamlErrorPos reads the line of a yaml.v3 syntax error. yaml.v3 reports a
// parser error at its context mark, which is 0-based, and a scanner error 1-based;
// parser errors are the "did not find expected <token>" family.
func yamlErrorPos(err error) Pos {
	m := yamlLine.FindStringSubmatch(err.Error())
	if m == nil {
		return Pos{1, 1}
	}
	n, _ := strconv.Atoi(m[1])
	msg := err.Error()[len(m[0]):]
	if strings.HasPrefix(msg, "did not find expected") && !strings.Contains(msg, "comment or line break") &&
		!strings.Contains(msg, "hexdecimal") && !strings.Contains(msg, "alphabetic or numeric") {
		n++
	}
	return Pos{n, 1}
}

// misindented finds the key or item, in the block that begins at line `from`,
// whose indentation fits no level above it: deeper than a line that opens
// nothing, or between two levels. It reads block YAML only, the form runbooks
// take, and skips what it cannot judge (block scalars, flow collections over
// several lines, wrapped text). ok is false when it finds no such line.
func misindented(lines []string, from int) (Pos, bool) {
	var levels []int // indentation of the open blocks, innermost last
	opens := false   // the line before ends with "key:" or "-": a deeper line may follow
	scalar := -1     // inside a | or > block scalar of a node at this indentation
	flow := 0        // depth of a [ ] or { } collection left open
	block := -1      // indentation of the mapping at line `from`: it ends at a line less deep
	for i, line := range lines {
		text := strings.TrimLeft(line, " ")
		ind := len(line) - len(text)
		if text == "" || text[0] == '#' || (scalar >= 0 && ind > scalar) {
			continue
		}
		if flow > 0 {
			flow = max(flow+flowDepth(text), 0)
			continue
		}
		scalar = -1
		top := -1
		if len(levels) > 0 {
			top = levels[len(levels)-1]
		}
		if ind > top && top >= 0 && !opens && !keyLike.MatchString(text) {
			continue // a wrapped value, not a key
		}
		if ind > top && top >= 0 && !opens || ind < top && !slices.Contains(levels, ind) {
			if i+1 >= from && keyLike.MatchString(text) {
				return Pos{i + 1, ind + 1}, true
			}
			return Pos{}, false
		}
		if i+1 > from && ind < block {
			return Pos{}, false
		}
		for len(levels) > 0 && levels[len(levels)-1] > ind {
			levels = levels[:len(levels)-1]
		}
		if len(levels) == 0 || levels[len(levels)-1] < ind {
			levels = append(levels, ind)
		}
		// "- key: value" opens a mapping at the key's column; "- |" is a block
		// scalar of the item.
		owner := ind
		for strings.HasPrefix(text, "- ") {
			rest := strings.TrimLeft(text[1:], " ")
			owner = ind
			ind += len(text) - len(rest)
			text = rest
			levels = append(levels, ind)
		}
		if i+1 == from {
			block = ind
		}
		if j := strings.Index(text, " #"); j >= 0 {
			text = strings.TrimRight(text[:j], " ")
		}
		opens = text == "-" || strings.HasSuffix(text, ":")
		value := text
		if k := strings.Index(text, ": "); k >= 0 {
			value, owner = strings.TrimSpace(text[k+2:]), ind
		}
		if value != "" && strings.IndexAny(value[:1], "|>") == 0 {
			scalar = owner
		}
		flow = max(flowDepth(value), 0)
	}
	return Pos{}, false
}

// keyLike matches a line that holds a key or a sequence item.
var keyLike = regexp.MustCompile(`^(?:-(?:\s|$)|(?:-\s+)*(?:[A-Za-z_$][\w.$-]*|"[^"]*"|'[^']*')\s*:(?:\s|$))`)

// flowDepth is how many [ and { a line opens and leaves open, outside quotes.
func flowDepth(text string) int {
	depth := 0
	var quote byte
	for i := 0; i < len(text); i++ {
		switch c := text[i]; {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '[' || c == '{':
			depth++
		case c == ']' || c == '}':
			depth--
		}
	}
	return depth
}

func yamlErrorMessage(err error) string {
	msg := yamlLine.ReplaceAllString(err.Error(), "")
	msg = strings.TrimPrefix(msg, "yaml: ")
	hint := ""
	switch {
	case strings.Contains(msg, "mapping values are not allowed"):
		hint = `; a value that contains ": " must be quoted, e.g. log: "Step: done"`
	case strings.Contains(msg, "unknown anchor"), strings.Contains(msg, "alphabetic or numeric"):
		hint = "; a value that starts with * or & is read as a YAML alias or anchor: quote it"
	case strings.Contains(msg, "cannot start any token"):
		hint = "; indent with spaces, not tabs, and quote values that start with @ or `"
	case strings.Contains(msg, "did not find expected ',' or"):
		hint = "; inside { } or [ ], quote values that contain ${{ }}, : or #, e.g. {note: \"${{ vars.x }}\"}"
	case strings.Contains(msg, "did not find expected key"):
		hint = "; check the indentation of this line against the lines above"
	}
	return "YAML syntax: " + msg + hint
}

// aliased collects the nodes some alias refers to.
func aliased(n *yaml.Node, seen map[*yaml.Node]bool) map[*yaml.Node]bool {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		seen[n.Alias] = true
	}
	for _, c := range n.Content {
		aliased(c, seen)
	}
	return seen
}

// traps reports YAML that is legal but silently changes a value's meaning: text
// after " #" taken for a comment, a leading & or ! taken for an anchor or a tag.
func (c *compileCtx) traps(n *yaml.Node, used map[*yaml.Node]bool) {
	if n.Kind == yaml.ScalarNode {
		if lc := n.LineComment; n.Style == 0 && len(lc) > 1 && lc[0] == '#' && lc[1] != ' ' && lc[1] != '#' && n.Tag != "!!null" {
			col := n.Column + len([]rune(n.Value)) + 1
			if line := n.Line; line <= len(c.lines) {
				if i := strings.Index(c.lines[line-1][min(n.Column-1, len(c.lines[line-1])):], "#"); i >= 0 {
					col = n.Column + len([]rune(c.lines[line-1][n.Column-1:n.Column-1+i]))
				}
			}
			c.errorAt(Pos{n.Line, col}, "YAML reads %q as a comment, so this value is only %q: quote the whole value if # belongs to it; if it is a comment, write it %q", truncate(lc, 30), truncate(n.Value, 30), "# "+strings.TrimLeft(truncate(lc, 30), "#"))
		}
		if n.Anchor != "" && !used[n] {
			c.errorf(n, "YAML reads &%s as an anchor, so this value is only %q: quote the value if & belongs to it", n.Anchor, truncate(n.Value, 30))
		}
		if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
			c.errorf(n, "YAML reads %s as a tag: quote the value if ! belongs to it", n.Tag)
		}
	}
	for _, child := range n.Content {
		c.traps(child, used)
	}
}

// load decodes the top level.
func (c *compileCtx) load(rb *Runbook, root *yaml.Node) {
	if root.Kind != yaml.MappingNode {
		c.errorf(root, "a runbook must be a mapping with version, name and steps, not %s", nodeKind(root))
		return
	}
	top := map[string]*yaml.Node{}
	for _, p := range c.pairs(root, "the runbook") {
		if !slices.Contains(topKeys, p.Key.Value) {
			where := map[string]string{}
			if slices.Contains(stepKeys, p.Key.Value) || c.kinds[p.Key.Value] != nil {
				where[p.Key.Value] = "it belongs inside a step, under steps:"
			}
			c.unknownKey(p.Key, "the runbook", topKeys, where)
			continue
		}
		top[p.Key.Value] = p.Value
	}

	// Read first: the defaults and the steps may warn.
	if n, ok := top["ignore_warnings"]; ok {
		c.ignore = c.ignoreWarnings(n)
	}
	if n, ok := top["version"]; !ok {
		c.errorf(root, "missing version: add `version: 1` at the top")
	} else if v, ok := c.integer(n, "version", 1); ok && v != 1 {
		c.errorf(n, "unsupported version %d: this runbook knows format version 1", v)
	}
	if n, ok := top["name"]; ok {
		rb.Name, _ = c.str(n, "name")
	}
	if n, ok := top["description"]; ok {
		rb.Description, _ = c.str(n, "description")
	}
	if n, ok := top["timeout"]; ok {
		rb.Timeout, _ = c.duration(n, "timeout")
	}
	if n, ok := top["secrets"]; ok {
		c.secrets(rb, n)
	}
	if n, ok := top["vars"]; ok {
		c.loadVars(rb, n)
	}
	def := c.loadDefaults(top["defaults"])

	stepsNode, ok := top["steps"]
	stepsNode = resolve(stepsNode)
	if !ok {
		c.errorf(root, "missing steps: a runbook needs a list of steps")
		return
	}
	if stepsNode.Kind != yaml.SequenceNode {
		c.errorf(stepsNode, "steps must be a list (each step starts with `- name:`), not %s", nodeKind(stepsNode))
		return
	}
	if len(stepsNode.Content) == 0 {
		c.errorf(stepsNode, "steps is empty: add at least one step")
		return
	}
	ids := c.collectIDs(stepsNode)
	for _, s := range c.loadSteps(stepsNode.Content, ids, def) {
		if s != nil {
			s.keepAnswer = c.allAnswers || slices.Contains(c.answerIDs, s.ID)
			rb.Steps = append(rb.Steps, s)
		}
	}
}

// loadSteps compiles the steps in order. A step may read what collectIDs
// recorded of every step (ids, outputs, for_each); stepIDs and laterIDs say
// which of them run before it. What one step sets for itself (the warnings
// it ignores) is cleared before the next.
func (c *compileCtx) loadSteps(nodes []*yaml.Node, ids []string, def stepDefaults) []*Step {
	steps := make([]*Step, len(nodes))
	c.checkSteps = true
	for i, n := range nodes {
		c.laterIDs, c.stepIgnore = ids[i:], nil
		steps[i] = c.loadStep(n, i+1, def)
		if ids[i] != "" {
			c.stepIDs = append(c.stepIDs, ids[i])
		}
	}
	c.checkSteps, c.stepIDs, c.laterIDs, c.stepIgnore = false, nil, nil, nil
	return steps
}

func (c *compileCtx) secrets(rb *Runbook, n *yaml.Node) {
	n = resolve(n)
	if n.Kind != yaml.SequenceNode {
		c.errorf(n, "secrets must be a list of environment variable names, such as [SKYTAP_TOKEN]")
		return
	}
	for _, e := range n.Content {
		if s, ok := c.str(e, "a secret"); ok {
			rb.Secrets = append(rb.Secrets, s)
		}
	}
}

func (c *compileCtx) loadVars(rb *Runbook, n *yaml.Node) {
	for _, p := range c.pairs(n, "vars") {
		name := p.Key.Value
		if !idPattern.MatchString(name) {
			c.errorf(p.Key, "var name %q must be letters, digits and _ (it is used as vars.%s)", name, name)
			continue
		}
		// A var may read the vars declared before it.
		v := c.value(p.Value)
		c.vars = append(c.vars, name)
		n := resolve(p.Value)
		required := n.Kind == yaml.ScalarNode && n.Tag == "!!null"
		rb.Vars = append(rb.Vars, Var{Name: name, Value: v, Pos: nodePos(p.Key), Required: required})
	}
}

// collectIDs returns each step's id ("" when none), reporting duplicates.
func (c *compileCtx) collectIDs(steps *yaml.Node) []string {
	ids := make([]string, len(steps.Content))
	seen := map[string]*yaml.Node{}
	for i, s := range steps.Content {
		s = resolve(s)
		if s.Kind != yaml.MappingNode {
			continue
		}
		for j := 0; j+1 < len(s.Content); j += 2 {
			if s.Content[j].Value != "id" {
				continue
			}
			v := resolve(s.Content[j+1])
			if v.Kind != yaml.ScalarNode {
				continue
			}
			if !idPattern.MatchString(v.Value) {
				c.errorf(v, "step id %q must be letters, digits and _ (it is read as steps.%s)", v.Value, v.Value)
				continue
			}
			if prev, dup := seen[v.Value]; dup {
				c.errorf(v, "duplicate step id %q (first used on line %d)", v.Value, prev.Line)
				continue
			}
			seen[v.Value] = v
			ids[i] = v.Value
		}
		if ids[i] != "" {
			c.declared(ids[i], s)
		}
	}
	return ids
}

// declared records what the step s with this id offers later steps: its
// outputs by name, and whether steps.<id> is a list (a for_each step). It
// reads keys as loadStep does (<< merges included), and leaves what is wrong
// with them for loadStep to report.
func (c *compileCtx) declared(id string, s *yaml.Node) {
	quiet := *c
	quiet.errs = nil
	var outputs *yaml.Node
	for _, p := range quiet.pairs(s, "step") {
		switch p.Key.Value {
		case "for_each":
			c.forEachIDs = append(c.forEachIDs, id)
		case "outputs":
			outputs = p.Value
		}
	}
	for _, p := range quiet.pairs(outputs, "outputs") {
		if idPattern.MatchString(p.Key.Value) {
			if c.outputs == nil {
				c.outputs = map[string][]string{}
			}
			c.outputs[id] = append(c.outputs[id], p.Key.Value)
		}
	}
}

// stepDefaults are the decoded `defaults:` section.
type stepDefaults struct {
	guard   Guard
	wait    Wait
	retry   Retry
	timeout time.Duration
}

func (c *compileCtx) loadDefaults(n *yaml.Node) stepDefaults {
	def := stepDefaults{
		guard:   Guard{Interval: DefaultInterval},
		wait:    Wait{Interval: DefaultInterval},
		retry:   Retry{Interval: DefaultInterval, Backoff: 1, MaxRetryAfter: DefaultMaxRetryAfter},
		timeout: DefaultStepTimeout,
	}
	sections := map[string]Defaulter{}
	allowed := slices.Clone(defaultsKeys)
	for _, name := range c.kindNames() {
		if d, ok := c.kinds[name].(Defaulter); ok {
			if _, seen := sections[d.DefaultsSection()]; !seen {
				sections[d.DefaultsSection()] = d
				allowed = append(allowed, d.DefaultsSection())
			}
		}
	}
	m := c.fields(n, "defaults", allowed...)
	decoded := map[string]any{}
	// In the file's order (absent ones first), so that env names are listed in
	// the order of their first use, the same on every load.
	names := slices.Sorted(maps.Keys(sections))
	slices.SortStableFunc(names, func(a, b string) int { return nodePos(m[a]).Line - nodePos(m[b]).Line })
	for _, section := range names {
		k := sections[section]
		v, err := k.DecodeDefaults(&Decoder{Node: m[section], c: c})
		if err != nil {
			c.errorf(m[section], "%v", err)
		}
		decoded[section] = v
	}
	for name, k := range c.kinds {
		if d, ok := k.(Defaulter); ok {
			c.defaults[name] = decoded[d.DefaultsSection()]
		}
	}
	def.guard.BusyWhen = c.builtin(DefaultBusyWhen)
	def.wait.FailWhen = c.builtin(DefaultFailWhen)
	if g := m["guard"]; g != nil {
		gm := c.fields(g, "defaults.guard", defGuardKeys...)
		c.guardFields(&def.guard, gm)
	}
	if w := m["wait"]; w != nil {
		wm := c.fields(w, "defaults.wait", defWaitKeys...)
		c.waitFields(&def.wait, wm)
	}
	if r := m["retry"]; r != nil {
		c.retryFields(&def.retry, c.fields(r, "defaults.retry", retryKeys...))
	}
	if t := m["timeout"]; t != nil {
		if d, ok := c.duration(t, "defaults.timeout"); ok {
			def.timeout = d
		}
	}
	return def
}

// builtin compiles one of the design's default expressions.
func (c *compileCtx) builtin(src string) *Expr {
	return builtins()[src]
}

// builtins are the design's default expressions, compiled once per process:
// programs are immutable, so every load and run shares them.
var builtins = sync.OnceValue(func() map[string]*Expr {
	m := map[string]*Expr{}
	for _, src := range []string{DefaultBusyWhen, DefaultFailWhen, goneUntil} {
		prog, problems, _, _ := compileExpr(src, nil, "", true)
		if problems != nil {
			panic(fmt.Sprintf("default expression %q: %v", src, problems))
		}
		m[src] = &Expr{Source: src, prog: prog}
	}
	return m
})

func (c *compileCtx) guardFields(g *Guard, m map[string]*yaml.Node) {
	if n := m["busy_when"]; n != nil {
		if e := c.expr(n, "busy_when", true); e != nil {
			g.BusyWhen = e
		}
	}
	c.setDuration(m, "interval", "guard interval", &g.Interval)
	c.setDuration(m, "timeout", "guard timeout", &g.Timeout)
}

func (c *compileCtx) waitFields(w *Wait, m map[string]*yaml.Node) {
	if n := m["until"]; n != nil {
		w.Until = c.expr(n, "until", true)
	}
	if n := m["fail_when"]; n != nil {
		if e := c.expr(n, "fail_when", true); e != nil {
			w.FailWhen = e
		}
	}
	c.setDuration(m, "interval", "wait interval", &w.Interval)
	c.setDuration(m, "timeout", "wait timeout", &w.Timeout)
}

func (c *compileCtx) retryFields(r *Retry, m map[string]*yaml.Node) {
	c.setDuration(m, "interval", "retry interval", &r.Interval)
	c.setNumber(m, "backoff", "retry backoff", 1, 10, &r.Backoff)
	c.setDuration(m, "max_interval", "retry max_interval", &r.MaxInterval)
	c.setNumber(m, "jitter", "retry jitter", 0, 1, &r.Jitter)
	if n := m["max_attempts"]; n != nil {
		if v, ok := c.integer(n, "retry max_attempts", 0); ok {
			r.MaxAttempts = v
		}
	}
	c.setDuration(m, "max_retry_after", "retry max_retry_after", &r.MaxRetryAfter)
	if n := m["when"]; n != nil {
		if r.When = c.expr(n, "retry when", true); r.When != nil {
			c.neverRetried(n, r.When.Source)
		}
	}
	if n := m["idempotent"]; n != nil {
		if b, ok := c.boolean(n, "retry idempotent"); ok {
			r.Idempotent = &b
		}
	}
}

// loadStep decodes one step.
func (c *compileCtx) loadStep(n *yaml.Node, index int, def stepDefaults) *Step {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		c.errorf(n, "step %d must be a mapping with a name and one action (%s), not %s", index, strings.Join(c.kindNames(), ", "), nodeKind(n))
		return nil
	}
	errsBefore := len(c.errs)
	s := &Step{Index: index, Pos: nodePos(n), Guard: def.guard, Wait: def.wait, Retry: def.retry, Timeout: def.timeout, Concurrency: 1, As: "item"}

	// Which keys does this step have? Exactly one must name a kind.
	var kindKey *yaml.Node
	var kind Kind
	common := map[string]*yaml.Node{}
	pairs := c.pairs(n, "step")
	for _, p := range pairs {
		if k, ok := c.kinds[p.Key.Value]; ok {
			if kindKey != nil {
				c.errorf(p.Key, "a step has exactly one action, but this one has both %q (line %d) and %q: split it into two steps", kindKey.Value, kindKey.Line, p.Key.Value)
				continue
			}
			kindKey, kind = p.Key, k
		}
	}
	allowed := slices.Clone(stepKeys)
	if kind != nil {
		allowed = append(allowed, kindKey.Value)
		allowed = append(allowed, kind.Fields()...)
	}
	elsewhere := c.fieldOwners(kindKey)
	for _, p := range pairs {
		switch {
		case c.kinds[p.Key.Value] != nil:
		case slices.Contains(allowed, p.Key.Value):
			common[p.Key.Value] = p.Value
		default:
			all := allowed
			if kind == nil {
				all = append(slices.Clone(allowed), c.kindNames()...)
			}
			c.unknownKey(p.Key, "step", all, elsewhere)
		}
	}
	if kind == nil {
		c.errorf(n, "step %d has no action: give it one of %s", index, strings.Join(c.kindNames(), ", "))
		return nil
	}
	s.Kind = kindKey.Value
	if v := common["ignore_warnings"]; v != nil {
		c.stepIgnore = c.ignoreWarnings(v)
	}

	if v := common["name"]; v != nil {
		s.Name, _ = c.str(v, "name")
	}
	if v := common["id"]; v != nil {
		s.ID = resolve(v).Value
	}
	if s.Name == "" {
		s.Name = s.ID
	}
	if s.Name == "" {
		s.Name = fmt.Sprintf("%s step", s.Kind)
	}
	if v := common["as"]; v != nil {
		if as, ok := c.str(v, "as"); ok {
			if !idPattern.MatchString(as) || slices.Contains(reservedNames, as) {
				c.errorf(v, "as: %q must be a name of letters, digits and _ that is not one of %s", as, strings.Join(reservedNames, ", "))
			} else {
				s.As = as
			}
		}
		if common["for_each"] == nil {
			c.errorf(v, "as: names the item of a for_each; add for_each: or remove as:")
		}
	}
	if v := common["for_each"]; v != nil {
		s.ForEach = c.expr(v, "for_each", false)
		c.loopVar = s.As
	}
	defer func() { c.loopVar = "" }()
	if v := common["name"]; v != nil && strings.Contains(s.Name, "${{") {
		// After for_each: a for_each step's name may read the item and index.
		s.Title = c.template(v, "name")
	}
	if v := common["concurrency"]; v != nil {
		if k, ok := c.integer(v, "concurrency", 1); ok {
			s.Concurrency = k
		}
		if common["for_each"] == nil {
			c.errorf(v, "concurrency applies to for_each items; add for_each: or remove concurrency:")
		}
	}
	if v := common["if"]; v != nil {
		s.If = c.expr(v, "if", true)
	}
	if v := common["timeout"]; v != nil {
		if d, ok := c.duration(v, "timeout"); ok {
			s.Timeout = d
		}
	}
	if v := common["continue_on_error"]; v != nil {
		s.ContinueOnError, _ = c.boolean(v, "continue_on_error")
	}

	d := &Decoder{Node: kindKey, Step: n, Defaults: c.defaults[s.Kind], c: c}
	d.Node = valueOf(n, kindKey)
	action, err := kind.Decode(d)
	if err != nil {
		c.errorf(d.Node, "%v", err)
	}
	s.Action = action
	var info Info
	if action != nil {
		info = action.Info()
	}

	if v := common["retry"]; v != nil {
		c.retryFields(&s.Retry, c.fields(v, "retry", retryKeys...))
	}
	c.loadGuard(s, common["guard"], info)
	c.loadWait(s, common["wait_for"], info)
	c.warnings(s, kindKey, common, info)

	if v := common["outputs"]; v != nil {
		for _, p := range c.pairs(v, "outputs") {
			if !idPattern.MatchString(p.Key.Value) {
				c.errorf(p.Key, "output name %q must be letters, digits and _", p.Key.Value)
				continue
			}
			if e := c.expr(p.Value, "output "+p.Key.Value, false); e != nil {
				s.Outputs = append(s.Outputs, Output{Name: p.Key.Value, Expr: e})
			}
		}
		if s.ID == "" {
			c.errorf(v, "outputs can only be read through the step's id: add id: to this step")
		}
	}
	if len(c.errs) > errsBefore {
		return nil
	}
	return s
}

// warnings points out what is legal but probably not meant.
func (c *compileCtx) warnings(s *Step, kindKey *yaml.Node, common map[string]*yaml.Node, info Info) {
	if info.Mutating {
		if w := resolve(common["wait_for"]); w == nil && !s.Wait.On {
			c.warnf(kindKey, WarnNoWait, "%s without wait_for: a 200 means accepted, not done; add wait_for: with the condition that shows the change took effect (or wait_for: false if the answer is enough)", info.Method)
		}
		switch g := resolve(common["guard"]); {
		case g == nil && s.Guard.Check == nil && info.Method == "POST":
			c.warnf(kindKey, WarnNoGuard, "a POST to a top-level collection has nothing of its own to read first, so only its answers (423, a busy 422) hold it back: give it guard: {check: ...} of what must not be busy (the template), or write guard: false to say nothing is")
		case g != nil && !s.Guard.On && info.Guard != nil:
			c.warnf(g, WarnGuardOff, "guard: false: the %s is sent even while the resource is busy", info.Method)
		}
		if s.Retry.MaxAttempts == 1 {
			at := common["retry"]
			if at == nil {
				at = kindKey
			}
			c.warnf(at, WarnOneAttempt, "max_attempts: 1 on a change: a busy, locked or throttled answer fails the step at once instead of being waited out")
		}
	}
	at := func(keys ...string) *yaml.Node {
		for _, k := range keys {
			if n := common[k]; n != nil {
				return n
			}
		}
		return kindKey
	}
	if s.Wait.On && s.Timeout < s.Wait.Interval {
		c.warnf(at("timeout"), WarnShortTimeout, "timeout %s is shorter than the wait interval %s: the step fails before its first re-check", fmtDur(s.Timeout), fmtDur(s.Wait.Interval))
	}
	if s.Wait.On && s.Wait.Timeout > 0 && s.Wait.Timeout < s.Wait.Interval {
		c.warnf(at("wait_for"), WarnShortTimeout, "wait_for timeout %s is shorter than its interval %s: the wait ends before its first re-check", fmtDur(s.Wait.Timeout), fmtDur(s.Wait.Interval))
	}
	if s.Guard.On && s.Guard.Timeout > 0 && s.Guard.Timeout < s.Guard.Interval {
		c.warnf(at("guard"), WarnShortTimeout, "guard timeout %s is shorter than its interval %s: a busy resource is read only once", fmtDur(s.Guard.Timeout), fmtDur(s.Guard.Interval))
	}
	if info.Mutating && s.Timeout < s.Retry.Interval {
		c.warnf(at("timeout", "retry"), WarnShortTimeout, "timeout %s is shorter than the retry interval %s: a failed send is never retried", fmtDur(s.Timeout), fmtDur(s.Retry.Interval))
	}
}

var reservedNames = []string{"vars", "env", "steps", "response", "state", "before", "attempt", "elapsed", "index"}

func valueOf(mapping, key *yaml.Node) *yaml.Node {
	for i := 0; i+1 < len(mapping.Content); i += 2 {
		if mapping.Content[i] == key {
			return mapping.Content[i+1]
		}
	}
	return nil
}

func (c *compileCtx) kindNames() []string {
	names := make([]string, 0, len(c.kinds))
	for k := range c.kinds {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// fieldOwners maps each kind's own fields to a message saying which kind they
// belong to, for steps of another kind.
func (c *compileCtx) fieldOwners(current *yaml.Node) map[string]string {
	key := ""
	if current != nil {
		key = current.Value
	}
	if owners, ok := c.owners[key]; ok {
		return owners
	}
	kindsOf := map[string][]string{}
	for _, name := range c.kindNames() {
		if current != nil && current.Value == name {
			continue
		}
		for _, f := range c.kinds[name].Fields() {
			if current != nil && slices.Contains(c.kinds[current.Value].Fields(), f) {
				continue
			}
			kindsOf[f] = append(kindsOf[f], name)
		}
	}
	owners := map[string]string{}
	for f, names := range kindsOf {
		owners[f] = fmt.Sprintf("%s: belongs to %s steps", f, strings.Join(names, " and "))
	}
	if c.owners == nil {
		c.owners = map[string]map[string]string{}
	}
	c.owners[key] = owners
	return owners
}

// loadGuard applies the guard rules: on by default for changes, for any step that
// declares one, off with `guard: false`. Its check is the one written, else the
// action's default (for a POST to a collection, its parent resource), kept even
// when the guard is off: a busy 409 or 422 is judged by it.
func (c *compileCtx) loadGuard(s *Step, n *yaml.Node, info Info) {
	s.Guard.On = info.Mutating
	s.Guard.Check = info.Guard
	n = resolve(n)
	if n == nil {
		if info.Mutating && info.Guard == nil && info.Method != "" {
			// Nothing to read before a create in a top-level collection.
			s.Guard.On = false
		}
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!bool" {
		on, _ := c.boolean(n, "guard")
		s.Guard.On = on && s.Guard.Check != nil
		if on && s.Action != nil && s.Guard.Check == nil {
			c.errorf(n, "%s", noGuardCheck(s, info))
		}
		return
	}
	m := c.fields(n, "guard", guardKeys...)
	s.Guard.On = true
	c.guardFields(&s.Guard, m)
	if v := m["check"]; v != nil {
		s.Guard.Check, _ = c.probe(v, "guard check")
	} else if s.Action != nil && info.Guard == nil {
		c.errorf(n, "%s", noGuardCheck(s, info))
	}
}

func noGuardCheck(s *Step, info Info) string {
	if info.Method == "POST" {
		return "a POST to a top-level collection has no resource of its own to read: give its guard a check (\"GET url\" of what must not be busy), or write guard: false"
	}
	return fmt.Sprintf("this %s step has no URL to read: give its guard a check (\"GET url\" or {exec: [...]})", s.Kind)
}

// loadWait applies the wait rules: `wait_for: expr` is {until: expr}; a DELETE with
// no wait_for waits until its check reads 404. Its check is the one written,
// else the action's default (a GET of its URL; a POST has none: the
// collection says nothing of the item it made).
func (c *compileCtx) loadWait(s *Step, n *yaml.Node, info Info) {
	s.Wait.Check = info.Probe
	n = resolve(n)
	if n == nil {
		if info.WaitGone {
			s.Wait.On, s.Wait.Gone = true, true
			s.Wait.Until = c.builtin(goneUntil)
		}
		return
	}
	switch {
	case n.Kind == yaml.ScalarNode && n.Tag == "!!bool":
		if on, ok := c.boolean(n, "wait_for"); ok && on {
			c.errorf(n, "wait_for: true says nothing to wait for: write the condition, e.g. wait_for: state.runstate == \"running\"")
		}
		return
	case n.Kind == yaml.ScalarNode:
		s.Wait.On = true
		s.Wait.Until = c.expr(n, "wait_for", true)
		if s.Action != nil && info.Probe == nil {
			c.errorf(n, "%s", noWaitCheck(s, info, "write wait_for as {check: ..., until: ...}"))
		}
		return
	}
	m := c.fields(n, "wait_for", waitKeys...)
	s.Wait.On = true
	c.waitFields(&s.Wait, m)
	if m["until"] == nil {
		c.errorf(n, "wait_for needs until: the condition that says the change has taken effect")
	}
	if v := m["check"]; v != nil {
		var reads []string
		s.Wait.Check, reads = c.probe(v, "wait_for check")
		s.Wait.AfterSend = slices.Contains(reads, "response")
		for i, e := range []*Expr{s.Wait.Until, s.Wait.FailWhen} {
			key := []string{"until", "fail_when"}[i]
			if s.Wait.AfterSend && m[key] != nil && e.Reads("before") {
				c.warnf(m[key], WarnNoBefore, "%s reads before, but this wait's check reads response, so it is made only after the change and before is null (a resource this step creates had none): compare with something else", key)
			}
		}
	} else if s.Action != nil && info.Probe == nil {
		c.errorf(n, "%s", noWaitCheck(s, info, "give wait_for a check (\"GET url\" or {exec: [...]}) and an until"))
	}
}

func noWaitCheck(s *Step, info Info, fix string) string {
	if info.Method == "POST" {
		return "a POST's wait needs a check that reads what it made: re-reading the collection says nothing of the new item; write wait_for as {check: GET .../${{ response.body.id }}, until: ...}"
	}
	return fmt.Sprintf("this %s step has no URL to read: %s", s.Kind, fix)
}

// probe decodes a check: "GET url" (the http kind), or {http: ...} / {exec: [...]}.
// reads are the scope names its templates read (a check that reads `response`
// can only be made after the change).
func (c *compileCtx) probe(n *yaml.Node, what string) (a Action, reads []string) {
	mark := len(c.read)
	defer func() { reads = c.read[mark:] }()
	n = resolve(n)
	kindName, node := "http", n
	if n.Kind == yaml.MappingNode {
		ps := c.pairs(n, what)
		if len(ps) != 1 || c.kinds[ps[0].Key.Value] == nil {
			c.errorf(n, "%s must be \"GET url\", or a mapping with one of %s", what, strings.Join(c.kindNames(), ", "))
			return nil, nil
		}
		kindName, node = ps[0].Key.Value, ps[0].Value
	}
	kind := c.kinds[kindName]
	if kind == nil {
		c.errorf(n, "%s: no %s step kind is registered", what, kindName)
		return nil, nil
	}
	a, err := kind.Decode(&Decoder{Node: node, Defaults: c.defaults[kindName], c: c})
	if err != nil {
		c.errorf(node, "%v", err)
		return nil, nil
	}
	if a != nil && !a.Info().Reads {
		c.errorf(n, "%s must read the resource's state: write \"GET url\" or {http: ...}", what)
		return nil, nil
	}
	if a != nil && a.Info().Mutating {
		c.errorf(node, "%s must only read (GET): a check is sent many times", what)
		return nil, nil
	}
	return a, nil
}

// ParseVar splits a --var argument.
func ParseVar(arg string) (string, string, error) {
	name, value, ok := strings.Cut(arg, "=")
	if !ok || name == "" {
		return "", "", &UsageError{Msg: fmt.Sprintf("--var %q: write --var name=value", arg)}
	}
	return name, value, nil
}

// CheckVars refuses --var names the runbook does not declare, values that do
// not fit the declared value's type, and a run without a var the runbook
// requires: a typo on the command line must not be silently ignored, nor found
// half-way through a run.
func (rb *Runbook) CheckVars(overrides map[string]string) error {
	if err := rb.checkVarNames(overrides); err != nil {
		return err
	}
	return rb.checkRequired(overrides)
}

// checkVarNames is CheckVars but for required vars: a plan shows them missing.
func (rb *Runbook) checkVarNames(overrides map[string]string) error {
	names := make([]string, len(rb.Vars))
	for i, v := range rb.Vars {
		names[i] = v.Name
	}
	for name, text := range overrides {
		if i := slices.Index(names, name); i >= 0 {
			if _, err := overrideValue(rb.File, name, rb.Vars[i].Value.sample(), text); err != nil {
				return err
			}
			continue
		}
		msg := fmt.Sprintf("--var %s: %s does not declare %q", name, rb.File, name)
		if len(names) == 0 {
			msg += " (it declares no vars)"
		} else if s := closest(name, names); s != "" {
			msg += fmt.Sprintf("; did you mean %q?", s)
		} else {
			msg += fmt.Sprintf(" (declared: %s)", strings.Join(names, ", "))
		}
		return &UsageError{Msg: msg}
	}
	return nil
}

// checkRequired refuses a run without a --var for each var declared null: an
// input that has no sensible default must be given, and must not be found
// missing half-way through the run (an empty id in a URL).
func (rb *Runbook) checkRequired(overrides map[string]string) error {
	var missing []string
	for _, v := range rb.Vars {
		if _, ok := overrides[v.Name]; v.Required && !ok {
			missing = append(missing, fmt.Sprintf("%s:%d:%d: var %s is required (declared null): give it with --var %s=VALUE",
				rb.File, v.Pos.Line, v.Pos.Col, v.Name, v.Name))
		}
	}
	if len(missing) > 0 {
		return &UsageError{Msg: strings.Join(missing, "\n") + "\nnothing was sent"}
	}
	return nil
}

// overrideValue converts a --var value to the declared value's type, so
// `--var count=5` stays a number where the runbook declared one, and refuses a
// value of another type. The value is not quoted back: it may be a secret.
func overrideValue(file, name string, declared any, text string) (any, error) {
	var kind, example string
	unreadable := false
	switch declared.(type) {
	case int:
		if v, err := strconv.Atoi(text); err == nil {
			return v, nil
		}
		kind, example = "a whole number", name+"=3"
	case float64:
		if v, err := strconv.ParseFloat(text, 64); err == nil {
			return v, nil
		}
		kind, example = "a number", name+"=2.5"
	case bool:
		if v, err := strconv.ParseBool(text); err == nil {
			return v, nil
		}
		kind, example = "true or false", name+"=true"
	case []any:
		// A list or map var takes JSON (or YAML flow): --var 'ids=["1","2"]'.
		v, ok := parseFlow(text)
		if _, list := v.([]any); list {
			return v, nil
		}
		kind, example, unreadable = "a list", `'`+name+`=["a","b"]'`, !ok
	case map[string]any:
		v, ok := parseFlow(text)
		if _, isMap := v.(map[string]any); isMap {
			return v, nil
		}
		kind, example, unreadable = "a map", `'`+name+`={"key":"value"}'`, !ok
	default:
		return text, nil
	}
	msg := fmt.Sprintf("--var %s: %s declares %s as %s; give one, such as --var %s", name, file, name, kind, example)
	if unreadable {
		// Not the parser's words: they may quote part of the value.
		msg = fmt.Sprintf("--var %s: the value does not read as JSON (check its brackets, commas and quotes), and %s declares %s as %s; give one, such as --var %s", name, file, name, kind, example)
	}
	return nil, &UsageError{Msg: msg}
}

// parseFlow reads a --var list or map; ok is false when it does not parse.
func parseFlow(text string) (v any, ok bool) {
	return v, yaml.Unmarshal([]byte(text), &v) == nil
}
