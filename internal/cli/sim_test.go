package cli

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/runbookhq/runbook/runbook"
)

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

// TestSimBindsToLoopbackByDefault: a simulator accepts any credentials, so it
// must not listen beyond this machine unless told to.
func TestSimBindsToLoopbackByDefault(t *testing.T) {
	addr := simCommand(context.Background(), io.Discard).Flags().Lookup("addr").DefValue
	host, _, err := net.SplitHostPort(addr)
	if err != nil || !net.ParseIP(host).IsLoopback() {
		t.Errorf("runbook sim listens on %q by default, want a loopback address", addr)
	}
}
