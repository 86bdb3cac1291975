package sim

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Fault is a misbehaviour injected on demand, for the failures the state
// machine alone never produces: server errors, slow responses, dropped
// connections, odd Retry-After headers, stale reads.
type Fault struct {
	Target string // "env/ID", "vm/ID", "template/ID", or "*" (any request); "" is "*"
	// Method: "" = mutations only (PUT/POST/PATCH/DELETE); "ANY"; or a method.
	Method string
	Times  int // how many matching requests it applies to; 0 means 1, negative: all

	Status int // answer with this status instead of the state machine; 0 = none
	// RetryAfter is sent with the status (seconds, or an HTTP-date when
	// Config.RetryAfterDate). Zero: the configured one for 423 and 429, none otherwise.
	RetryAfter    time.Duration
	RetryAfterRaw string // sent verbatim instead (garbage tests); "-" = no header
	Body          string // body for the status; default a Skytap-like JSON body

	Drop  Drop          // drop the connection; see Drop
	Delay time.Duration // answer only after this much clock time; honours cancellation
	Stale bool          // a GET answers with the representation before the last change
}

// Drop says where a dropped connection breaks.
//
// With the in-memory Transport, DropBeforeWrite fails the round trip before
// the request counts as written (httptrace's WroteRequest is not called) and
// the simulator never sees it; DropAfterWrite handles the request, so the
// change takes effect, then fails with a connection reset: the ambiguous case.
// A real server cannot fail before the request was written, so ServeHTTP
// treats both as DropAfterWrite and aborts the connection with
// panic(http.ErrAbortHandler). Dropped requests are logged either way.
type Drop int

const (
	DropNone Drop = iota
	DropBeforeWrite
	DropAfterWrite
)

func (d Drop) String() string {
	switch d {
	case DropBeforeWrite:
		return "before_write"
	case DropAfterWrite:
		return "after_write"
	}
	return ""
}

func (f *Fault) matches(method, target string) bool {
	if f.Target != "" && f.Target != "*" && f.Target != target {
		return false
	}
	switch m := strings.ToUpper(f.Method); m {
	case "":
		return isMutation(method)
	case "ANY":
		return true
	default:
		return m == method
	}
}

// describe is the fault as the log shows it.
func (f *Fault) describe() string {
	var parts []string
	if f.Status != 0 {
		parts = append(parts, fmt.Sprintf("status %d", f.Status))
	}
	switch {
	case f.RetryAfterRaw == "-":
		parts = append(parts, "no retry-after")
	case f.RetryAfterRaw != "":
		parts = append(parts, fmt.Sprintf("retry-after %q", f.RetryAfterRaw))
	case f.RetryAfter > 0:
		parts = append(parts, "retry-after "+f.RetryAfter.String())
	}
	if f.Drop != DropNone {
		parts = append(parts, "drop "+strings.ReplaceAll(f.Drop.String(), "_", " "))
	}
	if f.Delay > 0 {
		parts = append(parts, "delay "+f.Delay.String())
	}
	if f.Stale {
		parts = append(parts, "stale")
	}
	if len(parts) == 0 {
		return "fault"
	}
	return strings.Join(parts, ", ")
}

// defaultFaultBody is what the API would plausibly say with each status.
func defaultFaultBody(status int) []byte {
	switch status {
	case 422:
		return errorsBody(busyMessage)
	case 409, 423:
		return errorBody("Resource is busy")
	case 429:
		return errorBody("Too many requests")
	case 404:
		return errorBody("Not found")
	case 401:
		return errorBody("Unauthorized")
	}
	return errorBody(strings.ToLower(statusText(status)))
}

// takeFault returns the fault that applies to a request, counting it off:
// injected faults first, then the head of the demo script, whose answers are
// Skytap's (script false: not for the /async/ personality).
func (s *Server) takeFault(method, target string, script bool) *Fault {
	for i, f := range s.faults {
		if f.matches(method, target) {
			if f.Times > 0 {
				f.Times--
				if f.Times == 0 {
					s.faults = slices.Delete(s.faults, i, i+1)
				}
			}
			c := *f
			return &c
		}
	}
	if script && len(s.script) > 0 && s.script[0].matches(method, target) {
		f := s.script[0]
		if f.Times > 0 {
			f.Times--
			if f.Times == 0 {
				s.script = s.script[1:]
			}
		}
		c := *f
		return &c
	}
	return nil
}

// armed returns a copy of f ready to be counted off.
func armed(f Fault) *Fault {
	if f.Times == 0 {
		f.Times = 1
	}
	return &f
}

// Inject adds a fault. Faults apply in the order injected; each request gets
// at most one.
func (s *Server) Inject(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, armed(f))
}
