package runbook

import (
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// loadGuard applies the guard rules: on by default for changes, for any step that
// declares one, off with `guard: false`. Its check is the one written, else the
// action's default (for a POST to a collection, its parent resource), kept even
// when the guard is off: a busy 409 or 422 is judged by it.
func (c *compileCtx) loadGuard(s *Step, n *yaml.Node, info Info) {
	s.Guard.On = info.Change
	s.Guard.Check = info.Guard
	n = resolve(n)
	if n == nil {
		if info.Change && info.Guard == nil && info.Method != "" {
			// Nothing to read before a create in a top-level collection.
			s.Guard.On = false
		}
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!bool" {
		on, _ := c.boolean(n, "guard")
		s.Guard.On = on && s.Guard.Check != nil
		if on && s.Action != nil && s.Guard.Check == nil {
			c.errorf(n, "%s", noGuardCheck(s, info))
		}
		return
	}
	m := c.fields(n, "guard", guardKeys...)
	s.Guard.On = true
	c.guardFields(&s.Guard, m)
	if v := m["check"]; v != nil {
		s.Guard.Check, _ = c.probe(v, "guard check")
	} else if s.Action != nil && info.Guard == nil {
		c.errorf(n, "%s", noGuardCheck(s, info))
	}
}

func noGuardCheck(s *Step, info Info) string {
	if info.Method == "POST" {
		return "a POST to a top-level collection has no resource of its own to read: give its guard a check (\"GET url\" of what must not be busy), or write guard: false"
	}
	return fmt.Sprintf("this %s step has no URL to read: give its guard a check (\"GET url\" or {exec: [...]})", s.Kind)
}

func (c *compileCtx) guardFields(g *Guard, m map[string]*yaml.Node) {
	if n := m["busy_when"]; n != nil {
		if e := c.expr(n, "busy_when", true); e != nil {
			g.BusyWhen = e
		}
	}
	c.setDuration(m["interval"], "guard interval", &g.Interval)
	c.setDuration(m["timeout"], "guard timeout", &g.Timeout)
}

// loadWait applies the wait rules: `wait_for: expr` is {until: expr}; a DELETE with
// no wait_for waits until its check reads 404. Its check is the one written,
// else the action's default (a GET of its URL; a POST has none: the
// collection says nothing of the item it made).
func (c *compileCtx) loadWait(s *Step, n *yaml.Node, info Info) {
	s.Wait.Check = info.Probe
	n = resolve(n)
	if n == nil {
		if info.WaitGone {
			s.Wait.On, s.Wait.Gone = true, true
			s.Wait.Until = c.builtin(goneUntil)
		}
		return
	}
	switch {
	case n.Kind == yaml.ScalarNode && n.Tag == "!!bool":
		on, ok := c.boolean(n, "wait_for")
		if ok && on {
			c.errorf(n, "wait_for: true says nothing to wait for: write the condition, e.g. wait_for: state.runstate == \"running\"")
		}
		s.Wait.Off = ok && !on
		return
	case n.Kind == yaml.ScalarNode:
		s.Wait.On = true
		s.Wait.Until = c.expr(n, "wait_for", true)
		if s.Action != nil && info.Probe == nil {
			c.errorf(n, "%s", noWaitCheck(s, info, "write wait_for as {check: ..., until: ...}"))
		}
		return
	}
	m := c.fields(n, "wait_for", waitKeys...)
	s.Wait.On = true
	c.waitFields(&s.Wait, m)
	if m["until"] == nil {
		c.errorf(n, "wait_for needs until: the condition that says the change has taken effect")
	}
	if v := m["check"]; v != nil {
		var reads []string
		s.Wait.OwnCheck = true
		s.Wait.Check, reads = c.probe(v, "wait_for check")
		s.Wait.AfterSend = slices.Contains(reads, "response")
		for i, e := range []*Expr{s.Wait.Until, s.Wait.FailWhen} {
			key := []string{"until", "fail_when"}[i]
			if s.Wait.AfterSend && m[key] != nil && e.Reads("before") {
				c.warnf(m[key], WarnNoBefore, "%s reads before, but this wait's check reads response, so it is made only after the change and before is null (a resource this step creates had none): compare with something else", key)
			}
		}
	} else if s.Action != nil && info.Probe == nil {
		c.errorf(n, "%s", noWaitCheck(s, info, "give wait_for a check (\"GET url\" or {exec: [...]}) and an until"))
	}
}

func noWaitCheck(s *Step, info Info, fix string) string {
	if info.Method == "POST" {
		return "a POST's wait needs a check that reads what it made: re-reading the collection says nothing of the new item; write wait_for as {check: GET .../${{ response.body.id }}, until: ...}"
	}
	return fmt.Sprintf("this %s step has no URL to read: %s", s.Kind, fix)
}

func (c *compileCtx) waitFields(w *Wait, m map[string]*yaml.Node) {
	if n := m["until"]; n != nil {
		w.Until = c.expr(n, "until", true)
	}
	if n := m["fail_when"]; n != nil {
		if e := c.expr(n, "fail_when", true); e != nil {
			w.FailWhen = e
		}
	}
	c.setDuration(m["interval"], "wait interval", &w.Interval)
	c.setDuration(m["timeout"], "wait timeout", &w.Timeout)
}

// probe decodes a check: "GET url" (the http kind), or {http: ...} / {exec: [...]}.
// reads are the scope names its templates read (a check that reads `response`
// can only be made after the change).
func (c *compileCtx) probe(n *yaml.Node, what string) (a Action, reads []string) {
	mark := len(c.read)
	defer func() { reads = c.read[mark:] }()
	n = resolve(n)
	kindName, node := "http", n
	if n.Kind == yaml.MappingNode {
		ps := c.pairs(n, what)
		if len(ps) != 1 || c.kinds[ps[0].Key.Value] == nil {
			c.errorf(n, "%s must be \"GET url\", or a mapping with one of %s", what, strings.Join(c.kindNames(), ", "))
			return nil, nil
		}
		kindName, node = ps[0].Key.Value, ps[0].Value
	}
	kind := c.kinds[kindName]
	if kind == nil {
		c.errorf(n, "%s: no %s step kind is registered", what, kindName)
		return nil, nil
	}
	a, err := kind.Decode(&Decoder{Node: Node{node}, Defaults: c.defaults[kindName], c: c})
	if err != nil {
		c.errorf(node, "%v", err)
		return nil, nil
	}
	if a != nil && !a.Info().Reads {
		c.errorf(n, "%s must read the resource's state: write \"GET url\" or {http: ...}", what)
		return nil, nil
	}
	if a != nil && a.Info().Change {
		c.errorf(node, "%s must only read (GET): a check is sent many times", what)
		return nil, nil
	}
	return a, nil
}
