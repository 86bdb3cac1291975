package runbook_test

import (
	"encoding/json"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/runbookhq/runbook/runbook"
	"github.com/runbookhq/runbook/sim"
)

// stopLib is a used runbook: it stops one VM, guarded on its environment,
// and says the state it saw.
const stopLib = `version: 1
name: Stop a VM
vars:
  env_id: null
  vm_id: null
  note: "stopping"
secrets: [LIB_TOKEN]
defaults:
  http:
    base_url: https://cloud.example.com/v2
    basic_auth: {username: "${{ env.USER }}", password: "${{ env.TOKEN }}"}
steps:
  - log: ${{ vars.note }} ${{ vars.vm_id }} ${{ env.LIB_TOKEN }}
  - id: stop
    name: Stop the VM
    http: {method: PUT, url: "/configurations/${{ vars.env_id }}/vms/${{ vars.vm_id }}", json: {runstate: stopped}}
    guard: {check: "GET /configurations/${{ vars.env_id }}"}
    wait_for: state.runstate == "stopped"
outputs:
  runstate: steps.stop.state.runstate
`

// cycleLib (after the standard header) stops a VM, then runs it.
const cycleLib = `vars:
  vm_id: null
steps:
  - log: cycling ${{ vars.vm_id }}
  - name: Stop
    http: {method: PUT, url: "/configurations/1/vms/${{ vars.vm_id }}", json: {runstate: stopped}}
    guard: {check: GET /configurations/1}
    wait_for: state.runstate == "stopped"
  - id: run
    name: Run
    http: {method: PUT, url: "/configurations/1/vms/${{ vars.vm_id }}", json: {runstate: running}}
    guard: {check: GET /configurations/1}
    wait_for: state.runstate == "running"
outputs:
  runstate: steps.run.state.runstate
`

// usesMain stops each VM through stopLib, two at a time, and reads their
// outputs.
const usesMain = `steps:
  - id: stop
    name: Stop VM ${{ vm }}
    for_each: '["101", "102", "103"]'
    as: vm
    concurrency: 2
    uses: lib/stop.yaml
    with: {env_id: "1", vm_id: "${{ vm }}"}
  - assert: map(steps.stop, .outputs.runstate) == ["stopped", "stopped", "stopped"]
`

// writeUses writes a runbook (after the standard header) and the files it
// uses, and returns its path.
func writeUses(t *testing.T, src string, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, files)
	writeFiles(t, dir, map[string]string{"main.yaml": header + src})
	return filepath.Join(dir, "main.yaml")
}

// writeFiles writes files by their paths under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, text := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func threeVMs(srv *sim.Server) {
	srv.AddEnvironment(sim.EnvSpec{ID: "1", VMs: []sim.VMSpec{{ID: "101"}, {ID: "102"}, {ID: "103"}}})
}

func withLibToken(o *runbook.Options) { o.Env["LIB_TOKEN"] = "lib-secret-value" }

func TestUsesRunsAnotherFilesSteps(t *testing.T) {
	file := writeUses(t, usesMain, map[string]string{"lib/stop.yaml": stopLib})
	synctest.Test(t, func(t *testing.T) {
		srv := sim.New(sim.Config{Seed: 1, Rate: -1, Jitter: -1, MaxConcurrentOps: -1})
		threeVMs(srv)
		r := crashRunWith(t, srv, file, t.TempDir(), "r1", &crashRig{}, false, withLibToken)
		wantCode(t, r, 0)
		for _, vm := range []string{"101", "102", "103"} {
			if got, _ := srv.Runstate("vm/" + vm); got != "stopped" {
				t.Errorf("vm %s is %s", vm, got)
			}
		}
		nested := 0
		for _, e := range r.events {
			if strings.Contains(e.Reason+e.Err+e.StepName+e.Target, "lib-secret-value") {
				t.Errorf("the used runbook's secret shows: %+v", e)
			}
			if e.Path == "" {
				continue
			}
			nested++
			if e.Step != 1 || !strings.HasPrefix(e.Path, "1/") || !strings.HasPrefix(e.StepName, "Stop VM 10") || e.ItemNo == 0 {
				t.Errorf("a used step's event is not under the using step and its item: %+v", e)
			}
			if e.Path == "1/2" && e.Type == runbook.StepDone && !strings.HasSuffix(e.StepName, " › Stop the VM") {
				t.Errorf("the used step's name is %q", e.StepName)
			}
		}
		if nested == 0 {
			t.Error("no event of a used step")
		}
	})
}

func TestUsesFailureNamesTheUsedStep(t *testing.T) {
	file := writeUses(t, usesMain, map[string]string{"lib/stop.yaml": stopLib})
	synctest.Test(t, func(t *testing.T) {
		srv := sim.New(sim.Config{Seed: 1, Rate: -1, Jitter: -1, MaxConcurrentOps: -1})
		threeVMs(srv)
		srv.Inject(sim.Fault{Target: "vm/102", Method: "PUT", Status: 422, Body: `{"error": "VM is protected"}`, Times: 5})
		r := crashRunWith(t, srv, file, t.TempDir(), "r1", &crashRig{}, false, withLibToken)
		wantCode(t, r, runbook.ExitFailed, `102: `, `stop.yaml: step 2 "Stop the VM": 422`, "protected")
	})
}

func TestUsesWithValueOfTheWrongTypeFailsTheStep(t *testing.T) {
	lib := strings.Replace(stopLib, `note: "stopping"`, `note: 3`, 1)
	src := strings.Replace(usesMain, `with: {env_id: "1", vm_id: "${{ vm }}"}`, `with: {env_id: "1", vm_id: "${{ vm }}", note: "${{ vm + 'x' }}"}`, 1)
	file := writeUses(t, src, map[string]string{"lib/stop.yaml": lib})
	synctest.Test(t, func(t *testing.T) {
		srv := sim.New(sim.Config{Seed: 1, Rate: -1, Jitter: -1, MaxConcurrentOps: -1})
		threeVMs(srv)
		r := crashRunWith(t, srv, file, t.TempDir(), "r1", &crashRig{}, false, withLibToken)
		wantCode(t, r, runbook.ExitFailed, "declares note as a whole number")
		if n := len(r.log); n != 0 {
			t.Errorf("%d requests sent", n)
		}
	})
}

// TestUsesResumeGoesOnInsideTheUsedRunbook kills a run just after a used
// runbook's step that stops a VM is journaled done: the resume skips that
// step and goes on with the next, and the stop is not sent again.
func TestUsesResumeGoesOnInsideTheUsedRunbook(t *testing.T) {
	file := writeUses(t, `steps:
  - uses: lib/cycle.yaml
    with: {vm_id: "101"}
`, map[string]string{"lib/cycle.yaml": header + cycleLib})
	kill := 0
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		wantCode(t, crashRun(t, quietSim(t, nil), file, dir, "r0", &crashRig{}, false), 0)
		store, err := runbook.OpenStore(dir, true, file, false)
		if err != nil {
			t.Fatal(err)
		}
		log, err := store.Last()
		if err != nil {
			t.Fatal(err)
		}
		// A fresh run syncs each record on its own.
		for i, rec := range log.Records {
			if rec.Type == "step_done" && rec.Path == "1" && rec.Step == 2 {
				kill = i + 1
			}
		}
	})
	if kill == 0 {
		t.Fatal("no step_done record of the used runbook's step 2 with path 1")
	}
	synctest.Test(t, func(t *testing.T) {
		srv, dir := quietSim(t, nil), t.TempDir()
		crashRun(t, srv, file, dir, "r1", &crashRig{afterRecord: kill}, false)
		r := crashRun(t, srv, file, dir, "r2", &crashRig{}, true)
		wantCode(t, r, 0)
		stops := 0
		for _, e := range srv.Log() {
			if e.Method == "PUT" && strings.Contains(e.Body, "stopped") {
				stops++
			}
		}
		if stops != 1 {
			t.Errorf("the VM was stopped %d times, want once", stops)
		}
		skipped := map[string]bool{}
		for _, e := range r.events {
			if e.Type == runbook.StepSkipped {
				skipped[e.Path] = true
			}
		}
		if !skipped["1/1"] || !skipped["1/2"] || skipped["1/3"] {
			t.Errorf("the resume skipped %v, want the used steps 1/1 and 1/2", skipped)
		}
		if got, _ := srv.Runstate("vm/101"); got != "running" {
			t.Errorf("vm 101 is %s", got)
		}
	})
}

// TestUsesEmptyCredentialFromWithIsNotSent: a credential a used runbook
// makes of a with: value that comes out empty fails the step before any of
// its requests, as one from --var fails a run before its first.
func TestUsesEmptyCredentialFromWithIsNotSent(t *testing.T) {
	file := writeUses(t, `steps:
  - uses: lib/read.yaml
    with: {token: "${{ env?.NONE ?? '' }}"}
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
		srv := quietSim(t, nil)
		r := crashRun(t, srv, file, t.TempDir(), "r1", &crashRig{}, false)
		wantCode(t, r, runbook.ExitFailed, "${{ vars.token }} is empty")
		if n := len(srv.Log()); n != 0 {
			t.Errorf("%d requests sent", n)
		}
	})
}

// TestUsesNestedTwice: main uses lib/outer.yaml over three VMs two at a time,
// which uses lib/cycle.yaml (relative to itself); the innermost outputs reach
// main through outer's. Killed after the innermost stop of one item is
// journaled done, the resume sends no stop again.
func TestUsesNestedTwice(t *testing.T) {
	file := writeUses(t, `steps:
  - id: each
    for_each: '["101", "102", "103"]'
    as: vm
    concurrency: 2
    uses: lib/outer.yaml
    with: {vm_id: "${{ vm }}"}
  - assert: map(steps.each, .outputs.runstate) == ["running", "running", "running"]
`, map[string]string{
		"lib/outer.yaml": header + `vars:
  vm_id: null
steps:
  - id: cycle
    uses: cycle.yaml
    with: {vm_id: "${{ vars.vm_id }}"}
outputs:
  runstate: steps.cycle.outputs.runstate
`,
		"lib/cycle.yaml": header + cycleLib,
	})
	// The first innermost stop journaled done: path 1@<item>/1, step 2. (Two
	// items run at once, so which record that is varies from run to run.)
	targets := map[string]string{} // the change of each path, from its intent
	var killedVM string
	innermostStop := func(line []byte) bool {
		var rec runbook.Record
		if json.Unmarshal(line, &rec) != nil {
			return false
		}
		if rec.Target != "" {
			targets[rec.Path] = rec.Target
		}
		if rec.Type != "step_done" || strings.Count(rec.Path, "/") != 1 || rec.Step != 2 {
			return false
		}
		killedVM = path.Base(targets[rec.Path])
		return true
	}
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		threeVMs(srv)
		dir := t.TempDir()
		rig := &crashRig{afterLine: innermostStop}
		crashRun(t, srv, file, dir, "r1", rig, false)
		if !rig.dead || killedVM == "" || killedVM == "." {
			t.Fatalf("no step_done record of the innermost runbook's stop, or no intent before it (%q)", killedVM)
		}
		r := crashRun(t, srv, file, dir, "r2", &crashRig{}, true)
		wantCode(t, r, 0)
		stops := map[string]int{}
		for _, e := range srv.Log() {
			if e.Method == "PUT" && strings.Contains(e.Body, "stopped") {
				stops[e.Path]++
			}
		}
		// The stop journaled done is not sent again. The other item in flight
		// may have been killed between its stop's intent and answer: that
		// stop, idempotent, is sent again from its guard.
		for vm, n := range stops {
			if n != 1 && (path.Base(vm) == killedVM || n > 2) {
				t.Errorf("%s was stopped %d times (killed after VM %s's stop was journaled done)", vm, n, killedVM)
			}
		}
		if len(stops) != 3 {
			t.Errorf("stops %v, want each of three VMs", stops)
		}
	})
}
