package cli

import (
	"io"
	"net/http"

	"github.com/spf13/cobra"

	"github.com/runbookhq/runbook/runbook"
	"github.com/runbookhq/runbook/steps"
	"github.com/runbookhq/runbook/ui"
)

func planCommand(environ []string, stdout io.Writer) *cobra.Command {
	var vars, varFiles []string
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
			if overrides, err = withVarFiles(rb, varFiles, overrides); err != nil {
				return err
			}
			env := envMap(environ)
			plan, err := rb.Plan(runbook.Options{Vars: overrides, Env: env})
			if err != nil {
				return err
			}
			lock, err := rb.PlanLock(runbook.Options{Vars: overrides, Env: env})
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
			ui.Plan(stdout, ui.NewStyles(stdout, func(k string) string { return env[k] }), name, timeout, runbook.FormatDuration(rb.CleanupTimeout), lock, rb.PlanRequired(overrides), plan)
			return nil
		},
	}
	c.Flags().StringArrayVar(&vars, "var", nil, "set a var: --var name=value (repeatable)")
	c.Flags().StringArrayVar(&varFiles, "var-file", nil, "set vars from a YAML or JSON map (repeatable; later files and --var win)")
	return c
}
