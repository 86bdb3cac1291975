package runbook_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/runbookhq/runbook/runbook"
	"github.com/runbookhq/runbook/sim"
)

// writeRunbook writes header+src to a file of its own and returns its path.
func writeRunbook(t *testing.T, src string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "test.yaml")
	if err := os.WriteFile(file, []byte(header+src), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// TestJournalSurvivesATornLine: a crash mid-write leaves half a line at the
// end of a run's file; reading it back skips the torn line and keeps the rest.
func TestJournalSurvivesATornLine(t *testing.T) {
	file := writeRunbook(t, "steps:\n  - id: read\n    http: GET /configurations/1\n  - assert: false\n")
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		r := crashRun(t, srv, file, dir, "r01", &crashRig{}, false)
		wantCode(t, r, runbook.ExitFailed)
	})
	store, _ := runbook.OpenStore(dir, true, file, false)
	last, err := store.Last()
	if err != nil || last == nil {
		t.Fatalf("last run: %v %v", last, err)
	}
	whole := len(last.Records)
	f, _ := os.OpenFile(last.Path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"type":"step_do`)
	f.Close()
	if last, _ = store.Last(); len(last.Records) != whole {
		t.Errorf("%d records read back after a torn line, want %d", len(last.Records), whole)
	}
	if st, _ := os.Stat(last.Path); st.Mode().Perm() != 0o600 {
		t.Errorf("journal mode %v, want 0600", st.Mode().Perm())
	}
}

// TestResumeRestoresOutputsAndSkipsDoneSteps resumes a run stopped after its
// first step: the first step is not sent again and its outputs are there.
func TestResumeRestoresOutputsAndSkipsDoneSteps(t *testing.T) {
	src := `vars: {go: "no"}
steps:
  - id: read
    http: GET /configurations/1
    outputs:
      first: response.body.vms[0].id
  - assert: vars.go == "yes"
  - log: first VM is ${{ steps.read.outputs.first }}
`
	file := writeRunbook(t, src)
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		r := crashRun(t, srv, file, dir, "r01", &crashRig{}, false)
		wantCode(t, r, runbook.ExitFailed, "assertion failed")
		sent := len(srv.Log())
		r = crashRunVars(t, srv, file, dir, "r02", map[string]string{"go": "yes"})
		wantCode(t, r, 0)
		if n := len(srv.Log()) - sent; n != 0 {
			t.Errorf("%d requests; the completed read must not be sent again", n)
		}
		logged := ""
		for _, e := range r.events {
			if e.Type == runbook.LogLine {
				logged = e.Reason
			}
		}
		if logged != "first VM is 101" {
			t.Errorf("log %q: the restored output is missing", logged)
		}
	})
	// Nothing is left to resume, and a changed runbook is not resumed.
	store, _ := runbook.OpenStore(dir, true, file, false)
	last, _ := store.Last()
	rb, _ := runbook.LoadFile(file, kinds())
	if _, err := runbook.FindResume(last, rb); err == nil || !strings.Contains(err.Error(), "nothing to resume") {
		t.Errorf("resume after a finished run: %v", err)
	}
}

// crashRunVars is a resume with --var values.
func crashRunVars(t *testing.T, srv *sim.Server, file, dir, id string, vars map[string]string) result {
	t.Helper()
	return crashRunWith(t, srv, file, dir, id, &crashRig{}, true, func(o *runbook.Options) { o.Vars = vars })
}

// failingFile is a disk that fills up after n writes.
type failingFile struct {
	runbook.SyncFile
	n *int
}

func (f failingFile) Write(p []byte) (int, error) {
	if *f.n <= 0 {
		return 0, syscall.ENOSPC
	}
	*f.n--
	return f.SyncFile.Write(p)
}

// TestJournalThatCannotBeWrittenStopsTheRun: a journal record that cannot be
// written (a full disk) stops the run before its next request, with exit 74,
// also when that request is the POST whose intent could not be journaled.
func TestJournalThatCannotBeWrittenStopsTheRun(t *testing.T) {
	src := `steps:
  - name: Read
    http: GET /configurations/1
  - name: Create
    http: {method: POST, url: /configurations, json: {template_id: "7", name: made}}
    guard: false
    wait_for: false
  - name: Read again
    http: GET /configurations/1
`
	file := writeRunbook(t, src)
	// Records: run_started, step_started, step_done, step_started, the POST's
	// intent, its answer, ...; requests: the read, the POST, the read.
	for writes, sent := range map[int]int{0: 0, 2: 1, 4: 1, 5: 2} {
		t.Run(fmt.Sprint(writes, " writes"), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := quietSim(t, nil)
				srv.AddTemplate(sim.TemplateSpec{ID: "7", VMs: []sim.VMSpec{{ID: "70"}}})
				left := writes
				r := crashRunWith(t, srv, file, t.TempDir(), "r01", &crashRig{}, false, func(o *runbook.Options) {
					runbook.WrapJournalFile(o.Journal, func(f runbook.SyncFile) runbook.SyncFile { return failingFile{f, &left} })
				})
				wantCode(t, r, runbook.ExitIOErr, "cannot be written", "no space left")
				if writes == 5 && !strings.Contains(r.err.Error(), "/configurations was sent and answered 200 OK") {
					t.Errorf("a POST sent whose answer could not be journaled is not told as sent: %v", r.err)
				}
				if n := len(srv.Log()); n != sent {
					t.Errorf("%d requests sent, want %d: nothing goes after a record that could not be written", n, sent)
				}
			})
		})
	}
}

// TestLargeAnswerIsNotJournaledWhole: a record never passes 1 MiB. A read
// step whose answer did not fit is read again by a resume; a change never is.
func TestLargeAnswerIsNotJournaledWhole(t *testing.T) {
	src := `steps:
  - id: big
    http: GET /configurations/1
    outputs: {n: len(response.body.blob)}
  - assert: vars.go == "yes" && len(steps.big.response.body.blob) > 0
    message: stop here
vars: {go: "no"}
`
	file := writeRunbook(t, src)
	dir := t.TempDir()
	blob := strings.Repeat("x", 3<<20)
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		srv.Inject(sim.Fault{Target: "env/1", Method: "GET", Status: 200, Body: `{"runstate":"running","blob":"` + blob + `"}`, Times: 2})
		r := crashRun(t, srv, file, dir, "r01", &crashRig{}, false)
		wantCode(t, r, runbook.ExitFailed, "stop here")
		store, _ := runbook.OpenStore(dir, true, file, false)
		last, _ := store.Last()
		b, _ := os.ReadFile(last.Path)
		for _, line := range strings.Split(string(b), "\n") {
			if len(line) > 1<<20 {
				t.Errorf("a journal line of %d bytes", len(line))
			}
		}
		var omitted []string
		for _, rec := range last.Records {
			omitted = append(omitted, rec.Omitted...)
		}
		if !strings.Contains(strings.Join(omitted, " "), "result.response.body") {
			t.Errorf("omitted %v: the record does not say what it left out", omitted)
		}
		sent := len(srv.Log())
		r = crashRunVars(t, srv, file, dir, "r02", map[string]string{"go": "yes"})
		wantCode(t, r, 0)
		if n := len(srv.Log()) - sent; n != 1 {
			t.Errorf("%d requests on resume; the read whose answer was not journaled is read once again", n)
		}
	})
}

// BenchmarkResumeAfterAHundredRuns: resuming after a hundred runs of 2 MiB
// each reads only the last one's journal, so its cost does not grow with the
// history (MiB/resume).
func BenchmarkResumeAfterAHundredRuns(b *testing.B) {
	dir := b.TempDir()
	file := filepath.Join(dir, "big.yaml")
	os.WriteFile(file, []byte(header+"steps:\n  - id: read\n    http: GET /configurations/1\n"), 0o600)
	store, err := runbook.OpenStore(filepath.Join(dir, "state"), true, file, false)
	if err != nil {
		b.Fatal(err)
	}
	rb, _ := runbook.LoadFile(file, kinds())
	body := map[string]any{"blob": strings.Repeat("y", 900<<10)}
	for i := range 100 {
		j, err := store.Create(fmt.Sprintf("20260101T0000%02dZ-aaaaaa", i))
		if err != nil {
			b.Fatal(err)
		}
		// A run of 2 MiB: its start, then large answers.
		var content []byte
		for k := range 3 {
			rec := runbook.Record{Type: "run_started", Hash: rb.Hash, Time: time.Now()}
			if k > 0 {
				rec = runbook.Record{Type: "step_done", Step: 1, Result: map[string]any{"response": map[string]any{"body": body}}}
			}
			line, _ := json.Marshal(rec)
			content = append(append(content, line...), '\n')
		}
		if err := os.WriteFile(j.Path(), content, 0o600); err != nil {
			b.Fatal(err)
		}
		j.Close()
	}
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for b.Loop() {
		last, err := store.Last()
		if err != nil || last == nil {
			b.Fatal(err)
		}
		if _, err := runbook.FindResume(last, rb); err != nil {
			b.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N)/(1<<20), "MiB/resume")
}

// TestPauseOutlivesTheRun: a Retry-After pause is journaled, and the next
// run of the runbook, fresh or resumed, sends nothing to that host before it
// ends; the hint after exit 75 says when.
func TestPauseOutlivesTheRun(t *testing.T) {
	src := `steps:
  - name: Stop
    http: {method: PUT, url: /configurations/1/vms/101, json: {runstate: stopped}}
    wait_for: state.runstate == "stopped"
    retry: {max_retry_after: 10s}
`
	file := writeRunbook(t, src)
	for _, resume := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			srv := quietSim(t, nil)
			srv.Inject(sim.Fault{Target: "vm/101", Method: "PUT", Status: 423, RetryAfter: 30 * time.Second})
			dir := t.TempDir()
			r := crashRun(t, srv, file, dir, "r01", &crashRig{}, false)
			wantCode(t, r, runbook.ExitBusy, "exceeds max_retry_after")
			var se *runbook.StepError
			if !errors.As(r.err, &se) || time.Until(se.Until) != 30*time.Second {
				t.Errorf("the error does not say when the pause ends: %+v", se)
			}
			locked, sent := time.Now(), len(srv.Log())
			r = crashRun(t, srv, file, dir, "r02", &crashRig{}, resume)
			wantCode(t, r, 0)
			later := srv.Log()[sent:]
			if len(later) == 0 {
				t.Fatalf("resume %v: nothing sent", resume)
			}
			for _, e := range later {
				if d := e.Time.Sub(locked); d < 30*time.Second {
					t.Errorf("resume %v: %s %s %s after the 423, before its Retry-After of 30s", resume, e.Method, e.Path, d)
				}
			}
		})
	}
}

// TestStateDirNeedsAnAbsoluteHome: a relative or missing home would keep
// journals and locks under the directory a run starts in.
func TestStateDirNeedsAnAbsoluteHome(t *testing.T) {
	for _, env := range []map[string]string{{}, {"HOME": "rel"}, {"XDG_STATE_HOME": "relative"}} {
		if dir, err := runbook.DefaultStateDir(env); runbook.ExitCode(err) != runbook.ExitConfig || !strings.Contains(err.Error(), "--state-dir") {
			t.Errorf("%v: %q, %v; want exit 78 asking for --state-dir", env, dir, err)
		}
	}
	if dir, err := runbook.DefaultStateDir(map[string]string{"HOME": "/home/u", "XDG_STATE_HOME": "relative"}); err != nil || dir != "/home/u/.local/state/runbook" {
		t.Errorf("a relative XDG_STATE_HOME is ignored: got %q, %v", dir, err)
	}
}
