package runbook_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runbookhq/runbook/runbook"
)

const lockedRunbook = `version: 1
name: Locked
secrets: [SKYTAP_TOKEN]
vars:
  env_id: "1"
  token: ${{ env?.SKYTAP_TOKEN ?? "t" }}
  user: ops
lock: skytap-env-${{ vars.env_id }}
defaults:
  http:
    base_url: https://cloud.example.com
    basic_auth: {username: "${{ vars.user }}", password: "${{ vars.token }}"}
steps:
  - log: hi
`

func TestLockNameIsRenderedFromTheVars(t *testing.T) {
	rb, err := runbook.Load("locked.yaml", []byte(lockedRunbook), kinds())
	if err != nil {
		t.Fatal(err)
	}
	for vars, want := range map[string]string{"": "skytap-env-1", "42": "skytap-env-42"} {
		opt := runbook.Options{Vars: map[string]string{}}
		if vars != "" {
			opt.Vars["env_id"] = vars
		}
		if got, err := rb.LockName(opt); err != nil || got != want {
			t.Errorf("--var env_id=%s: lock %q, %v; want %q", vars, got, err, want)
		}
	}
	unlocked, _ := runbook.Load("plain.yaml", []byte("version: 1\nsteps: [{log: hi}]\n"), kinds())
	if got, err := unlocked.LockName(runbook.Options{}); got != "" || err != nil {
		t.Errorf("a runbook without lock: is named %q, %v", got, err)
	}
}

// A lock name appears in messages and file names: one that would hold a
// secret (a credential, or the value of an env name in secrets) is refused,
// and the refusal does not show it.
func TestLockNameRefusesASecret(t *testing.T) {
	for _, c := range []struct {
		lock string
		opt  runbook.Options
	}{
		{"skytap-${{ vars.token }}", runbook.Options{Vars: map[string]string{"token": "hunter2-secret"}}},
		{"skytap-${{ vars.user }}", runbook.Options{Vars: map[string]string{"user": "admin-user-secret"}}},
		{"skytap-${{ env?.SKYTAP_TOKEN }}", runbook.Options{Env: map[string]string{"SKYTAP_TOKEN": "hunter2-secret"}}},
	} {
		src := strings.Replace(lockedRunbook, "skytap-env-${{ vars.env_id }}", c.lock, 1)
		rb, err := runbook.Load("locked.yaml", []byte(src), kinds())
		if err != nil {
			t.Fatal(err)
		}
		name, err := rb.LockName(c.opt)
		if runbook.ExitCode(err) != runbook.ExitUsage || !strings.Contains(err.Error(), "would hold a secret") || strings.Contains(err.Error(), "secret-") {
			t.Errorf("lock %s: %q, %v; want a usage error that hides the secret", c.lock, name, err)
		}
	}
}

// Two runbooks that name one lock take turns; the runbook on another target
// does not wait, and each target has journals of its own.
func TestNamedLocksTakeTurnsAcrossRunbooks(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	os.WriteFile(a, []byte(lockedRunbook), 0o600)
	os.WriteFile(b, []byte(lockedRunbook), 0o600)
	open := func(file, name string) *runbook.Store {
		s, err := runbook.OpenStore(state, true, file, false)
		if err != nil {
			t.Fatal(err)
		}
		if name != "" {
			s.Named(name)
		}
		return s
	}
	lock := func(s *runbook.Store) (*runbook.Lock, error) { return s.Lock(context.Background(), 0, io.Discard) }

	a1 := open(a, "skytap-env-1")
	held, err := lock(a1)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()
	var locked *runbook.LockedError
	if _, err := lock(open(b, "skytap-env-1")); !errors.As(err, &locked) || locked.Name != "skytap-env-1" ||
		!strings.Contains(err.Error(), `another run holds the lock "skytap-env-1" (pid `) || !strings.Contains(err.Error(), "a.yaml") {
		t.Errorf("b on the same target: %v; want the lock and its holder named", err)
	}
	a2 := open(a, "skytap-env-2")
	other, err := lock(a2)
	if err != nil {
		t.Fatalf("a on another target: %v", err)
	}
	other.Release()

	var dirs []string
	for _, s := range []*runbook.Store{a1, a2, open(a, "")} {
		j, err := s.Create("r1")
		if err != nil {
			t.Fatal(err)
		}
		j.Close()
		dirs = append(dirs, filepath.Base(filepath.Dir(j.Path())))
	}
	if dirs[0] == dirs[1] || !strings.HasPrefix(dirs[0], dirs[2]+"~skytap-env-1-") || strings.Contains(dirs[2], "~") {
		t.Errorf("journal directories %q: want one per target, and the file's own as before", dirs)
	}
	runs, err := runbook.History(state, true, a)
	if err != nil || len(runs) != 0 {
		// The journals hold no run_started: none is a run yet.
		t.Errorf("history %v, %v", runs, err)
	}
}

// Any text names a lock: its file name has no separator and a bounded length.
func TestNamedLockFileIsSafe(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	file := filepath.Join(t.TempDir(), "a.yaml")
	os.WriteFile(file, []byte(lockedRunbook), 0o600)
	for _, name := range []string{"../../etc/passwd", strings.Repeat("x/", 500), "env 1\n\x00ü", "."} {
		s, _ := runbook.OpenStore(state, true, file, false)
		s.Named(name)
		l, err := s.Lock(context.Background(), 0, io.Discard)
		if err != nil {
			t.Fatalf("lock %q: %v", name, err)
		}
		l.Release()
	}
	entries, _ := os.ReadDir(filepath.Join(state, "locks"))
	if len(entries) != 4 {
		t.Errorf("%d lock files, want 4", len(entries))
	}
	for _, e := range entries {
		if n := e.Name(); len(n) > 80 || !strings.HasPrefix(n, "named-") || strings.ContainsAny(n, "/ \n\x00") {
			t.Errorf("lock file %q", n)
		}
	}
}
