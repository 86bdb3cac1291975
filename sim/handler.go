package sim

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// call is one request on its way through the simulator.
type call struct {
	r      *http.Request
	method string
	body   []byte
	route  route
	render render
	user   string
	authed bool
	fault  *Fault
	now    time.Time
	log    *Entry // filled in as the answer is decided
	seq    int    // the entry's number in the log
}

func (s *Server) newCall(r *http.Request, body []byte) *call {
	c := &call{r: r, method: r.Method, body: body, route: parseRoute(r.URL.EscapedPath())}
	if c.method == "" {
		c.method = http.MethodGet
	}
	v2 := c.route.v2 || strings.Contains(r.Header.Get("Accept"), "application/vnd.skytap.api.v2+json")
	c.render = render{base: baseURL(r), v2: v2}
	c.user, c.authed = s.authorize(r)
	if c.route.kind == routeWebhook {
		// A webhook's URL is its secret; it takes no Skytap credentials.
		c.authed = true
	}
	if c.route.kind == routeAsync && !c.authed {
		// The other API takes a bearer token as well.
		_, bearer := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		c.authed = bearer
	}
	return c
}

func baseURL(r *http.Request) string {
	host := r.Host
	if host == "" {
		host = r.URL.Host
	}
	scheme := "http"
	if r.TLS != nil || r.URL.Scheme == "https" {
		scheme = "https"
	}
	return scheme + "://" + host
}

// authorize checks Basic credentials: against Config.Credentials, or, when
// none are configured, any username and token will do.
func (s *Server) authorize(r *http.Request) (user string, ok bool) {
	user, token, has := r.BasicAuth()
	if !has {
		return user, false
	}
	if len(s.cfg.Credentials) == 0 {
		return user, true
	}
	want, known := s.cfg.Credentials[user]
	return user, known && want == token
}

func (c *call) entry() Entry {
	// The key is logged as sent, also on a request refused or dropped before
	// it reached idempotent: a re-send without its key shows either way.
	return Entry{
		Time: c.now, Method: c.method, Path: c.r.URL.EscapedPath(), Query: c.r.URL.RawQuery,
		Body: string(c.body), User: c.user, Target: c.route.target(), Mutation: isMutation(c.method),
		IdempotencyKey: truncateKey(c.r.Header.Get("Idempotency-Key")),
	}
}

// resolved is what a route names, found (and perhaps provisioned).
type resolved struct {
	env   *environment
	vm    *vm
	tmpl  *template
	found bool
}

func (s *Server) resolve(c *call, provision bool) resolved {
	var x resolved
	switch rt := c.route; rt.kind {
	case routeEnvs:
		x.found = true
	case routeEnv, routeEnvVMs, routeUserData:
		x.env = s.findEnv(rt.env, c.now, provision)
		x.found = x.env != nil
	case routeEnvVM:
		if x.env = s.findEnv(rt.env, c.now, provision); x.env != nil {
			x.vm = x.env.vm(rt.vm)
		}
		x.found = x.vm != nil
	case routeVM:
		if x.vm = s.findVM(rt.vm, c.now, provision); x.vm != nil {
			x.env = x.vm.env
		}
		x.found = x.vm != nil
	case routeTemplate:
		x.tmpl = s.findTemplate(rt.tmpl, provision)
		x.found = x.tmpl != nil
	}
	return x
}

// busy is the rule for refusing changes: a VM or an environment is busy when
// anything in its environment is; a template while environments are being
// created from it.
func (x resolved) busy(now time.Time) bool {
	switch {
	case x.env != nil:
		return x.env.busy(now)
	case x.tmpl != nil:
		return x.tmpl.busyUntil.After(now)
	}
	return false
}

// describe records the truth about the target on arrival.
func (s *Server) describe(e *Entry, c *call, x resolved) {
	if !x.found {
		return
	}
	e.Busy = x.busy(c.now)
	switch {
	case x.vm != nil:
		e.Env, e.Runstate = x.vm.env.id, s.vmRunstate(x.vm, c.now)
	case x.env != nil:
		e.Env, e.Runstate = x.env.id, s.envRunstate(x.env, c.now)
		if c.method == http.MethodGet {
			e.Listed = make(map[string]string, len(x.env.vms))
			for _, v := range x.env.vms {
				e.Listed[v.id] = s.vmRunstate(v, c.now)
			}
		}
	case x.tmpl != nil && e.Busy:
		e.Runstate = "busy"
	}
}

// respond decides the answer to a request and logs it; it runs under s.mu
// with the state brought up to c.now.
func (s *Server) respond(c *call) reply {
	e := c.entry()
	c.log = &e
	rep := s.decide(c)
	rep.requestID = s.requestID()
	e.Status, e.Outcome, e.RetryAfter, e.RetryAt, e.Shown = rep.status, rep.outcome, rep.retryAfter, rep.retryAt, rep.shown
	if c.fault != nil {
		e.Fault = c.fault.describe()
	}
	e.Answered = c.now
	s.record(e)
	c.seq = s.seq
	return rep
}

// decide is the one place that answers a request, in a fixed order:
// credentials, then an
// injected fault, then whether the resource exists, then the rate limit, and
// then a read (never refused for busyness) or a change (see change).
func (s *Server) decide(c *call) reply {
	if c.route.kind == routeAsync {
		return s.asyncDecide(c)
	}
	if c.route.kind == routeWebhook {
		return s.webhook(c)
	}
	if !c.authed {
		return reply{status: 401, body: errorBody("Unauthorized"), outcome: "unauthorized"}
	}
	x := s.resolve(c, true)
	s.describe(c.log, c, x)
	if f := c.fault; f != nil && f.Status != 0 {
		return s.faultReply(c, f)
	}
	if c.route.kind == routeNone || !x.found {
		return reply{status: 404, body: errorBody("Not found"), outcome: "not-found"}
	}
	if !c.route.allows(c.method) {
		return reply{status: 405, body: errorBody("Method not allowed"), outcome: "not-allowed"}
	}
	if !s.allow(c.user, c.now) {
		h, at := s.retryAfter(c.now, s.cfg.RateRetryAfter)
		return reply{status: 429, body: errorBody("Too many requests"), outcome: "rate-limited", retryAfter: h, retryAt: at}
	}
	if c.method == http.MethodGet {
		return s.read(c, x)
	}
	return s.change(c, x)
}

func (s *Server) faultReply(c *call, f *Fault) reply {
	rep := reply{status: f.Status, body: []byte(f.Body), outcome: "fault"}
	if f.Body == "" {
		rep.body = defaultFaultBody(f.Status)
	}
	switch {
	case f.RetryAfterRaw == "-":
	case f.RetryAfterRaw != "":
		rep.retryAfter = f.RetryAfterRaw
	case f.RetryAfter > 0:
		rep.retryAfter, rep.retryAt = s.retryAfter(c.now, f.RetryAfter)
	case f.Status == http.StatusLocked:
		rep.retryAfter, rep.retryAt = s.retryAfter(c.now, s.cfg.RetryAfter)
	case f.Status == http.StatusTooManyRequests:
		rep.retryAfter, rep.retryAt = s.retryAfter(c.now, s.cfg.RateRetryAfter)
	}
	return rep
}

func (s *Server) read(c *call, x resolved) reply {
	var body any
	outcome, shown := "read", ""
	switch c.route.kind {
	case routeEnvs:
		body = s.list(c)
	case routeEnv:
		view := s.envView(x.env, c.now)
		if old := x.env.hist.read(c.fault); old != nil {
			view, outcome = *old, "stale"
		}
		shown = shownAs(view.Runstate, view.RateLimited)
		body = c.render.env(view)
	case routeEnvVM, routeVM:
		view := s.vmView(x.vm, c.now)
		if old := x.vm.hist.read(c.fault); old != nil {
			view, outcome = *old, "stale"
		}
		shown = shownAs(view.Runstate, view.RateLimited)
		body = c.render.vm(view, slices.Index(x.vm.env.vms, x.vm))
	case routeEnvVMs:
		vms := []vmJSON{}
		for i, v := range x.env.vms {
			vms = append(vms, c.render.vm(s.vmView(v, c.now), i))
		}
		body = vms
	case routeUserData:
		body = map[string]string{"contents": x.env.userData}
	case routeTemplate:
		body = c.render.template(x.tmpl, c.now)
	}
	return reply{status: http.StatusOK, body: mustJSON(body), outcome: outcome, shown: shown}
}

// shownAs is what a read told the client about a resource: its runstate, with
// "+rate_limited" when it said so. A stale read shows an old state.
func shownAs(runstate string, rateLimited bool) string {
	if rateLimited {
		return runstate + "+rate_limited"
	}
	return runstate
}

// list serves GET /configurations, with the SDK's query=name:prefix*,
// offset and count.
func (s *Server) list(c *call) []envJSON {
	q := c.r.URL.Query()
	pattern := strings.TrimPrefix(q.Get("query"), "name:")
	ids := make([]string, 0, len(s.envs))
	for id := range s.envs {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int {
		if len(a) != len(b) {
			return len(a) - len(b)
		}
		return strings.Compare(a, b)
	})
	out := []envJSON{}
	for _, id := range ids {
		e := s.envs[id]
		if prefix, ok := strings.CutSuffix(pattern, "*"); ok && !strings.HasPrefix(e.name, prefix) || !ok && pattern != "" && e.name != pattern {
			continue
		}
		out = append(out, c.render.env(s.envView(e, c.now)))
	}
	if off, err := strconv.Atoi(q.Get("offset")); err == nil && off > 0 {
		out = out[min(off, len(out)):]
	}
	if n, err := strconv.Atoi(q.Get("count")); err == nil && n >= 0 && n < len(out) {
		out = out[:n]
	}
	return out
}
