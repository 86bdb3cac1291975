package cli

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runbookhq/runbook/runbook"
)

// TestMetricsThatFailAreAWarning: a metrics file that cannot be written and a
// Pushgateway that does not answer are warnings; the run's exit code stands,
// and the gateway's password is never printed.
func TestMetricsThatFailAreAWarning(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "log.yaml")
	os.WriteFile(file, []byte("version: 1\nname: Log\nsteps: [{log: hello}]\n"), 0o600)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	var stderr syncBuffer
	args := []string{"run", "-q", "--state-dir", t.TempDir(), "--metrics-file", filepath.Join(dir, "missing", "m.prom"),
		"--pushgateway", "http://ops:pw-s3cret@" + closed, file}
	if code := run(context.Background(), args, nil, io.Discard, &stderr); code != runbook.ExitOK {
		t.Fatalf("exit %d, want 0; stderr:\n%s", code, stderr.String())
	}
	out := stderr.String()
	for _, want := range []string{"warning: the metrics file " + filepath.Join(dir, "missing", "m.prom") + " was not written", "warning: the metrics were not pushed to http://ops:***@"} {
		if !strings.Contains(out, want) {
			t.Errorf("stderr lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "pw-s3cret") {
		t.Errorf("stderr shows the Pushgateway's password:\n%s", out)
	}
}

func TestBadMetricsFlagsAreUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"run", "--pushgateway", "ftp://x", "f.yaml"},
		{"run", "--keep-runs", "-1", "f.yaml"},
		{"run", "--resume=maybe", "f.yaml"},
		{"run", "--resume", "auto", "f.yaml"},
		{"history", "--output", "yaml"},
	} {
		var stderr syncBuffer
		if code := run(context.Background(), args, nil, io.Discard, &stderr); code != runbook.ExitUsage {
			t.Errorf("%v: exit %d, want 2; stderr:\n%s", args, code, stderr.String())
		}
	}
}
