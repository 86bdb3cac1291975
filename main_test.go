package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/runbookhq/runbook/runbook"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain lets testscript run the real program as the `runbook` command.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"runbook": func() {
			os.Exit(runMain(os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
		},
	})
}

// TestScripts runs the end-to-end tests in testdata/script: exit codes, output and
// messages of the binary, and runs against the simulator.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		UpdateScripts:       *update,
		Cmds: map[string]func(*testscript.TestScript, bool, []string){
			"exits": exits, "sim": simCmd, "hook": hookCmd, "simlog": simLogCmd, "pty": ptyCmd, "waitfor": waitForCmd, "closedout": closedOutCmd,
			"hostile": hostileCmd,
		},
		Setup: func(env *testscript.Env) error {
			examples, err := filepath.Abs("examples")
			if err != nil {
				return err
			}
			env.Setenv("EXAMPLES", examples)
			env.Setenv("NO_COLOR", "1")
			return nil
		},
	})
}

// exits runs a program and checks its exit code: `exits 124 runbook run x.yaml`.
// Its output can be checked with stdout and stderr afterwards.
func exits(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits CODE program [args...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exits: %q is not an exit code", args[0])
	}
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("exits: %v", err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited with %d, want %d", args[1], got, want)
	}
}

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

// TestSimServes starts `runbook sim` on a free loopback port, reads the request
// log through the control API, and stops it as a signal would.
func TestSimServes(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	var stderr syncBuffer
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"sim", "--addr", "127.0.0.1:0", "--scenario", "quiet"}, nil, io.Discard, &stderr)
	}()
	var addr string
	for deadline := time.Now().Add(5 * time.Second); addr == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := regexp.MustCompile(`listening on (http://[0-9.:]+)`).FindStringSubmatch(stderr.String()); m != nil {
			addr = m[1]
		}
	}
	if addr == "" {
		t.Fatalf("the simulator never said where it listens: %q", stderr.String())
	}
	req, _ := http.NewRequest("GET", addr+"/v2/configurations/55", nil)
	req.SetBasicAuth("u", "t")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"runstate":"running"`) {
		t.Errorf("GET of an auto-provisioned environment: %d %s", resp.StatusCode, body)
	}
	resp, err = http.Get(addr + "/__sim/log")
	if err != nil {
		t.Fatal(err)
	}
	var log []map[string]any
	json.NewDecoder(resp.Body).Decode(&log)
	resp.Body.Close()
	if len(log) != 1 || log[0]["path"] != "/v2/configurations/55" {
		t.Errorf("log %v, want the one GET", log)
	}
	cancel(&runbook.Stopped{Signal: "SIGINT", Code: runbook.ExitSIGINT})
	if c := <-code; c != 0 {
		t.Errorf("sim exited %d after a signal, want 0 (stopping the server is its normal end)", c)
	}
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

// update updates the scripts' own expected output (testscript's cmp against
// files in the archive); runbook's tests have the flag too, for their golden files.
var update = flag.Bool("update", false, "update the scripts")

// TestSecretsNeverAppear runs every example, and a runbook that tries hard to
// print its secrets, in every output mode with known credentials, and fails if
// either value appears in stdout, stderr or the journal.
func TestSecretsNeverAppear(t *testing.T) {
	const user, token = "ops-user-7f3a", "tok-S3CRET-9d2e1"
	files, _ := filepath.Glob("examples/*.yaml")
	files = append(files, "testdata/valid/secrets.yaml")
	modes := [][]string{{"--output", "plain"}, {"--output", "plain", "-v"}, {"--output", "json"}, {"--output", "json", "-v"}, {"-q"}, {"--output", "human"}, {"--dry-run", "-v"}}
	// How each run must end, so that one that failed at start-up cannot pass
	// by printing nothing: --sim refuses to run commands, and the bait ends
	// on an assertion that names the token.
	codes := map[string]int{"examples/kubectl-scale.yaml": runbook.ExitUsage, "testdata/valid/secrets.yaml": runbook.ExitFailed}
	for _, file := range files {
		for _, mode := range modes {
			t.Run(filepath.Base(file)+strings.Join(mode, ""), func(t *testing.T) {
				t.Parallel()
				state := t.TempDir()
				var stdout, stderr syncBuffer
				// --timeout bounds a run that would wait long.
				args := append([]string{"run", "--sim", "--sim-speed", "200", "--timeout", "5m", "--state-dir", state}, mode...)
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
	code := run(context.Background(), []string{"run", "--sim", "--sim-speed", "200", "--state-dir", t.TempDir(), "--output", "json", "examples/run-vms-in-order.yaml"}, nil, &stdout, &stderr)
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

// TestSimBindsToLoopbackByDefault: a simulator accepts any credentials, so it
// must not listen beyond this machine unless told to.
func TestSimBindsToLoopbackByDefault(t *testing.T) {
	addr := simCommand(context.Background(), io.Discard).Flags().Lookup("addr").DefValue
	host, _, err := net.SplitHostPort(addr)
	if err != nil || !net.ParseIP(host).IsLoopback() {
		t.Errorf("runbook sim listens on %q by default, want a loopback address", addr)
	}
}
