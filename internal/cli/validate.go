package cli

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"

	"github.com/spf13/cobra"

	"github.com/runbookhq/runbook/runbook"
	"github.com/runbookhq/runbook/steps"
	"github.com/runbookhq/runbook/ui"
)

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
				if n := len(rb.OnFailure) + len(rb.Finally); n > 0 {
					fmt.Fprintf(stdout, " and %d cleanup step%s", n, map[bool]string{true: "", false: "s"}[n == 1])
				}
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
