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

type opKind int

const (
	opRunstate opKind = iota // counts against MaxConcurrentOps
	opCreate
	opAddVM
	opEdit
	opDelete
)

// move is the kind of one VM's runstate transition; it picks the duration.
type move int

const (
	moveNone move = iota
	moveRun
	moveResume
	moveStop
	moveHalt
	moveSuspend
	moveReset
)

// change is one VM's part in a runstate operation.
type change struct {
	vm     *vm
	move   move
	result string // the state it rests in on success
	fail   string // non-empty: the operation fails with this message, the VM stays where it was
	detail string
}

// operation is anything that keeps a resource busy for a while. It is accepted
// at once, runs from start to end on the clock, and is completed lazily by
// advance. Runstate operations beyond the account's limit wait in a queue.
type operation struct {
	kind    opKind
	env     *environment
	vm      *vm            // nil when the operation is on the whole environment
	changes []change       // opRunstate
	added   []*vm          // opCreate, opAddVM
	hw      hardwareChange // opEdit: applied when the edit completes
	dur     time.Duration
	start   time.Time
	end     time.Time
	queued  bool
	seq     int
}

// advance brings the simulation up to now. Nothing runs in the background:
// each request first completes, in time order, the operations that ended
// since the last request, and starts queued operations at the moment their
// slot freed up, so the result is the same as if it had all happened live.
func (s *Server) advance(now time.Time) {
	for {
		i := -1
		for j, op := range s.running {
			if op.end.After(now) {
				continue
			}
			if i < 0 || op.end.Before(s.running[i].end) || op.end.Equal(s.running[i].end) && op.seq < s.running[i].seq {
				i = j
			}
		}
		if i < 0 {
			return
		}
		op := s.running[i]
		s.running = slices.Delete(s.running, i, i+1)
		s.complete(op)
		s.startQueued(op.end)
	}
}

// launch starts an accepted operation now, or queues it when the account
// already has MaxConcurrentOps runstate operations in flight.
func (s *Server) launch(op *operation, now time.Time) {
	s.opSeq++
	op.seq = s.opSeq
	if op.kind == opRunstate && (len(s.queue) > 0 || !s.slotFree()) {
		op.queued = true
		s.queue = append(s.queue, op)
		return
	}
	s.begin(op, now)
}

func (s *Server) begin(op *operation, at time.Time) {
	op.queued = false
	op.start = at
	op.end = at.Add(op.dur)
	s.running = append(s.running, op)
}

func (s *Server) slotFree() bool {
	if s.cfg.MaxConcurrentOps < 0 {
		return true
	}
	n := 0
	for _, op := range s.running {
		if op.kind == opRunstate {
			n++
		}
	}
	return n < s.cfg.MaxConcurrentOps
}

// startQueued starts waiting operations, in the order they were accepted, at
// the time a slot freed: "Skytap automatically retries your operation for you".
func (s *Server) startQueued(at time.Time) {
	for len(s.queue) > 0 && s.slotFree() {
		op := s.queue[0]
		s.queue = s.queue[1:]
		s.begin(op, at)
	}
}

// complete applies the result of an operation that has ended.
func (s *Server) complete(op *operation) {
	e := op.env
	e.version++
	switch op.kind {
	case opRunstate:
		ok := true
		for _, c := range op.changes {
			v := c.vm
			v.op = nil
			if c.fail != "" {
				ok = false
				v.err, v.errDetail = c.fail, c.detail
				e.addError(c.fail, c.detail)
				continue
			}
			v.state = c.result
			v.err, v.errDetail = "", ""
			if c.move == moveRun || c.move == moveResume || c.move == moveReset {
				e.lastRun = op.end
			}
		}
		if op.vm == nil {
			e.op = nil
		}
		// The environment's error clears when an environment-level change
		// succeeds, or when no VM is left with an error of its own.
		if ok && (op.vm == nil || !slices.ContainsFunc(e.vms, func(v *vm) bool { return v.err != "" })) {
			e.errors, e.errorDetails = nil, nil
		}
	case opCreate, opAddVM:
		e.op = nil
		for _, v := range op.added {
			v.op = nil
		}
	case opEdit:
		// The new hardware shows once the edit is done, so a client that
		// waits for it also waits out the edit.
		op.vm.op = nil
		if op.hw.CPUs != nil {
			op.vm.cpus = *op.hw.CPUs
		}
		if op.hw.RAM != nil {
			op.vm.ram = *op.hw.RAM
		}
	case opDelete:
		if op.vm != nil {
			e.vms = slices.DeleteFunc(e.vms, func(v *vm) bool { return v == op.vm })
			s.forgetVM(op.vm)
			return
		}
		for _, v := range e.vms {
			s.forgetVM(v)
		}
		if s.envs[e.id] == e { // not replaced by AddEnvironment meanwhile
			delete(s.envs, e.id)
			s.gone["env/"+e.id] = true
		}
	}
}

func (s *Server) forgetVM(v *vm) {
	if s.vms[v.id] == v {
		delete(s.vms, v.id)
		s.gone["vm/"+v.id] = true
	}
}

func (e *environment) addError(msg, detail string) {
	if slices.Contains(e.errors, msg) {
		return
	}
	e.errors = append(e.errors, msg)
	e.errorDetails = append(e.errorDetails, detail)
}

// transition is the state machine of one VM, as the real API's: what a
// request for target does from the VM's current state, or why it is refused.
func (s *Server) transition(v *vm, target string) (m move, result, refusal string) {
	switch v.state + ">" + target {
	case "stopped>stopped", "stopped>halted", "running>running", "suspended>suspended":
		return moveNone, v.state, ""
	case "stopped>running":
		return moveRun, "running", ""
	case "suspended>running":
		return moveResume, "running", ""
	case "running>stopped":
		return moveStop, "stopped", ""
	case "running>halted":
		return moveHalt, "stopped", ""
	case "suspended>halted":
		if s.cfg.StrictSuspendedHalt {
			return 0, "", fmt.Sprintf("Cannot halt VM %s: it is suspended; run it first", v.id)
		}
		return moveHalt, "stopped", ""
	case "running>suspended":
		if !v.canSuspend {
			return 0, "", fmt.Sprintf("VM %s does not support suspend", v.id)
		}
		return moveSuspend, "suspended", ""
	case "running>reset":
		return moveReset, "running", ""
	case "stopped>suspended":
		return 0, "", fmt.Sprintf("Cannot suspend VM %s: it is not running", v.id)
	case "suspended>stopped":
		return 0, "", fmt.Sprintf("Cannot stop VM %s: it is suspended; run it first, or halt it", v.id)
	case "stopped>reset", "suspended>reset":
		return 0, "", fmt.Sprintf("Cannot reset VM %s: it is not running", v.id)
	}
	return 0, "", "Invalid runstate: use running, stopped, suspended, halted or reset"
}

// failure says whether a transition that is about to be accepted will fail,
// and consumes a FailNext.
func (s *Server) failure(v *vm, m move) (msg, detail string) {
	if m == moveStop && !v.hasTools {
		return fmt.Sprintf("VM %s could not be shut down gracefully: VMware Tools is not running", v.id),
			"Graceful shutdown needs VMware Tools; power the VM off with runstate halted instead."
	}
	if !v.failNext {
		return "", ""
	}
	switch m {
	case moveRun, moveResume:
		v.failNext = false
		return fmt.Sprintf("Could not run VM %s", v.id), "The VM failed to power on."
	case moveSuspend:
		v.failNext = false
		return fmt.Sprintf("Could not suspend VM %s", v.id), "The VM failed to suspend."
	case moveStop:
		v.failNext = false
		return fmt.Sprintf("VM %s could not be shut down gracefully: the guest did not respond", v.id),
			"The guest operating system did not shut down in time."
	}
	return "", ""
}

func (s *Server) moveDuration(m move, started int) time.Duration {
	d := s.cfg.Durations
	switch m {
	case moveRun:
		return d.Run + time.Duration(started)*d.RunPerVM
	case moveResume:
		return d.Resume
	case moveStop:
		return d.Stop
	case moveHalt:
		return d.Halt
	case moveSuspend:
		return d.Suspend
	case moveReset:
		return d.Reset
	}
	return 0
}

// jitter spreads a duration by ± Config.Jitter, from the seeded generator.
func (s *Server) jitter(d time.Duration) time.Duration {
	j := s.cfg.Jitter
	if j <= 0 || d <= 0 {
		return d
	}
	return time.Duration(float64(d) * (1 + j*(2*s.rng.Float64()-1)))
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
