package sim_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/runbookhq/runbook/sim"
)

// testConfig is exact and unthrottled: no jitter, no rate limit, a fixed seed;
// tests turn on what they exercise.
func testConfig() sim.Config {
	return sim.Config{Seed: 1, Jitter: -1, Rate: -1}
}

// apiClient drives the simulator like a real client: a plain http.Client over
// the in-memory transport, Basic auth, JSON bodies.
type apiClient struct {
	t           *testing.T
	hc          *http.Client
	base        string
	user, token string
}

func newClient(t *testing.T, s *sim.Server) *apiClient {
	return &apiClient{t: t, hc: &http.Client{Transport: s.Transport()}, base: "http://sim.test", user: "alice", token: "secret"}
}

type result struct {
	status int
	header http.Header
	raw    string
	obj    map[string]any // the body, when it is a JSON object
	list   []any          // the body, when it is a JSON array
}

func (r result) str(key string) string {
	s, _ := r.obj[key].(string)
	return s
}

func (r result) runstate() string { return r.str("runstate") }

func (c *apiClient) do(method, path, body string) result {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if c.user != "" {
		req.SetBasicAuth(c.user, c.token)
	}
	req.Header.Set("Accept", "application/json")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	if resp.Header.Get("X-Request-ID") == "" || resp.Header.Get("Content-Type") != "application/json" {
		c.t.Errorf("%s %s: headers %v lack X-Request-ID or Content-Type: application/json", method, path, resp.Header)
	}
	return newResult(resp, b)
}

// newResult is an answer with its body read as JSON.
func newResult(resp *http.Response, b []byte) result {
	r := result{status: resp.StatusCode, header: resp.Header, raw: string(b)}
	if strings.HasPrefix(r.raw, "[") {
		json.Unmarshal(b, &r.list)
	} else {
		json.Unmarshal(b, &r.obj)
	}
	return r
}

func (c *apiClient) get(path string) result { return c.do(http.MethodGet, path, "") }

func (c *apiClient) put(path, body string) result { return c.do(http.MethodPut, path, body) }

// want fails the test unless the response has the status, and, when runstate
// is not empty, that runstate.
func (c *apiClient) want(r result, status int, runstate string) {
	c.t.Helper()
	if r.status != status {
		c.t.Fatalf("status %d, want %d; body %s", r.status, status, r.raw)
	}
	if runstate != "" && r.runstate() != runstate {
		c.t.Fatalf("runstate %q, want %q; body %s", r.runstate(), runstate, r.raw)
	}
}

func lastEntry(t *testing.T, s *sim.Server) sim.Entry {
	t.Helper()
	log := s.Log()
	if len(log) == 0 {
		t.Fatal("empty log")
	}
	return log[len(log)-1]
}

func wantRunstate(t *testing.T, s *sim.Server, target, want string) {
	t.Helper()
	got, ok := s.Runstate(target)
	if !ok || got != want {
		t.Fatalf("Runstate(%s) = %q, %v; want %q", target, got, ok, want)
	}
}

// oneEnv is environment 1 with VM 101 running, 102 stopped, 103 suspended.
func oneEnv() sim.EnvSpec {
	return sim.EnvSpec{ID: "1", Name: "one", VMs: []sim.VMSpec{
		{ID: "101", Runstate: "running"},
		{ID: "102", Runstate: "stopped"},
		{ID: "103", Runstate: "suspended"},
	}}
}
