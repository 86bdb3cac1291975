package steps

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runbookhq/runbook/runbook"
)

func loadSteps(t *testing.T, steps string) *runbook.Runbook {
	t.Helper()
	rb, err := runbook.Load("t.yaml", []byte("version: 1\nname: t\nvars: {pod: web-1, word: \"a b; rm -rf /\"}\nsteps:\n"+steps), Kinds(http.DefaultClient, nil))
	if err != nil {
		t.Fatal(err)
	}
	return rb
}

func TestExecRendersEachArgumentWhole(t *testing.T) {
	rb := loadSteps(t, `  - exec: [sh, -c, 'printf "%s|" "$@"; printf "%s" "$X"; cat', sh, "${{ vars.pod }}", "${{ vars.word }}"]
    env: {X: "${{ vars.pod }}"}
    stdin: "-in"
`)
	call, err := rb.Steps[0].Action.Prepare(runbook.Scope{"vars": map[string]any{"pod": "web-1", "word": "a b; rm -rf /"}})
	if err != nil {
		t.Fatal(err)
	}
	out := call.Do(context.Background())
	if out.Err != nil || !out.Accepted {
		t.Fatalf("outcome %+v", out)
	}
	// The dangerous var arrives as one argument, never as shell code.
	if got := out.Response["stdout"]; got != "web-1|a b; rm -rf /|web-1-in" {
		t.Errorf("stdout %q", got)
	}
}

func TestExecStateIsStdoutJSON(t *testing.T) {
	rb := loadSteps(t, `  - shell: 'echo "{\"phase\": \"Running\"}"; echo warn >&2; exit $CODE'
    env: {CODE: "0"}
`)
	call, _ := rb.Steps[0].Action.Prepare(runbook.Scope{"vars": map[string]any{}})
	out := call.Do(context.Background())
	if !out.Accepted || out.State.(map[string]any)["phase"] != "Running" || out.Response["stderr"] != "warn\n" || out.Response["exit_code"] != 0 {
		t.Fatalf("outcome %+v", out)
	}
}

func TestExecFailureCarriesExitCodeAndMessage(t *testing.T) {
	rb := loadSteps(t, `  - shell: 'echo not found >&2; exit 3'
`)
	call, _ := rb.Steps[0].Action.Prepare(runbook.Scope{"vars": map[string]any{}})
	out := call.Do(context.Background())
	if out.Accepted || out.ExitCode != 3 || out.State != nil || !strings.Contains(out.Message, "exited with 3: not found") {
		t.Fatalf("outcome %+v", out)
	}
}

// TestCancelKillsTheProcessGroup: a deadline kills the command and whatever it
// started, so nothing outlives a stopped run.
func TestCancelKillsTheProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	rb := loadSteps(t, `  - shell: 'sleep 30 & echo $! > "$PIDFILE"; wait'
    env: {PIDFILE: "`+pidFile+`"}
`)
	call, _ := rb.Steps[0].Action.Prepare(runbook.Scope{"vars": map[string]any{}})
	// Cancel once the child has written its pid, however slow the machine.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var cancelled time.Time
	go func() {
		for ctx.Err() == nil {
			if raw, _ := os.ReadFile(pidFile); strings.HasSuffix(string(raw), "\n") {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancelled = time.Now()
		cancel()
	}()
	out := call.Do(ctx)
	if out.Err == nil {
		t.Fatalf("a cancelled command succeeded: %+v", out)
	}
	if took := time.Since(cancelled); took > 5*time.Second {
		t.Errorf("took %s to stop", took)
	}
	raw, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || pid <= 0 {
		// Never signal pid 0: that is this test's own process group.
		t.Fatalf("no child pid written: %q", raw)
	}
	for range 50 {
		// Gone, or a zombie waiting for a reaper: either way it no longer runs.
		stat, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) || (err == nil && strings.Contains(string(stat), ") Z ")) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("the child %d of the cancelled command still runs", pid)
	syscall.Kill(pid, syscall.SIGKILL)
}

func TestShellRefusesTemplates(t *testing.T) {
	_, err := runbook.Load("t.yaml", []byte("version: 1\nname: t\nsteps:\n  - shell: echo ${{ vars.x }}\n"), Kinds(http.DefaultClient, nil))
	if err == nil || !strings.Contains(err.Error(), "t.yaml:4:17: ${{ }} in a shell script would let a value run as shell code") {
		t.Errorf("error %v", err)
	}
}

// TestSuccessWithABackgroundChildIsDone: a command that exits 0 but leaves a
// child holding its output is done, not run again.
func TestSuccessWithABackgroundChildIsDone(t *testing.T) {
	rb := loadSteps(t, "  - shell: 'sleep 5 & echo started'\n")
	call, _ := rb.Steps[0].Action.Prepare(runbook.Scope{"vars": map[string]any{}})
	out := call.Do(context.Background())
	if !out.Accepted || out.Err != nil {
		t.Errorf("outcome %+v, want success", out)
	}
}
