package main

import (
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/runbookhq/runbook/internal/cli"
)

// TestMain lets testscript run the real program as the `runbook` command.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"runbook": func() {
			os.Exit(cli.Main(os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
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

// update updates the scripts' own expected output (testscript's cmp against
// files in the archive); runbook's tests have the flag too, for their golden files.
var update = flag.Bool("update", false, "update the scripts")
