package runbook_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/runbookhq/runbook/runbook"
)

// FuzzLoad: no input may panic or hang the loader, nor make it copy without
// end, and every problem it reports carries a position in the file. Seeds:
// every runbook in the repository, and aliases every way they can nest.
func FuzzLoad(f *testing.F) {
	for _, pattern := range []string{"../examples/*.yaml", "../testdata/valid/*.yaml", "../testdata/invalid/*.yaml"} {
		files, _ := filepath.Glob(pattern)
		for _, file := range files {
			if src, err := os.ReadFile(file); err == nil {
				f.Add(src)
			}
		}
	}
	for _, src := range aliasSeeds {
		f.Add([]byte(src))
	}
	k := kinds()
	f.Fuzz(func(t *testing.T, src []byte) {
		rb, err := runbook.Load("fuzz.yaml", src, k)
		if err == nil {
			if rb == nil || len(rb.Steps) == 0 {
				t.Fatalf("loaded without steps")
			}
			return
		}
		errs, ok := err.(runbook.Errors)
		if !ok || len(errs) == 0 {
			t.Fatalf("error %T %v is not a list of positioned errors", err, err)
		}
		for _, e := range errs {
			if e.Pos.Line < 1 || e.Pos.Col < 1 || e.File != "fuzz.yaml" || e.Msg == "" {
				t.Fatalf("error without a position: %+v", e)
			}
			_ = e.Pretty()
		}
	})
}

// aliasSeeds lead the fuzzer to anchors and aliases: nested, merged, as keys,
// inside themselves, standing for steps and for defaults.
var aliasSeeds = []string{
	laughs(3),
	laughs(6),
	"version: 1\nname: x\nvars:\n  a: &a [1, *a]\nsteps:\n  - log: hi\n",
	"version: 1\nname: x\nvars:\n  a: &a {b: 1, <<: *a}\nsteps:\n  - log: hi\n",
	"version: 1\nname: x\nvars:\n  a: &a {b: &b [*a]}\nsteps:\n  - log: hi\n",
	"version: 1\nname: x\nvars:\n  k: &k key\n  m: {*k : *k}\nsteps:\n  - log: hi\n",
	"version: 1\nname: &n x\nsteps: &s\n  - name: *n\n    log: *n\n",
	"version: 1\nname: x\nsteps:\n  - &s {name: a, log: hi}\n  - *s\n  - *s\n",
	"version: 1\nname: x\ndefaults: &d\n  http: &h {base_url: \"https://h\", headers: &hd {A: b}}\nsteps:\n  - http: {<<: *h, method: GET, url: /x, headers: *hd}\n",
	"version: 1\nname: x\nvars:\n  a: &a {x: 1}\n  b: &b {<<: *a, y: *a}\n  c: &c {<<: [*a, *b], z: [*b, *b]}\nsteps:\n  - log: ${{ vars.c }}\n",
	"version: 1\nname: x\nvars:\n  a: &a [&b [&c [*b]]]\nsteps:\n  - log: hi\n",
}
