package sim

// The answers to changes: busy answers, runstate changes, deletes, creates
// and template edits, each by the API's rules.

import (
	"fmt"
	"net/http"
	"slices"
	"time"
)

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
