package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/lipgloss/table"
	"github.com/spf13/cobra"

	"github.com/runbookhq/runbook/runbook"
	"github.com/runbookhq/runbook/ui"
)

func historyCommand(environ []string, stdout io.Writer) *cobra.Command {
	var output, stateDir string
	c := &cobra.Command{
		Use:   "history [FILE]",
		Short: "List past runs from the journals: of FILE, or of every runbook in the state dir",
		Long: `List past runs, oldest first, as their journals tell them: the run's id, when
it started, how long it took, its result (ok, failed, stopped, running, or cut
off when it journaled no end), its exit code, the step it failed at and why
(secrets hidden, as journaled), and the run it resumed. Runs of --sim
rehearsals are marked. A terminal gets a table; anything else plain text;
--output json one JSON object per run per line.`,
		Example: `  runbook history restart.yaml
  runbook history --state-dir /var/lib/runbook --output json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			env := envMap(environ)
			dir := stateDir
			if dir == "" {
				var err error
				if dir, err = runbook.DefaultStateDir(env); err != nil {
					return err
				}
			}
			file := ""
			if len(args) == 1 {
				file = args[0]
			}
			runs, err := runbook.History(dir, stateDir != "", file)
			if err != nil {
				return err
			}
			switch {
			case output == "json":
				enc := json.NewEncoder(stdout)
				for _, r := range runs {
					if err := enc.Encode(historyJSON(r)); err != nil {
						return err
					}
				}
			case output == "human" || (output == "auto" && ui.Terminal(stdout)):
				historyTable(stdout, ui.NewStyles(stdout, func(k string) string { return env[k] }), runs)
			default:
				historyPlain(stdout, runs)
			}
			return nil
		},
	}
	c.Flags().StringVar(&output, "output", "auto", "auto (a table on a terminal, else plain), human, plain, or json (one object per run per line)")
	c.Flags().StringVar(&stateDir, "state-dir", "", "where journals live, as for run (default $XDG_STATE_HOME/runbook or ~/.local/state/runbook)")
	return c
}

// pastRunJSON is a past run in --output json: times in RFC 3339, the
// duration in seconds.
type pastRunJSON struct {
	runbook.PastRun
	Duration float64 `json:"duration,omitempty"`
}

func historyJSON(r runbook.PastRun) pastRunJSON {
	return pastRunJSON{PastRun: r, Duration: r.Duration().Seconds()}
}

// historyColumns are a past run's fields as text, in the order of
// historyHeaders; each is made safe for a terminal.
var historyHeaders = []string{"RUN", "RUNBOOK", "STARTED", "DURATION", "RESULT", "EXIT", "FAILED STEP", "ERROR", "RESUMED FROM"}

func historyColumns(r runbook.PastRun) []string {
	name := r.Runbook
	if r.Rehearsal {
		name += " (sim)"
	}
	dur, exit, step := "-", "-", ""
	if d := r.Duration(); d > 0 {
		dur = runbook.FormatDuration(d.Round(time.Millisecond))
	}
	if r.ExitCode != nil {
		exit = strconv.Itoa(*r.ExitCode)
	}
	if r.FailedStep > 0 {
		step = strconv.Itoa(r.FailedStep)
		if r.StepName != "" {
			step += " " + strconv.Quote(r.StepName)
		}
	}
	cols := []string{r.RunID, name, r.Start.Local().Format("2006-01-02 15:04:05"), dur, r.Result, exit, step, r.Error, r.ResumedFrom}
	for i, c := range cols {
		cols[i] = strings.Join(strings.Fields(runbook.Sanitize(c)), " ")
	}
	return cols
}

// historyPlain writes aligned columns with no escape codes, for logs and pipes.
func historyPlain(w io.Writer, runs []runbook.PastRun) {
	if len(runs) == 0 {
		fmt.Fprintln(w, "no runs journaled")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(historyHeaders, "\t"))
	for _, r := range runs {
		cols := historyColumns(r)
		for i, c := range cols {
			if c == "" {
				cols[i] = "-"
			}
		}
		fmt.Fprintln(tw, strings.Join(cols, "\t"))
	}
	tw.Flush()
}

// historyTable draws the runs as a table, results in the colours of the
// live view, long errors cut to fit a line.
func historyTable(w io.Writer, st ui.Styles, runs []runbook.PastRun) {
	if len(runs) == 0 {
		fmt.Fprintln(w, st.Faint.Render("no runs journaled"))
		return
	}
	t := table.New().Border(lipgloss.NormalBorder()).BorderStyle(st.Faint).Headers(historyHeaders...)
	results := make([]string, len(runs))
	for _, r := range runs {
		cols := historyColumns(r)
		if len([]rune(cols[7])) > 60 {
			cols[7] = string([]rune(cols[7])[:59]) + "…"
		}
		t.Row(cols...)
	}
	for i, r := range runs {
		results[i] = r.Result
	}
	// Every cell's style comes from st, whose renderer knows w (and NO_COLOR).
	plain := st.Faint.UnsetFaint()
	t.StyleFunc(func(row, col int) lipgloss.Style {
		s := plain
		switch {
		case row == table.HeaderRow:
			s = st.Title
		case col == 4 && row >= 0 && row < len(results):
			switch results[row] {
			case "ok":
				s = st.OK
			case "failed", "cut off":
				s = st.Fail
			case "stopped":
				s = st.Warn
			case "running":
				s = st.Busy
			}
		}
		return s.Padding(0, 1)
	})
	fmt.Fprintln(w, t.Render())
}
