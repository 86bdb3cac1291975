package ui_test

import (
	"bytes"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/runbookhq/runbook/runbook"
	"github.com/runbookhq/runbook/sim"
	"github.com/runbookhq/runbook/steps"
	"github.com/runbookhq/runbook/ui"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// TestPlainOutputOfARun runs a runbook against the simulator under synctest,
// where time is exact, and compares every line the plain output wrote (what a
// pipe, a log or cron gets, and a terminal with NO_COLOR) with a golden file.
// -update rewrites it.
func TestPlainOutputOfARun(t *testing.T) {
	var out bytes.Buffer
	synctest.Test(t, func(t *testing.T) {
		srv := sim.New(sim.Config{Seed: 1, Rate: -1, Jitter: -1})
		srv.AddEnvironment(sim.EnvSpec{ID: "77", VMs: []sim.VMSpec{{ID: "7701"}, {ID: "7702"}}})
		srv.MakeBusy("env/77", 15*time.Second)
		srv.Inject(sim.Fault{Target: "env/77", Status: 423, RetryAfter: 5 * time.Second})
		srv.Inject(sim.Fault{Target: "env/77", Status: 422})
		src, err := os.ReadFile("testdata/suspend.yaml")
		if err != nil {
			t.Fatal(err)
		}
		rb, err := runbook.Load("suspend.yaml", src, steps.Kinds(&http.Client{Transport: srv.Transport()}, nil))
		if err != nil {
			t.Fatal(err)
		}
		err = rb.Run(t.Context(), runbook.Options{Observer: ui.NewPlain(&out, false), Env: map[string]string{"SKYTAP_USER": "u", "SKYTAP_TOKEN": "t0ken"}})
		if err != nil {
			t.Fatal(err)
		}
	})
	golden := filepath.Join("testdata", "suspend.plain")
	if *update {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, _ := os.ReadFile(golden)
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("plain output differs from %s:\n--- got\n%s\n--- want\n%s", golden, out.String(), want)
	}
	if bytes.Contains(out.Bytes(), []byte("\x1b")) {
		t.Errorf("plain output has escape codes")
	}
}
