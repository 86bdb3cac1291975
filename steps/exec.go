package steps

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/runbookhq/runbook/runbook"
)

// DefaultExecTimeout bounds one command when defaults.exec.timeout is not set.
const DefaultExecTimeout = 10 * time.Minute

// outputLimit caps what is kept of a command's stdout and stderr.
const outputLimit = 1 << 20

// Exec is the exec step kind and probe: `exec: [argv...]`, run without a shell,
// each template rendering into exactly one argument. Shell is `shell: script`,
// run by sh -c, with values passed only through env (a template in the script
// would be an injection). Both kill the whole process group on cancel.
type Exec struct {
	Shell bool
	Clock runbook.Clock // nil: real time
}

var (
	_ runbook.Kind          = (*Exec)(nil)
	_ runbook.Vocabularizer = (*Exec)(nil)
)

var execDefaultsKeys = []string{"timeout", "env", "dir"}

// ExecDefaults is defaults.exec, shared by exec and shell steps.
type ExecDefaults struct {
	Timeout time.Duration
	Env     []Header
	Dir     *runbook.Template
}

// Fields are the sibling keys an exec or shell step reads.
func (e *Exec) Fields() []string {
	if e.Shell {
		return []string{"env", "dir"}
	}
	return []string{"env", "dir", "stdin"}
}

// Vocabulary names defaults.exec for the schema test; shell shares it.
func (e *Exec) Vocabulary() map[string][]string {
	if e.Shell {
		return nil
	}
	return map[string][]string{"defaults.exec": execDefaultsKeys}
}

// DefaultsSection is defaults.exec, for exec and shell steps alike.
func (e *Exec) DefaultsSection() string { return "exec" }

// DecodeDefaults decodes defaults.exec.
func (e *Exec) DecodeDefaults(d *runbook.Decoder) (any, error) {
	def := &ExecDefaults{Timeout: DefaultExecTimeout}
	if d.Node.IsZero() {
		return def, nil
	}
	m := d.Fields(d.Node, "defaults.exec", execDefaultsKeys...)
	d.SetDuration(m, "timeout", "exec timeout", &def.Timeout)
	if n, ok := m["env"]; ok {
		def.Env = decodeEnv(d, n)
	}
	if n, ok := m["dir"]; ok {
		def.Dir = d.Template(n, "dir")
	}
	return def, nil
}

func decodeEnv(d *runbook.Decoder, n runbook.Node) []Header {
	var env []Header
	for _, p := range d.Pairs(n, "env") {
		if t := d.Template(p.Value, "env "+p.Key.Text()); t != nil {
			env = append(env, Header{Name: p.Key.Text(), Value: t})
		}
	}
	return env
}

// Decode decodes `exec: [argv...]` or `shell: script` with env, dir and stdin.
func (e *Exec) Decode(d *runbook.Decoder) (runbook.Action, error) {
	def, _ := d.Defaults.(*ExecDefaults)
	if def == nil {
		def = &ExecDefaults{Timeout: DefaultExecTimeout}
	}
	clock := e.Clock
	if clock == nil {
		clock = runbook.RealClock{}
	}
	c := &command{def: def, clock: clock, shell: e.Shell}
	errs := d.ErrorCount()
	n := d.Node
	if e.Shell {
		script, ok := d.String(n, "shell")
		if !ok {
			return nil, nil
		}
		if i := strings.Index(script, "${{"); i >= 0 {
			d.ErrorAt(n, len([]rune(script[:i])), "${{ }} in a shell script would let a value run as shell code: pass values through env: (e.g. env: {ENV_ID: \"${{ vars.env_id }}\"}) and write \"$ENV_ID\" in the script")
			return nil, nil
		}
		c.script = script
	} else {
		args := n.Items()
		if len(args) == 0 {
			d.Errorf(n, "exec must be a list: the program and its arguments, e.g. [kubectl, get, pod, \"${{ vars.pod }}\", -o, json]; use shell: for a shell command line")
			return nil, nil
		}
		for _, a := range args {
			if t := d.Template(a, "exec argument"); t != nil {
				c.argv = append(c.argv, t)
			}
		}
	}
	if f, ok := d.Field("env"); ok {
		c.env = decodeEnv(d, f)
	}
	if f, ok := d.Field("dir"); ok {
		c.dir = d.Template(f, "dir")
	}
	if f, ok := d.Field("stdin"); ok {
		c.stdin = d.Template(f, "stdin")
	}
	if d.ErrorCount() > errs {
		return nil, nil
	}
	return c, nil
}

// command is a compiled exec or shell action.
type command struct {
	def    *ExecDefaults
	clock  runbook.Clock
	shell  bool
	script string
	argv   []*runbook.Template
	env    []Header
	dir    *runbook.Template
	stdin  *runbook.Template
}

// Info: a command is re-run by retry.when, never re-sent by the HTTP rules; it
// reads state (stdout as JSON), so it can serve as a check.
func (c *command) Info() runbook.Info {
	return runbook.Info{Idempotent: true, Reads: true, SideEffects: true, LocalCommand: true}
}

// Describe shows the command line as it would run.
func (c *command) Describe(s runbook.Scope) string {
	if c.shell {
		return "sh -c " + quote(c.script)
	}
	parts := make([]string, len(c.argv))
	for i, a := range c.argv {
		parts[i] = quote(a.Partial(s))
	}
	return strings.Join(parts, " ")
}

// Prepare renders the arguments, environment, directory and input.
func (c *command) Prepare(s runbook.Scope) (runbook.Call, error) {
	p := &process{kind: c, timeout: c.def.Timeout}
	if c.shell {
		p.argv = []string{"sh", "-c", c.script}
	} else {
		for _, a := range c.argv {
			v, err := a.String(s)
			if err != nil {
				return nil, err
			}
			p.argv = append(p.argv, v)
		}
	}
	p.env = os.Environ()
	for _, hs := range [][]Header{c.def.Env, c.env} {
		for _, h := range hs {
			v, err := h.Value.String(s)
			if err != nil {
				return nil, err
			}
			p.env = append(p.env, h.Name+"="+v)
		}
	}
	for _, dir := range []*runbook.Template{c.def.Dir, c.dir} {
		if dir != nil {
			v, err := dir.String(s)
			if err != nil {
				return nil, err
			}
			p.dir = v
		}
	}
	if c.stdin != nil {
		v, err := c.stdin.String(s)
		if err != nil {
			return nil, err
		}
		p.stdin = v
	}
	return p, nil
}

// process is one prepared run of a command.
type process struct {
	kind    *command
	argv    []string
	env     []string
	dir     string
	stdin   string
	timeout time.Duration
}

func (p *process) Target() runbook.Target {
	parts := make([]string, len(p.argv))
	for i, a := range p.argv {
		parts[i] = quote(a)
	}
	return runbook.Target{URL: strings.Join(parts, " "), Body: p.stdin}
}

// Do runs the command in its own process group, so a cancel (deadline, Ctrl-C)
// kills everything it started.
func (p *process) Do(parent context.Context) *runbook.Outcome {
	start := p.kind.clock.Now()
	ctx, cancel := context.WithTimeout(parent, p.kind.clock.Real(p.timeout))
	defer cancel()
	cmd := exec.CommandContext(ctx, p.argv[0], p.argv[1:]...)
	cmd.Env, cmd.Dir = p.env, p.dir
	cmd.Stdin = strings.NewReader(p.stdin)
	var stdout, stderr limitedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	// Once it started, it may have done its work, whatever stopped it.
	out := &runbook.Outcome{Elapsed: p.kind.clock.Now().Sub(start), Written: cmd.Process != nil}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState != nil && cmd.ProcessState.Success():
		// It succeeded, but left a child holding its output open: done, and the
		// group was killed. Running it again would repeat its effects.
	case errors.As(err, &exitErr) && ctx.Err() == nil:
		out.ExitCode = exitErr.ExitCode()
	case parent.Err() != nil:
		// The step's deadline or a signal: the executor says which.
		out.Err = context.Cause(parent)
		return out
	case ctx.Err() != nil:
		// It may have done part of its work: not run again unless retry.when says.
		out.Err, out.Permanent = fmt.Errorf("%s did not finish within %s (defaults.exec.timeout; killed)", p.argv[0], runbook.FormatDuration(p.timeout)), true
		return out
	case cmd.Process == nil:
		// It never started (not found, not executable): trying again cannot help.
		out.Err, out.Permanent = fmt.Errorf("cannot run %s: %v", p.argv[0], errors.Unwrap(err)), true
		if errors.Unwrap(err) == nil {
			out.Err = fmt.Errorf("cannot run %s: %v", p.argv[0], err)
		}
		return out
	default:
		out.Err, out.Permanent = fmt.Errorf("%s: %v", p.argv[0], err), true
		return out
	}
	out.Accepted = out.ExitCode == 0
	resp := map[string]any{"exit_code": out.ExitCode, "stdout": stdout.String(), "stderr": stderr.String(), "json": nil}
	var parsed any
	if trimmed := bytes.TrimSpace(stdout.Bytes()); len(trimmed) > 0 && json.Unmarshal(trimmed, &parsed) == nil {
		resp["json"] = parsed
		if out.Accepted {
			out.State = parsed
		}
	} else if len(trimmed) > 0 {
		out.Text = strings.Join(strings.Fields(string(trimmed[:min(len(trimmed), 4096)])), " ")
	}
	out.Body = resp["json"]
	out.Response = resp
	out.Raw = stdout.Bytes()
	if !out.Accepted {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(stdout.String())
		}
		out.Message = fmt.Sprintf("%s exited with %d", p.argv[0], out.ExitCode)
		if msg != "" {
			// The executor redacts it before cutting it short.
			out.Message += ": " + truncateText(msg, 4096)
		}
	}
	return out
}

// limitedBuffer keeps the first outputLimit bytes and drops the rest, so a
// chatty command cannot exhaust memory.
type limitedBuffer struct {
	bytes.Buffer
	dropped bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := outputLimit - b.Len(); room < len(p) {
		b.dropped = true
		if room > 0 {
			b.Buffer.Write(p[:room])
		}
		return len(p), nil
	}
	return b.Buffer.Write(p)
}

func truncateText(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "..."
	}
	return s
}

// quote shows one argument as a shell would need it, for messages only.
func quote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n'\"\\$`*?[]{}();&|<>#~") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
