package runbook_test

import (
	"testing"
	"testing/synctest"

	"github.com/runbookhq/runbook/runbook"
)

func TestMissingEnvStopsBeforeAnythingIsSent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		r := execute(t, srv, stopVM, func(o *runbook.Options) { delete(o.Env, "TOKEN") })
		wantCode(t, r, runbook.ExitConfig, "TOKEN")
		if len(r.log) != 0 {
			t.Errorf("%d requests sent before failing", len(r.log))
		}
	})
}
