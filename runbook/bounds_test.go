package runbook_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runbookhq/runbook/runbook"
)

// TestReadFileRefusesLargeFiles: a file over 4 MiB is refused from its size,
// before it is read; one with no size (a device, a pipe) once more than the
// limit has been read. Either is exit 65 and says the size and the limit.
func TestReadFileRefusesLargeFiles(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.yaml")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(50 << 20) // sparse: 50 MiB that take no room
	f.Close()
	_, err = runbook.ReadFile(big)
	var tl *runbook.TooLargeError
	if !errors.As(err, &tl) || runbook.ExitCode(err) != runbook.ExitInvalid {
		t.Fatalf("a 50 MiB file: %v (exit %d), want refused with exit 65", err, runbook.ExitCode(err))
	}
	if msg := err.Error(); !strings.Contains(msg, "50 MiB (52428800 bytes)") || !strings.Contains(msg, "4 MiB") {
		t.Errorf("the message does not say the size and the limit: %s", msg)
	}
	if _, err := runbook.LoadFile(big, kinds()); !errors.As(err, &tl) {
		t.Errorf("LoadFile of a 50 MiB file: %v", err)
	}

	if _, err := runbook.ReadFile("/dev/zero"); !errors.As(err, &tl) || !strings.Contains(err.Error(), "more than 4 MiB") {
		t.Errorf("an endless device: %v, want refused after 4 MiB", err)
	}

	exact := filepath.Join(dir, "exact.yaml")
	os.WriteFile(exact, []byte(strings.Repeat("#\n", runbook.MaxFileSize/2)), 0o644)
	if src, err := runbook.ReadFile(exact); err != nil || len(src) != runbook.MaxFileSize {
		t.Errorf("a file of exactly 4 MiB: %d bytes, %v", len(src), err)
	}
	if _, err := runbook.ReadFile(filepath.Join(dir, "missing.yaml")); runbook.ExitCode(err) != runbook.ExitNoInput {
		t.Errorf("a missing file: %v, want exit 66", err)
	}
}

// laughs is a runbook whose vars hold levels of ten aliases of the level
// before: 10^levels strings.
func laughs(levels int) string {
	var b strings.Builder
	b.WriteString("version: 1\nname: laughs\nvars:\n")
	b.WriteString(`  l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]` + "\n")
	for i := 1; i < levels; i++ {
		fmt.Fprintf(&b, "  l%d: &l%d [%s]\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*l%d, ", i-1), 10), ", "))
	}
	b.WriteString("steps:\n  - name: Say hello\n    log: hello\n")
	return b.String()
}

// TestAliasesAreBounded: aliases are counted, not copied, while loading; the
// alias that takes them past MaxAliasNodes is refused at its position, fast.
func TestAliasesAreBounded(t *testing.T) {
	for _, c := range []struct {
		name, src string
		want      string // "" loads
	}{
		{"four levels: 11,110 nodes", laughs(4), ""},
		{"nine levels: a billion", laughs(9), `fuzz.yaml:8:47: YAML aliases make this runbook stand for more than 100000 nodes (this *l3 alone copies 11111)`},
		{"an alias inside its anchor", "version: 1\nname: x\nvars:\n  a: &a [1, [2, *a]]\nsteps:\n  - log: hi\n",
			`fuzz.yaml:4:17: YAML alias *a is inside the value its anchor &a marks`},
		{"a merge key inside its anchor", "version: 1\nname: x\nvars:\n  a: &a {b: 1, <<: *a}\nsteps:\n  - log: hi\n",
			`fuzz.yaml:4:20: YAML alias *a is inside the value its anchor &a marks`},
		{"a key that is an alias", "version: 1\nname: x\nvars:\n  k: &k key\n  m: {*k : 1}\nsteps:\n  - log: hi\n", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			_, err := runbook.Load("fuzz.yaml", []byte(c.src), kinds())
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("took %s", took)
			}
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want == "":
			case err == nil || !strings.Contains(err.Error(), c.want):
				t.Fatalf("got %v\nwant %s", err, c.want)
			case runbook.ExitCode(err) != runbook.ExitInvalid:
				t.Errorf("exit %d, want 65", runbook.ExitCode(err))
			}
		})
	}
}

// TestHonestAnchorsLoad: a block of defaults shared by every step of a long
// runbook is far from the bound.
func TestHonestAnchorsLoad(t *testing.T) {
	var b strings.Builder
	b.WriteString("version: 1\nname: fleet\nx-common: &common\n  headers: {Accept: application/json, X-Team: ops, X-Purpose: restart}\n  query: {a: '1', b: '2', c: '3'}\n")
	b.WriteString("defaults:\n  http:\n    base_url: https://api.example.com\nsteps:\n")
	for i := range 500 {
		fmt.Fprintf(&b, "  - name: Start %d\n    http:\n      <<: *common\n      method: PUT\n      url: /vms/%d\n      json: {runstate: running}\n    wait_for: false\n", i, i)
	}
	src := strings.Replace(b.String(), "x-common: &common\n", "vars:\n  common: &common\n", 1)
	src = strings.Replace(src, "  headers: {", "    headers: {", 1)
	src = strings.Replace(src, "  query: {", "    query: {", 1)
	if _, err := runbook.Load("fleet.yaml", []byte(src), kinds()); err != nil {
		t.Fatal(err)
	}
}

// TestNodesAreBounded: a file within the size limit but with more nodes than
// a person writes is refused at the node that passes the bound.
func TestNodesAreBounded(t *testing.T) {
	src := "version: 1\nname: x\nvars:\n  l: [" + strings.Repeat("1,", runbook.MaxNodes) + "1]\nsteps:\n  - log: hi\n"
	_, err := runbook.Load("fuzz.yaml", []byte(src), kinds())
	if err == nil || !strings.Contains(err.Error(), "fuzz.yaml:4:") || !strings.Contains(err.Error(), "more than 500000 YAML nodes") {
		t.Fatalf("got %v", err)
	}
}
