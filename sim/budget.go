package sim

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The /async/ personality's request budget: a fixed window per client,
// announced in RateLimit and X-RateLimit headers, refused past it with a 429
// (or, on the search route, GitHub's 403).

// window is one client's budget: used of Limit requests until reset.
type window struct {
	used  int
	reset time.Time
}

// asyncClient is who a budget belongs to: the Basic username, or the bearer
// token; "" when the request carries neither.
func asyncClient(r *http.Request) string {
	if user, _, ok := r.BasicAuth(); ok {
		return "user:" + user
	}
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && tok != "" {
		return "token:" + tok
	}
	return ""
}

// window is client's budget now, a new window once the last has reset; nil
// when there is no budget.
func (s *Server) window(client string, now time.Time) *window {
	if s.cfg.Async.Limit < 0 {
		return nil
	}
	w := s.async.windows[client]
	if w == nil || !now.Before(w.reset) {
		w = &window{reset: now.Add(s.cfg.Async.Window)}
		s.async.windows[client] = w
	}
	return w
}

// overBudget refuses a request past the client's budget: 429 with
// Retry-After until the reset, or on the GitHub-style route a 403 that says
// only X-RateLimit-Remaining: 0 and the reset.
func (s *Server) overBudget(c *call, w *window, client string, github bool) reply {
	if github {
		rep := asyncError(http.StatusForbidden, "RateLimitExceeded", "API rate limit exceeded for this client")
		rep.outcome = "rate-limited"
		return rep
	}
	h, at := s.retryAfter(c.now, w.reset.Sub(c.now))
	s.async.comeBack[client] = at
	rep := asyncError(http.StatusTooManyRequests, "TooManyRequests", "the request budget is spent until the window resets")
	rep.outcome, rep.retryAfter, rep.retryAt = "rate-limited", h, at
	return rep
}

// budgetHeaders says what is left of the budget after this request. The
// reset is in whole seconds rounded up, so a client that waits it out comes
// back after the window has reset, never before.
func (s *Server) budgetHeaders(rep *reply, w *window, now time.Time, github bool) {
	limit := s.cfg.Async.Limit
	left := max(limit-w.used, 0)
	secs := int64(math.Ceil(w.reset.Sub(now).Seconds()))
	if rep.extra == nil {
		rep.extra = http.Header{}
	}
	h := rep.extra
	if !github {
		h.Set("RateLimit-Policy", fmt.Sprintf(`"default";q=%d;w=%d`, limit, int64(s.cfg.Async.Window.Seconds())))
		h.Set("RateLimit", fmt.Sprintf(`"default";r=%d;t=%d`, left, secs))
	}
	h.Set("X-RateLimit-Limit", strconv.Itoa(limit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(left))
	// As a Unix time, rounded up too: truncated, it would name a moment up
	// to a second before the window resets.
	at := now.Add(time.Duration(secs) * time.Second)
	unix := at.Unix()
	if at.After(time.Unix(unix, 0)) {
		unix++
	}
	h.Set("X-RateLimit-Reset", strconv.FormatInt(unix, 10))
	if github {
		h.Set("X-RateLimit-Used", strconv.Itoa(w.used))
		h.Set("X-RateLimit-Resource", "search")
	}
}
