package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"context"
	"errors"
	"github.com/runbookhq/runbook/runbook"
	"github.com/runbookhq/runbook/steps"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain lets testscript run the real program as the `runbook` command.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"runbook": func() {
			os.Exit(run(context.Background(), os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
		},
	})
}

// TestScripts runs the end-to-end tests in testdata/script: exit codes, output and
// messages of the binary, and runs against the simulator.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Cmds:                map[string]func(*testscript.TestScript, bool, []string){"exits": exits},
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
	if code := run(ctx, []string{"run", "--sim", file}, nil, io.Discard, &stderr); code != runbook.ExitSIGTERM {
		t.Errorf("exit %d, want 143; stderr:\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "stopped by SIGTERM") {
		t.Errorf("stderr does not say it was stopped:\n%s", stderr.String())
	}
}

var update = flag.Bool("update", false, "rewrite the golden files of testdata/invalid")

// TestInvalidRunbooks loads every runbook of testdata/invalid, each with one
// mistake, and compares the message, position and caret with its golden file.
func TestInvalidRunbooks(t *testing.T) {
	files, _ := filepath.Glob("testdata/invalid/*.yaml")
	if len(files) < 50 {
		t.Fatalf("only %d invalid runbooks", len(files))
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".yaml"), func(t *testing.T) {
			_, err := loadRunbook(file, steps.Kinds(http.DefaultClient, nil))
			var errs runbook.Errors
			if !errors.As(err, &errs) {
				t.Fatalf("loaded with %v, want load errors", err)
			}
			if len(errs) != 1 {
				t.Errorf("%d errors for one mistake:\n%s", len(errs), errs.Pretty())
			}
			if code := runbook.ExitCode(err); code != runbook.ExitInvalid {
				t.Errorf("exit code %d, want 65", code)
			}
			got := errs.Pretty() + "\n"
			golden := strings.TrimSuffix(file, ".yaml") + ".want"
			if *update {
				os.WriteFile(golden, []byte(got), 0o644)
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("no golden file (run go test -run TestInvalidRunbooks -update): %v", err)
			}
			if got != string(want) {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}
