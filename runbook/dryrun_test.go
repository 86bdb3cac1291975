package runbook_test

import (
	"strings"
	"testing"
	"testing/synctest"

	"github.com/runbookhq/runbook/runbook"
)

// TestDryRunShowsWhatReadsAnUnsentChange: a later step that reads what a
// change the dry run did not send would have answered is shown as written,
// and the dry run goes on.
func TestDryRunShowsWhatReadsAnUnsentChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		r := execute(t, srv, `steps:
  - id: mk
    http: {method: PUT, url: /configurations/1, json: {runstate: suspended}}
    wait_for: state.runstate == "suspended"
    outputs:
      rs: response.body.runstate
  - log: "it is ${{ steps.mk.outputs.rs }}"
  - http: GET /configurations/${{ steps.mk.outputs.rs }}
`, func(o *runbook.Options) { o.DryRun = true })
		wantCode(t, r, 0)
		var shown []string
		for _, e := range r.events {
			if e.Type == runbook.DryRun && e.Step > 1 {
				shown = append(shown, e.Target)
			}
		}
		if len(shown) != 2 || !strings.Contains(shown[0], "${{ steps.mk.outputs.rs }}") {
			t.Errorf("dry-run lines %q, want the log and the GET shown as written", shown)
		}
		if len(r.mutations()) != 0 {
			t.Errorf("a dry run sent changes: %v", r.mutations())
		}
	})
}
