package sim

import (
	"fmt"
	"slices"
	"strconv"
	"time"
)

// environment is a Skytap configuration. Its runstate is never stored: it is
// derived from its VMs and its own pending operation, as the API documents.
type environment struct {
	id, name, description string
	vms                   []*vm
	locked                bool
	errors, errorDetails  []string // lingering until a runstate change succeeds
	userData              string
	createdAt, lastRun    time.Time
	version               int       // bumped by every accepted change (lockversion)
	busyUntil             time.Time // another actor's operation
	op                    *operation
	hist                  history[envView]
}

// vm is a VM. state is where it rests (running, stopped, suspended); while an
// operation is pending its runstate reads busy.
type vm struct {
	id, name       string
	env            *environment
	state          string
	hasTools       bool
	canSuspend     bool
	err, errDetail string
	failNext       bool
	busyUntil      time.Time
	op             *operation
	cpus, ram      int
	createdAt      time.Time
	hist           history[vmView]
}

func (e *environment) vm(id string) *vm {
	for _, v := range e.vms {
		if v.id == id {
			return v
		}
	}
	return nil
}

// history keeps a resource's representation from before its last accepted
// change, for lagged reads (Config.LagReads) and Stale faults.
type history[V any] struct {
	prev *V
	lag  int // GETs still to answer with prev
}

func (h *history[V]) changed(before V, lag int) {
	h.prev, h.lag = &before, lag
}

// read returns what a GET shows instead of the current representation, if
// anything: prev while lagged reads are left, or for a Stale fault.
func (h *history[V]) read(f *Fault) *V {
	switch {
	case h.prev == nil:
		return nil
	case h.lag > 0:
		h.lag--
		return h.prev
	case f != nil && f.Stale:
		return h.prev
	}
	return nil
}

// template is a read-only template that environments are created from.
type template struct {
	id, name  string
	vms       []VMSpec
	busyUntil time.Time
}

// busy says whether the environment, or anything in it, is busy: then every
// change to it or to its VMs gets a busy answer ("when an environment is busy,
// its components are also busy").
func (e *environment) busy(now time.Time) bool {
	if e.op != nil || e.busyUntil.After(now) {
		return true
	}
	for _, v := range e.vms {
		if v.op != nil || v.busyUntil.After(now) {
			return true
		}
	}
	return false
}

// runstate is what a GET of the VM shows. A VM shows busy while its own
// operation runs, and while its environment is being created, extended,
// deleted or is busy with another actor's work; a sibling's operation makes
// the environment busy but leaves this VM's runstate as it is.
func (s *Server) vmRunstate(v *vm, now time.Time) string {
	if v.op != nil {
		if v.op.queued && s.cfg.QueueStale {
			return v.state
		}
		return "busy"
	}
	if v.busyUntil.After(now) || v.env.busyUntil.After(now) {
		return "busy"
	}
	if op := v.env.op; op != nil && op.kind != opRunstate {
		return "busy"
	}
	return v.state
}

// envRunstate derives the environment's runstate: busy while it or any VM is
// busy, else running if any VM runs, else suspended if any is, else stopped.
func (s *Server) envRunstate(e *environment, now time.Time) string {
	if e.op != nil && !(e.op.queued && s.cfg.QueueStale) || e.busyUntil.After(now) {
		return "busy"
	}
	running, suspended := false, false
	for _, v := range e.vms {
		switch s.vmRunstate(v, now) {
		case "busy":
			return "busy"
		case "running":
			running = true
		case "suspended":
			suspended = true
		}
	}
	switch {
	case running:
		return "running"
	case suspended:
		return "suspended"
	case len(e.vms) == 0:
		return s.cfg.EmptyEnvRunstate
	}
	return "stopped"
}

func (v *vm) rateLimited() bool { return v.op != nil && v.op.queued }

func (e *environment) rateLimited() bool {
	if e.op != nil && e.op.queued {
		return true
	}
	return slices.ContainsFunc(e.vms, (*vm).rateLimited)
}

// EnvSpec describes an environment to add with AddEnvironment.
type EnvSpec struct {
	ID, Name string
	VMs      []VMSpec
	Locked   bool   // every change gets 423 without Retry-After, for ever
	Error    string // a lingering error already present
}

// VMSpec describes a VM of an EnvSpec (or of a template).
type VMSpec struct {
	ID, Name  string
	Runstate  string // running (default), stopped or suspended
	NoTools   bool   // no VMware Tools: a graceful stop fails
	NoSuspend bool   // supports_suspend false: suspend is 422
	Error     string // a lingering error already present
}

// AddEnvironment adds (or replaces) an environment with its VMs.
func (s *Server) AddEnvironment(spec EnvSpec) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	s.advance(now)
	if spec.ID == "" {
		spec.ID = s.newEnvID()
	}
	if old := s.envs[spec.ID]; old != nil {
		for _, v := range old.vms {
			delete(s.vms, v.id)
		}
	}
	e := s.newEnv(spec.ID, spec.Name, now)
	e.locked = spec.Locked
	if spec.Error != "" {
		e.addError(spec.Error, spec.Error)
	}
	for _, vs := range spec.VMs {
		v := s.newVM(e, vs, "running", now)
		if vs.Error != "" {
			v.err, v.errDetail = vs.Error, vs.Error
			e.addError(vs.Error, vs.Error)
		}
	}
}

func (s *Server) newEnv(id, name string, now time.Time) *environment {
	if name == "" {
		name = "Environment " + id
	}
	e := &environment{id: id, name: name, createdAt: now, version: 1}
	s.envs[id] = e
	delete(s.gone, "env/"+id)
	return e
}

// newVM adds a VM to e; a spec without a runstate gets def.
func (s *Server) newVM(e *environment, spec VMSpec, def string, now time.Time) *vm {
	if spec.ID == "" {
		spec.ID = s.newVMID()
	}
	if spec.Name == "" {
		spec.Name = fmt.Sprintf("VM %d", len(e.vms)+1)
	}
	state := spec.Runstate
	switch state {
	case "running", "stopped", "suspended":
	default:
		state = def
	}
	v := &vm{
		id: spec.ID, name: spec.Name, env: e, state: state,
		hasTools: !spec.NoTools, canSuspend: !spec.NoSuspend,
		cpus: 1, ram: 1024, createdAt: now,
	}
	e.vms = append(e.vms, v)
	s.vms[v.id] = v
	delete(s.gone, "vm/"+v.id)
	return v
}

func (s *Server) newEnvID() string {
	for {
		s.lastEnvID++
		id := strconv.Itoa(s.lastEnvID)
		if s.envs[id] == nil && !s.gone["env/"+id] {
			return id
		}
	}
}

func (s *Server) newVMID() string {
	for {
		s.lastVMID++
		id := strconv.Itoa(s.lastVMID)
		if s.vms[id] == nil && !s.gone["vm/"+id] {
			return id
		}
	}
}

// findEnv returns an environment, provisioning it on first use when the
// configuration says so. A deleted environment stays deleted.
func (s *Server) findEnv(id string, now time.Time, provision bool) *environment {
	if e := s.envs[id]; e != nil || !provision || !s.cfg.AutoProvision || s.gone["env/"+id] || id == "" {
		return e
	}
	e := s.newEnv(id, "", now)
	for i := 1; i <= s.cfg.VMsPerEnv; i++ {
		vid := fmt.Sprintf("%s%02d", id, i)
		if s.vms[vid] == nil && !s.gone["vm/"+vid] {
			s.newVM(e, VMSpec{ID: vid}, "running", now)
		}
	}
	if d := s.cfg.Demo.BusyOnFirstUse; d > 0 {
		e.busyUntil = now.Add(d)
	}
	return e
}

// findVM returns a VM by its bare id. An unknown one is provisioned, when the
// configuration says so, in the environment named by the id without its last
// two digits (the reverse of findEnv's naming), if that one is new too.
func (s *Server) findVM(id string, now time.Time, provision bool) *vm {
	if v := s.vms[id]; v != nil || !provision || !s.cfg.AutoProvision || s.gone["vm/"+id] || id == "" {
		return v
	}
	envID := id
	if len(id) > 2 {
		envID = id[:len(id)-2]
	}
	if s.envs[envID] != nil {
		return nil
	}
	e := s.findEnv(envID, now, true)
	if e == nil {
		return nil
	}
	if v := s.vms[id]; v != nil {
		return v
	}
	return s.newVM(e, VMSpec{ID: id}, "running", now)
}

// findTemplate returns a template; with AutoProvision any id exists, with one
// stopped VM.
func (s *Server) findTemplate(id string, provision bool) *template {
	if t := s.templates[id]; t != nil || !provision || !s.cfg.AutoProvision || id == "" {
		return t
	}
	s.addTemplate(TemplateSpec{ID: id, VMs: []VMSpec{{Name: "Template VM"}}})
	return s.templates[id]
}

// pick returns the template's VMs named by ids, or all of them.
func (t *template) pick(ids []string) ([]VMSpec, string) {
	if len(ids) == 0 {
		return slices.Clone(t.vms), ""
	}
	var out []VMSpec
	for _, id := range ids {
		i := slices.IndexFunc(t.vms, func(v VMSpec) bool { return v.ID == id })
		if i < 0 {
			return nil, fmt.Sprintf("VM %s is not in template %s", id, t.id)
		}
		out = append(out, t.vms[i])
	}
	return out, ""
}

// TemplateSpec describes a template to add with AddTemplate.
type TemplateSpec struct {
	ID, Name string
	VMs      []VMSpec // runstate defaults to stopped; ids are given to the copies
}

// AddTemplate adds (or replaces) a template that POST /configurations and
// add-VM requests can use.
func (s *Server) AddTemplate(spec TemplateSpec) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addTemplate(spec)
}

func (s *Server) addTemplate(spec TemplateSpec) {
	if spec.Name == "" {
		spec.Name = "Template " + spec.ID
	}
	t := &template{id: spec.ID, name: spec.Name}
	for i, v := range spec.VMs {
		if v.ID == "" {
			v.ID = fmt.Sprintf("%s%02d", spec.ID, i+1)
		}
		if v.Name == "" {
			v.Name = fmt.Sprintf("VM %d", i+1)
		}
		if v.Runstate == "" {
			v.Runstate = "stopped"
		}
		t.vms = append(t.vms, v)
	}
	s.templates[spec.ID] = t
}
