package schema_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/runbookhq/runbook/runbook"
	"github.com/runbookhq/runbook/schema"
	"github.com/runbookhq/runbook/schema/schematest"
	"github.com/runbookhq/runbook/steps"
)

// TestSchemaCompiles compiles the schema, which checks it against the draft-07
// metaschema.
func TestSchemaCompiles(t *testing.T) {
	if _, err := schematest.Compiled(); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(schema.JSON, &doc); err != nil {
		t.Fatal(err)
	}
	if doc["$schema"] != "http://json-schema.org/draft-07/schema#" {
		t.Errorf("$schema = %v, want draft-07", doc["$schema"])
	}
}

// TestEveryPropertyIsDescribed: editors show descriptions while typing.
func TestEveryPropertyIsDescribed(t *testing.T) {
	var doc any
	json.Unmarshal(schema.JSON, &doc)
	defs := doc.(map[string]any)["definitions"].(map[string]any)
	var walk func(path string, v any)
	walk = func(path string, v any) {
		m, ok := v.(map[string]any)
		if !ok {
			if l, ok := v.([]any); ok {
				for _, e := range l {
					walk(path, e)
				}
			}
			return
		}
		if props, ok := m["properties"].(map[string]any); ok {
			for name, p := range props {
				if !described(p.(map[string]any), defs) {
					t.Errorf("%s.%s has no description", path, name)
				}
			}
		}
		for k, child := range m {
			walk(path+"/"+k, child)
		}
	}
	walk("", doc)
}

// described: a property has a description, or refers to a definition that has one.
func described(p, defs map[string]any) bool {
	if _, ok := p["description"]; ok {
		return true
	}
	if ref, ok := p["$ref"].(string); ok {
		if d, ok := defs[filepath.Base(ref)].(map[string]any); ok {
			return described(d, defs)
		}
	}
	return false
}

// TestRunbooksValidate checks every example and valid test runbook against the
// schema, and that every invalid one the schema can judge is refused by it too.
func TestRunbooksValidate(t *testing.T) {
	files, _ := filepath.Glob("../examples/*.yaml")
	more, _ := filepath.Glob("../testdata/valid/*.yaml")
	files = append(files, more...)
	lib, _ := filepath.Glob("../examples/lib/*.yaml")
	files = append(files, lib...)
	if len(files) < 4 {
		t.Fatalf("only %d runbooks", len(files))
	}
	for _, f := range files {
		problems := check(t, f)
		if problems == nil {
			continue
		}
		for _, p := range problems {
			t.Errorf("%s:%d:%d: %s", f, p.Line, p.Col, p.Msg)
		}
	}
}

func check(t *testing.T, file string) []schematest.Problem {
	t.Helper()
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(src, &root); err != nil {
		return nil
	}
	problems, err := schematest.Check(&root)
	if err != nil {
		t.Fatal(err)
	}
	return problems
}

// TestSchemaRefusesWhatTheLoaderRefuses: the mistakes that are about shape
// (unknown keys, wrong types, ranges) must be refused by editors too.
func TestSchemaRefusesWhatTheLoaderRefuses(t *testing.T) {
	for _, name := range []string{
		"unknown-top-key", "step-key-at-top", "unknown-step-key", "step-no-action", "step-two-actions",
		"field-of-another-kind", "http-unknown-method", "http-unknown-key", "http-missing-url", "http-expect-out-of-range",
		"duration-without-unit", "duration-not-a-duration", "concurrency-zero", "concurrency-without-for-each",
		"as-without-for-each", "rate-malformed", "retry-unknown-key", "retry-jitter-out-of-range",
		"retry-max-attempts-negative", "retry-idempotent-not-bool", "template-in-if", "template-in-wait-for",
		"template-in-for-each", "var-bad-name", "step-id-with-dash", "wait-for-true", "wait-for-without-until",
		"guard-unknown-key", "check-not-a-probe", "defaults-unknown-key", "defaults-guard-check",
		"secrets-not-a-list", "basic-auth-without-password", "continue-on-error-not-bool", "wrong-version",
		"missing-version", "missing-steps", "empty-steps", "not-a-mapping", "step-not-a-mapping", "confirm-not-text",
		"max-failures-without-for-each", "max-failures-over-100-percent", "max-failures-negative", "max-failures-not-a-number",
		"lock-not-text", "paginate-unknown-key", "paginate-max-pages-zero",
		"uses-with-wait-for",
	} {
		if problems := check(t, "../testdata/invalid/"+name+".yaml"); len(problems) == 0 {
			t.Errorf("the schema accepts testdata/invalid/%s.yaml", name)
		}
	}
}

// TestSchemaMatchesTheLoader: every key the loader accepts is in the schema, and
// every key in the schema is accepted by the loader.
func TestSchemaMatchesTheLoader(t *testing.T) {
	var doc map[string]any
	json.Unmarshal(schema.JSON, &doc)
	get := func(path ...any) map[string]any {
		var v any = doc
		for _, p := range path {
			switch p := p.(type) {
			case string:
				v = v.(map[string]any)[p]
			case int:
				v = v.([]any)[p]
			}
		}
		return v.(map[string]any)["properties"].(map[string]any)
	}
	places := map[string]map[string]any{
		"":               get(),
		"defaults":       get("properties", "defaults"),
		"defaults.guard": get("properties", "defaults", "properties", "guard"),
		"defaults.wait":  get("properties", "defaults", "properties", "wait"),
		"defaults.http":  get("definitions", "httpDefaults"),
		"defaults.exec":  get("properties", "defaults", "properties", "exec"),
		"basic_auth":     get("definitions", "basicAuth"),
		"retry":          get("definitions", "retry"),
		"step":           get("definitions", "step"),
		"guard":          get("definitions", "step", "properties", "guard", "oneOf", 1),
		"wait_for":       get("definitions", "step", "properties", "wait_for", "oneOf", 2),
		"http":           get("definitions", "httpRequest", "oneOf", 1),
		"paginate":       get("definitions", "paginate", "oneOf", 1),
	}
	vocab := runbook.Vocabulary(steps.Kinds(http.DefaultClient, nil))
	for place, keys := range vocab {
		props, ok := places[place]
		if !ok {
			t.Errorf("the loader reads keys in %q, which the test does not map to the schema", place)
			continue
		}
		var inSchema []string
		for k := range props {
			inSchema = append(inSchema, k)
		}
		sort.Strings(inSchema)
		loader := slices.Sorted(slices.Values(keys))
		if !slices.Equal(loader, inSchema) {
			t.Errorf("%q: loader accepts %v, schema has %v", place, loader, inSchema)
		}
	}
	for place := range places {
		if _, ok := vocab[place]; !ok {
			t.Errorf("the schema has %q, the loader does not", place)
		}
	}
}

// TestSchemaNamesTheWarnings: editors offer exactly the warning names the
// loader accepts in ignore_warnings.
func TestSchemaNamesTheWarnings(t *testing.T) {
	var doc struct {
		Definitions struct {
			IgnoreWarnings struct {
				Items struct {
					Enum []string `json:"enum"`
				} `json:"items"`
			} `json:"ignoreWarnings"`
		} `json:"definitions"`
	}
	if err := json.Unmarshal(schema.JSON, &doc); err != nil {
		t.Fatal(err)
	}
	got := slices.Sorted(slices.Values(doc.Definitions.IgnoreWarnings.Items.Enum))
	want := slices.Sorted(slices.Values(runbook.IgnorableWarnings))
	if !slices.Equal(got, want) {
		t.Errorf("the schema names the warnings %v, the loader %v", got, want)
	}
}
