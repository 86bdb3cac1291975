package runbook_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/runbookhq/runbook/runbook"
	"github.com/runbookhq/runbook/sim"
)

// asyncSim is the simulator's second personality with 250 environments and
// the budget tune sets (none by default).
func asyncSim(tune func(*sim.AsyncAPI)) *sim.Server {
	cfg := sim.Config{Seed: 1, Rate: -1, Jitter: -1, Async: sim.AsyncAPI{Environments: 250, Limit: -1}}
	if tune != nil {
		tune(&cfg.Async)
	}
	return sim.New(cfg)
}

const everyEnvironment = `steps:
  - id: list
    http:
      url: https://cloud.example.com/async/environments
      query: {per_page: "100"}
      paginate: {link: true, max_pages: %s}
    outputs:
      n: len(response.body)
  - assert: steps.list.outputs.n == 250 && len(steps.list.state) == 250 && len(map(steps.list.state, .id)) == 250
`

// listReads are the requests for the list of environments.
func listReads(log []sim.Entry) []sim.Entry {
	var out []sim.Entry
	for _, e := range log {
		if e.Path == "/async/environments" {
			out = append(out, e)
		}
	}
	return out
}

func wantListReads(t *testing.T, r result, n int) {
	t.Helper()
	if got := len(listReads(r.log)); got != n {
		t.Errorf("%d list reads, want %d", got, n)
	}
}

// A paged read of 250 items in pages of 100 makes 3 requests and yields 250.
func TestPagesOfAList(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := asyncSim(nil)
		r := execute(t, srv, strings.Replace(everyEnvironment, "%s", "100", 1))
		wantCode(t, r, 0)
		reads := listReads(r.log)
		if len(reads) != 3 || reads[1].Query != "page=2&per_page=100" || reads[2].Query != "page=3&per_page=100" {
			t.Errorf("list reads %+v, want 3: pages 1, 2, 3", reads)
		}
		for _, e := range reads {
			if e.User != "u" {
				t.Errorf("page %s sent without the credentials", e.Query)
			}
		}
	})
}

// Past max_pages the step fails, saying so, with no request beyond them.
func TestPagesStopAtMaxPages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := asyncSim(nil)
		r := execute(t, srv, strings.Replace(everyEnvironment, "%s", "2", 1))
		wantCode(t, r, 1, "more than 2 pages (paginate.max_pages), read 200 items")
		wantListReads(t, r, 2)
	})
}

// A page answered 429 is waited out and asked for again, not the list from
// its start.
func TestPageAnswered429IsWaitedOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := asyncSim(nil)
		var mu sync.Mutex
		var refusedAt time.Time
		rt := roundTripFunc(func(req *http.Request) (*http.Response, error) {
			mu.Lock()
			first := refusedAt.IsZero() && req.URL.Query().Get("page") == "2"
			if first {
				refusedAt = time.Now()
			}
			mu.Unlock()
			if first {
				return &http.Response{StatusCode: 429, Status: "429 Too Many Requests", Header: http.Header{"Retry-After": {"7"}},
					Body: io.NopCloser(bytes.NewReader(nil)), Request: req}, nil
			}
			return srv.Transport().RoundTrip(req)
		})
		r := executeVia(t.Context(), t, rt, srv, strings.Replace(everyEnvironment, "%s", "100", 1))
		wantCode(t, r, 0)
		reads := listReads(r.log)
		if len(reads) != 3 || reads[1].Query != "page=2&per_page=100" {
			t.Fatalf("list reads %+v, want pages 1, 2 (after the 429), 3", reads)
		}
		if gap := reads[1].Time.Sub(refusedAt); gap < 7*time.Second {
			t.Errorf("page 2 asked again %s after its 429, want Retry-After 7s", gap)
		}
	})
}

// A budget that says none is left pauses the host until its reset: every
// page waits for it, and no request meets a 429.
func TestPagesHearTheBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := asyncSim(func(a *sim.AsyncAPI) { a.Limit, a.Window = 1, time.Minute })
		r := execute(t, srv, strings.Replace(everyEnvironment, "%s", "100", 1))
		wantCode(t, r, 0)
		reads := listReads(r.log)
		if len(reads) != 3 {
			t.Fatalf("%d list reads, want 3", len(reads))
		}
		for i, e := range reads {
			if e.Status != 200 || e.BudgetZero || e.EarlyRetry {
				t.Errorf("page %d: %+v, want a 200 within the budget", i+1, e)
			}
			if i > 0 {
				if gap := e.Time.Sub(reads[i-1].Time); gap < time.Minute {
					t.Errorf("page %d came %s after the one before, want the window's reset, 1m", i+1, gap)
				}
			}
		}
		if !hasEvent(r, runbook.Waiting, "asked to slow down") {
			t.Error("no event said the host's budget made the run wait")
		}
	})
}

// A next page on another host is refused: the credentials would go with it.
func TestNextPageOnAnotherHostIsRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := asyncSim(func(a *sim.AsyncAPI) { a.AbsoluteURLs = true })
		rt := roundTripFunc(func(req *http.Request) (*http.Response, error) {
			req = req.Clone(req.Context())
			req.Host = "elsewhere.example.net" // where the simulator's absolute links then point
			return srv.Transport().RoundTrip(req)
		})
		r := executeVia(t.Context(), t, rt, srv, strings.Replace(everyEnvironment, "%s", "100", 1))
		wantCode(t, r, 1, "is not on https://cloud.example.com, where the list is: not followed")
		wantListReads(t, r, 1)
	})
}

// next: and items: read a list whose pages say where the next one is.
func TestPagesByExpression(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := asyncSim(nil)
		r := execute(t, srv, `steps:
  - id: list
    http:
      url: https://cloud.example.com/async/environments?per_page=100
      paginate:
        next: 'page < 2 ? "?per_page=100&page=" + string(page + 2) : nil'
        items: filter(response.body, .state == "running")
    outputs:
      running: len(response.body)
  - assert: steps.list.outputs.running > 100 && steps.list.outputs.running < 250
`)
		wantCode(t, r, 0)
		wantListReads(t, r, 3)
	})
}

func hasEvent(r result, typ runbook.EventType, reason string) bool {
	for _, e := range r.events {
		if e.Type == typ && strings.Contains(e.Reason, reason) {
			return true
		}
	}
	return false
}

// Pages large enough to be decoded under the run's answer budget are held
// while their items are: the read gathers every one of them.
func TestLargePagesUnderTheAnswerBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := asyncSim(func(a *sim.AsyncAPI) { a.Environments, a.MaxPerPage = 10000, 5000 })
		r := execute(t, srv, `steps:
  - id: list
    http:
      url: https://cloud.example.com/async/environments?per_page=5000
      paginate: link
  - assert: len(steps.list.state) == 10000 && steps.list.state[9999].id == "10000"
`)
		wantCode(t, r, 0)
		wantListReads(t, r, 2)
		if !hasEvent(r, runbook.LogLine, "read 10000 items in 2 pages") {
			t.Error("no event said how many items the pages held")
		}
	})
}
