package sim

import "time"

// Entry is one request as the server saw it: what arrived, the truth about
// the resource at that moment, and what was answered. Tests assert on these to
// prove a client's manners: no change sent while busy, no retry before
// Retry-After, no step advanced before its condition held.
type Entry struct {
	Seq      int       `json:"seq"`
	Time     time.Time `json:"time"` // clock time the request arrived
	Method   string    `json:"method"`
	Path     string    `json:"path"` // as sent: escaped
	Query    string    `json:"query,omitempty"`
	Body     string    `json:"body,omitempty"` // request body as received
	User     string    `json:"user,omitempty"` // basic-auth username
	Target   string    `json:"target,omitempty"`
	Env      string    `json:"env,omitempty"` // environment the target belongs to
	Mutation bool      `json:"mutation"`
	// Busy: the target or its environment was busy (queued included) when the
	// request arrived; for a create, the template was.
	Busy     bool   `json:"busy"`
	Runstate string `json:"runstate,omitempty"` // target's true runstate on arrival
	// Listed is, for a read of an environment, the true runstate of each VM
	// it lists, by id: a client may learn a VM's state from it.
	Listed map[string]string `json:"listed,omitempty"`
	Status int               `json:"status"` // status sent (0: dropped before write)
	// Outcome is one word: read, stale (a lagged or stale-fault read), accepted,
	// queued, noop, deleted, dropped-busy (200, change dropped), busy-422,
	// busy-423, busy-409, invalid, locked, rate-limited, not-found,
	// unauthorized, not-allowed, fault, dropped (before write), received (a
	// webhook POST, whose body is in Body); and for
	// /async/: created, conflict, replayed (an Idempotency-Key's first answer
	// again), key-reused.
	Outcome    string    `json:"outcome"`
	RetryAfter string    `json:"retry_after,omitempty"`
	RetryAt    time.Time `json:"retry_at,omitzero"` // when the client may come back
	Answered   time.Time `json:"answered"`          // when the answer left (later than Time for a slow answer)
	// Shown: for a read of an environment or a VM, the runstate the answer showed
	// ("busy", "running+rate_limited"), which a stale read makes differ from the
	// truth in Runstate.
	Shown string `json:"shown,omitempty"`
	Fault string `json:"fault,omitempty"` // an injected fault, described

	// The /async/ personality's manners. Remaining is what was left of the
	// client's budget when the request arrived, before it counted (nil: no
	// budget); BudgetZero says it arrived with nothing left, after an answer
	// that said so; EarlyRetry that it came before the Retry-After of a 429 to
	// the same client had passed; EarlyMonitor that it read an operation's
	// monitor before the Retry-After of the last answer about it.
	Remaining      *int64 `json:"remaining,omitempty"`
	BudgetZero     bool   `json:"budget_zero,omitempty"`
	EarlyRetry     bool   `json:"early_retry,omitempty"`
	EarlyMonitor   bool   `json:"early_monitor,omitempty"`
	IdempotencyKey string `json:"idempotency_key,omitempty"` // as sent, cut at 200 bytes
}

// Log returns a copy of the request log.
func (s *Server) Log() []Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Entry, len(s.log))
	copy(out, s.log)
	return out
}

// answeredLate notes that an entry's answer left now, after a delay: Retry-After
// counts from when the client could read it.
func (s *Server) answeredLate(seq int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	for i := len(s.log) - 1; i >= 0; i-- {
		if e := &s.log[i]; e.Seq == seq {
			if !e.RetryAt.IsZero() {
				e.RetryAt = e.RetryAt.Add(now.Sub(e.Answered))
			}
			e.Answered = now
			return
		}
	}
}

func (s *Server) record(e Entry) {
	s.seq++
	e.Seq = s.seq
	// A long-lived server keeps only the newest entries.
	if max := s.cfg.MaxLog; max > 0 && len(s.log) >= max {
		n := copy(s.log, s.log[len(s.log)-max/2:])
		s.log = s.log[:n]
	}
	s.log = append(s.log, e)
}
