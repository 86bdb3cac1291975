package runbook_test

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/runbookhq/runbook/runbook"
)

// deleteEnv reads the environment, then deletes it after a confirm that reads
// the read's answer, a var and a secret.
const deleteEnv = `vars:
  env_id: "1"
steps:
  - id: env
    http: GET /configurations/${{ vars.env_id }}
  - id: delete
    name: Delete the environment
    confirm: "Delete ${{ vars.env_id }} and its ${{ len(steps.env.state.vms) }} VMs (as ${{ env.TOKEN }})?"
    http: DELETE /configurations/${{ vars.env_id }}
`

// fakeTerminal answers every confirm with yes (or no) after taking its time,
// and keeps what it was asked.
type fakeTerminal struct {
	yes   bool
	takes time.Duration
	asked []string
	plans []string
}

func (f *fakeTerminal) ask(ctx context.Context, text, plan string) (bool, error) {
	f.asked, f.plans = append(f.asked, text), append(f.plans, plan)
	select {
	case <-time.After(f.takes):
		return f.yes, nil
	case <-ctx.Done():
		return false, context.Cause(ctx)
	}
}

func deletes(r result) int {
	n := 0
	for _, e := range r.mutations() {
		if e.Method == "DELETE" {
			n++
		}
	}
	return n
}

func confirmEvents(r result) []runbook.Event {
	var out []runbook.Event
	for _, e := range r.events {
		if e.Type == runbook.Confirm {
			out = append(out, e)
		}
	}
	return out
}

// TestConfirmWithNoOneToAsk: with no terminal the run stops before the step
// (exit 75), sends nothing of it, and says how to approve it.
func TestConfirmWithNoOneToAsk(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		r := execute(t, srv, deleteEnv)
		wantCode(t, r, runbook.ExitBusy, "waiting for confirmation", "--confirm delete (or --yes)", "Delete 1 and its 2 VMs (as ***)?")
		if n := deletes(r); n != 0 {
			t.Errorf("%d DELETEs sent without confirmation", n)
		}
		ev := confirmEvents(r)
		if len(ev) != 1 || ev[0].Phase != runbook.PhaseNeeded || ev[0].StepID != "delete" {
			t.Fatalf("confirm events %+v, want one needed for step delete", ev)
		}
		if !strings.Contains(ev[0].Target, "DELETE https://cloud.example.com/v2/configurations/1") {
			t.Errorf("the event's plan is %q, want the DELETE", ev[0].Target)
		}
		for _, e := range r.events {
			if strings.Contains(e.Reason+e.Err, "secret-token") {
				t.Errorf("the secret is in an event: %+v", e)
			}
		}
	})
}

// TestConfirmApprovedInAdvance: --confirm by id, by index, and --yes let the
// step run with no one to ask; the confirm is still told.
func TestConfirmApprovedInAdvance(t *testing.T) {
	for name, tune := range map[string]func(*runbook.Options){
		"id":    func(o *runbook.Options) { o.Approve = []string{"delete"} },
		"index": func(o *runbook.Options) { o.Approve = []string{"2"} },
		"yes":   func(o *runbook.Options) { o.Yes = true },
	} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := quietSim(t, nil)
				r := execute(t, srv, deleteEnv, tune)
				wantCode(t, r, 0)
				if n := deletes(r); n != 1 {
					t.Errorf("%d DELETEs, want 1", n)
				}
				if ev := confirmEvents(r); len(ev) != 1 || ev[0].Phase != runbook.PhaseGiven {
					t.Errorf("confirm events %+v, want one given", ev)
				}
			})
		})
	}
	synctest.Test(t, func(t *testing.T) {
		// Approving another step approves nothing here.
		srv := quietSim(t, nil)
		r := execute(t, srv, deleteEnv, func(o *runbook.Options) { o.Approve = []string{"env"} })
		wantCode(t, r, runbook.ExitBusy)
	})
}

// TestConfirmAskedAtTheTerminal: the person is asked with the rendered text
// (secrets hidden) and what the step will send; the run's and the step's
// deadlines do not run while they decide, and the run's goes on after.
func TestConfirmAskedAtTheTerminal(t *testing.T) {
	src := strings.Replace(deleteEnv, "steps:\n", "timeout: 1h\nsteps:\n", 1)
	src = strings.Replace(src, "    http: DELETE", "    timeout: 30m\n    http: DELETE", 1)
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		term := &fakeTerminal{yes: true, takes: 3 * time.Hour}
		r := execute(t, srv, src, func(o *runbook.Options) { o.Confirm = term.ask })
		wantCode(t, r, 0)
		if n := deletes(r); n != 1 {
			t.Errorf("%d DELETEs, want 1", n)
		}
		if len(term.asked) != 1 || term.asked[0] != "Delete 1 and its 2 VMs (as ***)?" {
			t.Errorf("asked %q", term.asked)
		}
		if len(term.plans) != 1 || term.plans[0] != "DELETE https://cloud.example.com/v2/configurations/1" {
			t.Errorf("shown the plan %q", term.plans)
		}
		if ev := confirmEvents(r); len(ev) != 1 || ev[0].Phase != runbook.PhaseAsk {
			t.Errorf("confirm events %+v, want one ask", ev)
		}
	})
	// The run's deadline is held, not reset: after the answer, what was left
	// of it still bounds the run.
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		srv.MakeBusy("env/1", 10*time.Hour)
		src := `timeout: 1h
steps:
  - name: Wait a while
    sleep: 40m
    timeout: 45m
  - confirm: Stop VM 101?
    http: {method: PUT, url: /configurations/1/vms/101, json: {runstate: stopped}}
    guard: {check: GET /configurations/1}
    wait_for: state.runstate == "stopped"
`
		term := &fakeTerminal{yes: true, takes: 5 * time.Hour}
		r := execute(t, srv, src, func(o *runbook.Options) { o.Confirm = term.ask })
		wantCode(t, r, runbook.ExitDeadline, "run timeout 1h")
		if took := r.end.Sub(r.start); took < 6*time.Hour-time.Minute || took > 6*time.Hour+time.Minute {
			t.Errorf("the run ended after %s, want 6h: 40m, 5h at the prompt, then the 20m left", took)
		}
	})
}

// TestConfirmDeclined: anything but yes fails the step (exit 1) before it
// sends anything, and stops the run even with continue_on_error.
func TestConfirmDeclined(t *testing.T) {
	src := strings.Replace(deleteEnv, "    http: DELETE", "    continue_on_error: true\n    http: DELETE", 1) + "  - log: after\n"
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		term := &fakeTerminal{takes: time.Minute}
		r := execute(t, srv, src, func(o *runbook.Options) { o.Confirm = term.ask })
		wantCode(t, r, runbook.ExitFailed, "not confirmed")
		if n := deletes(r); n != 0 {
			t.Errorf("%d DELETEs sent after no", n)
		}
		for _, e := range r.events {
			if e.Type == runbook.LogLine && e.Reason == "after" {
				t.Errorf("the run went on after a confirm was declined")
			}
		}
	})
}

// TestConfirmStoppedAtThePrompt: Ctrl-C while the question waits stops the
// run as a signal does (exit 130), having sent nothing.
func TestConfirmStoppedAtThePrompt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		ctx, cancel := context.WithCancelCause(t.Context())
		defer cancel(nil)
		time.AfterFunc(time.Hour, func() { cancel(&runbook.Stopped{Signal: "SIGINT", Code: runbook.ExitSIGINT}) })
		term := &fakeTerminal{yes: true, takes: 10 * time.Hour}
		r := executeCtx(ctx, t, srv, deleteEnv, func(o *runbook.Options) { o.Confirm = term.ask })
		wantCode(t, r, runbook.ExitSIGINT)
		if n := deletes(r); n != 0 {
			t.Errorf("%d DELETEs sent", n)
		}
	})
}

// TestConfirmOnceForAFleet: a for_each step asks once, before any item; a
// step its if skips asks nothing; a dry run shows the text and asks nothing.
func TestConfirmOnceForAFleet(t *testing.T) {
	src := `steps:
  - name: Stop each VM
    for_each: '["101", "102"]'
    as: vm
    confirm: Stop ${{ 2 }} VMs?
    http: {method: PUT, url: "/configurations/1/vms/${{ vm }}", json: {runstate: stopped}}
    guard: {check: GET /configurations/1}
    wait_for: state.runstate == "stopped"
  - if: false
    confirm: Never asked
    http: DELETE /configurations/1
`
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		term := &fakeTerminal{yes: true, takes: time.Second}
		r := execute(t, srv, src, func(o *runbook.Options) { o.Confirm = term.ask })
		wantCode(t, r, 0)
		if len(term.asked) != 1 || term.asked[0] != "Stop 2 VMs?" {
			t.Errorf("asked %q, want once", term.asked)
		}
		if got, _ := srv.Runstate("vm/102"); got != "stopped" {
			t.Errorf("VM 102 is %s", got)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		term := &fakeTerminal{yes: true}
		r := execute(t, srv, src, func(o *runbook.Options) { o.Confirm, o.DryRun = term.ask, true })
		wantCode(t, r, 0)
		if len(term.asked) != 0 {
			t.Errorf("a dry run asked %q", term.asked)
		}
		if ev := confirmEvents(r); len(ev) != 1 || ev[0].Phase != runbook.PhaseNotAsked || ev[0].Reason != "Stop 2 VMs?" {
			t.Errorf("confirm events %+v, want one not asked", ev)
		}
	})
}

// TestResumeAfterConfirmation: a run stopped waiting for confirmation is
// resumed at that step; with --confirm the step runs once, and the step
// before it is not done again.
func TestResumeAfterConfirmation(t *testing.T) {
	file := writeRunbook(t, `steps:
  - name: Stop VM 101
    http: {method: PUT, url: /configurations/1/vms/101, json: {runstate: stopped}}
    guard: {check: GET /configurations/1}
    wait_for: state.runstate == "stopped"
  - id: delete
    confirm: Delete the environment?
    http: DELETE /configurations/1
`)
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		r := crashRun(t, srv, file, dir, "r01", &crashRig{}, false)
		wantCode(t, r, runbook.ExitBusy, "waiting for confirmation")
		r = crashRunWith(t, srv, file, dir, "r02", &crashRig{}, true, func(o *runbook.Options) { o.Approve = []string{"delete"} })
		wantCode(t, r, 0)
		var puts, dels int
		for _, e := range srv.Log() {
			if e.Mutation && e.Method == "PUT" {
				puts++
			}
			if e.Mutation && e.Method == "DELETE" {
				dels++
			}
		}
		if puts != 1 || dels != 1 {
			t.Errorf("%d PUTs and %d DELETEs, want one of each", puts, dels)
		}
		// Nothing left to resume.
		r = crashRun(t, srv, file, dir, "r03", &crashRig{}, true)
		wantCode(t, r, runbook.ExitUsage, "nothing to resume")
	})
}

// TestCheckConfirm: --confirm must name a step with confirm.
func TestCheckConfirm(t *testing.T) {
	rb, err := runbook.Load("test.yaml", []byte(header+deleteEnv), kinds())
	if err != nil {
		t.Fatal(err)
	}
	for _, ok := range [][]string{nil, {"delete"}, {"2"}, {"delete", "2"}} {
		if err := rb.CheckConfirm(ok); err != nil {
			t.Errorf("--confirm %v: %v", ok, err)
		}
	}
	for _, bad := range []string{"env", "1", "dlete", "3"} {
		err := rb.CheckConfirm([]string{bad})
		if runbook.ExitCode(err) != runbook.ExitUsage || !strings.Contains(err.Error(), "the steps with confirm are: delete") {
			t.Errorf("--confirm %s: %v, want a usage error naming delete", bad, err)
		}
	}
}

// TestConfirmWarnedAndPlanned: confirm on a step that changes nothing is
// warned about (confirm-no-change, which ignore_warnings silences), not on a
// command; plan shows the text as written.
func TestConfirmWarnedAndPlanned(t *testing.T) {
	src := `steps:
  - confirm: Read it?
    http: GET /configurations/1
  - confirm: Say it?
    log: hello
  - confirm: Run it?
    exec: [true]
  - confirm: Read it again?
    ignore_warnings: [confirm-no-change]
    http: GET /configurations/1
`
	if lines := warnedLines(t, src, runbook.WarnConfirmNoChange); len(lines) != 2 || lines[0] != 8 || lines[1] != 10 {
		t.Errorf("confirm-no-change on lines %v, want 8 and 10", lines)
	}
	plan := planOf(t, deleteEnv)
	if want := "Delete ${{ vars.env_id }} and its ${{ len(steps.env.state.vms) }} VMs (as ${{ env.TOKEN }})?"; plan[1].Confirm != want || plan[0].Confirm != "" {
		t.Errorf("plan shows confirm %q, want %q", plan[1].Confirm, want)
	}
}
