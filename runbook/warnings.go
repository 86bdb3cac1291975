package runbook

import (
	"fmt"
	"slices"
	"strings"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
	"go.yaml.in/yaml/v3"
)

// The names of warnings. A warning's message ends with its name in brackets;
// `ignore_warnings: [name, ...]` at the top of a runbook or on a step silences
// it there, so a runbook whose author has looked at a warning can run clean.
const (
	WarnNoWait       = "no-wait"       // a change without wait_for
	WarnGuardOff     = "guard-off"     // guard: false on a change
	WarnOneAttempt   = "one-attempt"   // max_attempts: 1 on a change
	WarnShortTimeout = "short-timeout" // a timeout shorter than the interval it bounds
	WarnNeverRetried = "never-retried" // retry.when names 401 or 403, which are never retried
	WarnNoGuard      = "no-guard"      // a POST to a top-level collection: nothing to read before it
	WarnNoBefore     = "no-before"     // until or fail_when read before, but the wait's check reads the answer
	WarnCleanupGuard = "cleanup-guard" // guard: false on an on_failure change, right after a failure
	// WarnIdempotentAlready is idempotency_key on a GET, PUT or DELETE, which
	// are idempotent without one.
	WarnIdempotentAlready = "idempotent-already"

	// WarnInsecure is an insecure setting (insecure_skip_verify,
	// allow_insecure_http). It cannot be ignored and shows on every run, -q
	// included: the way to silence it is to remove the setting.
	WarnInsecure = "insecure"
)

// IgnorableWarnings are the names ignore_warnings accepts.
var IgnorableWarnings = []string{WarnNoWait, WarnGuardOff, WarnOneAttempt, WarnShortTimeout, WarnNeverRetried, WarnNoGuard, WarnNoBefore, WarnCleanupGuard, WarnConfirmNoChange, WarnIdempotentAlready}

// ignoreWarnings decodes an ignore_warnings list.
func (c *compileCtx) ignoreWarnings(n *yaml.Node) []string {
	n = resolve(n)
	if n.Kind != yaml.SequenceNode {
		c.errorf(n, "ignore_warnings must be a list of warning names, such as [%s]", WarnNoWait)
		return nil
	}
	var names []string
	for _, e := range n.Content {
		name, ok := c.str(e, "a warning name")
		switch {
		case !ok:
		case name == WarnInsecure:
			c.errorf(e, "the insecure warning cannot be ignored: it shows on every run while insecure_skip_verify or allow_insecure_http is set")
		case !slices.Contains(IgnorableWarnings, name):
			msg := fmt.Sprintf("unknown warning %q", name)
			if s := closest(name, IgnorableWarnings); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			}
			c.errorf(e, "%s (the warnings: %s)", msg, strings.Join(IgnorableWarnings, ", "))
		default:
			names = append(names, name)
		}
	}
	return names
}

// ignored says whether the runbook, or the step being compiled, silences the
// warning.
func (c *compileCtx) ignored(name string) bool {
	return slices.Contains(c.ignore, name) || slices.Contains(c.stepIgnore, name)
}

// neverRetried warns when retry.when names 401 or 403: those are never
// retried, so the condition can never apply to them.
func (c *compileCtx) neverRetried(n *yaml.Node, src string) {
	tree, err := parser.Parse(src)
	if err != nil {
		return // reported by the compile
	}
	v := &statusFinder{}
	ast.Walk(&tree.Node, v)
	for _, s := range v.found {
		c.warnAt(c.posIn(resolve(n), s.From), WarnNeverRetried, "retry.when names %d, but 401 and 403 are never retried, whatever retry.when says: check the credentials instead", s.Value)
	}
}

// statusFinder collects the numbers 401 and 403 in an expression.
type statusFinder struct {
	found []struct{ Value, From int }
}

func (v *statusFinder) Visit(node *ast.Node) {
	if i, ok := (*node).(*ast.IntegerNode); ok && (i.Value == 401 || i.Value == 403) {
		v.found = append(v.found, struct{ Value, From int }{i.Value, i.Location().From})
	}
}

// warnings points out what is legal but probably not meant.
func (c *compileCtx) warnings(s *Step, kindKey *yaml.Node, common map[string]*yaml.Node, info Info) {
	if info.Change {
		if w := resolve(common["wait_for"]); w == nil && !s.Wait.On {
			c.warnf(kindKey, WarnNoWait, "%s without wait_for: a 200 means accepted, not done; add wait_for: with the condition that shows the change took effect (or wait_for: false if the answer is enough; an API whose 202 names a status monitor is waited on through it: ignore_warnings: [no-wait])", info.Method)
		}
		switch g := resolve(common["guard"]); {
		case g == nil && s.Guard.Check == nil && info.Method == "POST":
			c.warnf(kindKey, WarnNoGuard, "a POST to a top-level collection has nothing of its own to read first, so only its answers (423, a busy 422) hold it back: give it guard: {check: ...} of what must not be busy (the template), or write guard: false to say nothing is")
		case g != nil && !s.Guard.On && info.Guard != nil && s.Stage == StageOnFailure:
			c.warnf(g, WarnCleanupGuard, "guard: false in on_failure: the run has just failed, and what failed may have left the resource busy; let the guard wait for it")
		case g != nil && !s.Guard.On && info.Guard != nil:
			c.warnf(g, WarnGuardOff, "guard: false: the %s is sent even while the resource is busy", info.Method)
		}
		if s.Retry.MaxAttempts == 1 {
			at := common["retry"]
			if at == nil {
				at = kindKey
			}
			c.warnf(at, WarnOneAttempt, "max_attempts: 1 on a change: a busy, locked or throttled answer fails the step at once instead of being waited out")
		}
	}
	at := func(keys ...string) *yaml.Node {
		for _, k := range keys {
			if n := common[k]; n != nil {
				return n
			}
		}
		return kindKey
	}
	if s.Wait.On && s.Timeout < s.Wait.Interval {
		c.warnf(at("timeout"), WarnShortTimeout, "timeout %s is shorter than the wait interval %s: the step fails before its first re-check", fmtDur(s.Timeout), fmtDur(s.Wait.Interval))
	}
	if s.Wait.On && s.Wait.Timeout > 0 && s.Wait.Timeout < s.Wait.Interval {
		c.warnf(at("wait_for"), WarnShortTimeout, "wait_for timeout %s is shorter than its interval %s: the wait ends before its first re-check", fmtDur(s.Wait.Timeout), fmtDur(s.Wait.Interval))
	}
	if s.Guard.On && s.Guard.Timeout > 0 && s.Guard.Timeout < s.Guard.Interval {
		c.warnf(at("guard"), WarnShortTimeout, "guard timeout %s is shorter than its interval %s: a busy resource is read only once", fmtDur(s.Guard.Timeout), fmtDur(s.Guard.Interval))
	}
	if info.Change && s.Timeout < s.Retry.Interval {
		c.warnf(at("timeout", "retry"), WarnShortTimeout, "timeout %s is shorter than the retry interval %s: a failed send is never retried", fmtDur(s.Timeout), fmtDur(s.Retry.Interval))
	}
}
