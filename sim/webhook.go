package sim

import (
	"net/http"
	"strings"
)

// The webhook sink stands for a chat or incident webhook, on the same server
// so that a rehearsal's notifications land somewhere and tests can read them:
//
//	POST /webhook/{name...}   200 {"ok":true}; the body is kept in the log
//
// It is not Skytap: it takes any credentials or none, has no rate limit and
// is never busy, but injected faults apply to it (target "webhook/{name}" or
// "*"), as a real webhook fails now and then.

// webhookName says whether path is the sink's, and the name after /webhook/.
func webhookName(path string) (string, bool) {
	if path == "/webhook" || path == "/webhook/" {
		return "", true
	}
	name, ok := strings.CutPrefix(path, "/webhook/")
	return strings.TrimSuffix(name, "/"), ok
}

func (s *Server) webhook(c *call) reply {
	if f := c.fault; f != nil && f.Status != 0 {
		return s.faultReply(c, f)
	}
	if c.method != http.MethodPost {
		return reply{status: http.StatusMethodNotAllowed, body: errorBody("Method not allowed: a webhook takes POST"), outcome: "not-allowed"}
	}
	return reply{status: http.StatusOK, body: []byte(`{"ok":true}`), outcome: "received"}
}
