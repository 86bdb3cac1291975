package runbook_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/runbookhq/runbook/runbook"
)

// FuzzLoad: no input may panic or hang the loader, and every problem it reports
// carries a position in the file. Seeds: every runbook in the repository.
func FuzzLoad(f *testing.F) {
	for _, pattern := range []string{"../examples/*.yaml", "../testdata/valid/*.yaml", "../testdata/invalid/*.yaml"} {
		files, _ := filepath.Glob(pattern)
		for _, file := range files {
			if src, err := os.ReadFile(file); err == nil {
				f.Add(src)
			}
		}
	}
	k := kinds()
	f.Fuzz(func(t *testing.T, src []byte) {
		rb, err := runbook.Load("fuzz.yaml", src, k)
		if err == nil {
			if rb == nil || len(rb.Steps) == 0 {
				t.Fatalf("loaded without steps")
			}
			return
		}
		errs, ok := err.(runbook.Errors)
		if !ok || len(errs) == 0 {
			t.Fatalf("error %T %v is not a list of positioned errors", err, err)
		}
		for _, e := range errs {
			if e.Pos.Line < 1 || e.Pos.Col < 1 || e.File != "fuzz.yaml" || e.Msg == "" {
				t.Fatalf("error without a position: %+v", e)
			}
			_ = e.Pretty()
		}
	})
}
