package runbook

import (
	"reflect"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestPlainScalarDecodesAsYAML: the fast path for numbers, booleans and null
// gives what yaml.v3's decoder gives, or leaves the value to it.
func TestPlainScalarDecodesAsYAML(t *testing.T) {
	for _, src := range []string{"0", "7", "1234567", "0123", "012", "1_000", "+1", "-5", "0x10", "0o17", "99999999999999999999",
		"1.5", ".5", "-.5", "+.5", "1.", "1e3", "1E3", "-1.5e-3", ".inf", "-.Inf", ".nan", "true", "false", "True", "FALSE", "null", "~", ""} {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte("v: "+src), &doc); err != nil {
			t.Fatal(err)
		}
		n := doc.Content[0].Content[1]
		var want any
		n.Decode(&want)
		got, ok := plainScalar(n)
		if !ok {
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%q (%s): fast path %#v, yaml.v3 %#v", src, n.Tag, got, want)
		}
	}
}
