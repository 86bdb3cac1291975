package sim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

func isControl(path string) bool { return strings.HasPrefix(path, "/__sim/") }

// control serves the test-control endpoints, which are not part of Skytap
// and exist for tests of the binary and for people rehearsing by hand:
//
//	GET  /__sim/log        the request log, as JSON
//	POST /__sim/inject     a Fault: {"target":"vm/1","status":423,"retry_after":2,"times":3}
//	                       (lower_snake_case fields, durations in seconds,
//	                       drop "before_write" or "after_write"; the
//	                       {"target":...,"next_mutation":{...}} form works too)
//	POST /__sim/busy       {"target":"env/1","seconds":30}: another actor's operation
//	POST /__sim/fail_next  {"vm":"101"}: the VM's next run/suspend/stop fails
//
// They need no credentials, are not rate-limited and are not logged.
func (s *Server) control(r *http.Request, body []byte) reply {
	rep := s.controlReply(r, body)
	s.mu.Lock()
	rep.requestID = s.requestID()
	s.mu.Unlock()
	return rep
}

func (s *Server) controlReply(r *http.Request, body []byte) reply {
	ok := reply{status: http.StatusOK, body: []byte(`{"ok":true}`), outcome: "control"}
	bad := func(err error) reply {
		return reply{status: http.StatusBadRequest, body: errorBody(err.Error()), outcome: "control"}
	}
	method := r.Method
	if method == "" {
		method = http.MethodGet
	}
	switch {
	case r.URL.Path == "/__sim/log" && method == http.MethodGet:
		return reply{status: http.StatusOK, body: mustJSON(s.Log()), outcome: "control"}
	case r.URL.Path == "/__sim/inject" && method == http.MethodPost:
		var fj faultJSON
		if err := json.Unmarshal(body, &fj); err != nil {
			return bad(err)
		}
		f, err := fj.fault()
		if err != nil {
			return bad(err)
		}
		s.Inject(f)
		return ok
	case r.URL.Path == "/__sim/busy" && method == http.MethodPost:
		var b struct {
			Target  string  `json:"target"`
			Seconds float64 `json:"seconds"`
		}
		if err := json.Unmarshal(body, &b); err != nil {
			return bad(err)
		}
		if !strings.Contains(b.Target, "/") {
			return bad(fmt.Errorf("target must be env/ID, vm/ID or template/ID, not %q", b.Target))
		}
		s.MakeBusy(b.Target, seconds(b.Seconds))
		return ok
	case r.URL.Path == "/__sim/fail_next" && method == http.MethodPost:
		var b struct {
			VM string `json:"vm"`
		}
		if err := json.Unmarshal(body, &b); err != nil {
			return bad(err)
		}
		s.FailNext(b.VM)
		return ok
	}
	return reply{status: http.StatusNotFound, body: errorBody("Not found"), outcome: "control"}
}

// faultJSON is a Fault as the inject endpoint takes it.
type faultJSON struct {
	Target        string     `json:"target"`
	Method        string     `json:"method"`
	Times         int        `json:"times"`
	Status        int        `json:"status"`
	RetryAfter    float64    `json:"retry_after"`
	RetryAfterRaw string     `json:"retry_after_raw"`
	Body          string     `json:"body"`
	Drop          string     `json:"drop"`
	Delay         float64    `json:"delay"`
	Stale         bool       `json:"stale"`
	NextMutation  *faultJSON `json:"next_mutation"`
}

func (fj faultJSON) fault() (Fault, error) {
	if n := fj.NextMutation; n != nil {
		target := fj.Target
		fj = *n
		if fj.Target == "" {
			fj.Target = target
		}
	}
	f := Fault{
		Target: fj.Target, Method: fj.Method, Times: fj.Times, Status: fj.Status,
		RetryAfter: seconds(fj.RetryAfter), RetryAfterRaw: fj.RetryAfterRaw, Body: fj.Body,
		Delay: seconds(fj.Delay), Stale: fj.Stale,
	}
	switch strings.ReplaceAll(fj.Drop, "-", "_") {
	case "", "none":
	case "before_write":
		f.Drop = DropBeforeWrite
	case "after_write":
		f.Drop = DropAfterWrite
	default:
		return Fault{}, fmt.Errorf("drop must be before_write or after_write, not %q", fj.Drop)
	}
	return f, nil
}

func seconds(x float64) time.Duration { return time.Duration(x * float64(time.Second)) }
