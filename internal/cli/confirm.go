package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mattn/go-isatty"

	"github.com/runbookhq/runbook/runbook"
	"github.com/runbookhq/runbook/ui"
)

// confirmer is how a run asks for a step's confirm: at a terminal, when stdin
// and stderr are both one and the output is not JSON (a program reading
// events answers nothing); else nil, and the executor stops before such a
// step. stdin is never read when it is not a terminal.
func confirmer(f runFlags, stdin *os.File, stderr io.Writer) runbook.ConfirmFunc {
	out, ok := stderr.(*os.File)
	if f.output == "json" || f.dryRun || !ok || !isTerminal(stdin) || !isTerminal(out) {
		return nil
	}
	return terminalConfirm(stdin, stderr)
}

func isTerminal(f *os.File) bool {
	return f != nil && isatty.IsTerminal(f.Fd())
}

// terminalConfirm asks on out and reads the answer, a line, from in: yes or
// y (in any case) goes on, anything else stops the run. A read that ctx cuts
// short (Ctrl-C) is left pending for the next question rather than raced by
// a second reader.
func terminalConfirm(in io.Reader, out io.Writer) runbook.ConfirmFunc {
	lines := bufio.NewReader(in)
	var pending chan answer
	out = ui.Sanitized(out)
	return func(ctx context.Context, text, plan string) (bool, error) {
		fmt.Fprintf(out, "\n%s\n", text)
		if plan != "" {
			fmt.Fprintf(out, "  the step: %s\n", strings.ReplaceAll(plan, "\n", "\n  "))
		}
		fmt.Fprint(out, "Go on? Type yes to run it, anything else stops the run [y/N]: ")
		if pending == nil {
			pending = make(chan answer, 1)
			go func(ch chan<- answer) {
				line, err := lines.ReadString('\n')
				ch <- answer{line, err}
			}(pending)
		}
		select {
		case <-ctx.Done():
			fmt.Fprintln(out)
			return false, context.Cause(ctx)
		case a := <-pending:
			pending = nil
			if a.err != nil && a.line == "" {
				fmt.Fprintln(out)
				if a.err == io.EOF {
					// The terminal was closed (Ctrl-D): no yes was given.
					return false, nil
				}
				return false, a.err
			}
			switch strings.ToLower(strings.TrimSpace(a.line)) {
			case "y", "yes":
				return true, nil
			}
			return false, nil
		}
	}
}

type answer struct {
	line string
	err  error
}
