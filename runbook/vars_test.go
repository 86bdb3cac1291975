package runbook_test

import (
	"fmt"
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
