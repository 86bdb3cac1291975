package runbook_test

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runbookhq/runbook/runbook"
)

// update rewrites the golden files of testdata/invalid. The flag has the name
// of the module root's, so `go test ./... -update` rewrites them all.
var update = flag.Bool("update", false, "rewrite the golden files")

// TestInvalidRunbooks loads every runbook of testdata/invalid, each with one
// mistake, as validate does, and compares the message, position and caret with
// its golden file.
func TestInvalidRunbooks(t *testing.T) {
	// From the module root, so the messages name the files as the command
	// line given them would.
	t.Chdir("..")
	files, _ := filepath.Glob("testdata/invalid/*.yaml")
	if len(files) < 50 {
		t.Fatalf("only %d invalid runbooks", len(files))
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".yaml"), func(t *testing.T) {
			_, err := runbook.LoadFile(file, kinds())
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
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("no golden file (run go test ./runbook -run TestInvalidRunbooks -update): %v", err)
			}
			if got != string(want) {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}
