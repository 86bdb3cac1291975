// Package schematest checks runbooks against the JSON Schema, with positions in
// the YAML file. Only tests import it: they hold the schema and the loader to
// one language, so the binary needs neither the check nor its library.
package schematest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/runbookhq/runbook/schema"
)

var printer = message.NewPrinter(language.English)

// compiled is the schema, compiled once for all of a test binary's checks.
var compiled = sync.OnceValues(func() (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema.JSON))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft7)
	if err := c.AddResource(schema.URL, doc); err != nil {
		return nil, err
	}
	return c.Compile(schema.URL)
})

// Compiled returns the schema, compiled once. Compiling also checks it against the
// draft-07 metaschema.
func Compiled() (*jsonschema.Schema, error) { return compiled() }

// Problem is one place where a runbook does not match the schema.
type Problem struct {
	Line, Col int
	Msg       string
}

// Check validates a parsed runbook document against the schema. Problems come
// one per instance location, deepest first, in file order. ToJSON copies what
// every alias stands for: give it a document from runbook.Parse, which
// refuses aliases that stand for too much.
func Check(root *yaml.Node) ([]Problem, error) {
	sch, err := compiled()
	if err != nil {
		return nil, err
	}
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = root.Content[0]
	}
	err = sch.Validate(ToJSON(root))
	if err == nil {
		return nil, nil
	}
	ve, ok := err.(*jsonschema.ValidationError)
	if !ok {
		return nil, err
	}
	byLoc := map[string]Problem{}
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		key := strings.Join(e.InstanceLocation, "/")
		if _, seen := byLoc[key]; seen {
			return
		}
		n := find(root, e.InstanceLocation)
		msg := e.ErrorKind.LocalizedString(printer)
		if len(e.InstanceLocation) > 0 {
			msg = fmt.Sprintf("%s: %s", strings.Join(e.InstanceLocation, "."), msg)
		}
		byLoc[key] = Problem{Line: n.Line, Col: n.Column, Msg: "schema: " + msg}
	}
	walk(ve)
	out := make([]Problem, 0, len(byLoc))
	for _, p := range byLoc {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Line != out[j].Line {
			return out[i].Line < out[j].Line
		}
		return out[i].Col < out[j].Col
	})
	return out, nil
}

// find follows a JSON pointer's tokens through the YAML tree; for a missing key
// (a "required" error) it stops at the mapping that lacks it.
func find(n *yaml.Node, path []string) *yaml.Node {
	for _, tok := range path {
		n = resolve(n)
		switch n.Kind {
		case yaml.MappingNode:
			next := (*yaml.Node)(nil)
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == tok {
					next = n.Content[i+1]
					// Point at the key of a scalar: that is where authors look.
					if v := resolve(next); v.Kind == yaml.ScalarNode {
						next = n.Content[i]
					}
					break
				}
			}
			if next == nil {
				return n
			}
			n = next
		case yaml.SequenceNode:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(n.Content) {
				return n
			}
			n = n.Content[i]
		default:
			return n
		}
	}
	return n
}

func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// ToJSON converts a YAML tree to the values a JSON decoder would give, numbers as
// json.Number.
func ToJSON(n *yaml.Node) any {
	n = resolve(n)
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil
		}
		return ToJSON(n.Content[0])
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == "<<" {
				if merged, ok := ToJSON(n.Content[i+1]).(map[string]any); ok {
					for k, v := range merged {
						if _, set := m[k]; !set {
							m[k] = v
						}
					}
				}
				continue
			}
			m[n.Content[i].Value] = ToJSON(n.Content[i+1])
		}
		return m
	case yaml.SequenceNode:
		l := make([]any, len(n.Content))
		for i, e := range n.Content {
			l[i] = ToJSON(e)
		}
		return l
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return nil
		case "!!bool":
			var b bool
			_ = n.Decode(&b)
			return b
		case "!!int", "!!float":
			var f float64
			if err := n.Decode(&f); err == nil {
				return json.Number(strconv.FormatFloat(f, 'g', -1, 64))
			}
		}
		return n.Value
	}
	return nil
}
