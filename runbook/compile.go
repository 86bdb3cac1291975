package runbook

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/expr-lang/expr/conf"
	"go.yaml.in/yaml/v3"
)

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

// Compile checks and compiles the document Parse made of src.
func Compile(file string, src []byte, doc *yaml.Node, kinds map[string]Kind) (*Runbook, error) {
	c := newCompileCtx(file, src, withUses(kinds))
	c.abs, _ = filepath.Abs(file)
	return c.compileDoc(src, doc)
}

// compileDoc is Compile in c, which a used file's loading sets up with the
// chain of uses that led to it.
func (c *compileCtx) compileDoc(src []byte, doc *yaml.Node) (*Runbook, error) {
	sum := sha256.Sum256(src)
	rb := &Runbook{File: c.file, Hash: hex.EncodeToString(sum[:])}
	root := doc.Content[0]
	c.traps(root, aliased(root, map[*yaml.Node]bool{}))
	c.load(rb, root)
	if len(c.errs) > 0 {
		sort.SliceStable(c.errs, func(i, j int) bool {
			a, b := c.errs[i].at(len(c.usedBy)), c.errs[j].at(len(c.usedBy))
			return a.Line < b.Line || (a.Line == b.Line && a.Col < b.Col)
		})
		return nil, c.errs
	}
	rb.Hash = hashUses(rb.Hash, c.usedHashes)
	for _, name := range c.usedSecrets {
		if !slices.Contains(rb.Secrets, name) {
			rb.Secrets = append(rb.Secrets, name)
		}
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
	extra      string                       // a name the kind adds for the field being compiled (Decoder.ExprWith)
	outputs    map[string][]string          // the outputs each earlier step declares, by id
	forEachIDs []string                     // ids of earlier for_each steps (steps.<id> is a list)
	stepIDs    []string                     // ids of the steps before the one being compiled
	laterIDs   []string                     // ids of that step and the steps after it
	stage      Stage                        // the list of the step being compiled
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

	// uses: the file's absolute path, the files that use it (nearest first,
	// for messages, and the absolute paths, for cycles), the used files by
	// the node that names them, and what they add to this runbook.
	abs         string
	usedBy      []UsedAt
	stack       []string
	used        map[*yaml.Node]*usedFile
	usedSecrets []string
	usedHashes  []string
	opaque      []string // ids of uses steps whose file did not load: their outputs are not checked
}

func newCompileCtx(file string, src []byte, kinds map[string]Kind) *compileCtx {
	return &compileCtx{
		file:     file,
		lines:    strings.Split(strings.ReplaceAll(string(src), "\r\n", "\n"), "\n"),
		kinds:    kinds,
		defaults: map[string]any{},
		used:     map[*yaml.Node]*usedFile{},
	}
}

func (c *compileCtx) requireEnv(name string, at Pos) {
	if !slices.ContainsFunc(c.env, func(v EnvVar) bool { return v.Name == name }) {
		c.env = append(c.env, EnvVar{Name: name, Pos: at})
	}
}

func (c *compileCtx) newError(p Pos, warning bool, format string, args ...any) *Error {
	e := &Error{File: c.file, Pos: p, Msg: fmt.Sprintf(format, args...), Warning: warning, UsedBy: c.usedBy}
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
	if n, ok := top["lock"]; ok {
		// After vars and secrets: it reads the one, and must not read the other.
		c.loadLock(rb, n)
	}
	def := c.loadDefaults(top["defaults"])

	rb.CleanupTimeout = DefaultCleanup
	c.setDuration(top["cleanup_timeout"], "cleanup_timeout", &rb.CleanupTimeout)
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
	// The cleanup lists follow the main steps, as they run: one numbering,
	// one set of ids, and a step reads only those before it.
	lists := []struct {
		stage Stage
		nodes []*yaml.Node
	}{{StageMain, stepsNode.Content}}
	for _, stage := range []Stage{StageOnFailure, StageFinally} {
		n, ok := top[string(stage)]
		if !ok {
			continue
		}
		if n = resolve(n); n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
			c.errorf(n, "%s must be a list of steps, run %s; remove it if there are none", stage, map[Stage]string{StageOnFailure: "when the run failed", StageFinally: "after every run"}[stage])
			continue
		}
		lists = append(lists, struct {
			stage Stage
			nodes []*yaml.Node
		}{stage, n.Content})
	}
	var all []*yaml.Node
	for _, l := range lists {
		all = append(all, l.nodes...)
	}
	ids := c.collectIDs(&yaml.Node{Kind: yaml.SequenceNode, Content: all})
	loaded := c.loadSteps(all, ids, def, func(i int) Stage {
		for _, l := range lists {
			if i < len(l.nodes) {
				return l.stage
			}
			i -= len(l.nodes)
		}
		return StageMain
	})
	if n, ok := top["outputs"]; ok {
		// What a runbook that uses this one reads: its main steps' results.
		c.loadOutputs(rb, n, ids[:len(stepsNode.Content)])
	}
	for _, s := range loaded {
		if s == nil {
			continue
		}
		s.keepAnswer = c.allAnswers || slices.Contains(c.answerIDs, s.ID)
		switch s.Stage {
		case StageOnFailure:
			rb.OnFailure = append(rb.OnFailure, s)
		case StageFinally:
			rb.Finally = append(rb.Finally, s)
		default:
			rb.Steps = append(rb.Steps, s)
		}
	}
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

func (c *compileCtx) kindNames() []string {
	names := make([]string, 0, len(c.kinds))
	for k := range c.kinds {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}
