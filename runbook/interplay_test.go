package runbook_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/runbookhq/runbook/internal/metrics"
	"github.com/runbookhq/runbook/runbook"
	"github.com/runbookhq/runbook/steps"
)

// Where the features meet: cleanup, confirm, uses, fleets and the journal.

const confirmLib = `vars:
  vm_id: null
steps:
  - id: stop
    name: Stop
    confirm: "Stop ${{ vars.vm_id }}?"
    http: {method: PUT, url: "/configurations/1/vms/${{ vars.vm_id }}", json: {runstate: stopped}}
    guard: {check: GET /configurations/1}
    wait_for: state.runstate == "stopped"
`

// TestConfirmInAUsedRunbook: a used runbook's confirm is approved as the
// run's own are (--yes, --confirm with the path to it, a terminal), and
// CheckConfirm knows it by that path.
func TestConfirmInAUsedRunbook(t *testing.T) {
	file := writeUses(t, `steps:
  - id: use
    uses: lib/c.yaml
    with: {vm_id: "101"}
`, map[string]string{"lib/c.yaml": header + confirmLib})
	for name, tune := range map[string]func(*runbook.Options){
		"yes":      func(o *runbook.Options) { o.Yes = true },
		"confirm":  func(o *runbook.Options) { o.Approve = []string{"1/stop"} },
		"terminal": func(o *runbook.Options) { o.Confirm = (&fakeTerminal{yes: true}).ask },
	} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := quietSim(t, nil)
				r := crashRunWith(t, srv, file, t.TempDir(), "r1", &crashRig{}, false, tune)
				wantCode(t, r, 0)
				if got, _ := srv.Runstate("vm/101"); got != "stopped" {
					t.Errorf("VM 101 is %s, want stopped", got)
				}
			})
		})
	}
	rb, err := runbook.LoadFile(file, steps.Kinds(nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := rb.CheckConfirm([]string{"1/stop"}); err != nil {
		t.Errorf("--confirm 1/stop: %v", err)
	}
	if err := rb.CheckConfirm([]string{"stop"}); err == nil || !strings.Contains(err.Error(), "1/stop") {
		t.Errorf("--confirm stop: %v; want refused, naming 1/stop", err)
	}
}

// TestUnconfirmedItemIsNotContinuedPast: continue_on_error does not mark an
// item that waits for its confirmation done, so a resume that approves it
// sends its change.
func TestUnconfirmedItemIsNotContinuedPast(t *testing.T) {
	file := writeUses(t, `steps:
  - id: use
    for_each: '["101", "102"]'
    as: vm
    continue_on_error: true
    uses: lib/c.yaml
    with: {vm_id: "${{ vm }}"}
`, map[string]string{"lib/c.yaml": header + confirmLib})
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		dir := t.TempDir()
		r := crashRun(t, srv, file, dir, "r1", &crashRig{}, false)
		wantCode(t, r, runbook.ExitBusy, "waiting for confirmation")
		r = crashRunWith(t, srv, file, dir, "r2", &crashRig{}, true, func(o *runbook.Options) { o.Yes = true })
		wantCode(t, r, 0)
		for _, vm := range []string{"vm/101", "vm/102"} {
			if got, _ := srv.Runstate(vm); got != "stopped" {
				t.Errorf("%s is %s after the approved resume, want stopped", vm, got)
			}
		}
	})
}

// TestUsedRunbookSecretsUnderConcurrency: items of a used runbook add their
// own credentials to the run's redaction while others are being redacted
// (the race detector holds this).
func TestUsedRunbookSecretsUnderConcurrency(t *testing.T) {
	file := writeUses(t, `steps:
  - for_each: 1..60
    as: n
    concurrency: 20
    uses: lib/read.yaml
    with: {token: "tok-${{ n }}-abcdefghijklmnopqrstuvwxyz0123456789"}
`, map[string]string{"lib/read.yaml": `version: 1
vars:
  token: null
defaults:
  http:
    base_url: https://cloud.example.com/v2
    basic_auth: {username: u, password: "${{ vars.token }}"}
steps:
  - http: GET /configurations/1
`})
	synctest.Test(t, func(t *testing.T) {
		r := crashRun(t, quietSim(t, nil), file, t.TempDir(), "r1", &crashRig{}, false)
		wantCode(t, r, 0)
	})
}

// failOn fails every write from the first one whose bytes hold marker on.
type failOn struct {
	f      runbook.SyncFile
	marker string
	broken *bool
}

func (x failOn) Write(p []byte) (int, error) {
	if *x.broken || strings.Contains(string(p), x.marker) {
		*x.broken = true
		return 0, errors.New("disk full")
	}
	return x.f.Write(p)
}
func (x failOn) Sync() error  { return x.f.Sync() }
func (x failOn) Close() error { return x.f.Close() }

// TestJournalBreakingInFinallyIsExit74: after a success, a journal that
// cannot be written in finally is the journal's failure, not a step's.
func TestJournalBreakingInFinallyIsExit74(t *testing.T) {
	for _, marker := range []string{`"type":"cleanup"`, `"step_name":"Webhook"`} {
		t.Run(marker, func(t *testing.T) {
			file := writeRunbook(t, `steps:
  - name: Suspend
    http: {method: PUT, url: /configurations/1, json: {runstate: suspended}}
    wait_for: state.runstate == "suspended"
finally:
  - name: Webhook
    log: hi
`)
			synctest.Test(t, func(t *testing.T) {
				broken := false
				r := crashRunWith(t, quietSim(t, nil), file, t.TempDir(), "r01", &crashRig{}, false, func(o *runbook.Options) {
					runbook.WrapJournalFile(o.Journal, func(f runbook.SyncFile) runbook.SyncFile { return failOn{f: f, marker: marker, broken: &broken} })
				})
				wantCode(t, r, runbook.ExitIOErr)
			})
		})
	}
}

// TestHistoryNamesTheMainStepThatFailed: cleanup steps that fail after it do
// not take its place.
func TestHistoryNamesTheMainStepThatFailed(t *testing.T) {
	file := writeRunbook(t, `steps:
  - name: Gate
    assert: 1 == 2
on_failure:
  - name: Roll back
    assert: 1 == 3
`)
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		crashRun(t, quietSim(t, nil), file, dir, "r01", &crashRig{}, false)
		runs, err := runbook.History(dir, true, file)
		if err != nil || len(runs) == 0 {
			t.Fatal(runs, err)
		}
		if p := runs[len(runs)-1]; p.FailedStep != 1 || p.StepName != "Gate" {
			t.Errorf("history names step %d %q, want step 1 \"Gate\"", p.FailedStep, p.StepName)
		}
	})
}

// TestWaitingForConfirmationIsNotCountedFailed: the metrics count such a step
// as stopped, as the journal and history tell the run.
func TestWaitingForConfirmationIsNotCountedFailed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := execute(t, quietSim(t, nil), deleteEnv)
		wantCode(t, r, runbook.ExitBusy)
		tally := metrics.NewTally()
		for _, e := range r.events {
			tally.Observe(e)
		}
		if c := tally.Counts(); c.Steps["failed"] != 0 || c.Steps["stopped"] != 1 {
			t.Errorf("steps %v, want the one waiting counted stopped", c.Steps)
		}
	})
}

// TestUsedRunbookCleanupFailureIsTold: a used runbook's failing on_failure is
// in the run's error with the failure it followed; its cleanup steps have
// names, and its cleanup event belongs to the using step.
func TestUsedRunbookCleanupFailureIsTold(t *testing.T) {
	file := writeUses(t, `steps:
  - uses: lib/x.yaml
`, map[string]string{"lib/x.yaml": header + `steps:
  - name: Gate
    assert: 1 == 2
on_failure:
  - name: Roll back
    assert: 1 == 3
    message: ROLLBACK-FAILED
`})
	synctest.Test(t, func(t *testing.T) {
		r := crashRun(t, quietSim(t, nil), file, t.TempDir(), "r1", &crashRig{}, false)
		wantCode(t, r, runbook.ExitFailed, "ROLLBACK-FAILED", `on_failure step 2 "Roll back"`)
		for _, e := range r.events {
			if e.Type == runbook.CleanupStarted && (e.Step != 1 || e.Path != "1") {
				t.Errorf("the used runbook's cleanup event: step %d path %q, want step 1 path 1", e.Step, e.Path)
			}
		}
	})
}

// TestVarFileNeverQuotesAValue: the YAML parser's own words may quote a
// value (an alias's name); a tag of its own would silently change one.
func TestVarFileNeverQuotesAValue(t *testing.T) {
	dir := t.TempDir()
	rb, err := runbook.Load("test.yaml", []byte(header+"vars:\n  token: \"\"\nsteps:\n  - log: hi\n"), steps.Kinds(nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{"token: *Hunter2SecretValue\n", "token: !Hunter2SecretValue\n", "token: !Hunter2SecretValue x\n", "token: \"Hunter2SecretValue\\q\"\n", "token: `Hunter2SecretValue\n"} {
		path := filepath.Join(dir, "v.yaml")
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		err := rb.ReadVarFile(path, got)
		if err == nil {
			t.Errorf("%q read as %q, want refused", body, got["token"])
		} else if strings.Contains(err.Error(), "Hunter2") {
			t.Errorf("%q: the error quotes the value: %v", body, err)
		}
	}
}
