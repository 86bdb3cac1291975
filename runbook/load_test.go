package runbook_test

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/runbookhq/runbook/runbook"
	"github.com/runbookhq/runbook/steps"
)

func kinds() map[string]runbook.Kind { return steps.Kinds(http.DefaultClient, nil) }

func TestExamplesAndValidRunbooksLoad(t *testing.T) {
	files, _ := filepath.Glob("../examples/*.yaml")
	more, _ := filepath.Glob("../testdata/valid/*.yaml")
	files = append(files, more...)
	if len(files) < 4 {
		t.Fatalf("found only %d runbooks", len(files))
	}
	for _, f := range files {
		rb, err := runbook.LoadFile(f, kinds())
		if err != nil {
			t.Errorf("%s:\n%v", f, err)
			continue
		}
		if len(rb.Steps) == 0 || rb.Name == "" {
			t.Errorf("%s: loaded without steps or name", f)
		}
	}
}

func TestDesignSampleDefaults(t *testing.T) {
	rb, err := runbook.LoadFile("../testdata/valid/design-sample.yaml", kinds())
	if err != nil {
		t.Fatal(err)
	}
	if rb.Timeout != time.Hour || len(rb.Steps) != 3 {
		t.Fatalf("timeout %s, %d steps", rb.Timeout, len(rb.Steps))
	}
	read, suspend, vms := rb.Steps[0], rb.Steps[1], rb.Steps[2]
	if read.Guard.On || read.Wait.On {
		t.Errorf("a GET step is neither guarded nor waited on: guard %v wait %v", read.Guard.On, read.Wait.On)
	}
	if !suspend.Guard.On || suspend.Guard.Interval != 10*time.Second || suspend.Guard.BusyWhen.Source != runbook.DefaultBusyWhen {
		t.Errorf("suspend guard = %+v", suspend.Guard)
	}
	if !suspend.Wait.On || suspend.Wait.FailWhen.Source != runbook.DefaultFailWhen || suspend.Timeout != 30*time.Minute {
		t.Errorf("suspend wait = %+v, timeout %s", suspend.Wait, suspend.Timeout)
	}
	if vms.Wait.Timeout != 20*time.Minute || vms.As != "vm" || vms.Guard.Check == nil || vms.Retry.MaxRetryAfter != 15*time.Minute {
		t.Errorf("for_each step = %+v", vms)
	}
	var names []string
	for _, v := range rb.Env {
		names = append(names, v.Name)
	}
	if strings.Join(names, ",") != "SKYTAP_USER,SKYTAP_TOKEN" || rb.Env[0].Pos != (runbook.Pos{Line: 14, Col: 37}) {
		t.Errorf("required env = %v, want the two strict reads (not the optional SKYTAP_URL), the first at 14:37", rb.Env)
	}
	if strings.Join(rb.AuthEnv, ",") != "SKYTAP_USER,SKYTAP_TOKEN" {
		t.Errorf("credentials come from %v", rb.AuthEnv)
	}
}

func TestDeleteWaitsForGoneByDefault(t *testing.T) {
	rb, err := runbook.Load("d.yaml", []byte(header+"steps:\n  - name: d\n    http: DELETE /x\n"), kinds())
	if err != nil {
		t.Fatal(err)
	}
	w := rb.Steps[0].Wait
	if !w.On || !w.Gone || w.Until.Source != "response.status == 404" {
		t.Errorf("DELETE wait = %+v", w)
	}
}

// TestTemplatesKeepTypes sends a body whose whole-string templates are numbers,
// booleans and lists, and checks what the server received.
func TestTemplatesKeepTypes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := quietSim(t, nil)
		src := `vars:
  count: 3
  name: web
steps:
  - name: Rename
    http:
      method: PUT
      url: /configurations/1/vms/101
      json:
        name: "${{ vars.name }}-${{ vars.count }}"
        count: ${{ vars.count }}
        flag: ${{ vars.count > 2 }}
        list: ${{ [1, "a"] }}
        literal: $${{ not a template }}
    guard: false
`
		r := execute(t, srv, src, func(o *runbook.Options) { o.Vars = map[string]string{"count": "5"} })
		// The sim answers 422 to unknown fields; what matters is what it received.
		muts := r.mutations()
		if len(muts) == 0 {
			t.Fatalf("nothing sent: %v", r.err)
		}
		want := `{"count":5,"flag":true,"list":[1,"a"],"literal":"${{ not a template }}","name":"web-5"}`
		if muts[0].Body != want {
			t.Errorf("body %s, want %s", muts[0].Body, want)
		}
	})
}

func TestUnknownVarOnTheCommandLine(t *testing.T) {
	rb, err := runbook.Load("v.yaml", []byte(header+"vars:\n  env_id: \"1\"\nsteps:\n  - log: hi\n"), kinds())
	if err != nil {
		t.Fatal(err)
	}
	err = rb.Run(t.Context(), runbook.Options{Vars: map[string]string{"env_di": "2"}, Env: map[string]string{"USER": "u", "TOKEN": "t"}})
	if runbook.ExitCode(err) != runbook.ExitUsage || !strings.Contains(err.Error(), `did you mean "env_id"`) {
		t.Errorf("error %v (exit %d), want a usage error suggesting env_id", err, runbook.ExitCode(err))
	}
}

// TestVarOfTheWrongType: a --var that does not fit the declared value's type is
// refused before the run, with an example of the right form and without the
// value (it may be a secret); one that fits takes the declared type.
func TestVarOfTheWrongType(t *testing.T) {
	rb, err := runbook.Load("v.yaml", []byte(header+"vars:\n  ids: [\"1\"]\n  opts: {a: 1}\n  n: 3\n  on: true\n  name: x\nsteps:\n  - log: hi\n"), kinds())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, value, want string }{
		{"ids", `["1",`, `--var ids: the value does not read as JSON (check its brackets, commas and quotes), and v.yaml declares ids as a list; give one, such as --var 'ids=["a","b"]'`},
		{"ids", `["hunter2", "x"`, "does not read as JSON"},
		{"opts", `{"hunter2": 1, "hunter2": 2}`, "does not read as JSON"},
		{"opts", `{"token": *hunter2}`, "does not read as JSON"},
		{"ids", "a,b", "as a list"},
		{"ids", "5", "as a list"},
		{"ids", `{"a": 1}`, "as a list"},
		{"opts", `["a"]`, `declares opts as a map; give one, such as --var 'opts={"key":"value"}'`},
		{"n", "three", "declares n as a whole number; give one, such as --var n=3"},
		{"on", "yes please", "as true or false"},
		{"ids", `["7", "8"]`, ""},
		{"opts", "{b: 2}", ""},
		{"n", "12", ""},
		{"on", "false", ""},
		{"name", "[not, a, list]", ""},
	} {
		err := rb.CheckVars(map[string]string{c.name: c.value})
		if c.want == "" {
			if err != nil {
				t.Errorf("--var %s=%s: %v, want it taken", c.name, c.value, err)
			}
			continue
		}
		if runbook.ExitCode(err) != runbook.ExitUsage || !strings.Contains(fmt.Sprint(err), c.want) {
			t.Errorf("--var %s=%s: %v (exit %d), want a usage error saying %q", c.name, c.value, err, runbook.ExitCode(err), c.want)
		}
		if strings.Contains(fmt.Sprint(err), c.value) || strings.Contains(fmt.Sprint(err), "hunter2") {
			t.Errorf("--var %s: the error quotes the value: %v", c.name, err)
		}
	}
}

// TestEveryMistakeInATemplateIsReported: the short "METHOD URL" form compiles
// every expression of its URL, so an author sees all of them at once.
func TestEveryMistakeInATemplateIsReported(t *testing.T) {
	src := "version: 1\nname: x\nvars: {a: 1}\nsteps:\n  - http: GET https://x/${{ vars.nope }}/vms/${{ vm }}\n"
	_, err := runbook.Load("x.yaml", []byte(src), kinds())
	errs, ok := err.(runbook.Errors)
	if !ok || len(errs) != 2 {
		t.Fatalf("want two errors, got %v", err)
	}
	if errs[0].Pos != (runbook.Pos{Line: 5, Col: 34}) || !strings.Contains(errs[0].Msg, `unknown var "nope"`) ||
		errs[1].Pos != (runbook.Pos{Line: 5, Col: 50}) || !strings.Contains(errs[1].Msg, "unknown name vm") {
		t.Fatalf("got:\n%v", err)
	}
}

// TestEveryStepIsCheckedInItsPlace: in a long runbook each step's references
// are judged against the steps before and after it (an earlier list, a later
// id), every mistake is reported, and env names come in order of first use.
func TestEveryStepIsCheckedInItsPlace(t *testing.T) {
	many := func(mistakes bool) []byte {
		var b strings.Builder
		b.WriteString("version: 1\nname: Many\nvars: {env_id: \"1\"}\nsecrets: [TOKEN]\ndefaults:\n  http:\n    base_url: https://x\n")
		b.WriteString("    headers: {Authorization: \"Bearer ${{ env.TOKEN }}\"}\nsteps:\n")
		for i := range 100 {
			switch i % 5 {
			case 0:
				fmt.Fprintf(&b, "  - id: s%d\n    http: GET /e/${{ vars.env_id }}/${{ env.E%d }}\n    outputs: {vms: response.body.vms}\n", i, i%7)
			case 1:
				fmt.Fprintf(&b, "  - for_each: steps.s%d.outputs.vms\n    http: PUT /v/${{ item }}\n    guard: false\n", i-1) // a warning
			case 2:
				fmt.Fprintf(&b, "  - id: t%d\n    for_each: '[1]'\n    log: ${{ env.F%d }}\n", i, i%3)
			case 3:
				if mistakes {
					fmt.Fprintf(&b, "  - http: PUT /e/${{ vars.nope%d }}\n", i)
				} else {
					fmt.Fprintf(&b, "  - http: PUT /e/${{ vars.env_id }}\n")
				}
			default:
				if mistakes {
					fmt.Fprintf(&b, "  - log: ${{ steps.t%d.state }} ${{ steps.s%d.state }}\n", i-2, i+1)
				} else {
					fmt.Fprintf(&b, "  - log: ${{ steps.t%d[0].state }} ${{ steps.s%d.state }}\n", i-2, i-4)
				}
			}
		}
		return []byte(b.String())
	}
	load := func(src []byte) string {
		rb, err := runbook.Load("many.yaml", src, kinds())
		if err != nil {
			return err.Error()
		}
		return fmt.Sprintf("%d steps, env %v, auth %v, warnings %v", len(rb.Steps), rb.Env, rb.AuthEnv, rb.Warnings)
	}
	got := load(many(true))
	if strings.Count(got, "unknown var") != 20 || strings.Count(got, "is a list") != 20 || strings.Count(got, "runs later") != 19 { // s100 does not exist
		t.Errorf("the runbook should have 20 of each mistake (19 later steps):\n%s", got)
	}
	got = load(many(false))
	const env = "env [{TOKEN {8 46}} {E0 {11 45}} {F2 {18 18}} {E5 {22 45}} {F1 {29 18}} {E3 {33 45}} {F0 {40 18}} {E1 {44 45}} {E6 {55 45}} {E4 {66 45}} {E2 {77 45}}]"
	if !strings.HasPrefix(got, "100 steps, "+env+", auth [TOKEN]") || strings.Count(got, "guard: false") != 20 {
		t.Errorf("the runbook should load with %s and 20 warnings:\n%s", env, got)
	}
}

// TestCommentsThatCutAValueAreFound: yaml.v3 keeps every comment in the tree,
// so the loader sees a "#x" that YAML took for a comment wherever it is, and
// lets ordinary comments be.
func TestCommentsThatCutAValueAreFound(t *testing.T) {
	const ordinary = `# yaml-language-server: $schema=../schema/runbook.schema.json
version: 1 # the format
name: Comments   ## twice
#compact note on a line of its own
steps:
  # the only step
  - name: Read
    id: read
    http: GET https://x/y   # a read
    outputs: {id: response.body.id}  # flow, then a comment
`
	if _, err := runbook.Load("c.yaml", []byte(ordinary), kinds()); err != nil {
		t.Fatalf("ordinary comments refused:\n%v", err)
	}
	for _, tc := range []struct {
		from, to string
		at       runbook.Pos
	}{
		{"name: Comments   ## twice", "name: Release #42", runbook.Pos{Line: 3, Col: 15}},
		{"  - name: Read", "  - name: Read #1", runbook.Pos{Line: 7, Col: 16}},
		{"GET https://x/y   # a read", "GET https://x/y#frag", runbook.Pos{Line: 9, Col: 0}},
		{"GET https://x/y   # a read", "GET https://x/y #frag", runbook.Pos{Line: 9, Col: 27}},
	} {
		src := strings.Replace(ordinary, tc.from, tc.to, 1)
		_, err := runbook.Load("c.yaml", []byte(src), kinds())
		if tc.at.Col == 0 { // no space before #: part of the value, not a comment
			if err != nil {
				t.Errorf("%q: %v", tc.to, err)
			}
			continue
		}
		errs, ok := err.(runbook.Errors)
		if !ok || len(errs) != 1 || errs[0].Pos != tc.at || !strings.Contains(errs[0].Msg, "as a comment") {
			t.Errorf("%q: want the comment reported at %d:%d, got:\n%v", tc.to, tc.at.Line, tc.at.Col, err)
		}
	}
}

// TestMergedKeysDeclareOutputsAndLists: outputs and for_each that come in
// through a << merge are what later steps may read, as written out.
func TestMergedKeysDeclareOutputsAndLists(t *testing.T) {
	src := `version: 1
name: merges
steps:
  - id: a
    log: x
    outputs: {<<: {vms: '[1, 2]'}}
  - id: b
    <<: {for_each: '[1, 2]'}
    log: y
  - log: ${{ steps.a.outputs.vms }}
  - log: ${{ steps.b.state }}
`
	_, err := runbook.Load("m.yaml", []byte(src), kinds())
	errs, ok := err.(runbook.Errors)
	if !ok || len(errs) != 1 || errs[0].Pos.Line != 11 || !strings.Contains(errs[0].Msg, "steps.b is a list") {
		t.Fatalf("want only steps.b read as a list on line 11, got:\n%v", err)
	}
}

// TestEnvInOrderOfFirstUse: defaults sections are read in the file's order, so
// the env names a runbook needs come out the same on every load.
func TestEnvInOrderOfFirstUse(t *testing.T) {
	src := []byte(`version: 1
name: env
defaults:
  exec:
    env: {A: "${{ env.FIRST }}"}
  http:
    base_url: https://x
    headers: {X: "${{ env.SECOND }}"}
steps:
  - log: ${{ env.THIRD }}
`)
	for range 20 {
		rb, err := runbook.Load("e.yaml", src, kinds())
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range rb.Env {
			names = append(names, e.Name)
		}
		if got := strings.Join(names, " "); got != "FIRST SECOND THIRD" {
			t.Fatalf("env %q, want FIRST SECOND THIRD", got)
		}
	}
}

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
