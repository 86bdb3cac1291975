package sim

import (
	"fmt"
	"net/http"
	"time"
)

// The /async/ personality's operations: the monitor a 202 names, and the
// Idempotency-Key that makes a POST sent again answer as the first.

// keyed is the first answer given to an Idempotency-Key, with what it was
// sent for, so a reuse for another request can be told apart.
type keyed struct {
	request string
	rep     reply
}

// monitor answers a read of an operation's monitor: 200 with its status, and
// Retry-After while it is not done.
func (s *Server) monitor(c *call, id string) reply {
	op := s.async.ops[id]
	if op == nil {
		return asyncError(http.StatusNotFound, "NotFound", "no such operation")
	}
	c.log.Env = op.env.id
	c.log.EarlyMonitor = c.now.Before(op.readAfter)
	rep := asyncOK(http.StatusOK, s.opJSON(c, op))
	if !op.done {
		rep.retryAfter, rep.retryAt = s.retryAfter(c.now, s.cfg.Async.RetryAfter)
		op.readAfter = rep.retryAt
	}
	rep.shown = s.opStatus(op, c.now)
	return rep
}

func (s *Server) opStatus(op *asyncOp, now time.Time) string {
	switch {
	case op.done && op.fail:
		return "Failed"
	case op.done:
		return "Succeeded"
	case now.Before(op.start):
		return "NotStarted"
	}
	return "Running"
}

func (s *Server) opJSON(c *call, op *asyncOp) map[string]any {
	out := map[string]any{
		"id": op.id, "status": s.opStatus(op, c.now), "action": op.action,
		"resourceLocation": s.asyncURL(c, "/async/environments/"+op.env.id),
		"createdDateTime":  op.accepted.UTC().Format(time.RFC3339),
	}
	if op.done {
		out["lastActionDateTime"] = op.end.UTC().Format(time.RFC3339)
	}
	if op.done && op.fail {
		out["error"] = map[string]string{"code": "OperationFailed", "message": fmt.Sprintf("could not %s environment %s: its host is under maintenance", op.action, op.env.id)}
	}
	return out
}

// idempotent answers a POST once per Idempotency-Key: the same key again gets
// the first answer and changes nothing; with another method, path or body it
// is refused. Without a key, every POST acts.
func (s *Server) idempotent(c *call, act func() reply) reply {
	key := c.r.Header.Get("Idempotency-Key")
	if key == "" {
		return act()
	}
	a := s.async
	id := asyncClient(c.r) + " " + key
	request := c.method + " " + c.r.URL.EscapedPath() + " " + string(c.body)
	if k := a.keys[id]; k != nil {
		if k.request != request {
			rep := asyncError(http.StatusUnprocessableEntity, "IdempotencyKeyReused", "this Idempotency-Key was used for another request")
			rep.outcome = "key-reused"
			return rep
		}
		rep := k.rep
		rep.extra = rep.extra.Clone()
		rep.extra.Set("Idempotent-Replayed", "true")
		rep.outcome = "replayed"
		return rep
	}
	rep := act()
	if rep.status < 500 {
		a.keys[id] = &keyed{request: request, rep: rep}
		a.keyList = append(a.keyList, id)
		if len(a.keyList) > s.cfg.Async.MaxKeys {
			delete(a.keys, a.keyList[0])
			a.keyList = a.keyList[1:]
		}
	}
	return rep
}

// truncateKey bounds what the log keeps of a client's key.
func truncateKey(k string) string {
	if len(k) > 200 {
		return k[:200]
	}
	return k
}
