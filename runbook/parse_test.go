package runbook_test

import (
	"strings"
	"testing"

	"github.com/runbookhq/runbook/runbook"
)

// TestCommentsThatCutAValueAreFound: yaml.v3 keeps every comment in the tree,
// so the loader sees a "#x" that YAML took for a comment wherever it is, and
// lets ordinary comments be.
func TestCommentsThatCutAValueAreFound(t *testing.T) {
	const ordinary = `# yaml-language-server: $schema=../schema/runbook.schema.json
version: 1 # the format
name: Comments   ## twice
#compact note on a line of its own
steps:
  # the only step
  - name: Read
    id: read
    http: GET https://x/y   # a read
    outputs: {id: response.body.id}  # flow, then a comment
`
	if _, err := runbook.Load("c.yaml", []byte(ordinary), kinds()); err != nil {
		t.Fatalf("ordinary comments refused:\n%v", err)
	}
	for _, tc := range []struct {
		from, to string
		at       runbook.Pos
	}{
		{"name: Comments   ## twice", "name: Release #42", runbook.Pos{Line: 3, Col: 15}},
		{"  - name: Read", "  - name: Read #1", runbook.Pos{Line: 7, Col: 16}},
		{"GET https://x/y   # a read", "GET https://x/y#frag", runbook.Pos{Line: 9, Col: 0}},
		{"GET https://x/y   # a read", "GET https://x/y #frag", runbook.Pos{Line: 9, Col: 27}},
	} {
		src := strings.Replace(ordinary, tc.from, tc.to, 1)
		_, err := runbook.Load("c.yaml", []byte(src), kinds())
		if tc.at.Col == 0 { // no space before #: part of the value, not a comment
			if err != nil {
				t.Errorf("%q: %v", tc.to, err)
			}
			continue
		}
		errs, ok := err.(runbook.Errors)
		if !ok || len(errs) != 1 || errs[0].Pos != tc.at || !strings.Contains(errs[0].Msg, "as a comment") {
			t.Errorf("%q: want the comment reported at %d:%d, got:\n%v", tc.to, tc.at.Line, tc.at.Col, err)
		}
	}
}
