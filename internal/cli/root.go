// Package cli is the runbook command line: its commands and flags, and the one
// place where errors become exit codes.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/runbookhq/runbook/runbook"
	"github.com/runbookhq/runbook/ui"
)

// Main is the program as a process, given its arguments (without the
// program's name) and environment; it returns the exit code. SIGINT or SIGTERM
// stops the run cleanly (the context's cause says which, for the exit code); a
// second one exits now. SIGPIPE does not end it.
func Main(args, environ []string, stdout, stderr io.Writer) int {
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
			// Said, so a cut-short cleanup is not a mystery: the journal
			// holds what a resume needs.
			fmt.Fprintln(stderr, "runbook: a second signal: exiting at once, cleanup not finished; the run can be resumed with --resume")
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
		schemaCommand(stdout), simCommand(ctx, stderr), versionCommand(stdout), historyCommand(environ, stdout))
	return root, started
}

// exitError ends the program with a code whose story has already been printed.
type exitError int

func (e exitError) Error() string { return "" }
func (e exitError) ExitCode() int { return int(e) }

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

// withVarFiles is overrides on top of the var files' values, later files
// overwriting earlier ones: --var wins over every file.
func withVarFiles(rb *runbook.Runbook, files []string, overrides map[string]string) (map[string]string, error) {
	if len(files) == 0 {
		return overrides, nil
	}
	merged := map[string]string{}
	for _, f := range files {
		if err := rb.ReadVarFile(f, merged); err != nil {
			return nil, err
		}
	}
	maps.Copy(merged, overrides)
	return merged, nil
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

func envMap(environ []string) map[string]string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}
