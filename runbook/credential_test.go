package runbook_test

import (
	"testing"
	"testing/synctest"

	"github.com/runbookhq/runbook/runbook"
)

// TestEmptyCredentialStopsBeforeAnythingIsSent: a credential that is set but
// empty (an env variable, a var made of one, a --var) stops the run with exit 78
// and its position, as an unset one does; one that only the run can know (an
// earlier step's output, the item) is not judged before.
func TestEmptyCredentialStopsBeforeAnythingIsSent(t *testing.T) {
	for _, c := range []struct {
		name, src string
		env       map[string]string
		vars      map[string]string
		want      string
	}{
		{"env set but empty", stopVM, map[string]string{"TOKEN": ""},
			nil, "test.yaml:6:66: environment variable TOKEN is set but empty, and the runbook uses it as a credential"},
		{"env of spaces", stopVM, map[string]string{"TOKEN": "  "}, nil, "TOKEN is set but empty"},
		{"an empty user too", stopVM, map[string]string{"USER": "", "TOKEN": ""},
			nil, "USER is set but empty, and the runbook uses it as a credential (in basic_auth or an Authorization-like header): export its value before running\ntest.yaml:6:66: environment variable TOKEN is set but empty"},
		{"a var of an empty env", "vars:\n  key: ${{ env.KEY }}\nsteps:\n  - http:\n      url: /configurations/1\n      headers: {Authorization: \"Bearer ${{ vars.key }}\"}\n",
			map[string]string{"KEY": ""}, nil, "test.yaml:12:44: ${{ vars.key }} is empty, and the runbook uses it as a credential"},
		{"an empty --var", "vars:\n  key: abc\n" + "steps:\n  - http:\n      url: /configurations/1\n      headers: {X-Auth-Token: \"${{ vars.key }}\"}\n",
			nil, map[string]string{"key": ""}, "${{ vars.key }} is empty"},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := quietSim(t, nil)
				r := execute(t, srv, c.src, func(o *runbook.Options) {
					for k, v := range c.env {
						o.Env[k] = v
					}
					o.Vars = c.vars
				})
				wantCode(t, r, runbook.ExitConfig, c.want, "nothing was sent")
				if len(r.log) != 0 {
					t.Errorf("%d requests sent before failing", len(r.log))
				}
			})
		})
	}
	// A token from an earlier step is judged when it is sent, not before.
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		r := execute(t, srv, `steps:
  - id: login
    http: GET /configurations/1
    outputs: {token: response.body.id}
  - http:
      url: /configurations/1
      headers: {X-Auth-Token: "${{ steps.login.outputs.token }}"}
`)
		wantCode(t, r, 0)
	})
}
