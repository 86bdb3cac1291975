package runbook_test

import (
	"strings"
	"testing"

	"github.com/runbookhq/runbook/runbook"
)

// TestWarningsAreNamedAndCanBeIgnored: every warning ends with its name, which
// ignore_warnings silences for the whole runbook or for one step; the insecure
// settings' warning cannot be silenced.
func TestWarningsAreNamedAndCanBeIgnored(t *testing.T) {
	const webhook = `  - name: Tell the webhook
    http: {method: PUT, url: "https://hooks.example.com/x", json: {done: true}}
    guard: false
    wait_for: false
`
	warnings := func(src string) []string {
		t.Helper()
		rb, err := runbook.Load("w.yaml", []byte(src), kinds())
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, w := range rb.Warnings {
			out = append(out, w.Error())
		}
		return out
	}
	got := warnings(header + "steps:\n" + webhook)
	if len(got) != 1 || got[0] != "w.yaml:10:12: warning: guard: false: the PUT is sent even while the resource is busy [guard-off]" {
		t.Errorf("guard: false on a webhook warns %q", got)
	}
	if got := warnings(header + "steps:\n" + webhook + "    ignore_warnings: [guard-off]\n"); len(got) != 0 {
		t.Errorf("ignored on the step, it still warns %q", got)
	}
	// At the top, for every step; another step's ignore does not reach here.
	two := webhook + "  - http: PUT /x\n    ignore_warnings: [no-wait]\n  - http: PUT /y\n"
	if got := warnings(header + "ignore_warnings: [guard-off]\nsteps:\n" + two); len(got) != 1 || !strings.Contains(got[0], "w.yaml:15:5: warning: PUT without wait_for") || !strings.HasSuffix(got[0], "[no-wait]") {
		t.Errorf("got %q, want only the last step's no-wait", got)
	}
	// A POST to a top-level collection (a webhook) has nothing to guard: it
	// says so, and guard: false is the way to say that is meant.
	post := strings.Replace(webhook, "PUT", "POST", 1)
	if got := warnings(header + "steps:\n" + strings.Replace(post, "    guard: false\n", "", 1)); len(got) != 1 || !strings.HasSuffix(got[0], "[no-guard]") {
		t.Errorf("a POST webhook without a guard warns %q, want no-guard", got)
	}
	if got := warnings(header + "steps:\n" + post); len(got) != 0 {
		t.Errorf("a POST webhook with guard: false warns %q, want nothing", got)
	}
	insecure := strings.Replace(header, "  http:\n", "  http:\n    insecure_skip_verify: true\n", 1)
	got = warnings(insecure + "steps:\n  - http: GET /x\n")
	if len(got) != 1 || !strings.Contains(got[0], "warning: insecure_skip_verify: true") || strings.Contains(got[0], "[") {
		t.Errorf("insecure_skip_verify warns %q, want its warning without a name to ignore", got)
	}
	for _, c := range []struct{ list, want string }{
		{"[insecure]", "the insecure warning cannot be ignored"},
		{"[guard-of]", `unknown warning "guard-of"; did you mean "guard-off"?`},
		{"guard-off", "ignore_warnings must be a list"},
	} {
		_, err := runbook.Load("w.yaml", []byte(insecure+"ignore_warnings: "+c.list+"\nsteps:\n  - http: GET /x\n"), kinds())
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ignore_warnings: %s gave %v, want %q", c.list, err, c.want)
		}
	}
}

// TestRetryWhenThatCanNeverApplyWarns: 401 and 403 are never retried, so a
// retry.when that names them is a mistake told before the run, where it is.
func TestRetryWhenThatCanNeverApplyWarns(t *testing.T) {
	src := header + `defaults:
  retry: {when: 'response.status in [401, 500]'}
steps:
  - http: GET /x
    retry:
      when: response.status == 403 || response.status == 429
`
	src = strings.Replace(src, "defaults:\n  retry", "  retry", 1) // one defaults mapping
	rb, err := runbook.Load("r.yaml", []byte(src), kinds())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range rb.Warnings {
		got = append(got, w.Error())
	}
	want := []string{
		"r.yaml:7:38: warning: retry.when names 401, but 401 and 403 are never retried, whatever retry.when says: check the credentials instead [never-retried]",
		"r.yaml:11:32: warning: retry.when names 403, but 401 and 403 are never retried, whatever retry.when says: check the credentials instead [never-retried]",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	rb, err = runbook.Load("r.yaml", []byte(header+"steps:\n  - http: GET /x\n    retry: {when: response.status == 500}\n"), kinds())
	if err != nil || len(rb.Warnings) != 0 {
		t.Errorf("retry.when on 500: %v %v", err, rb.Warnings)
	}
}

// TestGuardOffInOnFailureWarns: right after a failure the resource may still
// be busy with what failed, so turning the guard off there says so; in
// finally it is the ordinary guard-off warning.
func TestGuardOffInOnFailureWarns(t *testing.T) {
	const change = `  - name: Start it again
    http: {method: PUT, url: /configurations/1, json: {runstate: running}}
    guard: false
    wait_for: state.runstate == "running"
`
	for list, want := range map[string]string{"on_failure": "[cleanup-guard]", "finally": "[guard-off]"} {
		rb, err := runbook.Load("w.yaml", []byte(header+"steps:\n  - log: hi\n"+list+":\n"+change), kinds())
		if err != nil {
			t.Fatal(err)
		}
		if len(rb.Warnings) != 1 || !strings.HasSuffix(rb.Warnings[0].Error(), want) {
			t.Errorf("%s: warnings %v, want one %s", list, rb.Warnings, want)
		}
	}
}

// warnedLines loads src (after the standard header) and says on which lines
// it is warned of name.
func warnedLines(t *testing.T, src, name string) []int {
	t.Helper()
	rb, err := runbook.Load("test.yaml", []byte(header+src), kinds())
	if err != nil {
		t.Fatal(err)
	}
	var lines []int
	for _, w := range rb.Warnings {
		if w.Name == name {
			lines = append(lines, w.Pos.Line)
		}
	}
	return lines
}

// planOf is the plan of src (after the standard header).
func planOf(t *testing.T, src string) []runbook.PlanStep {
	t.Helper()
	rb, err := runbook.Load("test.yaml", []byte(header+src), kinds())
	if err != nil {
		t.Fatal(err)
	}
	plan, err := rb.Plan(runbook.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return plan
}
