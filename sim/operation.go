package sim

// The simulator's operations: what keeps a resource busy, the account's limit
// on them, and the VM state machine that decides each one.

import (
	"fmt"
	"slices"
	"time"
)

// opKind is what an operation does.
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
