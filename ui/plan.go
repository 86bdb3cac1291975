package ui

import (
	"fmt"
	"io"
	"strings"

	"github.com/runbookhq/runbook/runbook"
)

// Plan writes what a run would do, step by step: a list with aligned labels,
// styled on a terminal and plain elsewhere.
// required lists the vars a run needs (runbook.PlanRequired). Every text is
// sanitized before it is styled: names, URLs and bodies come from the runbook
// and --var.
func Plan(w io.Writer, st Styles, name string, runTimeout string, required []string, steps []runbook.PlanStep) {
	clean := runbook.Sanitize
	top := 0
	for _, s := range steps {
		if s.Path == "" {
			top++
		}
	}
	head := fmt.Sprintf("%s: %d step%s", clean(name), top, plural(top))
	if runTimeout != "" {
		head += ", run timeout " + runTimeout
	}
	fmt.Fprintln(w, st.Title.Render(head))
	row := func(label, value string) {
		if value == "" {
			return
		}
		fmt.Fprintf(w, "   %s %s\n", st.Label.Render(fmt.Sprintf("%-8s", label)), indent(clean(value), 12))
	}
	for _, r := range required {
		row("requires", r)
	}
	for _, s := range steps {
		fmt.Fprintln(w)
		title := fmt.Sprintf("%d. %s", s.Index, clean(s.Name))
		if s.Path != "" {
			// A used runbook's step, under the step that uses it.
			title = fmt.Sprintf("%s%s. %s", strings.Repeat("  ", strings.Count(s.Path, "/")), s.Path, clean(s.Name))
		}
		if s.ID != "" {
			title += st.Faint.Render(fmt.Sprintf("  (id %s)", clean(s.ID)))
		}
		fmt.Fprintln(w, st.Name.Render(title))
		row("if", s.If)
		row("each", s.ForEach)
		row("action", s.Action)
		row("guard", s.Guard)
		row("wait", s.Wait)
		row("retry", s.Retry)
		row("deadline", s.Deadline)
		row("outputs", strings.Join(s.Outputs, "; "))
	}
}

// indent continues a multi-line value under its first line.
func indent(s string, n int) string {
	return strings.ReplaceAll(s, "\n", "\n"+strings.Repeat(" ", n))
}
