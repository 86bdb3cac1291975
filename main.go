// Command runbook executes YAML runbooks against busy-prone APIs: it checks a
// resource is not busy before changing it, treats a 200 as "accepted", polls until
// the change shows, honours Retry-After, and never moves on early.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/runbookhq/runbook/runbook"
	"github.com/runbookhq/runbook/schema"
	"github.com/runbookhq/runbook/sim"
	"github.com/runbookhq/runbook/steps"
	"github.com/runbookhq/runbook/ui"
)

func main() {
	setMemoryLimit()
	os.Exit(runMain(os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

// memoryLimit is the Go heap's soft limit. Everything a run holds is bounded
// by the runbook's own limits: a file of at most 4 MiB and 500,000 nodes (a
// few hundred MiB to load, in the worst case), answers cut at 10 MiB, the
// expressions' memory budget. 1 GiB is well above what an honest run holds,
// so it costs nothing there; near it the garbage collector works harder, so
// garbage never takes the process to the kernel's OOM killer. It is soft: a
// run that really needs more gets it.
const memoryLimit = 1 << 30

// setMemoryLimit sets the soft limit: GOMEMLIMIT when the user set one (the
// runtime has read it), else memoryLimit, or 90% of the memory the process's
// cgroup may use (a container, a systemd unit's MemoryMax) when that is less.
func setMemoryLimit() {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	limit := int64(memoryLimit)
	if n := cgroupMemoryMax(); n > 0 {
		limit = min(limit, n/10*9)
	}
	debug.SetMemoryLimit(limit)
}

// cgroupMemoryMax is the cgroup v2 memory.max of this process, 0 when there
// is none (unlimited, cgroup v1, not Linux).
func cgroupMemoryMax() int64 {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if path, ok := strings.CutPrefix(line, "0::"); ok {
			max, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", path, "memory.max"))
			if err != nil {
				return 0
			}
			n, _ := strconv.ParseInt(strings.TrimSpace(string(max)), 10, 64)
			return n
		}
	}
	return 0
}

// runMain is the program as a process: SIGINT or SIGTERM stops the run cleanly
// (the context's cause says which, for the exit code); a second one exits now.
// SIGPIPE does not end it.
func runMain(args, environ []string, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	// A reader that quits (`| head`) must not kill a run in the middle of a
	// change: with SIGPIPE handled, writes to it fail quietly and the run
	// finishes, journal and all. Handled, not ignored: commands the steps run
	// must still die of SIGPIPE (`yes | head -1` ends).
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		sig, ok := <-sigs
		if !ok {
			return
		}
		if sig == syscall.SIGTERM {
			cancel(&runbook.Stopped{Signal: "SIGTERM", Code: runbook.ExitSIGTERM})
		} else {
			cancel(&runbook.Stopped{Signal: "SIGINT", Code: runbook.ExitSIGINT})
		}
		if sig, ok := <-sigs; ok {
			if sig == syscall.SIGTERM {
				os.Exit(runbook.ExitSIGTERM)
			}
			os.Exit(runbook.ExitSIGINT)
		}
	}()
	return run(ctx, args, environ, stdout, stderr)
}

// run is the whole program, callable from tests: it parses args, does the work
// and returns the exit code. Only here do errors become exit codes.
func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	cmd, started := rootCommand(ctx, environ, stdout, stderr)
	cmd.SetArgs(args)
	err := cmd.Execute()
	if err == nil {
		return runbook.ExitOK
	}
	var errs runbook.Errors
	var single *runbook.Error
	var quiet exitError
	// An error may quote a server's answer, a command's output or a runbook line.
	stderr = ui.Sanitized(stderr)
	switch {
	case errors.As(err, &quiet):
	case errors.As(err, &errs):
		fmt.Fprintln(stderr, errs.Pretty())
	case errors.As(err, &single):
		fmt.Fprintln(stderr, single.Pretty())
	default:
		fmt.Fprintln(stderr, "runbook:", err)
	}
	var coder runbook.ExitCoder
	if errors.As(err, &coder) {
		return coder.ExitCode()
	}
	if !*started {
		// cobra refused the command line (unknown command, wrong arguments).
		return runbook.ExitUsage
	}
	return runbook.ExitFailed
}

// rootCommand builds the CLI; started becomes true once a command's own code
// runs, so errors before that are usage errors.
func rootCommand(ctx context.Context, environ []string, stdout, stderr io.Writer) (*cobra.Command, *bool) {
	started := new(bool)
	root := &cobra.Command{
		Use:           "runbook",
		Short:         "Execute YAML runbooks against busy-prone APIs, safely",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(*cobra.Command, []string) {
			*started = true
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		msg := err.Error()
		if strings.Contains(msg, "time: missing unit") {
			msg += " (write 10s, 5m or 1h)"
		}
		return &runbook.UsageError{Msg: fmt.Sprintf("%s (see %s --help)", msg, c.CommandPath())}
	})
	root.Version = version()
	root.AddCommand(runCommand(ctx, environ, stdout, stderr), validateCommand(stdout, stderr), planCommand(environ, stdout),
		schemaCommand(stdout), simCommand(ctx, stderr), versionCommand(stdout))
	return root, started
}

// runFlags are the flags of `runbook run`.
type runFlags struct {
	vars     []string
	sim      bool
	simSpeed float64
	timeout  time.Duration
	output   string
	quiet    bool
	verbose  bool
	stateDir string
	resume   bool
	dryRun   bool
	waitLock time.Duration
}

func runCommand(ctx context.Context, environ []string, stdout, stderr io.Writer) *cobra.Command {
	var f runFlags
	c := &cobra.Command{
		Use:   "run FILE",
		Short: "Run a runbook",
		Long: `Run the steps of a runbook in order. Each change waits until its resource is not
busy, and each step is done only when the resource shows it took effect.

A terminal gets a live view; anything else gets one timestamped line per event.
Every run is journaled under the state dir and holds a lock on its runbook.

Exit codes:
  0    every step took effect
  1    a step failed (validation error, other 4xx, fail_when, assert, ...)
  2    the command line is wrong
  65   the runbook is invalid (run "runbook validate FILE")
  66   the runbook cannot be read
  74   the journal cannot be written: nothing more was sent (fix it, then --resume)
  75   still busy or rate limited when the retries ran out, or another run holds the lock
  78   missing configuration (an environment variable the runbook reads)
  124  a step's or the run's deadline passed
  130  stopped by SIGINT (143: SIGTERM); continue with --resume`,
		Example: `  runbook run --sim examples/restart-environment.yaml
  SKYTAP_USER=me SKYTAP_TOKEN=... runbook run restart.yaml --var env_id=1234567
  runbook run -q --wait-lock 10m nightly.yaml      # from cron: mails only on failure`,
		Args: fileArgs("run", 1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRunbook(ctx, f, args[0], environ, stdout, stderr)
		},
	}
	fl := c.Flags()
	fl.StringArrayVar(&f.vars, "var", nil, "set a var: --var name=value (repeatable)")
	fl.BoolVar(&f.sim, "sim", false, "run against the built-in simulator (no account needed)")
	fl.Float64Var(&f.simSpeed, "sim-speed", sim.RehearsalSpeed, "with --sim: how many times faster than real time the rehearsal runs")
	fl.DurationVar(&f.timeout, "timeout", 0, "deadline for the whole run (overrides the runbook's timeout)")
	fl.StringVar(&f.output, "output", "auto", "auto (live view on a terminal, else plain), human, plain, or json (events on stdout)")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "print nothing on success; on failure, the failing step's story")
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "print every request and its answer (plain and json output)")
	fl.StringVar(&f.stateDir, "state-dir", "", "where journals and locks live (default $XDG_STATE_HOME/runbook or ~/.local/state/runbook)")
	fl.BoolVar(&f.resume, "resume", false, "continue the last unfinished run of this runbook after its last completed step")
	fl.BoolVar(&f.dryRun, "dry-run", false, "send reads only; print the changes it would send")
	fl.DurationVar(&f.waitLock, "wait-lock", 0, "wait up to this long for another run of the runbook to finish")
	return c
}

// runRunbook is `runbook run`: load, lock, journal, observe, run.
func runRunbook(ctx context.Context, f runFlags, file string, environ []string, stdout, stderr io.Writer) error {
	switch f.output {
	case "auto", "human", "plain", "json":
	default:
		return &runbook.UsageError{Msg: fmt.Sprintf("--output %q: use auto, human, plain or json", f.output)}
	}
	overrides, err := parseVars(f.vars)
	if err != nil {
		return err
	}
	client := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	if f.simSpeed <= 0 {
		return &runbook.UsageError{Msg: "--sim-speed must be more than 0"}
	}
	var clock runbook.Clock = runbook.RealClock{}
	simClock := sim.NewRehearsalClock(f.simSpeed)
	if f.sim {
		clock = simClock
	}
	rb, err := runbook.LoadFile(file, steps.Kinds(client, clock))
	if err != nil {
		return err
	}
	// -q prints nothing on success, warnings included (validate and other runs
	// show them), except an insecure setting: it must nag on every run.
	printWarnings(stderr, rb, f.quiet)
	// Notes on how the run goes (waiting for the lock, the simulator's address)
	// are not printed with -q, so cron mails only a failure, nor with JSON
	// events, whose reader wants nothing else.
	notes := ui.Sanitized(stderr)
	if f.quiet || f.output == "json" {
		notes = io.Discard
	}
	env := envMap(environ)
	var standIns []string
	if f.sim {
		standIns = simStandIns(rb, env)
	}
	opt := runbook.Options{Vars: overrides, Env: env, Timeout: f.timeout, Clock: clock, DryRun: f.dryRun, Verbose: f.verbose, RunID: runbook.NewRunID(time.Now())}
	// A wrong --var or a missing environment variable is told before the lock is
	// taken or waited for. A resume's vars are in the journal, read under the
	// lock: Run checks them then.
	if !f.resume {
		if err := rb.Check(opt); err != nil {
			return err
		}
	}
	if f.sim {
		if err := simRunsNoCommands(rb, rb.Describer(opt)); err != nil {
			return err
		}
		stop, err := sim.Rehearse(client, simClock, standIns, notes)
		if err != nil {
			return err
		}
		defer stop()
	}
	stateDir := f.stateDir
	if stateDir == "" {
		stateDir = runbook.DefaultStateDir(env)
	}
	{
		// A dry run takes no lock and writes no journal, but it reads the last
		// run: what a resume would do, and a Retry-After pause to wait out.
		store, err := runbook.OpenStore(stateDir, f.stateDir != "", file, f.sim)
		if err != nil {
			return err
		}
		if !f.dryRun {
			lock, err := store.Lock(ctx, f.waitLock, notes)
			if err != nil {
				return err
			}
			defer lock.Release()
		}
		last, err := store.Last()
		if err != nil {
			return err
		}
		if f.resume {
			res, err := runbook.FindResume(last, rb)
			if err != nil {
				return err
			}
			// overrides is opt.Vars: the run gets the merged values.
			if err := res.MergeVars(overrides); err != nil {
				return err
			}
			opt.Resume = res
		} else if id, how, step, ok := last.Unfinished(); ok && !f.dryRun {
			fmt.Fprintf(notes, "runbook: run %s %s at step %d and is not finished; this run starts from the first step, and that one can no longer be resumed (to continue it instead: %s)\n",
				id, how, step, resumeCommand(f, file))
		}
		opt.Pauses = last.Pauses(time.Now())
		if !f.dryRun {
			// The id is the run's start under the lock: a run that waited for
			// it began after the one it waited for.
			opt.RunID = runbook.NewRunID(time.Now())
			journal, err := store.Create(opt.RunID)
			if err != nil {
				return err
			}
			defer journal.Close()
			opt.Journal = journal
		}
	}
	obs, stop := observer(f, rb, env, clock, stdout, stderr)
	opt.Observer = obs
	err = rb.Run(ctx, opt)
	stop()
	var se *runbook.StepError
	if errors.As(err, &se) && opt.Journal != nil {
		switch se.Why {
		case runbook.Interrupted, runbook.DeadlinePassed, runbook.StillBusy, runbook.JournalBroken:
			hint := fmt.Sprintf("stopped at step %d %q; continue with: %s", se.Index, se.Step, resumeCommand(f, file))
			if !se.Until.IsZero() {
				hint = fmt.Sprintf("stopped at step %d %q; the API asked for a pause until %s, which a resume waits out; continue with: %s",
					se.Index, se.Step, se.Until.Local().Format("15:04:05"), resumeCommand(f, file))
			}
			return &hinted{err: err, hint: hint}
		}
	}
	return err
}

// resumeCommand is the command line that continues this run.
func resumeCommand(f runFlags, file string) string {
	again := "runbook run --resume"
	if f.stateDir != "" {
		again += " --state-dir " + f.stateDir
	}
	if f.sim {
		again += " --sim"
		if f.simSpeed != sim.RehearsalSpeed {
			again += fmt.Sprintf(" --sim-speed %g", f.simSpeed)
		}
	}
	return again + " " + file
}

// hinted is an error followed by what to do next; it keeps the error's exit code.
type hinted struct {
	err  error
	hint string
}

func (h *hinted) Error() string { return h.err.Error() + "\nrunbook: " + h.hint }
func (h *hinted) Unwrap() error { return h.err }

// observer picks how the run is shown: JSON events on stdout; on stderr the live
// view (a terminal that takes colour, or --output human), plain lines, or, with
// -q, nothing but a failing step's story.
func observer(f runFlags, rb *runbook.Runbook, env map[string]string, clock runbook.Clock, stdout, stderr io.Writer) (runbook.Observer, func()) {
	getenv := func(k string) string { return env[k] }
	switch {
	case f.output == "json":
		return ui.NewJSON(stdout, f.verbose), func() {}
	case f.quiet:
		return ui.NewQuiet(stderr), func() {}
	case f.output == "human" || (f.output == "auto" && !f.verbose && ui.Colour(stderr, getenv)):
		names := make([]string, len(rb.Steps))
		for i, s := range rb.Steps {
			names[i] = s.Name
		}
		name := rb.Name
		if name == "" {
			name = rb.File
		}
		live := ui.NewLive(stderr, ui.NewStyles(stderr, getenv), clock.Now, func() int { return ui.Width(stderr) }, name, names)
		live.Start()
		return live, live.Stop
	}
	return ui.NewPlain(stderr, f.verbose), func() {}
}

// simStandIns sets the credentials the runbook reads that are not set (or are
// empty), since the simulator accepts any, and names them. Other variables
// must be set as for a real run.
func simStandIns(rb *runbook.Runbook, env map[string]string) []string {
	var standIns []string
	for _, name := range rb.AuthEnv {
		if strings.TrimSpace(env[name]) == "" {
			env[name] = "sim-" + strings.ToLower(name)
			standIns = append(standIns, name)
		}
	}
	return standIns
}

// simRunsNoCommands refuses a rehearsal that would run commands: the simulator
// stands in for the HTTP API only, and a command would act on the real world
// (kubectl scale against a real cluster) while the operator thinks nothing is.
// Each command is shown as it would run (describe).
func simRunsNoCommands(rb *runbook.Runbook, describe func(*runbook.Step, runbook.Action) string) error {
	var uses []string
	for _, s := range rb.Steps {
		for _, c := range []struct {
			a    runbook.Action
			what string
		}{{s.Action, "runs"}, {s.Guard.Check, "checks with"}, {s.Wait.Check, "waits with"}} {
			if c.a != nil && steps.IsCommand(c.a) {
				uses = append(uses, fmt.Sprintf("%s:%d:%d: step %d %s %s", rb.File, s.Pos.Line, s.Pos.Col, s.Index, c.what, describe(s, c.a)))
			}
		}
	}
	if len(uses) == 0 {
		return nil
	}
	return &runbook.UsageError{Msg: fmt.Sprintf("--sim stands in for the HTTP API only, not for commands, which would run for real:\n%s\nrun it without --sim (with --dry-run, it shows the changes and commands without making them)", strings.Join(uses, "\n"))}
}

func simCommand(ctx context.Context, stderr io.Writer) *cobra.Command {
	var addr, scenario string
	var seed uint64
	c := &cobra.Command{
		Use:   "sim",
		Short: "Serve the Skytap-style simulator",
		Long: `Serve a simulated Skytap API on a loopback port, with HTTP basic auth (any
credentials) and a request log at GET /__sim/log. Scenarios:`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := sim.Scenario(scenario)
			if err != nil {
				return &runbook.UsageError{Msg: err.Error()}
			}
			cfg.Seed = seed
			cfg.MaxLog = sim.ServedMaxLog
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return &runbook.UsageError{Msg: fmt.Sprintf("--addr %s: %v", addr, err)}
			}
			hs := &http.Server{Handler: sim.New(cfg), ReadHeaderTimeout: 10 * time.Second}
			fmt.Fprintf(stderr, "simulator (scenario %s: %s) listening on http://%s; Ctrl-C stops it\n", scenario, sim.About(scenario), ln.Addr())
			go func() {
				<-ctx.Done()
				hs.Close()
			}()
			if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
	c.Flags().StringVar(&addr, "addr", "127.0.0.1:8080", "address to listen on (loopback by default)")
	c.Flags().StringVar(&scenario, "scenario", "default", "behaviour preset: "+strings.Join(sim.ScenarioNames(), ", ")+" (see --help)")
	for _, name := range sim.ScenarioNames() {
		c.Long += fmt.Sprintf("\n  %-8s %s", name, sim.About(name))
	}
	c.Flags().Uint64Var(&seed, "seed", 1, "seed for the simulator's choices")
	return c
}

// printWarnings shows the runbook's warnings; quiet, only the insecure ones.
func printWarnings(w io.Writer, rb *runbook.Runbook, quiet bool) {
	warnings := rb.Warnings
	if quiet {
		warnings = slices.DeleteFunc(slices.Clone(warnings), func(e *runbook.Error) bool { return !e.Insecure() })
	}
	if len(warnings) > 0 {
		fmt.Fprintln(ui.Sanitized(w), warnings.Pretty())
	}
}

func validateCommand(stdout, stderr io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check runbooks without running them: every problem, with file:line:col",
		Args:  fileArgs("validate", 1, -1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// Messages quote the runbooks' lines and the names given.
			stdout, stderr := ui.Sanitized(stdout), ui.Sanitized(stderr)
			code := runbook.ExitOK
			for _, file := range args {
				rb, err := runbook.LoadFile(file, steps.Kinds(http.DefaultClient, nil))
				if err != nil {
					var errs runbook.Errors
					if errors.As(err, &errs) {
						fmt.Fprintln(stderr, errs.Pretty())
					} else {
						fmt.Fprintln(stderr, "runbook:", err)
					}
					code = max(code, runbook.ExitCode(err))
					continue
				}
				printWarnings(stderr, rb, false)
				fmt.Fprintf(stdout, "%s: ok (%d step%s", file, len(rb.Steps), map[bool]string{true: "", false: "s"}[len(rb.Steps) == 1])
				if n := len(rb.Warnings); n > 0 {
					fmt.Fprintf(stdout, ", %d warning%s", n, map[bool]string{true: "", false: "s"}[n == 1])
				}
				fmt.Fprintln(stdout, ")")
			}
			if code != runbook.ExitOK {
				return exitError(code)
			}
			return nil
		},
	}
}

// exitError ends the program with a code whose story has already been printed.
type exitError int

func (e exitError) Error() string { return "" }
func (e exitError) ExitCode() int { return int(e) }

func planCommand(environ []string, stdout io.Writer) *cobra.Command {
	var vars []string
	c := &cobra.Command{
		Use:   "plan FILE",
		Short: "Show what a run would do: each step's action, guard, wait, retries and deadline. Nothing is sent",
		Args:  fileArgs("plan", 1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			overrides, err := parseVars(vars)
			if err != nil {
				return err
			}
			rb, err := runbook.LoadFile(args[0], steps.Kinds(http.DefaultClient, nil))
			if err != nil {
				return err
			}
			env := envMap(environ)
			plan, err := rb.Plan(runbook.Options{Vars: overrides, Env: env})
			if err != nil {
				return err
			}
			timeout := ""
			if rb.Timeout > 0 {
				timeout = runbook.FormatDuration(rb.Timeout)
			}
			name := rb.Name
			if name == "" {
				name = args[0]
			}
			ui.Plan(stdout, ui.NewStyles(stdout, func(k string) string { return env[k] }), name, timeout, rb.PlanRequired(overrides), plan)
			return nil
		},
	}
	c.Flags().StringArrayVar(&vars, "var", nil, "set a var: --var name=value (repeatable)")
	return c
}

func schemaCommand(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the runbook format's JSON Schema (for editors)",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, args []string) {
			stdout.Write(schema.JSON)
		},
	}
}

// fileArgs checks a command's FILE arguments and says what is missing.
func fileArgs(cmd string, least, most int) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		switch {
		case len(args) < least:
			return &runbook.UsageError{Msg: fmt.Sprintf("%s needs the runbook FILE: runbook %s FILE (see runbook %s --help)", cmd, cmd, cmd)}
		case most >= 0 && len(args) > most:
			return &runbook.UsageError{Msg: fmt.Sprintf("%s takes one FILE, got %d arguments: %s (flags go before or after it, e.g. --var name=value)", cmd, len(args), strings.Join(args, " "))}
		}
		return nil
	}
}

func parseVars(args []string) (map[string]string, error) {
	overrides := map[string]string{}
	for _, v := range args {
		name, value, err := runbook.ParseVar(v)
		if err != nil {
			return nil, err
		}
		overrides[name] = value
	}
	return overrides, nil
}

func versionCommand(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, args []string) {
			fmt.Fprintln(stdout, "runbook", version())
		},
	}
}

// version is the module version of a released build, else the commit it was
// built from.
func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", ""
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+changes"
			}
		}
	}
	if len(rev) > 12 {
		return "dev (" + rev[:12] + dirty + ")"
	}
	return "dev"
}

func envMap(environ []string) map[string]string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}
