package ui

import (
	"fmt"
	"io"
	"strings"

	"github.com/runbookhq/runbook/runbook"
)

// Plan writes what a run would do, step by step: a list with aligned labels,
// styled on a terminal and plain elsewhere.
// lock is the runbook's lock: name (runbook.PlanLock), "" for none; required
// lists the vars a run needs (runbook.PlanRequired). Every text is
// sanitized before it is styled: names, URLs and bodies come from the runbook
// and --var.
func Plan(w io.Writer, st Styles, name string, runTimeout, cleanupTimeout, lock string, required []string, steps []runbook.PlanStep) {
	clean := runbook.Sanitize
	main := 0
	for _, s := range steps {
		if s.Stage == runbook.StageMain && s.Path == "" {
			main++
		}
	}
	head := fmt.Sprintf("%s: %d step%s", clean(name), main, plural(main))
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
	if lock != "" {
		row("lock", lock+" (runs of any runbook with this lock take turns)")
	}
	for _, r := range required {
		row("requires", r)
	}
	stage := runbook.StageMain
	for _, s := range steps {
		fmt.Fprintln(w)
		if s.Stage != stage {
			stage = s.Stage
			when := map[runbook.Stage]string{runbook.StageOnFailure: "when the run failed (exit 1, 75 or 124)", runbook.StageFinally: "after every run, also a stopped one"}[stage]
			fmt.Fprintln(w, st.Title.Render(fmt.Sprintf("%s: %s, within cleanup_timeout %s", stage, when, cleanupTimeout)))
			fmt.Fprintln(w)
		}
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
		row("confirm", s.Confirm)
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
