package runbook_test

import (
	"net/http"
	"path/filepath"
	"testing"

	"github.com/runbookhq/runbook/runbook"
	"github.com/runbookhq/runbook/steps"
)

func kinds() map[string]runbook.Kind { return steps.Kinds(http.DefaultClient, nil) }

func TestExamplesAndValidRunbooksLoad(t *testing.T) {
	files, _ := filepath.Glob("../examples/*.yaml")
	more, _ := filepath.Glob("../testdata/valid/*.yaml")
	files = append(files, more...)
	lib, _ := filepath.Glob("../examples/lib/*.yaml")
	files = append(files, lib...)
	if len(files) < 4 {
		t.Fatalf("found only %d runbooks", len(files))
	}
	for _, f := range files {
		rb, err := runbook.LoadFile(f, kinds())
		if err != nil {
			t.Errorf("%s:\n%v", f, err)
			continue
		}
		if len(rb.Steps) == 0 || rb.Name == "" {
			t.Errorf("%s: loaded without steps or name", f)
		}
	}
}
