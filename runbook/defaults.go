package runbook

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"
)

// Defaults (docs/language.md).
const (
	DefaultInterval      = 10 * time.Second
	DefaultStepTimeout   = 30 * time.Minute
	DefaultMaxRetryAfter = 15 * time.Minute
	DefaultCleanup       = 10 * time.Minute // on_failure and finally together
	DefaultBusyWhen      = `state?.runstate == "busy" || state?.rate_limited == true`
	DefaultFailWhen      = `new_error(before, state) != ""`
	goneUntil            = `response.status == 404`
)

// stepDefaults are the decoded `defaults:` section.
type stepDefaults struct {
	guard   Guard
	wait    Wait
	retry   Retry
	timeout time.Duration
}

func (c *compileCtx) loadDefaults(n *yaml.Node) stepDefaults {
	def := stepDefaults{
		guard:   Guard{Interval: DefaultInterval},
		wait:    Wait{Interval: DefaultInterval},
		retry:   Retry{Interval: DefaultInterval, Backoff: 1, MaxRetryAfter: DefaultMaxRetryAfter},
		timeout: DefaultStepTimeout,
	}
	sections := map[string]Defaulter{}
	allowed := slices.Clone(defaultsKeys)
	for _, name := range c.kindNames() {
		if d, ok := c.kinds[name].(Defaulter); ok {
			if _, seen := sections[d.DefaultsSection()]; !seen {
				sections[d.DefaultsSection()] = d
				allowed = append(allowed, d.DefaultsSection())
			}
		}
	}
	m := c.fields(n, "defaults", allowed...)
	decoded := map[string]any{}
	// In the file's order (absent ones first), so that env names are listed in
	// the order of their first use, the same on every load.
	names := slices.Sorted(maps.Keys(sections))
	slices.SortStableFunc(names, func(a, b string) int { return nodePos(m[a]).Line - nodePos(m[b]).Line })
	for _, section := range names {
		k := sections[section]
		v, err := k.DecodeDefaults(&Decoder{Node: Node{m[section]}, c: c})
		if err != nil {
			c.errorf(m[section], "%v", err)
		}
		decoded[section] = v
	}
	for name, k := range c.kinds {
		if d, ok := k.(Defaulter); ok {
			c.defaults[name] = decoded[d.DefaultsSection()]
		}
	}
	def.guard.BusyWhen = c.builtin(DefaultBusyWhen)
	def.wait.FailWhen = c.builtin(DefaultFailWhen)
	if g := m["guard"]; g != nil {
		gm := c.fields(g, "defaults.guard", defGuardKeys...)
		c.guardFields(&def.guard, gm)
	}
	if w := m["wait"]; w != nil {
		wm := c.fields(w, "defaults.wait", defWaitKeys...)
		c.waitFields(&def.wait, wm)
	}
	if r := m["retry"]; r != nil {
		c.retryFields(&def.retry, c.fields(r, "defaults.retry", retryKeys...))
	}
	c.setDuration(m["timeout"], "defaults.timeout", &def.timeout)
	return def
}

// builtin compiles one of the design's default expressions.
func (c *compileCtx) builtin(src string) *Expr {
	return builtins()[src]
}

// builtins are the design's default expressions, compiled once per process:
// programs are immutable, so every load and run shares them.
var builtins = sync.OnceValue(func() map[string]*Expr {
	m := map[string]*Expr{}
	for _, src := range []string{DefaultBusyWhen, DefaultFailWhen, goneUntil} {
		prog, problems, _, _ := compileExpr(src, nil, "", true)
		if problems != nil {
			panic(fmt.Sprintf("default expression %q: %v", src, problems))
		}
		m[src] = &Expr{Source: src, prog: prog}
	}
	return m
})
