package cli

import (
	"io"

	"github.com/spf13/cobra"

	"github.com/runbookhq/runbook/schema"
)

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
