package runbook_test

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/runbookhq/runbook/runbook"
)

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

// TestVarFiles: a var file sets declared vars with their declared types, a
// later file overwrites an earlier one, and each mistake is told at its place
// in the var file without quoting the value.
func TestVarFiles(t *testing.T) {
	rb, err := runbook.Load("v.yaml", []byte(header+"vars:\n  env_id: \"1\"\n  ids: [\"1\"]\n  n: 3\n  on: true\nsteps:\n  - log: hi\n"), kinds())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, text string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	got := map[string]string{}
	for _, f := range []string{
		write("a.yaml", "env_id: 77\nn: 5\nids: [a, b]\n"),
		write("b.json", `{"n": 9, "on": false}`),
		write("c.yaml", "# nothing set here\n"),
	} {
		if err := rb.ReadVarFile(f, got); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	want := map[string]string{"env_id": "77", "n": "9", "ids": `["a","b"]`, "on": "false"}
	if !maps.Equal(got, want) {
		t.Errorf("values %v, want %v", got, want)
	}

	bad := write("bad.yaml", "n: hunter2\nidz: [1]\nids: hunter2\non: ~\nenv_id: [x]\n")
	err = rb.ReadVarFile(bad, map[string]string{})
	if code := runbook.ExitCode(err); code != runbook.ExitInvalid {
		t.Fatalf("exit %d (%v), want 65", code, err)
	}
	var errs runbook.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("%T, want positioned errors", err)
	}
	var lines []string
	for _, e := range errs {
		lines = append(lines, fmt.Sprintf("%d:%d: %s", e.Pos.Line, e.Pos.Col, e.Msg))
	}
	wantLines := []string{
		"1:4: v.yaml declares var n as a whole number: write one here",
		`2:1: v.yaml does not declare "idz"; did you mean "ids"?`,
		"3:6: v.yaml declares var ids as a list: write one here",
		"4:5: v.yaml declares var on as true or false: write one here",
		"5:9: v.yaml declares var env_id as text: write one here",
	}
	if !slices.Equal(lines, wantLines) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(wantLines, "\n"))
	}
	if strings.Contains(errs.Pretty(), "hunter2") {
		t.Errorf("the errors show a value, which may be a secret:\n%s", errs.Pretty())
	}

	err = rb.ReadVarFile(write("syntax.yaml", "token: \"hunter2\n  x: [\n"), map[string]string{})
	if runbook.ExitCode(err) != runbook.ExitInvalid || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("a syntax error: %v", err)
	}
	err = rb.ReadVarFile(write("creds.env", "# creds\nTOKEN=hunter2\n"), map[string]string{})
	if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "env file") {
		t.Errorf("an env file: %v", err)
	}
	if err := rb.ReadVarFile(write("list.yaml", "[1, 2]\n"), map[string]string{}); err == nil || !strings.Contains(err.Error(), "a var file is a map of var names to values") {
		t.Errorf("a list: %v", err)
	}
	err = rb.ReadVarFile(filepath.Join(dir, "missing.yaml"), map[string]string{})
	if runbook.ExitCode(err) != runbook.ExitNoInput || !strings.Contains(err.Error(), "cannot read var file") {
		t.Errorf("a missing file: %v (exit %d)", err, runbook.ExitCode(err))
	}
}
