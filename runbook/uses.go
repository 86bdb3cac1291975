package runbook

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxUsesDepth bounds how deep uses may nest: deeper is a mistake, and each
// level is a file read and checked.
const maxUsesDepth = 8

// Uses is what a step with uses: runs: another runbook file's steps, in their
// own scope, with vars set from with:.
type Uses struct {
	Path string   // as written: relative to the using file's directory
	Book *Runbook // the used runbook, loaded and checked with the caller
	With []With
}

// With is one var of a used runbook set by the using step: a template
// rendered in the caller's scope.
type With struct {
	Name  string
	Value *Value
}

// UsedAt is a uses key that led to a file, for messages: a mistake in a used
// file is told at its own position, then at each uses that led there.
type UsedAt struct {
	File string
	Pos  Pos
}

func (u UsedAt) String() string { return fmt.Sprintf("%s:%d:%d", u.File, u.Pos.Line, u.Pos.Col) }

// usesKind is the loader's own kind for uses:, so that the step's keys, its
// one action and its for_each are read as for any other kind.
type usesKind struct{}

func (usesKind) Fields() []string { return []string{"with"} }

func (usesKind) Decode(d *Decoder) (Action, error) {
	u := d.c.loadUses(d.step, d.Node.y)
	if u == nil {
		return nil, nil
	}
	return usesAction{u}, nil
}

// withUses adds uses to the kinds a runbook's steps may have.
func withUses(kinds map[string]Kind) map[string]Kind {
	if kinds == nil {
		return nil
	}
	out := make(map[string]Kind, len(kinds)+1)
	for k, v := range kinds {
		out[k] = v
	}
	out["uses"] = usesKind{}
	return out
}

// usesAction stands for a uses step where an Action is asked for (plan,
// warnings); the executor runs the used runbook's steps instead of calling it.
type usesAction struct{ u *Uses }

// Info: its steps may change things, so a resume never runs it again to
// read an answer the journal could not hold.
func (a usesAction) Info() Info { return Info{SideEffects: true} }

func (a usesAction) Prepare(Scope) (Call, error) {
	return nil, errors.New("a uses step runs the steps of " + a.u.Path + ", it sends nothing itself")
}

func (a usesAction) Describe(s Scope) string {
	var with []string
	for _, w := range a.u.With {
		with = append(with, w.Name+": "+describeValue(w.Value, s))
	}
	d := "uses " + a.u.Path
	if len(with) > 0 {
		d += " with " + strings.Join(with, ", ")
	}
	return d
}

// describeValue renders v for plan, what the scope cannot tell left as written.
func describeValue(v *Value, s Scope) string {
	if v.kind == valueTpl {
		return v.tpl.Partial(s)
	}
	r, err := v.Render(s)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	if t, ok := r.(string); ok {
		return t
	}
	b, _ := json.Marshal(r)
	return string(b)
}

// planUses puts after each uses step of a plan the plan of the runbook it
// uses, each of its steps placed by a path ("3/1"), with the vars with:
// gives that can be known before the run.
func (rb *Runbook) planUses(plan []PlanStep, scope Scope, opt Options, red *Redactor) []PlanStep {
	var out []PlanStep
	for i, s := range rb.AllSteps() {
		if s.Uses == nil {
			out = append(out, plan[i])
			continue
		}
		p := plan[i]
		p.Guard, p.Wait, p.Retry = "", "", ""
		if s.Timeout == 0 {
			p.Deadline = "none of its own: each used step has its own"
		}
		for _, o := range s.Uses.Book.Outputs {
			p.Outputs = append(p.Outputs, o.Name+" = "+o.Expr.Source+" (in "+s.Uses.Path+")")
		}
		out = append(out, p)
		vars := map[string]string{}
		for _, w := range s.Uses.With {
			if v, err := w.Value.Render(s.withoutItem(scope)); err == nil && !hasUnknown(v) {
				if t, ok := v.(string); ok {
					vars[w.Name] = t
				} else if b, err := json.Marshal(v); err == nil {
					vars[w.Name] = string(b)
				}
			}
		}
		nested, err := s.Uses.Book.Plan(Options{Env: opt.Env, Vars: vars})
		if err != nil {
			// A value that does not fit fails the run's step; the plan shows
			// the used steps as written.
			nested, _ = s.Uses.Book.Plan(Options{Env: opt.Env})
		}
		for _, n := range nested {
			if n.Path == "" {
				n.Path = strconv.Itoa(n.Index)
			}
			n.Path = strconv.Itoa(s.Index) + "/" + n.Path
			for _, f := range []*string{&n.Name, &n.If, &n.ForEach, &n.Action, &n.Guard, &n.Wait} {
				*f = red.String(*f)
			}
			out = append(out, n)
		}
	}
	return out
}

// hasUnknown says whether a rendered value holds what only the run knows.
func hasUnknown(v any) bool {
	switch v := v.(type) {
	case unknown:
		return true
	case []any:
		return slices.ContainsFunc(v, hasUnknown)
	case map[string]any:
		for _, e := range v {
			if hasUnknown(e) {
				return true
			}
		}
	}
	return false
}

// usedFile is the outcome of loading one used file, kept so that the step ids
// pass (which needs its outputs) and the step itself load it once.
type usedFile struct {
	rb   *Runbook
	errs Errors // at the uses key, or inside the used file (with the chain)
}

// usedRunbook loads the file a uses value names, once per node; it reports
// nothing itself.
func (c *compileCtx) usedRunbook(key, val *yaml.Node) *usedFile {
	if u, ok := c.used[val]; ok {
		return u
	}
	u := &usedFile{}
	c.used[val] = u
	fail := func(format string, args ...any) *usedFile {
		u.errs = append(u.errs, c.newError(nodePos(key), false, format, args...))
		return u
	}
	val = resolve(val)
	if val == nil || val.Kind != yaml.ScalarNode || val.Tag != "!!str" || strings.TrimSpace(val.Value) == "" {
		return fail("uses must be the path of a runbook file, such as lib/stop-vm.yaml (relative to this file's directory), not %s", nodeKindOrMissing(val))
	}
	if strings.Contains(val.Value, "${{") {
		return fail("uses takes a path as written, not a template: which file runs is fixed when the runbook is loaded")
	}
	path := val.Value
	if !filepath.IsAbs(path) {
		path = filepath.Join(filepath.Dir(c.file), path)
	}
	abs, _ := filepath.Abs(path)
	chain := c.usesChain()
	if slices.Contains(c.stack, abs) || abs == c.abs {
		return fail("uses cycle: %s → %s: a runbook cannot use itself, directly or through others", strings.Join(chain, " → "), path)
	}
	if len(c.usedBy)+1 > maxUsesDepth {
		return fail("uses nests more than %d levels deep: %s → %s; use fewer levels", maxUsesDepth, strings.Join(chain, " → "), path)
	}
	src, err := ReadFile(path)
	if err != nil {
		var re *ReadError
		if errors.As(err, &re) && errors.Is(re.Err, fs.ErrNotExist) {
			return fail("uses %s: no such file (%s); the path is relative to the directory of the file that uses it", val.Value, path)
		}
		return fail("uses %s: %v", val.Value, err)
	}
	at := UsedAt{File: c.file, Pos: nodePos(key)}
	sub := newCompileCtx(path, src, c.kinds)
	sub.abs = abs
	sub.stack = append(slices.Clone(c.stack), c.abs)
	sub.usedBy = append([]UsedAt{at}, c.usedBy...)
	doc, err := Parse(path, src)
	var rb *Runbook
	if err == nil {
		rb, err = sub.compileDoc(src, doc)
	}
	var errs Errors
	if errors.As(err, &errs) {
		// Parse's errors, made before sub, know nothing of the chain yet.
		for _, e := range errs {
			if len(e.UsedBy) == 0 {
				e.UsedBy = sub.usedBy
			}
		}
		u.errs = append(u.errs, errs...)
		return u
	}
	if err != nil {
		return fail("uses %s: %v", val.Value, err)
	}
	u.rb = rb
	return u
}

// usesChain names the files from the top-level runbook to this one.
func (c *compileCtx) usesChain() []string {
	var chain []string
	for i := len(c.usedBy) - 1; i >= 0; i-- {
		chain = append(chain, c.usedBy[i].File)
	}
	return append(chain, c.file)
}

// loadUses checks a uses step: the used file, and its vars against with:.
func (c *compileCtx) loadUses(step, val *yaml.Node) *Uses {
	var key *yaml.Node
	for i := 0; i+1 < len(step.Content); i += 2 {
		if step.Content[i+1] == val {
			key = step.Content[i]
		}
	}
	uf := c.usedRunbook(key, val)
	for _, e := range uf.errs {
		if e.Warning {
			c.warns = append(c.warns, e)
		} else {
			c.errs = append(c.errs, e)
		}
	}
	var withNode *yaml.Node
	for i := 0; i+1 < len(step.Content); i += 2 {
		if step.Content[i].Value == "with" {
			withNode = step.Content[i+1]
		}
	}
	rb := uf.rb
	if rb == nil {
		// What with: sets cannot be judged, but its templates can.
		for _, p := range c.pairs(withNode, "with") {
			c.value(p.Value)
		}
		return nil
	}
	c.warns = append(c.warns, rb.Warnings...)
	for _, name := range rb.Secrets {
		if !slices.Contains(c.usedSecrets, name) {
			c.usedSecrets = append(c.usedSecrets, name)
		}
	}
	for _, name := range rb.AuthEnv {
		if !slices.Contains(c.authEnv, name) {
			c.authEnv = append(c.authEnv, name)
		}
	}
	c.usedHashes = append(c.usedHashes, rb.Hash)
	u := &Uses{Path: resolve(val).Value, Book: rb}
	names := make([]string, len(rb.Vars))
	for i, v := range rb.Vars {
		names[i] = v.Name
	}
	given := map[string]bool{}
	for _, p := range c.pairs(withNode, "with") {
		given[p.Key.Value] = true
	}
	var missing []string
	for _, v := range rb.Vars {
		if v.Required && !given[v.Name] {
			missing = append(missing, v.Name)
		}
	}
	unknown := false
	for _, p := range c.pairs(withNode, "with") {
		name := p.Key.Value
		i := slices.Index(names, name)
		if i < 0 {
			unknown = true
			msg := fmt.Sprintf("%s has no var %q", rb.File, name)
			switch s := cmp.Or(closest(name, names), closest(name, missing)); {
			case len(names) == 0:
				msg += " (it declares no vars)"
			case s != "":
				msg += fmt.Sprintf("; did you mean %q?", s)
			case len(missing) == 1:
				msg += fmt.Sprintf("; did you mean %q? (it is required)", missing[0])
			default:
				msg += fmt.Sprintf(" (its vars: %s)", strings.Join(names, ", "))
			}
			c.errorf(p.Key, "%s", msg)
			continue
		}
		v := c.value(p.Value)
		if declared := rb.Vars[i].Value.sample(); v.kind != valueTpl && !rb.Vars[i].Required && !fitsDeclared(resolve(p.Value), declared) {
			c.errorf(p.Value, "%s declares var %s as %s: write one here", rb.File, name, declaredKind(declared))
			continue
		}
		u.With = append(u.With, With{Name: name, Value: v})
	}
	if !unknown {
		// A name not known is most likely the required one misspelt: told once.
		for _, name := range missing {
			i := slices.Index(names, name)
			c.errorf(key, "%s requires var %s (declared null at line %d): give it under with:", rb.File, name, rb.Vars[i].Pos.Line)
		}
	}
	return u
}

// usesStep finishes a uses step: keys that belong to its used runbook's steps
// are refused, and its deadline is only what timeout: says.
func (c *compileCtx) usesStep(s *Step, common map[string]*yaml.Node) {
	for _, k := range []string{"guard", "wait_for", "retry"} {
		if n := common[k]; n != nil {
			c.errorf(n, "%s does not apply to a uses step: give it to the steps of the used runbook", k)
		}
	}
	if n := common["outputs"]; n != nil {
		c.errorf(n, "a uses step's outputs are the used runbook's: declare them under outputs: at the top of that file")
	}
	if common["timeout"] == nil {
		// Each used step has its own; the whole has none unless given.
		s.Timeout = 0
	}
	if a, ok := s.Action.(usesAction); ok {
		s.Uses = a.u
	}
}

// loadOutputs compiles the top-level outputs: what a runbook offers the step
// that uses it, over its own steps and vars.
func (c *compileCtx) loadOutputs(rb *Runbook, n *yaml.Node, ids []string) {
	c.checkSteps, c.stepIDs = true, nil
	for _, id := range ids {
		if id != "" {
			c.stepIDs = append(c.stepIDs, id)
		}
	}
	rb.Outputs = c.outputExprs(n)
	c.checkSteps, c.stepIDs = false, nil
}

// outputExprs compiles a mapping of output names to expressions: a step's
// outputs, or a runbook's.
func (c *compileCtx) outputExprs(n *yaml.Node) []Output {
	var out []Output
	for _, p := range c.pairs(n, "outputs") {
		if !idPattern.MatchString(p.Key.Value) {
			c.errorf(p.Key, "output name %q must be letters, digits and _", p.Key.Value)
			continue
		}
		if e := c.expr(p.Value, "output "+p.Key.Value, false); e != nil {
			out = append(out, Output{Name: p.Key.Value, Expr: e})
		}
	}
	return out
}

// usedOutputs are the output names a uses step offers later steps; ok is
// false when the used file does not load, so that they are not checked.
func (c *compileCtx) usedOutputs(s *yaml.Node) (names []string, ok bool) {
	for i := 0; i+1 < len(s.Content); i += 2 {
		if s.Content[i].Value == "uses" {
			uf := c.usedRunbook(s.Content[i], s.Content[i+1])
			if uf.rb == nil {
				return nil, false
			}
			for _, o := range uf.rb.Outputs {
				names = append(names, o.Name)
			}
			return names, true
		}
	}
	return nil, true
}

// hashUses makes a runbook's hash cover the files it uses: a resume must not
// go on with a used file that changed.
func hashUses(hash string, used []string) string {
	if len(used) == 0 {
		return hash
	}
	h := sha256.New()
	h.Write([]byte(hash))
	for _, u := range used {
		h.Write([]byte(u))
	}
	return hex.EncodeToString(h.Sum(nil))
}
