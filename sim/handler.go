package sim

import (
	"fmt"
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

// change answers a mutation of an existing resource, by the rest of §6.4 in
// order: a locked environment (423, no Retry-After), a busy target (a seeded
// choice of busy answers), an invalid request (422), and then the change is
// accepted: 200 with the resource already busy, or queued behind the
// account's operation limit with rate_limited set.
func (s *Server) change(c *call, x resolved) reply {
	p, refusal := parseParams(c.r, c.body)
	if c.route.kind == routeEnvs { // POST: a create, whose busyness is its template's
		if refusal != "" {
			return invalid(refusal)
		}
		return s.create(c, p)
	}
	if x.env != nil && x.env.locked {
		return reply{status: http.StatusLocked, body: errorBody("Environment is locked"), outcome: "locked"}
	}
	if x.busy(c.now) {
		return s.busyAnswer(c, x)
	}
	if refusal != "" {
		return invalid(refusal)
	}
	switch c.route.kind {
	case routeEnv:
		if c.method == http.MethodDelete {
			return s.deleteEnv(c, x.env)
		}
		return s.changeEnv(c, x.env, p)
	case routeEnvVM, routeVM:
		if c.method == http.MethodDelete {
			return s.deleteVM(c, x.vm)
		}
		return s.changeVM(c, x.vm, p)
	case routeUserData:
		return s.setUserData(c, x.env, p)
	case routeTemplate:
		return s.changeTemplate(c, x.tmpl, p)
	}
	return reply{status: 405, body: errorBody("Method not allowed"), outcome: "not-allowed"}
}

func invalid(msg string) reply {
	return reply{status: http.StatusUnprocessableEntity, body: errorsBody(msg), outcome: "invalid"}
}

// busyAnswer picks, with the seeded generator and Config.Busy's weights, how
// a change to a busy resource is refused. Every one of them happens with the
// real API, and a client must tell them apart from real failures.
func (s *Server) busyAnswer(c *call, x resolved) reply {
	w := s.cfg.Busy
	weights := []float64{max(w.Status422, 0), max(w.Status423, 0), max(w.Dropped200, 0), max(w.Status409, 0)}
	total := 0.0
	for _, wt := range weights {
		total += wt
	}
	pick := 1 // 423 if every weight is zero
	if total > 0 {
		r := s.rng.Float64() * total
		pick = slices.IndexFunc(weights, func(wt float64) bool {
			if r < wt {
				return true
			}
			r -= wt
			return false
		})
		if pick < 0 { // rounding at the very top
			pick = slices.IndexFunc(weights, func(wt float64) bool { return wt > 0 })
		}
	}
	switch pick {
	case 0:
		return reply{status: http.StatusUnprocessableEntity, body: errorsBody(busyMessage), outcome: "busy-422"}
	case 1:
		h, at := s.retryAfter(c.now, s.cfg.RetryAfter)
		return reply{status: http.StatusLocked, body: errorBody("Resource is busy"), outcome: "busy-423", retryAfter: h, retryAt: at}
	case 2:
		return reply{status: http.StatusOK, body: mustJSON(s.busyBody(c, x)), outcome: "dropped-busy"}
	}
	return reply{status: http.StatusConflict, body: errorBody("Resource is busy with another operation"), outcome: "busy-409"}
}

// busyBody is the resource as it is, but reading busy: the body of a 200 whose
// change was dropped.
func (s *Server) busyBody(c *call, x resolved) any {
	switch {
	case x.vm != nil:
		v := s.vmView(x.vm, c.now)
		v.Runstate = "busy"
		return c.render.vm(v, slices.Index(x.vm.env.vms, x.vm))
	case c.route.kind == routeUserData:
		return map[string]string{"contents": x.env.userData}
	case x.env != nil:
		e := s.envView(x.env, c.now)
		e.Runstate = "busy"
		return c.render.env(e)
	}
	return c.render.template(x.tmpl, c.now)
}

// The refusals of a bad runstate do not repeat the value: a client must be
// able to tell this 422 from a busy one by the word "busy", and the value
// might be "busy".
var (
	envTargets = []string{"running", "stopped", "suspended", "halted"}
	vmTargets  = []string{"running", "stopped", "suspended", "halted", "reset"}
)

func (s *Server) changeEnv(c *call, e *environment, p params) reply {
	if p.runstate != "" && p.templateID != "" {
		return invalid("Change the runstate and add VMs in separate requests")
	}
	var changes []change
	if p.runstate != "" {
		if !slices.Contains(envTargets, p.runstate) {
			return invalid("Invalid runstate for an environment: use running, stopped, suspended or halted")
		}
		vms := e.vms
		if len(p.multiselect) > 0 {
			vms = nil
			for _, id := range p.multiselect {
				v := e.vm(id)
				if v == nil {
					return invalid(fmt.Sprintf("VM %s is not in environment %s", id, e.id))
				}
				vms = append(vms, v)
			}
		}
		var refusal string
		if changes, refusal = s.planRunstate(vms, p.runstate); refusal != "" {
			return invalid(refusal)
		}
	} else if len(p.multiselect) > 0 {
		return invalid("multiselect needs a runstate")
	}
	var specs []VMSpec
	if p.templateID != "" {
		t := s.findTemplate(p.templateID, true)
		if t == nil {
			return invalid(fmt.Sprintf("Template %s not found", p.templateID))
		}
		if t.busyUntil.After(c.now) {
			return s.templateBusy(c)
		}
		var refusal string
		if specs, refusal = t.pick(p.vmIDs); refusal != "" {
			return invalid(refusal)
		}
	}

	before := s.envView(e, c.now)
	edited := p.rename(&e.name, &e.description)
	var op *operation
	switch {
	case len(changes) > 0:
		op = s.runstateOp(e, nil, changes)
	case len(specs) > 0:
		op = &operation{kind: opAddVM, env: e, dur: s.jitter(s.cfg.Durations.AddVM)}
		op.added = s.copyVMs(e, specs, op, c.now)
		e.op = op
	}
	body := func() any { return c.render.env(s.envView(e, c.now)) }
	if !edited && op == nil {
		return reply{status: http.StatusOK, body: mustJSON(body()), outcome: "noop"}
	}
	if op != nil {
		s.launch(op, c.now)
	}
	e.version++
	e.hist.changed(before, s.cfg.LagReads)
	return acceptedReply(op, body())
}

func (s *Server) changeVM(c *call, v *vm, p params) reply {
	var changes []change
	if p.runstate != "" {
		if p.hardware != nil {
			return invalid("Change the runstate and the hardware in separate requests")
		}
		if !slices.Contains(vmTargets, p.runstate) {
			return invalid("Invalid runstate for a VM: use running, stopped, suspended, halted or reset")
		}
		var refusal string
		if changes, refusal = s.planRunstate([]*vm{v}, p.runstate); refusal != "" {
			return invalid(refusal)
		}
	}
	if p.hardware != nil {
		if v.state != "stopped" {
			return invalid(fmt.Sprintf("VM %s must be stopped (powered off) to change its hardware", v.id))
		}
		if msg := p.hardware.check(); msg != "" {
			return invalid(msg)
		}
	}

	before := s.vmView(v, c.now)
	edited := p.rename(&v.name, nil)
	var op *operation
	switch {
	case len(changes) > 0:
		op = s.runstateOp(v.env, v, changes)
	case p.hardware != nil && !p.hardware.same(v):
		op = &operation{kind: opEdit, env: v.env, vm: v, hw: *p.hardware, dur: s.jitter(s.cfg.Durations.Edit)}
		v.op = op
	}
	body := func() any { return c.render.vm(s.vmView(v, c.now), slices.Index(v.env.vms, v)) }
	if !edited && op == nil {
		return reply{status: http.StatusOK, body: mustJSON(body()), outcome: "noop"}
	}
	if op != nil {
		s.launch(op, c.now)
	}
	v.env.version++
	v.hist.changed(before, s.cfg.LagReads)
	return acceptedReply(op, body())
}

func acceptedReply(op *operation, body any) reply {
	outcome := "accepted"
	if op != nil && op.queued {
		outcome = "queued"
	}
	return reply{status: http.StatusOK, body: mustJSON(body), outcome: outcome}
}

// planRunstate checks a runstate request against each VM it applies to. It
// refuses the whole request if any VM's transition is invalid, and leaves out
// the VMs already where they are asked to be.
func (s *Server) planRunstate(vms []*vm, target string) ([]change, string) {
	var changes []change
	for _, v := range vms {
		m, result, refusal := s.transition(v, target)
		if refusal != "" {
			return nil, refusal
		}
		if m != moveNone {
			changes = append(changes, change{vm: v, move: m, result: result})
		}
	}
	return changes, ""
}

// runstateOp makes the operation for planned changes: it lasts as long as the
// slowest VM's transition, and runs are slower the more VMs start together.
func (s *Server) runstateOp(e *environment, target *vm, changes []change) *operation {
	started := 0
	for _, ch := range changes {
		if ch.move == moveRun {
			started++
		}
	}
	var d time.Duration
	for i := range changes {
		ch := &changes[i]
		d = max(d, s.moveDuration(ch.move, started))
		ch.fail, ch.detail = s.failure(ch.vm, ch.move)
	}
	op := &operation{kind: opRunstate, env: e, vm: target, changes: changes, dur: s.jitter(d)}
	for _, ch := range changes {
		ch.vm.op = op
	}
	if target == nil {
		e.op = op
	}
	return op
}

func (s *Server) deleteEnv(c *call, e *environment) reply {
	before := s.envView(e, c.now)
	op := &operation{kind: opDelete, env: e, dur: s.jitter(s.cfg.Durations.Delete)}
	e.op = op
	s.launch(op, c.now)
	e.hist.changed(before, s.cfg.LagReads)
	return reply{status: http.StatusOK, body: mustJSON(c.render.env(s.envView(e, c.now))), outcome: "deleted"}
}

func (s *Server) deleteVM(c *call, v *vm) reply {
	before := s.vmView(v, c.now)
	op := &operation{kind: opDelete, env: v.env, vm: v, dur: s.jitter(s.cfg.Durations.Delete)}
	v.op = op
	s.launch(op, c.now)
	v.hist.changed(before, s.cfg.LagReads)
	return reply{status: http.StatusOK, body: mustJSON(c.render.vm(s.vmView(v, c.now), slices.Index(v.env.vms, v))), outcome: "deleted"}
}

// create serves POST /configurations: a new environment from a template,
// busy for Durations.Create, with the template busy as long.
func (s *Server) create(c *call, p params) reply {
	if p.templateID == "" {
		return invalid("template_id is required")
	}
	t := s.findTemplate(p.templateID, true)
	if t == nil {
		return invalid(fmt.Sprintf("Template %s not found", p.templateID))
	}
	c.log.Busy = t.busyUntil.After(c.now)
	if c.log.Busy {
		return s.templateBusy(c)
	}
	specs, refusal := t.pick(p.vmIDs)
	if refusal != "" {
		return invalid(refusal)
	}
	e := s.newEnv(s.newEnvID(), t.name, c.now)
	p.rename(&e.name, &e.description)
	op := &operation{kind: opCreate, env: e, dur: s.jitter(s.cfg.Durations.Create)}
	op.added = s.copyVMs(e, specs, op, c.now)
	e.op = op
	s.launch(op, c.now)
	if op.end.After(t.busyUntil) {
		t.busyUntil = op.end
	}
	c.log.Env = e.id
	return reply{status: http.StatusOK, body: mustJSON(c.render.env(s.envView(e, c.now))), outcome: "accepted"}
}

func (s *Server) templateBusy(c *call) reply {
	h, at := s.retryAfter(c.now, s.cfg.RetryAfter)
	return reply{status: http.StatusLocked, body: errorBody("Template is busy"), outcome: "busy-423", retryAfter: h, retryAt: at}
}

// copyVMs adds copies of template VMs to e, new ids, busy with op.
func (s *Server) copyVMs(e *environment, specs []VMSpec, op *operation, now time.Time) []*vm {
	var added []*vm
	for _, spec := range specs {
		spec.ID, spec.Error = "", ""
		v := s.newVM(e, spec, "stopped", now)
		v.op = op
		added = append(added, v)
	}
	return added
}

func (s *Server) setUserData(c *call, e *environment, p params) reply {
	if p.contents == nil {
		return invalid("contents is required")
	}
	e.userData = *p.contents
	return reply{status: http.StatusOK, body: mustJSON(map[string]string{"contents": e.userData}), outcome: "accepted"}
}

func (s *Server) changeTemplate(c *call, t *template, p params) reply {
	if p.runstate != "" {
		return invalid("The runstate of a template cannot be changed")
	}
	outcome := "noop"
	if p.name != nil && *p.name != t.name {
		t.name, outcome = *p.name, "accepted"
	}
	return reply{status: http.StatusOK, body: mustJSON(c.render.template(t, c.now)), outcome: outcome}
}
