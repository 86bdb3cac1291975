package runbook_test

import (
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/runbookhq/runbook/runbook"
	"github.com/runbookhq/runbook/sim"
)

// budgetTransport passes requests to the simulator and adds to its answers
// what a rate-limited API says of its budget: headers(n, method) for the n-th
// answer (from 1), and a status in place of the simulator's when it gives one.
func budgetTransport(srv *sim.Server, headers func(n int, method string) (http.Header, int)) http.RoundTripper {
	var mu sync.Mutex
	n := 0
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := srv.Transport().RoundTrip(req)
		if err != nil {
			return resp, err
		}
		mu.Lock()
		n++
		h, status := headers(n, req.Method)
		mu.Unlock()
		for k, v := range h {
			resp.Header[k] = v
		}
		if status != 0 {
			resp.StatusCode, resp.Status = status, http.StatusText(status)
		}
		return resp, nil
	})
}

// TestZeroBudgetPausesTheHost: an answer that says no request is left until
// the window resets holds every request to the host until then, with no 429
// needed; a budget that is merely low spreads the rest over the window.
func TestZeroBudgetPausesTheHost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		start := time.Now()
		client := budgetTransport(srv, func(n int, _ string) (http.Header, int) {
			if n == 1 {
				return http.Header{"X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset": {"30"}}, 0
			}
			return nil, 0
		})
		r := executeVia(t.Context(), t, client, srv, stopVM)
		wantCode(t, r, 0)
		log := srv.Log()
		if len(log) < 2 {
			t.Fatalf("%d requests", len(log))
		}
		if gap := log[1].Time.Sub(start); gap < 30*time.Second {
			t.Errorf("second request %s after the first, want no sooner than the budget's reset 30s", gap)
		}
	})
}

// TestRateLimited403IsWaitedOut: a 403 that says when to come back is a rate
// limit, waited out and sent again; one that does not is a denial.
func TestRateLimited403IsWaitedOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		sent := false
		client := budgetTransport(srv, func(n int, method string) (http.Header, int) {
			if method == http.MethodPut && !sent {
				sent = true
				return http.Header{"X-Ratelimit-Remaining": {"0"}, "Retry-After": {"20"}}, http.StatusForbidden
			}
			return nil, 0
		})
		r := executeVia(t.Context(), t, client, srv, stopVM)
		wantCode(t, r, 0)
		var puts int
		for _, e := range srv.Log() {
			if e.Method == http.MethodPut {
				puts++
			}
		}
		if puts != 2 {
			t.Errorf("%d PUTs, want the rate-limited one and its re-send", puts)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		client := budgetTransport(srv, func(n int, method string) (http.Header, int) {
			if method == http.MethodPut {
				return nil, http.StatusForbidden
			}
			return nil, 0
		})
		r := executeVia(t.Context(), t, client, srv, stopVM)
		wantCode(t, r, runbook.ExitFailed, "403")
	})
}

// TestSpentBudgetOutlastsAShortRetryAfter: an answer that says no request is
// left until the reset and also "come back in 1s" (about its operation) holds
// the host until the reset, the later of the two.
func TestSpentBudgetOutlastsAShortRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		start := time.Now()
		client := budgetTransport(srv, func(n int, _ string) (http.Header, int) {
			if n == 1 {
				return http.Header{"X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset": {"30"}, "Retry-After": {"1"}}, 0
			}
			return nil, 0
		})
		r := executeVia(t.Context(), t, client, srv, stopVM)
		wantCode(t, r, 0)
		if log := srv.Log(); len(log) < 2 || log[1].Time.Sub(start) < 30*time.Second {
			t.Errorf("second request too soon: %v", log)
		}
	})
}
