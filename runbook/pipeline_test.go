package runbook_test

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/runbookhq/runbook/runbook"
	"github.com/runbookhq/runbook/sim"
)

// An empty value in a URL (an unset --var, a null item) fails the step before
// anything is sent: DELETE /configurations/ is another resource than the one meant.
func TestEmptyValueInAURLSendsNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		r := execute(t, srv, `vars: {env_id: "1"}
steps:
  - name: Delete
    http: DELETE /configurations/${{ vars.env_id }}
`, func(o *runbook.Options) { o.Vars = map[string]string{"env_id": " "} })
		wantCode(t, r, runbook.ExitFailed, "${{ vars.env_id }} in the URL is empty, so the request would go to another resource")
		if len(r.log) != 0 {
			t.Errorf("%d requests sent, want none: %+v", len(r.log), r.log)
		}
		r = execute(t, srv, `steps:
  - name: Each
    for_each: '["101", nil, "", {"id": ""}, ["x"]]'
    continue_on_error: true
    http: GET /configurations/1/vms/${{ item?.id ?? item }}
`)
		var msgs []string
		for _, e := range r.events {
			if e.Type == runbook.StepFailed && e.ItemNo == 0 {
				msgs = append(msgs, e.Err)
			}
		}
		empty := "${{ item?.id ?? item }} in the URL is empty, so the request would go to another resource; give it a value"
		want := `4 of 5 items failed: null: ` + empty + `; "": ` + empty + `; "": ` + empty + `; ["x"]: ${{ item?.id ?? item }} in the URL is a list of 1; a URL takes text, a number or true/false`
		if len(msgs) != 1 || msgs[0] != want {
			t.Errorf("step failures %q, want %q", msgs, want)
		}
		if n := len(srv.Log()); n != 1 {
			t.Errorf("%d requests sent, want only item 101's", n)
		}
		// Numbers (a JSON number is a float) and true/false are fine in a URL.
		r = execute(t, srv, "steps:\n  - http: GET /configurations/${{ 2.0 / 2 }}?keep=${{ 1 < 2 }}\n")
		wantCode(t, r, 0)
		if last := r.log[len(r.log)-1]; last.Path != "/v2/configurations/1" || last.Query != "keep=true" {
			t.Errorf("sent %s?%s, want /v2/configurations/1?keep=true", last.Path, last.Query)
		}
	})
}

func TestMissingProgramFailsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		r := execute(t, srv, "steps:\n  - exec: [no-such-program-here, version]\n")
		wantCode(t, r, runbook.ExitFailed, "cannot run no-such-program-here")
		if got := r.end.Sub(r.start); got != 0 {
			t.Errorf("retried for %s; a program that cannot start never will", got)
		}
	})
}

// createThenUse creates an environment from a template, waits for the new
// one (its check reads the answer's id), and uses its id in the next step.
const createThenUse = `steps:
  - id: create
    name: Create from the template
    http: {method: POST, url: /configurations, json: {template_id: "7", name: made}}
GUARD    wait_for:
      check: GET /configurations/${{ response.body.id }}
      until: state.runstate != "busy"
    outputs: {id: response.body.id}
  - name: Run it
    http: {method: PUT, url: "/configurations/${{ steps.create.outputs.id }}", json: {runstate: running}}
    wait_for: state.runstate == "running"
`

func TestCreateThenUse(t *testing.T) {
	for name, guard := range map[string]string{
		"default guard (none)":  "",
		"guard false":           "    guard: false\n",
		"guard on the template": "    guard: {check: GET /templates/7, busy_when: state.busy == true}\n",
	} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := quietSim(t, nil)
				srv.AddTemplate(sim.TemplateSpec{ID: "7", VMs: []sim.VMSpec{{ID: "70"}}})
				srv.MakeBusy("template/7", 25*time.Second)
				r := execute(t, srv, strings.Replace(createThenUse, "GUARD", guard, 1))
				wantCode(t, r, 0)
				first := r.mutations()[0]
				if strings.Contains(guard, "templates") {
					// The guard waited for the template: nothing was sent while it was busy.
					assertManners(t, r)
				} else if first.Outcome != "busy-423" {
					// Nothing to read first: the template's busy answer is what held it back.
					t.Errorf("the first POST got %s, want the template's busy 423", first.Outcome)
				}
				id := createdEnv(r.log)
				if id == "" || postCount(r.log) != 1 {
					t.Fatalf("%d environments created, want 1", postCount(r.log))
				}
				for _, e := range r.log {
					if e.Method == "GET" && e.Path == "/v2/configurations" {
						t.Errorf("the collection was read (%s %s): a create's wait reads what it made", e.Method, e.Path)
					}
				}
				if got, _ := srv.Runstate("env/" + id); got != "running" {
					t.Errorf("the created environment %s is %s, want running", id, got)
				}
			})
		})
	}
}
