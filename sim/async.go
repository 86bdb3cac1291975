package sim

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The simulator's second personality, served under /async/: a generic cloud
// API that says busy its own ways, for runbooks that are not Skytap's.
//
//	GET  /async/environments?per_page=N&page=P  a page of environments, Link: rel="next"
//	POST /async/environments                    create one (201); Idempotency-Key honoured
//	GET  /async/environments/{id}               one environment
//	POST /async/environments/{id}/{action}      start, stop or suspend: 202, Operation-Location
//	GET  /async/operations/{id}                 the monitor: NotStarted, Running, Succeeded, Failed
//	GET  /async/search/environments?q=...       like GitHub's search: a 403, not a 429, past the budget
//
// Every answer carries the client's budget, a fixed window of Limit requests
// per Window: RateLimit-Policy and RateLimit (the IETF draft's structured
// fields) and X-RateLimit-Limit/Remaining/Reset (reset as a Unix time). Past
// it, 429 with Retry-After until the window resets.

// AsyncAPI shapes the /async/ personality. Zero fields take the defaults.
type AsyncAPI struct {
	Environments int     // how many exist at the start; default 250
	RunningShare float64 // the share of them running (seeded), the rest stopped or suspended; default 0.6; negative: none

	Limit  int           // requests per window and client; default 100; negative: no budget (and no headers)
	Window time.Duration // default 60s

	Queued   time.Duration // an operation is NotStarted this long; default 2s; negative: 0
	Duration time.Duration // then Running this long, before jitter; default 20s; negative: 0
	// RetryAfter is what the 202 and an unfinished monitor's answer ask the
	// client to wait before reading the monitor again; default 5s.
	RetryAfter time.Duration
	FailShare  float64 // the share of operations that fail (seeded); default 0: none

	DefaultPerPage int // per_page when the client does not say; default 30
	MaxPerPage     int // per_page is capped at this; default 100

	// AbsoluteURLs writes Link and Operation-Location as absolute URLs on the
	// host the request named, instead of paths: a client that rewrites hosts
	// (runbook run --sim) then sees another host.
	AbsoluteURLs bool

	// MaxKeys bounds the idempotency keys kept; past it the oldest are
	// forgotten. Default 10000.
	MaxKeys int
}

func (a AsyncAPI) withDefaults() AsyncAPI {
	def := func(v *time.Duration, d time.Duration) {
		switch {
		case *v == 0:
			*v = d
		case *v < 0:
			*v = 0
		}
	}
	if a.Environments <= 0 {
		a.Environments = 250
	}
	if a.RunningShare == 0 {
		a.RunningShare = 0.6
	}
	if a.Limit == 0 {
		a.Limit = 100
	}
	if a.Window <= 0 {
		a.Window = time.Minute
	}
	def(&a.Queued, 2*time.Second)
	def(&a.Duration, 20*time.Second)
	if a.RetryAfter <= 0 {
		a.RetryAfter = 5 * time.Second
	}
	if a.DefaultPerPage <= 0 {
		a.DefaultPerPage = 30
	}
	if a.MaxPerPage <= 0 {
		a.MaxPerPage = 100
	}
	a.DefaultPerPage = min(a.DefaultPerPage, a.MaxPerPage)
	if a.MaxKeys <= 0 {
		a.MaxKeys = 10000
	}
	return a
}

// asyncState is the personality's world; it lives under Server.mu.
type asyncState struct {
	rng     *rand.Rand // its own stream, so it does not shift the Skytap answers
	envs    map[string]*asyncEnv
	order   []string // ids in creation order, as lists show them
	ops     map[string]*asyncOp
	pending []*asyncOp // not yet ended, in no order
	opSeq   int
	windows map[string]*window
	keys    map[string]*keyed // client + " " + Idempotency-Key
	keyList []string          // in first-use order, to forget the oldest
	// comeBack is, per client, when the last Retry-After of a refusal passed.
	comeBack map[string]time.Time
}

type asyncEnv struct {
	id, name, state string
	op              *asyncOp // in flight, nil when idle
	created         time.Time
}

type asyncOp struct {
	id         string
	env        *asyncEnv
	action     string
	from, to   string // states: before, and after success
	accepted   time.Time
	start, end time.Time
	fail       bool
	done       bool
	readAfter  time.Time // the last Retry-After this monitor's answers asked for
}

// asyncActions are the transitions an action makes, and the state shown meanwhile.
var asyncActions = map[string]struct {
	from       []string
	to, during string
}{
	"start":   {[]string{"stopped", "suspended"}, "running", "starting"},
	"stop":    {[]string{"running", "suspended"}, "stopped", "stopping"},
	"suspend": {[]string{"running"}, "suspended", "suspending"},
}

func newAsyncState(cfg Config) *asyncState {
	a := &asyncState{
		rng:      rand.New(rand.NewPCG(cfg.Seed, 0xbb67ae8584caa73b)),
		envs:     map[string]*asyncEnv{},
		ops:      map[string]*asyncOp{},
		windows:  map[string]*window{},
		keys:     map[string]*keyed{},
		comeBack: map[string]time.Time{},
	}
	for i := 1; i <= cfg.Async.Environments; i++ {
		state := "running"
		if r := a.rng.Float64(); r >= cfg.Async.RunningShare {
			state = "stopped"
			if r >= (1+cfg.Async.RunningShare)/2 {
				state = "suspended"
			}
		}
		a.add(strconv.Itoa(i), fmt.Sprintf("env-%d", i), state, time.Time{})
	}
	return a
}

func (a *asyncState) add(id, name, state string, now time.Time) *asyncEnv {
	e := &asyncEnv{id: id, name: name, state: state, created: now}
	a.envs[id] = e
	a.order = append(a.order, id)
	return e
}

// AsyncState returns the true state of an environment of the /async/
// personality, and whether it exists.
func (s *Server) AsyncState(id string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceAsync(s.clock.Now())
	if e := s.async.envs[id]; e != nil {
		return e.state, true
	}
	return "", false
}

// AsyncCount counts the environments of the /async/ personality in a state
// ("" counts them all).
func (s *Server) AsyncCount(state string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceAsync(s.clock.Now())
	n := 0
	for _, e := range s.async.envs {
		if state == "" || e.state == state {
			n++
		}
	}
	return n
}

// advanceAsync ends the operations whose time has come: a success applies
// its effect, a failure leaves the environment as it was.
func (s *Server) advanceAsync(now time.Time) {
	a := s.async
	keep := a.pending[:0]
	for _, op := range a.pending {
		if now.Before(op.end) {
			keep = append(keep, op)
			continue
		}
		op.done = true
		op.env.op = nil
		if !op.fail {
			op.env.state = op.to
		}
	}
	clear(a.pending[len(keep):])
	a.pending = keep
}

// asyncRoute is a path under /async/, split.
type asyncRoute struct {
	kind   string // "envs", "env", "action", "op", "search", "" (unknown)
	id     string
	action string
}

func parseAsyncRoute(path string) asyncRoute {
	seg := strings.Split(strings.TrimSuffix(strings.TrimPrefix(path, "/async/"), "/"), "/")
	for i, s := range seg {
		u, err := url.PathUnescape(s)
		if err != nil || u == "" {
			return asyncRoute{}
		}
		seg[i] = u
	}
	switch {
	case len(seg) == 1 && seg[0] == "environments":
		return asyncRoute{kind: "envs"}
	case len(seg) == 2 && seg[0] == "environments":
		return asyncRoute{kind: "env", id: seg[1]}
	case len(seg) == 3 && seg[0] == "environments":
		return asyncRoute{kind: "action", id: seg[1], action: seg[2]}
	case len(seg) == 2 && seg[0] == "operations":
		return asyncRoute{kind: "op", id: seg[1]}
	case len(seg) == 2 && seg[0] == "search" && seg[1] == "environments":
		return asyncRoute{kind: "search"}
	}
	return asyncRoute{}
}

// target names what an async route addresses, for faults and the log.
func (rt asyncRoute) target() string {
	switch rt.kind {
	case "env", "action":
		return "async/env/" + rt.id
	case "op":
		return "async/op/" + rt.id
	}
	return ""
}

func isAsync(path string) bool { return strings.HasPrefix(path, "/async/") }

// asyncDecide answers a request of the /async/ personality, under s.mu with
// the state brought up to c.now: credentials, the budget, an injected fault,
// then the route.
func (s *Server) asyncDecide(c *call) reply {
	s.advanceAsync(c.now)
	cfg := s.cfg.Async
	rt := parseAsyncRoute(c.r.URL.EscapedPath())
	client := asyncClient(c.r)
	if client == "" || !c.authed && strings.HasPrefix(client, "user:") {
		return asyncError(http.StatusUnauthorized, "Unauthorized", "credentials are required")
	}
	github := rt.kind == "search"
	e := c.log
	if back, ok := s.async.comeBack[client]; ok && c.now.Before(back) {
		e.EarlyRetry = true
	}
	var rep reply
	w := s.window(client, c.now)
	if w != nil {
		left := int64(cfg.Limit - w.used)
		e.Remaining = &left
		e.BudgetZero = left <= 0
		if left <= 0 {
			rep = s.overBudget(c, w, client, github)
			s.budgetHeaders(&rep, w, c.now, github)
			return rep
		}
		w.used++
	}
	if f := c.fault; f != nil && f.Status != 0 {
		rep = s.faultReply(c, f)
	} else {
		rep = s.asyncRoute(c, rt)
	}
	if w != nil {
		s.budgetHeaders(&rep, w, c.now, github)
	}
	return rep
}

func (s *Server) asyncRoute(c *call, rt asyncRoute) reply {
	allowed := map[string]string{"envs": "GET POST", "env": "GET", "action": "POST", "op": "GET", "search": "GET"}[rt.kind]
	switch {
	case rt.kind == "":
		return asyncError(http.StatusNotFound, "NotFound", "no such resource")
	case !strings.Contains(allowed, c.method):
		return asyncError(http.StatusMethodNotAllowed, "MethodNotAllowed", "use "+allowed)
	}
	if c.method == http.MethodPost {
		return s.idempotent(c, func() reply { return s.asyncPost(c, rt) })
	}
	switch rt.kind {
	case "envs":
		return s.asyncList(c, "")
	case "search":
		return s.asyncList(c, c.r.URL.Query().Get("q"))
	case "env":
		e := s.async.envs[rt.id]
		if e == nil {
			return asyncError(http.StatusNotFound, "NotFound", "no such environment")
		}
		c.log.Env, c.log.Runstate = e.id, e.state
		return asyncOK(http.StatusOK, s.asyncEnvJSON(e))
	}
	return s.monitor(c, rt.id)
}

func (s *Server) asyncPost(c *call, rt asyncRoute) reply {
	if rt.kind == "envs" {
		var body struct {
			Name  string `json:"name"`
			State string `json:"state"`
		}
		if err := json.Unmarshal(c.body, &body); err != nil || body.Name == "" {
			return asyncError(http.StatusBadRequest, "InvalidRequest", `the body must be JSON with a "name"`)
		}
		if body.State == "" {
			body.State = "stopped"
		}
		if body.State != "running" && body.State != "stopped" {
			return asyncError(http.StatusBadRequest, "InvalidRequest", `state must be "running" or "stopped"`)
		}
		id := strconv.Itoa(len(s.async.order) + 1)
		for s.async.envs[id] != nil {
			id += "0"
		}
		e := s.async.add(id, body.Name, body.State, c.now)
		c.log.Env = e.id
		rep := asyncOK(http.StatusCreated, s.asyncEnvJSON(e))
		rep.extra = http.Header{"Location": {s.asyncURL(c, "/async/environments/"+e.id)}}
		rep.outcome = "created"
		return rep
	}
	e := s.async.envs[rt.id]
	if e == nil {
		return asyncError(http.StatusNotFound, "NotFound", "no such environment")
	}
	c.log.Env, c.log.Runstate = e.id, e.state
	c.log.Busy = e.op != nil
	act, ok := asyncActions[rt.action]
	switch {
	case !ok:
		return asyncError(http.StatusNotFound, "NotFound", "no such action: use start, stop or suspend")
	case e.op != nil:
		rep := asyncError(http.StatusConflict, "OperationInProgress", fmt.Sprintf("operation %s is in progress on this environment", e.op.id))
		rep.outcome = "busy-409"
		return rep
	case e.state == act.to: // already there: nothing to do
		rep := asyncOK(http.StatusOK, s.asyncEnvJSON(e))
		rep.outcome = "noop"
		return rep
	case !slices.Contains(act.from, e.state):
		return asyncError(http.StatusConflict, "InvalidState", fmt.Sprintf("cannot %s an environment that is %s", rt.action, e.state))
	}
	a := s.async
	a.opSeq++
	op := &asyncOp{id: fmt.Sprintf("op-%d", a.opSeq), env: e, action: rt.action, from: e.state, to: act.to, accepted: c.now}
	op.start = c.now.Add(s.cfg.Async.Queued)
	op.end = op.start.Add(s.asyncJitter(s.cfg.Async.Duration))
	op.fail = s.cfg.Async.FailShare > 0 && a.rng.Float64() < s.cfg.Async.FailShare
	a.ops[op.id], e.op = op, op
	a.pending = append(a.pending, op)
	rep := asyncOK(http.StatusAccepted, s.opJSON(c, op))
	rep.extra = http.Header{"Operation-Location": {s.asyncURL(c, "/async/operations/"+op.id)}}
	rep.retryAfter, rep.retryAt = s.retryAfter(c.now, s.cfg.Async.RetryAfter)
	op.readAfter = rep.retryAt
	rep.outcome = "accepted"
	return rep
}

// asyncJitter is jitter from the personality's own generator.
func (s *Server) asyncJitter(d time.Duration) time.Duration {
	if j := s.cfg.Jitter; j > 0 && d > 0 {
		return time.Duration(float64(d) * (1 + j*(2*s.async.rng.Float64()-1)))
	}
	return d
}

func (s *Server) asyncEnvJSON(e *asyncEnv) map[string]any {
	out := map[string]any{"id": e.id, "name": e.name, "state": e.state, "operation": nil}
	if e.op != nil {
		out["state"] = asyncActions[e.op.action].during
		out["operation"] = e.op.id
	}
	return out
}

// asyncList serves a page of environments, with name filter q (a prefix
// when it ends in *), and a Link to the next page when there is one.
func (s *Server) asyncList(c *call, q string) reply {
	cfg := s.cfg.Async
	query := c.r.URL.Query()
	per := cfg.DefaultPerPage
	if n, err := strconv.Atoi(query.Get("per_page")); err == nil && n > 0 {
		per = min(n, cfg.MaxPerPage)
	}
	page := 1
	if n, err := strconv.Atoi(query.Get("page")); err == nil && n > 0 {
		page = n
	}
	var ids []string
	for _, id := range s.async.order {
		name := s.async.envs[id].name
		if prefix, ok := strings.CutSuffix(q, "*"); ok && !strings.HasPrefix(name, prefix) || !ok && q != "" && name != q {
			continue
		}
		ids = append(ids, id)
	}
	from := len(ids) // a page past the end, however large its number
	if page-1 <= len(ids)/per {
		from = min((page-1)*per, len(ids))
	}
	to := min(from+per, len(ids))
	items := make([]map[string]any, 0, to-from)
	for _, id := range ids[from:to] {
		items = append(items, s.asyncEnvJSON(s.async.envs[id]))
	}
	rep := asyncOK(http.StatusOK, items)
	if to < len(ids) {
		next := url.Values{}
		for k, v := range query {
			next[k] = v
		}
		next.Set("page", strconv.Itoa(page+1))
		next.Set("per_page", strconv.Itoa(per))
		link := s.asyncURL(c, c.r.URL.EscapedPath()+"?"+next.Encode())
		rep.extra = http.Header{"Link": {fmt.Sprintf(`<%s>; rel="next"`, link)}}
	}
	return rep
}

// asyncURL is a link to path: the path itself, or with AbsoluteURLs on the
// host the request named.
func (s *Server) asyncURL(c *call, path string) string {
	if s.cfg.Async.AbsoluteURLs {
		return c.render.base + path
	}
	return path
}

func asyncOK(status int, body any) reply {
	return reply{status: status, body: mustJSON(body), outcome: "read"}
}

// asyncError is the personality's error body: {"error": {"code", "message"}}.
func asyncError(status int, code, msg string) reply {
	outcome := map[int]string{401: "unauthorized", 404: "not-found", 405: "not-allowed", 409: "conflict"}[status]
	if outcome == "" {
		outcome = "invalid"
	}
	return reply{status: status, body: mustJSON(map[string]any{"error": map[string]string{"code": code, "message": msg}}), outcome: outcome}
}
