package runbook_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/runbookhq/runbook/runbook"
)

// opsAPI is a fake API of long-running operations, in the manner of Azure's
// and Google's: a POST to /v2/things (or a PUT or DELETE of /v2/things/N)
// answers 202 with the operation's status monitor, which moves NotStarted ->
// Running -> the final status, one step per read, each answer with its
// Retry-After. A POST with an Idempotency-Key it has seen answers as the
// first did and creates nothing. It records what it saw.
type opsAPI struct {
	monitorBase string        // where monitors live; default https://cloud.example.com/v2
	header      string        // the header naming the monitor; default Operation-Location
	monitorURL  string        // a monitor URL to name instead of the operation's own
	acceptAfter time.Duration // Retry-After on the 202
	pollAfter   time.Duration // Retry-After on a monitor's answer while running
	final       string        // the body the last read shows, as JSON; default {"status":"Succeeded"}
	lose        bool          // the last read is a 404: the monitor has lost the operation
	// drop loses the answer of these POSTs (1-based) after acting on them:
	// a reset after the request was written, or a 502 when status says so.
	drop   map[int]bool
	status int

	mu       sync.Mutex
	seen     []seen
	posts    int
	things   int            // resources made
	deleted  bool           // a DELETE came: the resource reads 404
	ops      map[string]int // operation id -> reads so far
	keys     map[string]string
	killNext func(*http.Request) bool // the caller's kill: nothing more reaches the API once it says so
	killed   func(*http.Request) bool // the caller's kill after the API acted on the request: its answer is lost
}

// seen is one request as the fake API received it.
type seen struct {
	at     time.Time
	method string
	url    string
	auth   string
	key    string
}

func (a *opsAPI) log() []seen {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]seen(nil), a.seen...)
}

// requests are the requests seen of method whose URL contains part.
func (a *opsAPI) requests(method, part string) []seen {
	var out []seen
	for _, s := range a.log() {
		if s.method == method && strings.Contains(s.url, part) {
			out = append(out, s)
		}
	}
	return out
}

func answer(status int, h http.Header, body string) *http.Response {
	if h == nil {
		h = http.Header{}
	}
	h.Set("Content-Type", "application/json")
	return &http.Response{StatusCode: status, Status: http.StatusText(status), Header: h, Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body))}
}

func seconds(d time.Duration) string { return fmt.Sprint(int(d / time.Second)) }

func (a *opsAPI) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.killNext != nil && a.killNext(req) {
		return nil, errCrash
	}
	if a.ops == nil {
		a.ops, a.keys = map[string]int{}, map[string]string{}
	}
	a.seen = append(a.seen, seen{at: time.Now(), method: req.Method, url: req.URL.String(), auth: req.Header.Get("Authorization"), key: req.Header.Get("Idempotency-Key")})
	if trace := httptrace.ContextClientTrace(req.Context()); trace != nil && trace.WroteRequest != nil {
		trace.WroteRequest(httptrace.WroteRequestInfo{})
	}
	path := req.URL.Path
	if id, ok := strings.CutPrefix(path, "/v2/operations/"); ok {
		return a.read(id), nil
	}
	if req.Method == http.MethodGet {
		if a.deleted {
			return answer(404, nil, `{"error":"not found"}`), nil
		}
		return answer(200, nil, `{"id":"1","runstate":"running"}`), nil
	}
	a.deleted = a.deleted || req.Method == http.MethodDelete
	if req.Method == http.MethodPost {
		a.posts++
	}
	key := req.Header.Get("Idempotency-Key")
	op, known := a.keys[key]
	if key == "" || !known {
		a.things++
		op = fmt.Sprint(len(a.ops) + 1)
		a.ops[op] = 0
		if key != "" {
			a.keys[key] = op
		}
	}
	if a.killed != nil && a.killed(req) {
		return nil, errCrash
	}
	if req.Method == http.MethodPost && a.drop[a.posts] {
		if a.status != 0 {
			return answer(a.status, nil, `{"error":"upstream"}`), nil
		}
		return nil, errors.New("connection reset by peer")
	}
	base := a.monitorBase
	if base == "" {
		base = "https://cloud.example.com/v2"
	}
	mon := base + "/operations/" + op
	if a.monitorURL != "" {
		mon = a.monitorURL
	}
	name := a.header
	if name == "" {
		name = "Operation-Location"
	}
	h := http.Header{}
	h.Set(name, mon)
	if a.acceptAfter > 0 {
		h.Set("Retry-After", seconds(a.acceptAfter))
	}
	return answer(http.StatusAccepted, h, `{"id":"`+op+`"}`), nil
}

// read is a read of operation id's monitor: NotStarted, Running, then final.
func (a *opsAPI) read(id string) *http.Response {
	n, ok := a.ops[id]
	if !ok {
		return answer(404, nil, `{"error":{"code":"NotFound","message":"no such operation"}}`)
	}
	a.ops[id] = n + 1
	h := http.Header{}
	if a.pollAfter > 0 {
		h.Set("Retry-After", seconds(a.pollAfter))
	}
	switch n {
	case 0:
		return answer(200, h, `{"status":"NotStarted"}`)
	case 1:
		return answer(200, h, `{"status":"Running"}`)
	}
	switch {
	case a.lose:
		return answer(404, nil, `{"error":{"code":"NotFound","message":"no such operation"}}`)
	case a.final == "":
		return answer(200, nil, `{"status":"Succeeded"}`)
	}
	return answer(200, nil, a.final)
}

// runOps runs src (after the standard header) against api.
func runOps(t *testing.T, api http.RoundTripper, src string, opts ...func(*runbook.Options)) result {
	t.Helper()
	return executeVia(t.Context(), t, api, quietSim(t, nil), src, opts...)
}

const createThing = `steps:
  - name: Create a thing
    http: {method: POST, url: /things, json: {name: a}}
    guard: false
`

// TestOperationIsPolledUntilItSucceeds: a 202 naming its monitor is not done:
// the monitor is polled, no sooner than each Retry-After, until it says
// Succeeded; the POST is sent once.
func TestOperationIsPolledUntilItSucceeds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		api := &opsAPI{acceptAfter: 30 * time.Second, pollAfter: 25 * time.Second}
		r := runOps(t, api, createThing)
		wantCode(t, r, 0)
		posts, polls := api.requests("POST", "/things"), api.requests("GET", "/operations/1")
		if len(posts) != 1 || len(polls) != 3 {
			t.Fatalf("%d POSTs and %d monitor reads, want 1 and 3 (NotStarted, Running, Succeeded)", len(posts), len(polls))
		}
		if gap := polls[0].at.Sub(posts[0].at); gap < 30*time.Second {
			t.Errorf("first monitor read %s after the 202, before its Retry-After 30s", gap)
		}
		for i := 1; i < len(polls); i++ {
			if gap := polls[i].at.Sub(polls[i-1].at); gap < 25*time.Second {
				t.Errorf("monitor read %d came %s after the one before, before its Retry-After 25s", i+1, gap)
			}
		}
		if r.end.Before(polls[2].at) {
			t.Errorf("the run ended before the monitor said Succeeded")
		}
		if polls[0].auth == "" {
			t.Errorf("the monitor on the API's own host got no credentials")
		}
	})
}

// TestOperationAskingTooLongAWaitFails: a 202 whose Retry-After is past
// max_retry_after fails at once (exit 75), with no read of the monitor.
func TestOperationAskingTooLongAWaitFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		api := &opsAPI{acceptAfter: time.Hour}
		r := runOps(t, api, createThing)
		wantCode(t, r, runbook.ExitBusy, "was accepted", "longer than max_retry_after")
		if n := len(api.requests("GET", "/operations/")); n != 0 {
			t.Errorf("%d monitor reads, want none", n)
		}
	})
}

// TestOperationThatFailsFailsTheStep: Failed and Canceled (Azure) and done
// with an error (Google) fail the step with the monitor's message.
func TestOperationThatFailsFailsTheStep(t *testing.T) {
	cases := []struct{ name, final, says string }{
		{"Failed", `{"status":"Failed","error":{"code":"QuotaExceeded","message":"the quota of cores is used up"}}`, "QuotaExceeded: the quota of cores is used up"},
		{"Canceled", `{"status":"Canceled","error":{"code":"Canceled","message":"canceled by the owner"}}`, "status Canceled"},
		{"Google done with an error", `{"done":true,"error":{"code":9,"message":"precondition failed"}}`, "9: precondition failed"},
		{"lost", "", "404 Not Found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				api := &opsAPI{final: c.final, lose: c.final == ""}
				r := runOps(t, api, createThing)
				wantCode(t, r, runbook.ExitFailed, "the operation failed", c.says)
				if n := len(api.requests("POST", "/things")); n != 1 {
					t.Errorf("%d POSTs, want 1", n)
				}
				if n := len(api.requests("GET", "/operations/")); n != 3 {
					t.Errorf("%d monitor reads, want 3", n)
				}
			})
		})
	}
}

// TestMonitorWaitHonoursTheStepsWait: wait_for with a check of its own reads
// that check, not the monitor; wait_for: false waits for nothing; a DELETE's
// default wait and an until with no check read the monitor, and Location names
// it on a 202.
func TestMonitorWaitHonoursTheStepsWait(t *testing.T) {
	cases := []struct {
		name, src string
		header    string
		polls     int
	}{
		{"own check", `steps:
  - http: {method: PUT, url: /things/1, json: {size: 2}}
    wait_for: {check: GET /things/1, until: state.runstate == "running"}
`, "", 0},
		{"wait_for false", `steps:
  - http: {method: POST, url: /things, json: {}}
    guard: false
    wait_for: false
`, "", 0},
		{"DELETE by Location", `steps:
  - http: DELETE /things/1
`, "Location", 3},
		{"the monitor, then until on the resource", `steps:
  - http: {method: PATCH, url: /things/1, json: {size: 2}}
    wait_for: state.runstate == "running"
`, "Azure-AsyncOperation", 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				api := &opsAPI{header: c.header}
				r := runOps(t, api, c.src)
				wantCode(t, r, 0)
				if n := len(api.requests("GET", "/operations/")); n != c.polls {
					t.Errorf("%d monitor reads, want %d", n, c.polls)
				}
			})
		})
	}
}

// TestMonitorOnAnotherHostGetsNoCredentials: a monitor URL from the server
// on a host that is neither the change's nor base_url's is read without the
// runbook's credentials; one that is not an http(s) URL, or carries
// credentials, is not read at all.
func TestMonitorOnAnotherHostGetsNoCredentials(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		api := &opsAPI{monitorBase: "https://ops.elsewhere.example/v2"}
		r := runOps(t, api, `steps:
  - name: Create a thing
    http:
      method: POST
      url: /things
      headers: {X-Api-Token: "${{ env.TOKEN }}", X-Trace: yes}
      json: {name: a}
    guard: false
`)
		wantCode(t, r, 0)
		polls := api.requests("GET", "ops.elsewhere.example")
		if len(polls) != 3 {
			t.Fatalf("%d monitor reads, want 3", len(polls))
		}
		for _, p := range polls {
			if p.auth != "" {
				t.Errorf("the monitor on another host got Authorization %q", p.auth)
			}
		}
	})
	// The step's own wait tells when a change whose monitor cannot be read is done.
	synctest.Test(t, func(t *testing.T) {
		api := &opsAPI{monitorURL: "ftp://cloud.example.com/v2/operations/1"}
		r := runOps(t, api, `steps:
  - http: {method: PUT, url: /things/1, json: {size: 2}}
    wait_for: state.runstate == "running"
`)
		wantCode(t, r, 0)
		if n := len(api.requests("GET", "/things/1")); n < 2 {
			t.Errorf("%d reads of the resource, want the guard's and the wait's", n)
		}
	})
	for _, bad := range []string{"ftp://cloud.example.com/v2/operations/1", "https://u:p@cloud.example.com/v2/operations/1", "https://" + strings.Repeat("a", 5000)} {
		synctest.Test(t, func(t *testing.T) {
			api := &opsAPI{monitorURL: bad}
			r := runOps(t, api, createThing)
			wantCode(t, r, runbook.ExitFailed, "was accepted", "status monitor cannot be polled")
			if strings.Contains(r.err.Error(), strings.Repeat("a", 100)) {
				t.Errorf("the message holds the whole hostile URL: %.200s", r.err)
			}
			if n := len(api.log()); n != 1 {
				t.Errorf("%d requests, want the POST alone", n)
			}
		})
	}
}

// TestKeyedPOSTIsSentAgainWithTheSameKey: a POST with idempotency_key whose
// answer is lost (a reset after it was written, a 502) is sent again with the
// same key, and the API makes one thing; for_each items have keys of their own.
func TestKeyedPOSTIsSentAgainWithTheSameKey(t *testing.T) {
	for _, status := range []int{0, http.StatusBadGateway} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				api := &opsAPI{drop: map[int]bool{1: true}, status: status}
				r := runOps(t, api, `steps:
  - name: Create a thing
    http: {method: POST, url: /things, json: {name: a}, idempotency_key: true}
    guard: false
`)
				wantCode(t, r, 0)
				posts := api.requests("POST", "/things")
				if len(posts) != 2 {
					t.Fatalf("%d POSTs, want 2", len(posts))
				}
				if posts[0].key == "" || posts[1].key != posts[0].key {
					t.Errorf("keys %q then %q, want one key, twice", posts[0].key, posts[1].key)
				}
				if api.things != 1 {
					t.Errorf("%d things made, want 1", api.things)
				}
			})
		})
	}
	synctest.Test(t, func(t *testing.T) {
		api := &opsAPI{}
		r := runOps(t, api, `steps:
  - name: Create things
    for_each: '["a", "b"]'
    http: {method: POST, url: /things, json: {name: "${{ item }}"}, idempotency_key: true}
    guard: false
`)
		wantCode(t, r, 0)
		posts := api.requests("POST", "/things")
		if len(posts) != 2 || posts[0].key == posts[1].key {
			t.Errorf("POSTs %+v: want two, each with its own key", posts)
		}
	})
}

// TestResumeMidOperationPollsTheJournaledMonitor: a run killed while it polls
// an operation's monitor is resumed by polling the monitor its journal holds;
// the change is not sent again.
func TestResumeMidOperationPollsTheJournaledMonitor(t *testing.T) {
	file := filepath.Join(t.TempDir(), "ops.yaml")
	if err := os.WriteFile(file, []byte(header+createThing), 0o600); err != nil {
		t.Fatal(err)
	}
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		api := &opsAPI{pollAfter: 20 * time.Second}
		rig := &crashRig{}
		api.killNext = func(req *http.Request) bool {
			rig.mu.Lock()
			defer rig.mu.Unlock()
			// At the second read of the monitor: the first has reached it.
			if strings.Contains(req.URL.Path, "/operations/") && len(api.seen) == 2 {
				rig.kill()
			}
			return rig.dead
		}
		crashRunVia(t, api, file, dir, "r01", rig, false, nil)
		api.mu.Lock()
		api.killNext = nil
		api.mu.Unlock()
		sent := len(api.log())
		r := crashRunVia(t, api, file, dir, "r02", &crashRig{}, true, nil)
		wantCode(t, r, 0)
		after := api.log()[sent:]
		for _, s := range after {
			if s.method != http.MethodGet || !strings.Contains(s.url, "/v2/operations/1") {
				t.Errorf("the resume sent %s %s, want reads of the journaled monitor only", s.method, s.url)
			}
		}
		if len(after) == 0 {
			t.Errorf("the resume did not read the monitor")
		}
	})
}

// TestCrashDuringAnOperation kills a keyed POST whose answer names a monitor
// at each of its journal records, then resumes it: one thing is made, every
// POST carries the same key, and a run killed after the answer was journaled
// sends no POST again.
func TestCrashDuringAnOperation(t *testing.T) {
	file := filepath.Join(t.TempDir(), "ops.yaml")
	src := `steps:
  - name: Create a thing
    http: {method: POST, url: /things, json: {name: a}, idempotency_key: true}
    guard: false
`
	if err := os.WriteFile(file, []byte(header+src), 0o600); err != nil {
		t.Fatal(err)
	}
	counter := &crashRig{}
	synctest.Test(t, func(t *testing.T) {
		r := crashRunVia(t, &opsAPI{}, file, t.TempDir(), "r00", counter, false, nil)
		wantCode(t, r, 0)
	})
	if counter.records < 5 {
		t.Fatalf("%d journal records, want the run's start, the step's, the intent, the answer and the step's end at least", counter.records)
	}
	// Each journal record, then the POST reaching the API with its answer lost.
	for n := 1; n <= counter.records+1; n++ {
		synctest.Test(t, func(t *testing.T) {
			api := &opsAPI{}
			dir := t.TempDir()
			rig := &crashRig{afterRecord: n}
			if n > counter.records {
				rig.afterRecord = 0
				api.killed = func(req *http.Request) bool {
					rig.mu.Lock()
					defer rig.mu.Unlock()
					if req.Method == http.MethodPost {
						rig.kill()
					}
					return rig.dead
				}
			}
			api.killNext = func(*http.Request) bool {
				rig.mu.Lock()
				defer rig.mu.Unlock()
				return rig.dead
			}
			crashRunVia(t, api, file, dir, "r01", rig, false, nil)
			api.mu.Lock()
			api.killNext, api.killed = nil, nil
			// A POST that reached the API was answered, and its answer
			// journaled: the kill comes at a sync, and the answer's is the
			// next one after the POST.
			reached := api.posts
			if n > counter.records {
				reached = 0 // its answer was lost
			}
			api.mu.Unlock()
			r := crashRunVia(t, api, file, dir, "r02", &crashRig{}, true, nil)
			if code := r.code(); code != 0 && !(code == runbook.ExitUsage && strings.Contains(r.err.Error(), "nothing to resume")) {
				t.Fatalf("killed after record %d: the resume exited %d: %v", n, code, r.err)
			}
			posts := api.requests("POST", "/things")
			if reached > 0 && len(posts) > reached {
				t.Errorf("killed after record %d: the answer naming the monitor was journaled, yet the resume sent the POST again", n)
			}
			if api.things > 1 {
				t.Errorf("killed after record %d: %d things made, want 1", n, api.things)
			}
			for _, p := range posts[1:] {
				if p.key != posts[0].key {
					t.Errorf("killed after record %d: keys %q and %q", n, posts[0].key, p.key)
				}
			}
			if n > counter.records && len(posts) != 2 {
				t.Errorf("killed when the POST's answer was lost: %d POSTs, want the resume's re-send too", len(posts))
			}
		})
	}
}

// TestIdempotencyKeyIsJournaledAndShown: the key goes in the intent record
// and in -v output, as a header that is no secret.
func TestIdempotencyKeyIsJournaledAndShown(t *testing.T) {
	file := filepath.Join(t.TempDir(), "ops.yaml")
	src := `steps:
  - http: {method: POST, url: /things, json: {name: a}, idempotency_key: true}
    guard: false
`
	if err := os.WriteFile(file, []byte(header+src), 0o600); err != nil {
		t.Fatal(err)
	}
	synctest.Test(t, func(t *testing.T) {
		api, dir := &opsAPI{}, t.TempDir()
		r := crashRunVia(t, api, file, dir, "r01", &crashRig{}, false, func(o *runbook.Options) { o.Verbose = true })
		wantCode(t, r, 0)
		key := api.requests("POST", "/things")[0].key
		shown := false
		for _, e := range r.events {
			shown = shown || e.Type == runbook.Request && strings.Contains(e.Sent, "Idempotency-Key: "+key+"\n{")
		}
		if !shown {
			t.Errorf("no request event shows Idempotency-Key: %s", key)
		}
		journals, _ := filepath.Glob(filepath.Join(dir, "runs", "*", "*.jsonl"))
		if len(journals) != 1 {
			t.Fatalf("journals %v", journals)
		}
		log, err := runbook.ReadJournal(journals[0])
		if err != nil {
			t.Fatal(err)
		}
		var intents []string
		for _, rec := range log.Records {
			if rec.Type == "intent" {
				intents = append(intents, rec.Key)
			}
		}
		if len(intents) != 1 || intents[0] != key {
			t.Errorf("intents journaled with keys %q, want [%q]", intents, key)
		}
	})
}

// TestKeyAndMonitorWarnedAndPlanned: idempotency_key on a method that is
// idempotent already is warned about (idempotent-already), not on a POST or
// PATCH; plan says a POST without wait_for waits for the monitor its answer
// names, and re-sends a keyed POST.
func TestKeyAndMonitorWarnedAndPlanned(t *testing.T) {
	src := `steps:
  - http: {method: POST, url: /things, idempotency_key: true}
    guard: false
  - http: {method: PATCH, url: /things/1, idempotency_key: true}
    wait_for: false
  - http: {method: PUT, url: /things/1, idempotency_key: true}
    wait_for: false
  - http: {method: DELETE, url: /things/1, idempotency_key: true}
    ignore_warnings: [idempotent-already]
`
	if lines := warnedLines(t, src, runbook.WarnIdempotentAlready); len(lines) != 1 || lines[0] != 12 {
		t.Errorf("idempotent-already on lines %v, want 12", lines)
	}
	plan := planOf(t, src)
	if want := "the monitor the answer names (Operation-Location, Azure-AsyncOperation, or a 202's Location) every 10s until Succeeded; with none, a 2xx answer is taken as done"; plan[0].Wait != want {
		t.Errorf("plan's wait of a POST: %q, want %q", plan[0].Wait, want)
	}
	if !strings.Contains(plan[0].Retry, "same Idempotency-Key") {
		t.Errorf("plan's retry of a keyed POST: %q", plan[0].Retry)
	}
	if plan[1].Wait != "none: a 2xx answer is taken as done" {
		t.Errorf("plan's wait of wait_for: false: %q", plan[1].Wait)
	}
}
