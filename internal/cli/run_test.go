package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runbookhq/runbook/runbook"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader in two goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestSignalStopsTheRun stops a run in the middle of a wait, as SIGTERM does.
func TestSignalStopsTheRun(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "wait.yaml")
	os.WriteFile(file, []byte(`version: 1
name: Wait
defaults:
  http:
    base_url: https://cloud.skytap.com
    basic_auth: {username: u, password: p}
steps:
  - name: Wait forever
    http: GET /v2/configurations/9
    wait_for: state.runstate == "stopped"
`), 0o600)
	ctx, cancel := context.WithCancelCause(context.Background())
	time.AfterFunc(300*time.Millisecond, func() { cancel(&runbook.Stopped{Signal: "SIGTERM", Code: runbook.ExitSIGTERM}) })
	var stderr syncBuffer
	state := t.TempDir()
	if code := run(ctx, []string{"run", "--sim", "--sim-speed", "20", "--state-dir", state, file}, nil, io.Discard, &stderr); code != runbook.ExitSIGTERM {
		t.Errorf("exit %d, want 143; stderr:\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "stopped by SIGTERM") {
		t.Errorf("stderr does not say it was stopped:\n%s", stderr.String())
	}
	// The hint repeats what the run needs to go on the same way.
	if want := "continue with: runbook run --resume --state-dir " + state + " --sim --sim-speed 20 " + file; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
	}
}

// TestSecretsNeverAppear runs every example, and a runbook that tries hard to
// print its secrets, in every output mode with known credentials, and fails if
// either value appears in stdout, stderr or the journal.
func TestSecretsNeverAppear(t *testing.T) {
	const user, token = "ops-user-7f3a", "tok-S3CRET-9d2e1"
	files, _ := filepath.Glob("../../examples/*.yaml")
	files = append(files, "../../testdata/valid/secrets.yaml")
	modes := [][]string{{"--output", "plain"}, {"--output", "plain", "-v"}, {"--output", "json"}, {"--output", "json", "-v"}, {"-q"}, {"--output", "human"}, {"--dry-run", "-v"}}
	// How each run must end, so that one that failed at start-up cannot pass
	// by printing nothing: --sim refuses to run commands, and the bait ends
	// on an assertion that names the token.
	codes := map[string]int{"../../examples/kubectl-scale.yaml": runbook.ExitUsage, "../../testdata/valid/secrets.yaml": runbook.ExitFailed}
	for _, file := range files {
		for _, mode := range modes {
			t.Run(filepath.Base(file)+strings.Join(mode, ""), func(t *testing.T) {
				t.Parallel()
				state := t.TempDir()
				var stdout, stderr syncBuffer
				// --timeout bounds a run that would wait long; --yes lets a
				// confirm's step run; --sim-log is checked as an output too.
				simLog := filepath.Join(t.TempDir(), "sim.jsonl")
				args := append([]string{"run", "--sim", "--sim-speed", "200", "--timeout", "5m", "--state-dir", state, "--yes"}, mode...)
				if mode[0] != "--dry-run" {
					args = append(args, "--sim-log", simLog)
				}
				code := run(context.Background(), append(args, file), []string{"SKYTAP_USER=" + user, "SKYTAP_TOKEN=" + token, "NO_COLOR=1"}, &stdout, &stderr)
				if code != codes[file] {
					t.Errorf("exit %d, want %d:\n%s", code, codes[file], stderr.String())
				}
				journals, _ := filepath.Glob(filepath.Join(state, "runs", "*", "*"))
				outputs := map[string]string{"stdout": stdout.String(), "stderr": stderr.String()}
				for _, j := range journals {
					b, _ := os.ReadFile(j)
					outputs[j] = string(b)
				}
				if b, err := os.ReadFile(simLog); err == nil {
					outputs["--sim-log"] = string(b)
				} else if mode[0] != "--dry-run" && codes[file] != runbook.ExitUsage {
					t.Errorf("no --sim-log: %v", err)
				}
				if stdout.String()+stderr.String() == "" && mode[0] != "-q" {
					t.Fatalf("no output at all")
				}
				for where, text := range outputs {
					for _, secret := range []string{user, token} {
						if strings.Contains(text, secret) {
							t.Errorf("%s shows %q:\n%s", where, secret, text)
						}
					}
				}
			})
		}
	}
}

// TestJSONEvents: --output json writes one JSON object per event per line on
// stdout, with the stable field names of the README, and nothing else there;
// stderr stays empty on success, even with --sim.
func TestJSONEvents(t *testing.T) {
	var stdout, stderr syncBuffer
	code := run(context.Background(), []string{"run", "--sim", "--sim-speed", "200", "--state-dir", t.TempDir(), "--output", "json", "../../examples/run-vms-in-order.yaml"}, nil, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if stderr.String() != "" {
		t.Errorf("stderr of a successful JSON run: %q", stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	seen := map[string]int{}
	runID := ""
	for i, line := range lines {
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("line %d is not JSON: %q", i+1, line)
		}
		for _, k := range []string{"time", "run_id", "event"} {
			if _, ok := e[k]; !ok {
				t.Fatalf("line %d has no %q: %s", i+1, k, line)
			}
		}
		if _, err := time.Parse(time.RFC3339Nano, e["time"].(string)); err != nil {
			t.Errorf("line %d: time %v", i+1, e["time"])
		}
		if runID == "" {
			runID = e["run_id"].(string)
		} else if e["run_id"] != runID {
			t.Errorf("line %d: run_id %v, want %s", i+1, e["run_id"], runID)
		}
		ev := e["event"].(string)
		seen[ev]++
		switch ev {
		case "waiting":
			if _, ok := e["delay"].(float64); !ok || e["reason"] == nil {
				t.Errorf("waiting without delay or reason: %s", line)
			}
		case "attempt":
			if e["step"] == nil || e["index"] == nil || e["attempt"] == nil {
				t.Errorf("attempt without step, index or attempt: %s", line)
			}
			if e["index"].(float64) == 2 && (e["item"] == nil || e["item_index"] == nil) {
				t.Errorf("a for_each attempt without item and item_index: %s", line)
			}
		case "failed":
			if e["error"] == nil {
				t.Errorf("failed without error: %s", line)
			}
		}
	}
	for _, ev := range []string{"run_started", "step_started", "probe", "attempt", "waiting", "done", "run_done"} {
		if seen[ev] == 0 {
			t.Errorf("no %q event in:\n%s", ev, stdout.String())
		}
	}
	if seen["request"] != 0 {
		t.Errorf("request events without -v")
	}
}
