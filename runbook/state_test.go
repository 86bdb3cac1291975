package runbook_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/runbookhq/runbook/runbook"
)

// TestJournalSurvivesATornLine: a crash mid-write leaves half a line; the next
// run starts on a new line and the reader skips the torn one.
func TestJournalSurvivesATornLine(t *testing.T) {
	dir := t.TempDir()
	j, err := runbook.OpenJournal(dir, "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	j.Close()
	os.WriteFile(j.Path(), []byte(`{"type":"run_started","run_id":"a"}`+"\n"+`{"type":"step_do`), 0o600)
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		j, err := runbook.OpenJournal(dir, "x.yaml")
		if err != nil {
			t.Fatal(err)
		}
		defer j.Close()
		r := execute(t, srv, "steps:\n  - id: read\n    http: GET /configurations/1\n", func(o *runbook.Options) { o.Journal, o.RunID = j, "b" })
		wantCode(t, r, 0)
	})
	recs, err := runbook.ReadJournal(filepath.Join(dir, "runs", filepath.Base(j.Path())))
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, r := range recs {
		types = append(types, r.RunID+":"+r.Type)
	}
	if got := strings.Join(types, " "); got != "a:run_started b:run_started b:step_started b:step_done b:run_done" {
		t.Errorf("records %s", got)
	}
	if st, _ := os.Stat(j.Path()); st.Mode().Perm() != 0o600 {
		t.Errorf("journal mode %v, want 0600", st.Mode().Perm())
	}
}

// TestResumeRestoresOutputsAndSkipsDoneSteps resumes a run stopped after its
// first step: the first step is not sent again and its outputs are there.
func TestResumeRestoresOutputsAndSkipsDoneSteps(t *testing.T) {
	dir := t.TempDir()
	src := `steps:
  - id: read
    http: GET /configurations/1
    outputs:
      first: response.body.vms[0].id
  - assert: vars.go == "yes"
  - log: first VM is ${{ steps.read.outputs.first }}
`
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		j, _ := runbook.OpenJournal(dir, "test.yaml")
		defer j.Close()
		r := execute(t, srv, "vars: {go: \"no\"}\n"+src, func(o *runbook.Options) { o.Journal, o.RunID = j, "first" })
		wantCode(t, r, runbook.ExitFailed, "assertion failed")
	})
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		j, _ := runbook.OpenJournal(dir, "test.yaml")
		defer j.Close()
		rb, _ := runbook.Load("test.yaml", []byte(header+"vars: {go: \"no\"}\n"+src), kinds())
		res, err := runbook.FindResume(j, rb)
		if err != nil {
			t.Fatal(err)
		}
		if res.Next != 2 || res.RunID != "first" {
			t.Fatalf("resume %+v, want step 2 of run first", res)
		}
		var logged string
		r := execute(t, srv, "vars: {go: \"no\"}\n"+src, func(o *runbook.Options) {
			o.Journal, o.RunID, o.Resume = j, "second", res
			o.Vars = map[string]string{"go": "yes"}
			o.Observer = runbook.ObserverFunc(func(e runbook.Event) {
				if e.Type == runbook.LogLine {
					logged = e.Reason
				}
			})
		})
		wantCode(t, r, 0)
		if len(r.log) != 0 {
			t.Errorf("%d requests; the completed read must not be sent again", len(r.log))
		}
		if logged != "first VM is 101" {
			t.Errorf("log %q: the restored output is missing", logged)
		}
	})
	// A changed runbook is not resumed.
	j, _ := runbook.OpenJournal(dir, "test.yaml")
	defer j.Close()
	rb, _ := runbook.Load("test.yaml", []byte(header+"vars: {go: \"maybe\"}\n"+src), kinds())
	if _, err := runbook.FindResume(j, rb); err == nil || !strings.Contains(err.Error(), "nothing to resume") {
		t.Errorf("resume after a finished run: %v", err)
	}
}
