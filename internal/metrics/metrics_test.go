package metrics

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/runbookhq/runbook/runbook"
)

var (
	t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	t1 = t0.Add(90 * time.Second)
)

func sample(code int) Run {
	tally := NewTally()
	for _, e := range []runbook.Event{
		{Type: runbook.Request, Target: "PUT https://x/1", Status: 423},
		{Type: runbook.Attempt, Step: 1, Status: 423},
		{Type: runbook.Retrying, Step: 1},
		{Type: runbook.Request, Target: "PUT https://x/1", Status: 200},
		{Type: runbook.Request, Target: "GET https://x/1"}, // no answer
		{Type: runbook.Request, Target: "exec kubectl get pods"},
		{Type: runbook.StepDone, Step: 1},
		{Type: runbook.StepDone, Step: 2, ItemNo: 1}, // an item, not a step
		{Type: runbook.StepFailed, Step: 2},
	} {
		tally.Observe(e)
	}
	return Run{Runbook: `Restart "prod"`, Start: t0, End: t1, ExitCode: code, Counts: tally.Counts()}
}

// parse reads a metrics file back with the official parser.
func parse(t *testing.T, path string) map[string]*dto.MetricFamily {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(f)
	if err != nil {
		t.Fatalf("the file does not parse: %v", err)
	}
	return mfs
}

// value is the value of name's series whose labels include want.
func value(t *testing.T, mfs map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	t.Helper()
	for _, m := range mfs[name].GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			match = match && got[k] == v
		}
		if match {
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue(), true
			}
			return m.GetCounter().GetValue(), true
		}
	}
	return 0, false
}

func TestFileParsesBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "runbook.prom")
	r := sample(0)
	r.LastSuccess = t1
	if _, err := WriteFile(path, r); err != nil {
		t.Fatal(err)
	}
	mfs := parse(t, path)
	name := map[string]string{Label: `Restart "prod"`}
	with := func(k, v string) map[string]string { return map[string]string{Label: `Restart "prod"`, k: v} }
	for _, c := range []struct {
		metric string
		labels map[string]string
		want   float64
	}{
		{LastRun, name, float64(t1.Unix())},
		{LastSuccess, name, float64(t1.Unix())},
		{Duration, name, 90},
		{ExitCode, name, 0},
		{Requests, with("code", "423"), 1},
		{Requests, with("code", "200"), 1},
		{Requests, with("code", "error"), 1},
		{Retries, with("reason", "423"), 1},
		{Steps, with("result", "done"), 1},
		{Steps, with("result", "failed"), 1},
		{Steps, with("result", "stopped"), 0},
	} {
		if got, ok := value(t, mfs, c.metric, c.labels); !ok || got != c.want {
			t.Errorf("%s%v = %v (found %v), want %v", c.metric, c.labels, got, ok, c.want)
		}
	}
	if n := len(mfs[Requests].GetMetric()); n != 3 {
		t.Errorf("%d request series, want 3 (a command is not an HTTP request)", n)
	}
	for name := range mfs {
		if !strings.HasPrefix(name, "runbook_") {
			t.Errorf("the file has %s: only the run's metrics belong there", name)
		}
	}
}

func TestFailedRunKeepsTheLastSuccess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "runbook.prom")
	// Never succeeded: no last success at all.
	if _, err := WriteFile(path, sample(75)); err != nil {
		t.Fatal(err)
	}
	if _, ok := parse(t, path)[LastSuccess]; ok {
		t.Errorf("a runbook that never succeeded has %s", LastSuccess)
	}
	ok := sample(0)
	ok.LastSuccess = t1
	if _, err := WriteFile(path, ok); err != nil {
		t.Fatal(err)
	}
	failed := sample(1)
	failed.Start, failed.End = t1.Add(time.Hour), t1.Add(2*time.Hour)
	if _, err := WriteFile(path, failed); err != nil {
		t.Fatal(err)
	}
	mfs := parse(t, path)
	name := map[string]string{Label: `Restart "prod"`}
	if got, _ := value(t, mfs, LastSuccess, name); got != float64(t1.Unix()) {
		t.Errorf("%s = %v after a failure, want the earlier success %v", LastSuccess, got, float64(t1.Unix()))
	}
	if got, _ := value(t, mfs, ExitCode, name); got != 1 {
		t.Errorf("%s = %v, want 1", ExitCode, got)
	}
	// Another runbook's success in the same file is not this one's.
	if got, err := ReadLastSuccess(path, "Another"); err != nil || !got.IsZero() {
		t.Errorf("ReadLastSuccess of another runbook = %v, %v", got, err)
	}
}

func TestWriteIsAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "runbook.prom")
	os.WriteFile(path, []byte("garbage that is not the text format {\n"), 0o644)
	// A previous file that does not parse is said, and replaced all the
	// same: the failure's exit code matters more than the last success.
	if warning, err := WriteFile(path, sample(1)); warning == nil || err != nil {
		t.Errorf("a failed run over an unreadable file: warning %v, error %v", warning, err)
	}
	parse(t, path)
	if _, err := WriteFile(path, sample(0)); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "runbook.prom" {
		t.Errorf("the directory holds %v, want runbook.prom alone (no temporary file left)", entries)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644: the node exporter reads it", st.Mode().Perm())
	}
	if _, err := WriteFile(filepath.Join(dir, "missing", "runbook.prom"), sample(0)); err == nil {
		t.Error("writing into a missing directory: no error")
	}
}

func TestPush(t *testing.T) {
	var method, path string
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		method, path = r.Method, r.URL.EscapedPath()
		body, _ = io.ReadAll(r.Body)
		if u, p, _ := r.BasicAuth(); u != "ops" || p != "s3cret-pw" {
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	defer srv.Close()
	gateway := strings.Replace(srv.URL, "://", "://ops:s3cret-pw@", 1)
	r := sample(0)
	r.Runbook, r.LastSuccess = "restart", t1
	if err := Push(context.Background(), gateway, r, nil); err != nil {
		t.Fatal(err)
	}
	// The name base64-encoded, which every Pushgateway reads back exactly.
	if want := "/metrics/job/runbook/runbook@base64/" + base64.RawURLEncoding.EncodeToString([]byte("restart")); method != http.MethodPut || path != want {
		t.Errorf("%s %s, want PUT %s", method, path, want)
	}
	// The body holds the group; the runbook's name is in the path, not on
	// each metric, as the Pushgateway requires.
	dec := expfmt.NewDecoder(bytes.NewReader(body), expfmt.NewFormat(expfmt.TypeTextPlain))
	names := map[string]bool{}
	for {
		var mf dto.MetricFamily
		if err := dec.Decode(&mf); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		names[mf.GetName()] = true
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == Label || l.GetName() == "job" {
					t.Errorf("%s carries the label %s", mf.GetName(), l.GetName())
				}
			}
		}
	}
	for _, n := range []string{LastRun, LastSuccess, Duration, ExitCode, Requests, Retries, Steps} {
		if !names[n] {
			t.Errorf("the push lacks %s (has %v)", n, names)
		}
	}
}

func TestPushErrorHidesThePassword(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusBadGateway)
	}))
	defer srv.Close()
	gateway := strings.Replace(srv.URL, "://", "://ops:s3cret-pw@", 1)
	err := Push(context.Background(), gateway, sample(0), nil)
	if err == nil || strings.Contains(err.Error(), "s3cret-pw") || !strings.Contains(err.Error(), "502") {
		t.Errorf("error %v: want the status, never the password", err)
	}
}

// TestPushToARealPushgateway pushes to the Debian package's Pushgateway when
// it is installed, and reads the group back from it.
func TestPushToARealPushgateway(t *testing.T) {
	bin, err := exec.LookPath("prometheus-pushgateway")
	if err != nil {
		t.Skip("prometheus-pushgateway is not installed")
	}
	addr := freeAddr(t)
	cmd := exec.Command(bin, "--web.listen-address="+addr)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if resp, err := http.Get("http://" + addr + "/-/ready"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the pushgateway did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	r := sample(0)
	r.LastSuccess = t1
	if err := Push(context.Background(), "http://"+addr, r, nil); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	want := `runbook_last_run_exit_code{instance="",job="runbook",runbook="Restart \"prod\""} 0`
	if !strings.Contains(string(b), want) {
		t.Errorf("the pushgateway's /metrics lacks %s:\n%s", want, b)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.Listener.Addr().String()
	srv.Close()
	return addr
}
