package runbook_test

import (
	"strings"
	"testing"

	"github.com/runbookhq/runbook/runbook"
)

// TestMergedKeysDeclareOutputsAndLists: outputs and for_each that come in
// through a << merge are what later steps may read, as written out.
func TestMergedKeysDeclareOutputsAndLists(t *testing.T) {
	src := `version: 1
name: merges
steps:
  - id: a
    log: x
    outputs: {<<: {vms: '[1, 2]'}}
  - id: b
    <<: {for_each: '[1, 2]'}
    log: y
  - log: ${{ steps.a.outputs.vms }}
  - log: ${{ steps.b.state }}
`
	_, err := runbook.Load("m.yaml", []byte(src), kinds())
	errs, ok := err.(runbook.Errors)
	if !ok || len(errs) != 1 || errs[0].Pos.Line != 11 || !strings.Contains(errs[0].Msg, "steps.b is a list") {
		t.Fatalf("want only steps.b read as a list on line 11, got:\n%v", err)
	}
}
