package runbook

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// loadSteps compiles the steps in order. A step may read what collectIDs
// recorded of every step (ids, outputs, for_each); stepIDs and laterIDs say
// which of them run before it. What one step sets for itself (the warnings
// it ignores) is cleared before the next.
func (c *compileCtx) loadSteps(nodes []*yaml.Node, ids []string, def stepDefaults, stage func(int) Stage) []*Step {
	steps := make([]*Step, len(nodes))
	c.checkSteps = true
	for i, n := range nodes {
		c.laterIDs, c.stepIgnore, c.stage = ids[i:], nil, stage(i)
		steps[i] = c.loadStep(n, i+1, def)
		if ids[i] != "" {
			c.stepIDs = append(c.stepIDs, ids[i])
		}
	}
	c.checkSteps, c.stepIDs, c.laterIDs, c.stepIgnore = false, nil, nil, nil
	return steps
}

// collectIDs returns each step's id ("" when none), reporting duplicates.
func (c *compileCtx) collectIDs(steps *yaml.Node) []string {
	ids := make([]string, len(steps.Content))
	seen := map[string]*yaml.Node{}
	for i, s := range steps.Content {
		s = resolve(s)
		if s.Kind != yaml.MappingNode {
			continue
		}
		for j := 0; j+1 < len(s.Content); j += 2 {
			if s.Content[j].Value != "id" {
				continue
			}
			v := resolve(s.Content[j+1])
			if v.Kind != yaml.ScalarNode {
				continue
			}
			if !idPattern.MatchString(v.Value) {
				c.errorf(v, "step id %q must be letters, digits and _ (it is read as steps.%s)", v.Value, v.Value)
				continue
			}
			if prev, dup := seen[v.Value]; dup {
				c.errorf(v, "duplicate step id %q (first used on line %d)", v.Value, prev.Line)
				continue
			}
			seen[v.Value] = v
			ids[i] = v.Value
		}
		if ids[i] != "" {
			c.declared(ids[i], s)
		}
	}
	return ids
}

// declared records what the step s with this id offers later steps: its
// outputs by name, and whether steps.<id> is a list (a for_each step). It
// reads keys as loadStep does (<< merges included), and leaves what is wrong
// with them for loadStep to report.
func (c *compileCtx) declared(id string, s *yaml.Node) {
	quiet := *c
	quiet.errs = nil
	var outputs *yaml.Node
	for _, p := range quiet.pairs(s, "step") {
		switch p.Key.Value {
		case "for_each":
			c.forEachIDs = append(c.forEachIDs, id)
		case "outputs":
			outputs = p.Value
		case "uses":
			names, ok := c.usedOutputs(s)
			if !ok {
				c.opaque = append(c.opaque, id)
			}
			if len(names) > 0 {
				if c.outputs == nil {
					c.outputs = map[string][]string{}
				}
				c.outputs[id] = names
			}
		}
	}
	for _, p := range quiet.pairs(outputs, "outputs") {
		if idPattern.MatchString(p.Key.Value) {
			if c.outputs == nil {
				c.outputs = map[string][]string{}
			}
			c.outputs[id] = append(c.outputs[id], p.Key.Value)
		}
	}
}

// loadStep decodes one step.
func (c *compileCtx) loadStep(n *yaml.Node, index int, def stepDefaults) *Step {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		c.errorf(n, "step %d must be a mapping with a name and one action (%s), not %s", index, strings.Join(c.kindNames(), ", "), nodeKind(n))
		return nil
	}
	errsBefore := len(c.errs)
	s := &Step{Index: index, Stage: c.stage, Pos: nodePos(n), Guard: def.guard, Wait: def.wait, Retry: def.retry, Timeout: def.timeout, Concurrency: 1, As: "item"}

	// Which keys does this step have? Exactly one must name a kind.
	var kindKey *yaml.Node
	var kind Kind
	common := map[string]*yaml.Node{}
	pairs := c.pairs(n, "step")
	for _, p := range pairs {
		if k, ok := c.kinds[p.Key.Value]; ok {
			if kindKey != nil {
				c.errorf(p.Key, "a step has exactly one action, but this one has both %q (line %d) and %q: split it into two steps", kindKey.Value, kindKey.Line, p.Key.Value)
				continue
			}
			kindKey, kind = p.Key, k
		}
	}
	allowed := slices.Clone(stepKeys)
	if kind != nil {
		allowed = append(allowed, kindKey.Value)
		allowed = append(allowed, kind.Fields()...)
	}
	elsewhere := c.fieldOwners(kindKey)
	for _, p := range pairs {
		switch {
		case c.kinds[p.Key.Value] != nil:
		case slices.Contains(allowed, p.Key.Value):
			common[p.Key.Value] = p.Value
		default:
			all := allowed
			if kind == nil {
				all = append(slices.Clone(allowed), c.kindNames()...)
			}
			c.unknownKey(p.Key, "step", all, elsewhere)
		}
	}
	if kind == nil {
		c.errorf(n, "step %d has no action: give it one of %s", index, strings.Join(c.kindNames(), ", "))
		return nil
	}
	s.Kind = kindKey.Value
	if v := common["ignore_warnings"]; v != nil {
		c.stepIgnore = c.ignoreWarnings(v)
	}

	if v := common["name"]; v != nil {
		s.Name, _ = c.str(v, "name")
	}
	if v := common["id"]; v != nil {
		s.ID = resolve(v).Value
	}
	if s.Name == "" {
		s.Name = s.ID
	}
	if s.Name == "" {
		s.Name = fmt.Sprintf("%s step", s.Kind)
	}
	if v := common["as"]; v != nil {
		if as, ok := c.str(v, "as"); ok {
			if !idPattern.MatchString(as) || slices.Contains(reservedNames, as) {
				c.errorf(v, "as: %q must be a name of letters, digits and _ that is not one of %s", as, strings.Join(reservedNames, ", "))
			} else {
				s.As = as
			}
		}
		if common["for_each"] == nil {
			c.errorf(v, "as: names the item of a for_each; add for_each: or remove as:")
		}
	}
	if v := common["for_each"]; v != nil {
		s.ForEach = c.expr(v, "for_each", false)
		c.loopVar = s.As
	}
	defer func() { c.loopVar = "" }()
	if v := common["name"]; v != nil && strings.Contains(s.Name, "${{") {
		// After for_each: a for_each step's name may read the item and index.
		s.Title = c.template(v, "name")
	}
	if v := common["concurrency"]; v != nil {
		if k, ok := c.integer(v, "concurrency", 1); ok {
			s.Concurrency = k
		}
		if common["for_each"] == nil {
			c.errorf(v, "concurrency applies to for_each items; add for_each: or remove concurrency:")
		}
	}
	if v := common["max_failures"]; v != nil {
		s.MaxFailures = c.failureBudget(v)
		if common["for_each"] == nil {
			c.errorf(v, "max_failures applies to for_each items; add for_each: or remove max_failures:")
		}
	}
	if v := common["if"]; v != nil {
		s.If = c.expr(v, "if", true)
	}
	c.setDuration(common["timeout"], "timeout", &s.Timeout)
	if v := common["continue_on_error"]; v != nil {
		s.ContinueOnError, _ = c.boolean(v, "continue_on_error")
	}

	node := valueOf(n, kindKey)
	action, err := kind.Decode(&Decoder{Node: Node{node}, step: n, Defaults: c.defaults[s.Kind], c: c})
	if err != nil {
		c.errorf(node, "%v", err)
	}
	s.Action = action
	var info Info
	if action != nil {
		info = action.Info()
	}

	if s.Kind == "uses" {
		c.usesStep(s, common)
	} else {
		if v := common["retry"]; v != nil {
			c.retryFields(&s.Retry, c.fields(v, "retry", retryKeys...))
		}
		c.loadGuard(s, common["guard"], info)
		c.loadWait(s, common["wait_for"], info)
		c.warnings(s, kindKey, common, info)
	}
	c.loadConfirm(s, common["confirm"], common["for_each"] != nil, info)

	if v := common["outputs"]; v != nil && s.Kind != "uses" {
		s.Outputs = c.outputExprs(v)
		if s.ID == "" {
			c.errorf(v, "outputs can only be read through the step's id: add id: to this step")
		}
	}
	if len(c.errs) > errsBefore {
		return nil
	}
	return s
}

func (c *compileCtx) retryFields(r *Retry, m map[string]*yaml.Node) {
	c.setDuration(m["interval"], "retry interval", &r.Interval)
	c.setNumber(m["backoff"], "retry backoff", 1, 10, &r.Backoff)
	c.setDuration(m["max_interval"], "retry max_interval", &r.MaxInterval)
	c.setNumber(m["jitter"], "retry jitter", 0, 1, &r.Jitter)
	if n := m["max_attempts"]; n != nil {
		if v, ok := c.integer(n, "retry max_attempts", 0); ok {
			r.MaxAttempts = v
		}
	}
	c.setDuration(m["max_retry_after"], "retry max_retry_after", &r.MaxRetryAfter)
	if n := m["when"]; n != nil {
		if r.When = c.expr(n, "retry when", true); r.When != nil {
			c.neverRetried(n, r.When.Source)
		}
	}
	if n := m["busy_answer"]; n != nil {
		r.BusyAnswer = c.expr(n, "retry busy_answer", true)
	}
	if n := m["idempotent"]; n != nil {
		if b, ok := c.boolean(n, "retry idempotent"); ok {
			r.Idempotent = &b
		}
	}
}

func valueOf(mapping, key *yaml.Node) *yaml.Node {
	for i := 0; i+1 < len(mapping.Content); i += 2 {
		if mapping.Content[i] == key {
			return mapping.Content[i+1]
		}
	}
	return nil
}

// failureBudget decodes max_failures: a whole number of items, or a whole
// percentage of them written as text ("10%").
func (c *compileCtx) failureBudget(n *yaml.Node) *FailureBudget {
	n = resolve(n)
	const how = `give how many items may fail, such as 5, or a percentage of them, such as "10%"`
	if n.Kind == yaml.ScalarNode && (n.Tag == "!!int" || n.Tag == "!!float") {
		v, err := strconv.Atoi(n.Value)
		switch {
		case err != nil:
			c.errorf(n, "max_failures %s is not a whole number: %s", n.Value, how)
		case v < 0:
			c.errorf(n, "max_failures %s is negative: %s (0, the default, stops new items at the first failure)", n.Value, how)
		default:
			return &FailureBudget{N: v}
		}
		return nil
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" {
		if pct, ok := strings.CutSuffix(strings.TrimSpace(n.Value), "%"); ok {
			pct = strings.TrimSpace(pct)
			v, err := strconv.Atoi(pct)
			switch {
			case err != nil || strings.Trim(pct, "0123456789") != "":
				c.errorf(n, "max_failures %q is not a whole percentage: %s", n.Value, how)
			case v < 0 || v > 100:
				c.errorf(n, "max_failures %s is not a share of the items: give a percentage from 0%% to 100%%", n.Value)
			default:
				return &FailureBudget{N: v, Percent: true}
			}
			return nil
		}
	}
	c.errorf(n, "max_failures must be a number of items or a percentage, not %s: %s", nodeKind(n), how)
	return nil
}
