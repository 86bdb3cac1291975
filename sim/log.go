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
	Path     string    `json:"path"`
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
	Status   int    `json:"status"`             // status sent (0: dropped before write)
	// Outcome is one word: read, stale (a lagged or stale-fault read), accepted,
	// queued, noop, deleted, dropped-busy (200, change dropped), busy-422,
	// busy-423, busy-409, invalid, locked, rate-limited, not-found,
	// unauthorized, not-allowed, fault, dropped (before write).
	Outcome    string    `json:"outcome"`
	RetryAfter string    `json:"retry_after,omitempty"`
	RetryAt    time.Time `json:"retry_at,omitzero"` // when the client may come back
	Fault      string    `json:"fault,omitempty"`   // an injected fault, described
}

// Log returns a copy of the request log.
func (s *Server) Log() []Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Entry, len(s.log))
	copy(out, s.log)
	return out
}

func (s *Server) record(e Entry) {
	e.Seq = len(s.log) + 1
	s.log = append(s.log, e)
}
