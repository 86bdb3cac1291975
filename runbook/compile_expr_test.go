package runbook_test

import (
	"strings"
	"testing"
	"testing/synctest"

	"github.com/runbookhq/runbook/runbook"
)

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
