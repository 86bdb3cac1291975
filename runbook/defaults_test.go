package runbook_test

import (
	"strings"
	"testing"
	"time"

	"github.com/runbookhq/runbook/runbook"
)

func TestDesignSampleDefaults(t *testing.T) {
	rb, err := runbook.LoadFile("../testdata/valid/design-sample.yaml", kinds())
	if err != nil {
		t.Fatal(err)
	}
	if rb.Timeout != time.Hour || len(rb.Steps) != 3 {
		t.Fatalf("timeout %s, %d steps", rb.Timeout, len(rb.Steps))
	}
	read, suspend, vms := rb.Steps[0], rb.Steps[1], rb.Steps[2]
	if read.Guard.On || read.Wait.On {
		t.Errorf("a GET step is neither guarded nor waited on: guard %v wait %v", read.Guard.On, read.Wait.On)
	}
	if !suspend.Guard.On || suspend.Guard.Interval != 10*time.Second || suspend.Guard.BusyWhen.Source != runbook.DefaultBusyWhen {
		t.Errorf("suspend guard = %+v", suspend.Guard)
	}
	if !suspend.Wait.On || suspend.Wait.FailWhen.Source != runbook.DefaultFailWhen || suspend.Timeout != 30*time.Minute {
		t.Errorf("suspend wait = %+v, timeout %s", suspend.Wait, suspend.Timeout)
	}
	if vms.Wait.Timeout != 20*time.Minute || vms.As != "vm" || vms.Guard.Check == nil || vms.Retry.MaxRetryAfter != 15*time.Minute {
		t.Errorf("for_each step = %+v", vms)
	}
	var names []string
	for _, v := range rb.Env {
		names = append(names, v.Name)
	}
	if strings.Join(names, ",") != "SKYTAP_USER,SKYTAP_TOKEN" || rb.Env[0].Pos != (runbook.Pos{Line: 14, Col: 37}) {
		t.Errorf("required env = %v, want the two strict reads (not the optional SKYTAP_URL), the first at 14:37", rb.Env)
	}
	if strings.Join(rb.AuthEnv, ",") != "SKYTAP_USER,SKYTAP_TOKEN" {
		t.Errorf("credentials come from %v", rb.AuthEnv)
	}
}

// TestEnvInOrderOfFirstUse: defaults sections are read in the file's order, so
// the env names a runbook needs come out the same on every load.
func TestEnvInOrderOfFirstUse(t *testing.T) {
	src := []byte(`version: 1
name: env
defaults:
  exec:
    env: {A: "${{ env.FIRST }}"}
  http:
    base_url: https://x
    headers: {X: "${{ env.SECOND }}"}
steps:
  - log: ${{ env.THIRD }}
`)
	for range 20 {
		rb, err := runbook.Load("e.yaml", src, kinds())
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range rb.Env {
			names = append(names, e.Name)
		}
		if got := strings.Join(names, " "); got != "FIRST SECOND THIRD" {
			t.Fatalf("env %q, want FIRST SECOND THIRD", got)
		}
	}
}
