package runbook_test

import (
	"strings"
	"testing"
	"testing/synctest"

	"github.com/runbookhq/runbook/runbook"
	"github.com/runbookhq/runbook/sim"
)

// TestStateThatIsNotJSONSaysSo: a check whose 2xx answer is not JSON fails
// the wait with what the answer was, not with "state is nil".
func TestStateThatIsNotJSONSaysSo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		srv.Inject(sim.Fault{Target: "vm/101", Method: "GET", Status: 200, Body: "<html><body>Maintenance until 3am</body></html>", Times: -1})
		r := execute(t, srv, `steps:
  - name: Stop VM 101
    http:
      method: PUT
      url: /configurations/1/vms/101
      json: {runstate: stopped}
    guard: false
    wait_for: state.runstate == "stopped"
`)
		wantCode(t, r, runbook.ExitFailed, `the answer was not valid JSON (<html><body>Maintenance until 3am</body></html>), so state has no key "runstate"`)
		if strings.Contains(r.err.Error(), "state is nil") {
			t.Errorf("still says state is nil: %v", r.err)
		}
	})
}

// TestReadDeadlineSaysReading: the deadline of a step that reads (a GET that
// keeps failing with 5xx) says it was reading, not sending a change; a
// change's still says it was sending the change.
func TestReadDeadlineSaysReading(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		srv.Inject(sim.Fault{Target: "env/1", Status: 503, Method: "ANY", Times: -1})
		r := execute(t, srv, "steps:\n  - name: Read\n    http: GET /configurations/1\n    timeout: 1m\n")
		wantCode(t, r, runbook.ExitDeadline, "step timeout 1m passed while reading (", "attempts, the last answered 503 Service Unavailable")
		if strings.Contains(r.err.Error(), "change") {
			t.Errorf("a read is called a change: %v", r.err)
		}
		r = execute(t, srv, "steps:\n  - name: Stop\n    http: {method: PUT, url: /configurations/1, json: {runstate: stopped}}\n    guard: false\n    wait_for: false\n    timeout: 1m\n")
		wantCode(t, r, runbook.ExitDeadline, "step timeout 1m passed while sending the change (")
	})
}

// TestForEachOverARange: for_each takes any list expr makes, ranges included.
func TestForEachOverARange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		var logged []string
		r := execute(t, srv, `vars: {n: 3}
steps:
  - for_each: 1..vars.n
    as: i
    log: "item ${{ i }} of ${{ vars.n }}"
  - for_each: 'filter(1..6, # % 2 == 0)'
    log: "even ${{ item }}"
  - for_each: '["a", "b"]'
    log: "letter ${{ item }}"
`, func(o *runbook.Options) {
			o.Observer = runbook.ObserverFunc(func(e runbook.Event) {
				if e.Type == runbook.LogLine {
					logged = append(logged, e.Reason)
				}
			})
		})
		wantCode(t, r, 0)
		got := strings.Join(logged, "; ")
		for _, want := range []string{"item 1 of 3", "item 3 of 3", "even 2", "even 6", "letter b"} {
			if !strings.Contains(got, want) {
				t.Errorf("logged %q, want %q", got, want)
			}
		}
	})
}

// A sleep cut short by a deadline says which, not "context deadline exceeded".
func TestSleepCutShortSaysWhy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := execute(t, quietSim(t, nil), `steps:
  - sleep: 10m
    timeout: 1m
`)
		wantCode(t, r, runbook.ExitDeadline, "step timeout 1m passed")
		attempts := 0
		for _, e := range r.events {
			if e.Type == runbook.Attempt {
				attempts++
				if e.Reason != "cut short: step timeout 1m passed" {
					t.Errorf("the sleep's attempt says %q", e.Reason)
				}
			}
		}
		if attempts != 1 {
			t.Errorf("%d attempt events, want 1", attempts)
		}
	})
}

// TestLastStateSaysWhose: a failure's last state names the read it came from
// when that is not the resource the step changes.
func TestLastStateSaysWhose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		r := execute(t, srv, `steps:
  - http: {method: PUT, url: /configurations/1/vms/101, json: {runstate: suspended}}
    wait_for: {check: GET /configurations/1, until: state.runstate == "stopped"}
    timeout: 2m
`)
		wantCode(t, r, runbook.ExitDeadline, "last state: runstate=", "(GET https://cloud.example.com/v2/configurations/1)")
	})
}
