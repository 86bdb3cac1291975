package runbook

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

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

// ParseVar splits a --var argument.
func ParseVar(arg string) (string, string, error) {
	name, value, ok := strings.Cut(arg, "=")
	if !ok || name == "" {
		// Not quoted back: a value given without its name may be a secret.
		return "", "", &UsageError{Msg: "a --var without a name: write --var name=value"}
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
		return &UsageError{Msg: fmt.Sprintf("--var %s: %s", name, rb.undeclared(name, names))}
	}
	return nil
}

// undeclared says that the runbook does not declare the var name, and which
// it may have meant.
func (rb *Runbook) undeclared(name string, names []string) string {
	msg := fmt.Sprintf("%s does not declare %q", rb.File, name)
	if len(names) == 0 {
		return msg + " (it declares no vars)"
	}
	if s := closest(name, names); s != "" {
		return msg + fmt.Sprintf("; did you mean %q?", s)
	}
	return msg + fmt.Sprintf(" (declared: %s)", strings.Join(names, ", "))
}

// checkRequired refuses a run without a --var for each var declared null: an
// input that has no sensible default must be given, and must not be found
// missing half-way through the run (an empty id in a URL).
func (rb *Runbook) checkRequired(overrides map[string]string) error {
	var missing []string
	for _, v := range rb.Vars {
		if _, ok := overrides[v.Name]; v.Required && !ok {
			missing = append(missing, fmt.Sprintf("%s:%d:%d: var %s is required (declared null): give it with --var %s=VALUE (or in a --var-file)",
				rb.File, v.Pos.Line, v.Pos.Col, v.Name, v.Name))
		}
	}
	if len(missing) > 0 {
		return &UsageError{Msg: strings.Join(missing, "\n") + "\nnothing was sent"}
	}
	return nil
}

// ReadVarFile adds the values of a var file (a YAML or JSON map of var names
// to values) to overrides, as --var values: a later file, and then --var,
// overwrite them. Each name must be declared and each value must fit the
// declared value's type; a mistake is told at its place in the var file.
// Values are never quoted back: one may be a secret.
func (rb *Runbook) ReadVarFile(path string, overrides map[string]string) error {
	src, err := readFile(path, "var file")
	if err != nil {
		return err
	}
	doc, err := parseBounded(path, src)
	if err != nil || doc == nil {
		// A file with nothing in it, comments perhaps, sets nothing.
		return withoutSource(err, true)
	}
	c := newCompileCtx(path, src, nil)
	root := resolve(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		// Not nodeKind's words: they quote a text, which may be a secret
		// (KEY=value lines of an env file).
		what := map[yaml.Kind]string{yaml.SequenceNode: "a list", yaml.ScalarNode: "a single value (is it an env file of KEY=value lines? write key: value)"}[root.Kind]
		c.errorf(root, "a var file is a map of var names to values (env_id: \"1234567\"), not %s", what)
		return withoutSource(c.errs, false)
	}
	names := make([]string, len(rb.Vars))
	for i, v := range rb.Vars {
		names[i] = v.Name
	}
	for _, p := range c.pairs(root, "the var file") {
		name := p.Key.Value
		i := slices.Index(names, name)
		if i < 0 {
			c.errorf(p.Key, "%s", rb.undeclared(name, names))
			continue
		}
		declared := rb.Vars[i].Value.sample()
		if !fitsDeclared(resolve(p.Value), declared) {
			c.errorf(p.Value, "%s declares var %s as %s: write one here", rb.File, name, declaredKind(declared))
			continue
		}
		overrides[name], _ = varFileText(resolve(p.Value), declared)
	}
	if len(c.errs) > 0 {
		return withoutSource(c.errs, false)
	}
	return nil
}

// withoutSource drops the quoted line from a var file's errors, and with
// parsed, what the YAML parser's words quote of the file (an alias's name):
// the file may hold secrets, and the position says where to look.
func withoutSource(err error, parsed bool) error {
	var errs Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			e.Source = ""
			if parsed {
				e.Msg = quoted.ReplaceAllString(e.Msg, "…")
			}
		}
	}
	return err
}

var quoted = regexp.MustCompile("'[^']*'|\"[^\"]*\"|`[^`]*`")

// fitsDeclared says whether a value written in YAML (in a var file, or a
// literal under with:) fits a var's declared value, as its --var would.
func fitsDeclared(n *yaml.Node, declared any) bool {
	text, ok := varFileText(n, declared)
	if ok {
		_, err := overrideValue("", "", declared, text)
		ok = err == nil
	}
	return ok
}

// varFileText is a var file's value as the text --var would give for it,
// which overrideValue then reads as the declared type; ok is false for a
// value no --var could stand for (null, a list where text is declared).
func varFileText(n *yaml.Node, declared any) (string, bool) {
	if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		// A tag of the file's own would change the value unseen (!x y is y).
		return "", false
	}
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "", false
		}
		switch declared.(type) {
		case []any, map[string]any:
			return "", false
		}
		return n.Value, true
	case yaml.SequenceNode, yaml.MappingNode:
		switch declared.(type) {
		case []any, map[string]any:
		default:
			return "", false
		}
		var v any
		if n.Decode(&v) != nil {
			return "", false
		}
		b, err := json.Marshal(v)
		return string(b), err == nil
	}
	return "", false
}

// declaredKind names the type a var's declared value asks of an override.
func declaredKind(declared any) string {
	switch declared.(type) {
	case int:
		return "a whole number"
	case float64:
		return "a number"
	case bool:
		return "true or false"
	case []any:
		return "a list"
	case map[string]any:
		return "a map"
	}
	return "text"
}

// overrideValue converts a --var value to the declared value's type, so
// `--var count=5` stays a number where the runbook declared one, and refuses a
// value of another type. The value is not quoted back: it may be a secret.
func overrideValue(file, name string, declared any, text string) (any, error) {
	var example string
	unreadable := false
	switch declared.(type) {
	case int:
		if v, err := strconv.Atoi(text); err == nil {
			return v, nil
		}
		example = name + "=3"
	case float64:
		if v, err := strconv.ParseFloat(text, 64); err == nil {
			return v, nil
		}
		example = name + "=2.5"
	case bool:
		if v, err := strconv.ParseBool(text); err == nil {
			return v, nil
		}
		example = name + "=true"
	case []any:
		// A list or map var takes JSON (or YAML flow): --var 'ids=["1","2"]'.
		v, ok := parseFlow(text)
		if _, list := v.([]any); list {
			return v, nil
		}
		example, unreadable = `'`+name+`=["a","b"]'`, !ok
	case map[string]any:
		v, ok := parseFlow(text)
		if _, isMap := v.(map[string]any); isMap {
			return v, nil
		}
		example, unreadable = `'`+name+`={"key":"value"}'`, !ok
	default:
		return text, nil
	}
	kind := declaredKind(declared)
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

// renderVars evaluates the declared vars in order into scope's vars, each over
// env and the vars before it, a --var value in place of the declared one (of
// the declared value's type). A run (partial false) refuses a value that does
// not render; a plan (partial true) leaves out such a var and a required one
// not given, so what reads them stays as written. Errors may quote a value:
// the caller redacts them.
func (rb *Runbook) renderVars(scope Scope, overrides map[string]string, partial bool) error {
	vars := map[string]any{}
	scope["vars"] = vars
	for _, v := range rb.Vars {
		text, given := overrides[v.Name]
		if partial && v.Required && !given {
			continue
		}
		val, err := v.Value.Render(scope)
		if err != nil && !partial {
			if ExitCode(err) != ExitConfig {
				err = &ConfigError{Msg: fmt.Sprintf("%s:%d:%d: var %s: %v", rb.File, v.Pos.Line, v.Pos.Col, v.Name, err)}
			}
			return err
		}
		switch {
		case given:
			if val, err = overrideValue(rb.File, v.Name, val, text); err != nil {
				return err
			}
		case err != nil:
			continue
		}
		vars[v.Name] = val
	}
	return nil
}
