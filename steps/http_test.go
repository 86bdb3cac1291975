package steps

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/runbookhq/runbook/runbook"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"30", 30 * time.Second, true},
		{" 5 ", 5 * time.Second, true},
		{"0", 0, true},
		{"Thu, 26 Nov 2026 12:00:45 GMT", 45 * time.Second, true},
		{"Thu, 26 Nov 2026 11:59:00 GMT", 0, true}, // in the past: go now
		{"99999999999999999999", maxRetryAfter, true},
		{"-5", 0, false},
		{"1.5", 0, false},
		{"soon", 0, false},
		{"", 0, false},
	}
	for _, c := range cases {
		got, ok := ParseRetryAfter(c.in, now)
		if got != c.want || ok != c.ok {
			t.Errorf("ParseRetryAfter(%q) = %s, %v; want %s, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestRequestHeadersBodyAndAuth(t *testing.T) {
	type seen struct {
		method, path, query, accept, ctype, team, body string
		user, pass                                     string
	}
	var got []seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		u, p, _ := r.BasicAuth()
		got = append(got, seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Accept"), r.Header.Get("Content-Type"), r.Header.Get("X-Team"), string(b), u, p})
		w.Header().Set("Retry-After", "7")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusLocked)
		io.WriteString(w, `{"error":"Resource is busy"}`)
	}))
	defer srv.Close()
	rbSrc := `    http:
      method: PUT
      url: /vms/${{ vars.n }}
      query: {force: "yes"}
      json: {runstate: running, count: "${{ vars.n }}"}
`
	src := strings.Replace(`version: 1
name: t
defaults:
  http:
    base_url: BASE
    headers: {X-Team: "${{ vars.team }}"}
    basic_auth: {username: "${{ vars.user }}", password: "${{ vars.pass }}"}
vars: {team: ops, user: u, pass: p4ss, n: 3}
steps:
  - name: s
`, "BASE", srv.URL, 1) + rbSrc
	rb, err := runbook.Load("t.yaml", []byte(src), Kinds(srv.Client(), nil))
	if err != nil {
		t.Fatal(err)
	}
	scope := runbook.Scope{"vars": map[string]any{"team": "ops", "user": "u", "pass": "p4ss", "n": 3}}
	for range 2 {
		call, err := rb.Steps[0].Action.Prepare(scope)
		if err != nil {
			t.Fatal(err)
		}
		out := call.Do(context.Background())
		if out.Status != 423 || out.RetryAfter == nil || *out.RetryAfter != 7*time.Second || out.Accepted {
			t.Fatalf("outcome %+v", out)
		}
		if out.Response["status"] != 423 || out.Body.(map[string]any)["error"] != "Resource is busy" {
			t.Errorf("response %v", out.Response)
		}
		if target := call.Target(); strings.Contains(target.String(), "p4ss") || target.Method != "PUT" {
			t.Errorf("target %s", target)
		}
	}
	want := seen{"PUT", "/vms/3", "force=yes", "application/json", "application/json", "ops", `{"count":3,"runstate":"running"}`, "u", "p4ss"}
	if len(got) != 2 || got[0] != want || got[1] != want {
		t.Errorf("server saw %+v\nwant twice %+v", got, want)
	}
}

func TestBodyLimit(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("x", 2048))
	}))
	defer srv.Close()
	h := &HTTP{Client: srv.Client(), BodyLimit: 1024}
	kinds := Kinds(srv.Client(), nil)
	kinds["http"] = h
	rb, err := runbook.Load("t.yaml", []byte("version: 1\nname: t\nsteps:\n  - http: GET "+srv.URL+"/big\n"), kinds)
	if err != nil {
		t.Fatal(err)
	}
	call, err := rb.Steps[0].Action.Prepare(runbook.Scope{})
	if err != nil {
		t.Fatal(err)
	}
	out := call.Do(context.Background())
	if out.Err == nil || !strings.Contains(out.Err.Error(), "larger than 1024 bytes") {
		t.Errorf("a 2 KiB body with a 1 KiB limit gave %+v", out)
	}
}

// FuzzParseRetryAfter: any header value is either unreadable or a delay between
// zero and the cap, and whole seconds mean exactly that many seconds.
func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"30", "0", "Thu, 26 Nov 2026 12:00:45 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", "-1", "1e3", "99999999999999999999", "", " 7 "} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		d, ok := ParseRetryAfter(v, now)
		if !ok {
			if d != 0 {
				t.Fatalf("unreadable %q gave %s", v, d)
			}
			return
		}
		if d < 0 || d > maxRetryAfter {
			t.Fatalf("%q gave %s, outside 0..%s", v, d, maxRetryAfter)
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32); err == nil && d != min(time.Duration(n)*time.Second, maxRetryAfter) {
			t.Fatalf("%q gave %s, want %d seconds (at most a year)", v, d, n)
		}
	})
}

// loadOne compiles a one-step runbook (header lines, then the step) and
// prepares its action with the given vars.
func loadOne(t *testing.T, client *http.Client, defaults, step string) (runbook.Call, error) {
	t.Helper()
	src := "version: 1\nname: t\ndefaults:\n  http:\n" + defaults + "steps:\n  - name: s\n" + step
	rb, err := runbook.Load("t.yaml", []byte(src), Kinds(client, nil))
	if err != nil {
		t.Fatal(err)
	}
	return rb.Steps[0].Action.Prepare(runbook.Scope{"env": map[string]any{"TOKEN": "tok-123456"}})
}

func TestTLSIsVerifiedUnlessTheRunbookSaysNot(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"ok":true}`) }))
	defer srv.Close()
	client := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	call, err := loadOne(t, client, "    base_url: "+srv.URL+"\n", "    http: GET /x\n")
	if err != nil {
		t.Fatal(err)
	}
	out := call.Do(context.Background())
	if out.Err == nil || !out.Permanent || !strings.Contains(out.Err.Error(), "certificate") {
		t.Errorf("a self-signed certificate gave %+v, want a permanent certificate error", out)
	}
	call, err = loadOne(t, &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()},
		"    base_url: "+srv.URL+"\n    insecure_skip_verify: true\n", "    http: GET /x\n")
	if err != nil {
		t.Fatal(err)
	}
	if out := call.Do(context.Background()); out.Status != 200 {
		t.Errorf("with insecure_skip_verify: %+v", out)
	}
}

func TestCredentialsStayOnTheirHost(t *testing.T) {
	var leaked []string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, h := range []string{"Authorization", "X-Auth-Token"} {
			if v := r.Header.Get(h); v != "" {
				leaked = append(leaked, h+": "+v)
			}
		}
		io.WriteString(w, `{}`)
	}))
	defer other.Close()
	first := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/elsewhere", http.StatusTemporaryRedirect)
	}))
	defer first.Close()
	call, err := loadOne(t, first.Client(), "    base_url: "+first.URL+"\n    basic_auth: {username: u, password: \"${{ env.TOKEN }}\"}\n    headers: {X-Auth-Token: \"${{ env.TOKEN }}\"}\n", "    http: GET /x\n")
	if err != nil {
		t.Fatal(err)
	}
	if out := call.Do(context.Background()); out.Status != 200 {
		t.Fatalf("redirect not followed: %+v", out)
	}
	if len(leaked) > 0 {
		t.Errorf("credentials followed the redirect to another host: %v", leaked)
	}
}

func TestNoCredentialsOverPlainHTTP(t *testing.T) {
	api, step := "    base_url: http://api.example.com\n", "    http: GET /x\n"
	if _, err := loadOne(t, nil, api+"    basic_auth: {username: u, password: p4ssword}\n", step); err == nil || !strings.Contains(err.Error(), "refusing to send credentials over plain http to api.example.com") {
		t.Errorf("basic auth over http: %v", err)
	}
	if _, err := loadOne(t, nil, api+"    headers: {Authorization: \"Bearer ${{ env.TOKEN }}\"}\n", step); err == nil {
		t.Errorf("a token over http was allowed")
	}
	if _, err := loadOne(t, nil, api+"    basic_auth: {username: u, password: p4ssword}\n    allow_insecure_http: true\n", step); err != nil {
		t.Errorf("allow_insecure_http: %v", err)
	}
	if _, err := loadOne(t, nil, "    base_url: http://127.0.0.1:9\n    basic_auth: {username: u, password: p4ssword}\n", step); err != nil {
		t.Errorf("loopback over http: %v", err)
	}
	if _, err := loadOne(t, nil, "    base_url: https://api.example.com\n", "    http: {url: http://hooks.example.com/x, basic_auth: {username: u, password: p4ssword}}\n"); err == nil {
		t.Errorf("a step's own basic auth over http was allowed")
	}
}

// TestDefaultCredentialsStayOnTheAPIHost: defaults.http's basic_auth and
// headers go to base_url's host only. A second loopback server (another port:
// another host) records what reaches it.
func TestDefaultCredentialsStayOnTheAPIHost(t *testing.T) {
	type seen struct{ user, pass, token, team, accept string }
	record := func(got *[]seen) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, p, _ := r.BasicAuth()
			*got = append(*got, seen{u, p, r.Header.Get("X-Api-Token"), r.Header.Get("X-Team"), r.Header.Get("Accept")})
			io.WriteString(w, `{}`)
		}))
	}
	var atAPI, atHook []seen
	api, hook := record(&atAPI), record(&atHook)
	defer api.Close()
	defer hook.Close()
	src := `version: 1
name: t
defaults:
  http:
    base_url: ` + api.URL + `
    basic_auth: {username: ops, password: "${{ env.TOKEN }}"}
    headers: {X-Api-Token: "${{ env.TOKEN }}", X-Team: lab}
steps:
  - name: the API, by path
    http: GET /x
  - name: the API, by its whole URL
    http: GET ` + api.URL + `/x
  - name: a webhook, with the defaults only
    http: POST ` + hook.URL + `/hook
  - name: a webhook that is the API's too
    http: {method: POST, url: "` + hook.URL + `/hook", default_credentials: true}
  - name: a webhook with credentials of its own
    http: {method: PUT, url: "` + hook.URL + `/hook", basic_auth: {username: hooker, password: h00k-pass}, headers: {X-Team: hooks}}
  - name: the API without the default Authorization
    http: {url: /x, headers: {Authorization: ""}}
  - name: the API without the default Authorization, written null
    http: {url: /x, headers: {Authorization: null, X-Api-Token: ""}}
  - name: the API without any default
    http: {url: /x, default_credentials: false}
`
	rb, err := runbook.Load("t.yaml", []byte(src), Kinds(api.Client(), nil))
	if err != nil {
		t.Fatal(err)
	}
	scope := runbook.Scope{"env": map[string]any{"TOKEN": "tok-123456"}}
	for _, s := range rb.Steps {
		call, err := s.Action.Prepare(scope)
		if err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		if out := call.Do(context.Background()); out.Status != 200 {
			t.Fatalf("%s: %+v", s.Name, out)
		}
	}
	all := seen{"ops", "tok-123456", "tok-123456", "lab", "application/json"}
	wantAPI := []seen{all, all, {"", "", "tok-123456", "lab", "application/json"}, {"", "", "", "lab", "application/json"}, {accept: "application/json"}}
	wantHook := []seen{{accept: "application/json"}, all, {"hooker", "h00k-pass", "", "hooks", "application/json"}}
	if !slices.Equal(atAPI, wantAPI) {
		t.Errorf("the API saw  %+v\nwant        %+v", atAPI, wantAPI)
	}
	if !slices.Equal(atHook, wantHook) {
		t.Errorf("the webhook saw %+v\nwant            %+v", atHook, wantHook)
	}
	// The default check of a change reads its own URL with its own credentials.
	probe := rb.Steps[4].Action.Info().Probe
	call, err := probe.Prepare(scope)
	if err != nil {
		t.Fatal(err)
	}
	call.Do(context.Background())
	if got := atHook[len(atHook)-1]; got != wantHook[2] {
		t.Errorf("the webhook's check sent %+v, want %+v", got, wantHook[2])
	}
}

func TestDefaultCredentialsNeedABaseURL(t *testing.T) {
	for _, def := range []string{"    basic_auth: {username: u, password: p}\n", "    headers: {X-Team: lab}\n"} {
		_, err := runbook.Load("t.yaml", []byte("version: 1\nname: t\ndefaults:\n  http:\n"+def+"steps:\n  - http: GET https://api.example.com/x\n"), Kinds(nil, nil))
		if err == nil || !strings.Contains(err.Error(), "goes only to the host of defaults.http.base_url, which is not set") {
			t.Errorf("%s without base_url: %v", strings.TrimSpace(def), err)
		}
	}
	_, err := runbook.Load("t.yaml", []byte("version: 1\nname: t\nsteps:\n  - http: {url: https://x.example.com/y, headers: {Authorization: Bearer x}, basic_auth: {username: u, password: p}}\n"), Kinds(nil, nil))
	if err == nil || !strings.Contains(err.Error(), "basic_auth and an Authorization header both set the Authorization header") {
		t.Errorf("basic_auth with an Authorization header: %v", err)
	}
}

func TestEndlessBodyIsCut(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := []byte(strings.Repeat("x", 4096))
		for r.Context().Err() == nil {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	call, err := loadOne(t, srv.Client(), "    base_url: "+srv.URL+"\n    max_body: 64KiB\n", "    http: GET /stream\n")
	if err != nil {
		t.Fatal(err)
	}
	out := call.Do(context.Background())
	if out.Err == nil || !out.Permanent || !strings.Contains(out.Err.Error(), "larger than 65536 bytes") {
		t.Errorf("an endless body gave %+v", out)
	}
}

// TestPOSTGuardsItsParent: a POST adds to a collection, whose list says
// nothing of the new item: it guards the resource the collection belongs to,
// when its URL names one, and nothing for a top-level collection.
func TestPOSTGuardsItsParent(t *testing.T) {
	for url, want := range map[string]string{
		"/configurations/7/vms":                  "GET https://api.example.com/v2/configurations/7",
		"/configurations/${{ vars.id }}/vms":     "GET https://api.example.com/v2/configurations/42",
		"/configurations/${{ vars.id }}/vms?x=1": "GET https://api.example.com/v2/configurations/42",
		"/configurations":                        "",
		"/configurations/":                       "",
		"/v2/configurations":                     "",
		"/projects/abc/environments":             "",
		"/api/v1beta1/things":                    "",
		"/oauth2/clients":                        "",
		"/2024-01-01/items":                      "",
		"/subscriptions/0b8a7a2e-6a3d-4c1e-9f0e-2f5c6d7e8f90/groups": "GET https://api.example.com/v2/subscriptions/0b8a7a2e-6a3d-4c1e-9f0e-2f5c6d7e8f90",
		"https://other.example.com/v1/items":                         "",
		"https://other.example.com/items/9/notes":                    "GET https://other.example.com/items/9",
		"${{ vars.api }}/configurations":                             "",
		"${{ vars.api }}/configurations/7/vms":                       "GET https://x.example.com/configurations/7",
		"${{ vars.api }}/configurations/${{ vars.id }}/vms":          "GET https://x.example.com/configurations/42",
	} {
		src := "version: 1\nname: t\nvars: {id: 42, api: \"https://x.example.com\"}\ndefaults:\n  http: {base_url: https://api.example.com/v2}\nsteps:\n" +
			"  - http: {method: POST, url: \"" + url + "\"}\n    wait_for: false\n"
		rb, err := runbook.Load("t.yaml", []byte(src), Kinds(http.DefaultClient, nil))
		if err != nil {
			t.Errorf("%s: %v", url, err)
			continue
		}
		s := rb.Steps[0]
		got := ""
		if s.Guard.Check != nil {
			got = s.Guard.Check.Describe(runbook.Scope{"vars": map[string]any{"id": 42, "api": "https://x.example.com"}})
		}
		if got != want {
			t.Errorf("POST %s guards %q, want %q", url, got, want)
		}
		if s.Guard.On != (want != "") {
			t.Errorf("POST %s: guard on %v", url, s.Guard.On)
		}
	}
}

// TestResponseHeadersReadInAnyCase: an answer's header names are read in any
// case, as HTTP means them, in the step and in later steps.
func TestResponseHeadersReadInAnyCase(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Operation-Location", "/operations/7")
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	src := `version: 1
name: t
defaults:
  http:
    base_url: ` + srv.URL + `
steps:
  - id: create
    http: GET /x
    outputs:
      canonical: response.headers["Operation-Location"]
      lower: response.headers["operation-location"]
      absent: response.headers?.["Retry-After"] ?? "none"
  - assert: 'steps.create.outputs == {canonical: "/operations/7", lower: "/operations/7", absent: "none"}'
    message: outputs ${{ toJSON(steps.create.outputs) }}
  - assert: steps.create.response.headers["OPERATION-LOCATION"] == "/operations/7"
  - name: strict
    http: GET /x
    wait_for: response.headers["Retry-After"] == "1"
`
	rb, err := runbook.Load("t.yaml", []byte(src), Kinds(srv.Client(), nil))
	if err != nil {
		t.Fatal(err)
	}
	err = rb.Run(context.Background(), runbook.Options{})
	if err == nil || !strings.Contains(err.Error(), `step 4 "strict"`) || !strings.Contains(err.Error(), `response.headers has no key "retry-after" (has: content-length, date, operation-location)`) {
		t.Fatalf("the first three steps should pass and the fourth fail on the missing header: %v", err)
	}
}

// TestURLValuesAreEscaped: what the server receives for values in the path
// (one escaped segment each), in query: and in an inline query (query-escaped),
// with a base_url from a var (taken as a URL); and what Describe and Target
// show is what was sent.
func TestURLValuesAreEscaped(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.RequestURI)
		io.WriteString(w, `{}`)
	}))
	defer srv.Close()
	load := func(step string) (*runbook.Runbook, runbook.Scope) {
		t.Helper()
		src := "version: 1\nname: t\nvars: {api: x, id: x, q: x, p: x}\ndefaults:\n  http:\n    base_url: ${{ vars.api }}\nsteps:\n  - name: s\n" + step
		rb, err := runbook.Load("t.yaml", []byte(src), Kinds(srv.Client(), nil))
		if err != nil {
			t.Fatal(err)
		}
		return rb, runbook.Scope{"vars": map[string]any{"api": srv.URL + "/v2", "id": "1/../../admin", "q": "a&b=c?#", "p": "x/y"}}
	}
	for _, c := range []struct{ step, want string }{
		{"    http: GET /configurations/${{ vars.id }}\n", "/v2/configurations/1%2F..%2F..%2Fadmin"},
		{"    http: GET /configurations/${{ vars.q }}\n", "/v2/configurations/a%26b%3Dc%3F%23"},
		{"    http: GET /search?q=${{ vars.q }}\n", "/v2/search?q=a%26b%3Dc%3F%23"},
		{"    http: {method: GET, url: /search, query: {q: \"${{ vars.q }}\", id: \"${{ vars.id }}\"}}\n", "/v2/search?id=1%2F..%2F..%2Fadmin&q=a%26b%3Dc%3F%23"},
		{"    http: GET /files/${{ path(vars.p) }}/${{ vars.p }}\n", "/v2/files/x/y/x%2Fy"},
	} {
		got = nil
		rb, scope := load(c.step)
		call, err := rb.Steps[0].Action.Prepare(scope)
		if err != nil {
			t.Fatalf("%s: %v", c.step, err)
		}
		if out := call.Do(context.Background()); out.Err != nil || len(got) != 1 || got[0] != c.want {
			t.Errorf("%s: the server saw %q (%v), want %q", c.step, got, out.Err, c.want)
		}
		if target := call.Target().URL; target != srv.URL+c.want {
			t.Errorf("%s: target %s, want %s", c.step, target, srv.URL+c.want)
		}
		if d := rb.Steps[0].Action.Describe(scope); !strings.HasPrefix(c.step, "    http: {") && d != "GET "+srv.URL+c.want {
			t.Errorf("%s: described as %s", c.step, d)
		}
	}

	// A base_url that is not an http(s) URL is refused before anything is sent.
	rb, scope := load("    http: GET /x\n")
	scope["vars"].(map[string]any)["api"] = "file:///etc"
	if _, err := rb.Steps[0].Action.Prepare(scope); err == nil || !strings.Contains(err.Error(), "base_url: ${{ vars.api }} starts the URL, so it must be a whole URL") {
		t.Errorf("base_url file:///etc: %v", err)
	}
}

// Errors that no retry can mend fail at once: one request (or one redirect
// chain), a permanent outcome, and a message that says what to do.
func TestPermanentTransportErrors(t *testing.T) {
	for _, c := range []struct {
		name    string
		handler func(srvURL string) http.HandlerFunc
		url     func(srvURL string) string
		want    string
		visits  int // requests the handler sees: one chain
		conns   int // connections the server accepts
	}{
		{
			name: "redirect loop",
			handler: func(string) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/loop", http.StatusFound) }
			},
			want:   "/x was redirected 10 times, the last to http://127.0.0.1:",
			visits: 10,
		},
		{
			name: "redirect to file://",
			handler: func(string) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					http.Redirect(w, r, "file:///etc/passwd", http.StatusMovedPermanently)
				}
			},
			want:   "redirected to file:///etc/passwd, which is not http or https: not followed",
			visits: 1,
		},
		{
			name: "redirect to ftp://, after a good one",
			handler: func(string) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					if r.URL.Path == "/x" {
						http.Redirect(w, r, "/y", http.StatusTemporaryRedirect)
						return
					}
					http.Redirect(w, r, "ftp://files.example.com/pub", http.StatusTemporaryRedirect)
				}
			},
			want:   "/y redirected to ftp://files.example.com/pub, which is not http or https",
			visits: 2,
		},
		{
			name: "headers over the limit",
			handler: func(string) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					for i := range 40 {
						w.Header().Set("X-Pad-"+strconv.Itoa(i), strings.Repeat("x", 32<<10))
					}
					io.WriteString(w, `{}`)
				}
			},
			want:   "the answer's headers are larger than 1048576 bytes: refused",
			visits: 1,
		},
		{
			name: "a malformed header",
			handler: func(string) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					conn, buf, _ := w.(http.Hijacker).Hijack()
					buf.WriteString("HTTP/1.1 200 OK\r\nX-Evil: a\x1b[2Jb\r\nContent-Length: 2\r\n\r\n{}")
					buf.Flush()
					conn.Close()
				}
			},
			want:   "answered with malformed HTTP (malformed MIME header line",
			visits: 1,
		},
		{
			name: "https to a plain http port",
			handler: func(string) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{}`) }
			},
			url:   func(u string) string { return strings.Replace(u, "http://", "https://", 1) + "/x" },
			want:  "answered in plain HTTP to an https request: that port serves http; write http://127.0.0.1:",
			conns: 1,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			var visits, conns atomic.Int32
			srv := httptest.NewUnstartedServer(nil)
			srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					conns.Add(1)
				}
			}
			srv.Start()
			defer srv.Close()
			h := c.handler(srv.URL)
			srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				visits.Add(1)
				h(w, r)
			})
			target := srv.URL + "/x"
			if c.url != nil {
				target = c.url(srv.URL)
			}
			call, err := loadOne(t, &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}, "", "    http: GET "+target+"\n")
			if err != nil {
				t.Fatal(err)
			}
			out := call.Do(context.Background())
			if out.Err == nil || !out.Permanent || !strings.Contains(out.Err.Error(), c.want) {
				t.Errorf("got %v (permanent %v), want a permanent error saying %q", out.Err, out.Permanent, c.want)
			}
			if int(visits.Load()) != c.visits {
				t.Errorf("the server answered %d requests, want %d", visits.Load(), c.visits)
			}
			if c.conns > 0 && int(conns.Load()) != c.conns {
				t.Errorf("the server took %d connections, want %d", conns.Load(), c.conns)
			}
		})
	}
}

// A step whose request can never succeed fails at once (exit 1, one redirect
// chain), where a transient error would be retried until the step's deadline.
func TestPermanentTransportErrorFailsTheStepAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var sent atomic.Int32
		loop := roundTripFunc(func(r *http.Request) (*http.Response, error) {
			sent.Add(1)
			return &http.Response{StatusCode: http.StatusFound, Header: http.Header{"Location": {"/loop"}}, Body: http.NoBody, Request: r}, nil
		})
		src := "version: 1\nname: t\nsteps:\n  - name: Read\n    http: GET https://api.example.com/loop\n    timeout: 10m\n"
		rb, err := runbook.Load("t.yaml", []byte(src), Kinds(&http.Client{Transport: loop}, nil))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		err = rb.Run(t.Context(), runbook.Options{})
		if code := runbook.ExitCode(err); code != runbook.ExitFailed || !strings.Contains(err.Error(), "redirect loop") || !strings.Contains(err.Error(), "not retried") {
			t.Fatalf("exit %d, %v; want exit 1 for a redirect loop, not retried", code, err)
		}
		if took := time.Since(start); took != 0 || sent.Load() != maxRedirects {
			t.Errorf("the step took %s and %d requests, want none of its 10m and one chain of %d", took, sent.Load(), maxRedirects)
		}
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
