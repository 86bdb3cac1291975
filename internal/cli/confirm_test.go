package cli

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/runbookhq/runbook/runbook"
)

// TestTerminalConfirm: the question shows the text and the step's plan, and
// only y or yes (any case) goes on; an empty line, anything else or a closed
// terminal stops.
func TestTerminalConfirm(t *testing.T) {
	for input, want := range map[string]bool{
		"yes\n": true, "y\n": true, " YES \n": true, "Y": true,
		"\n": false, "no\n": false, "yess\n": false, "n\n": false, "": false, "sure\n": false,
	} {
		var out syncBuffer
		ask := terminalConfirm(strings.NewReader(input), &out)
		got, err := ask(t.Context(), "Delete 42?", "DELETE https://host/configurations/42")
		if err != nil || got != want {
			t.Errorf("answer %q: %v, %v; want %v", input, got, err, want)
		}
		for _, s := range []string{"Delete 42?", "the step: DELETE https://host/configurations/42", "[y/N]"} {
			if !strings.Contains(out.String(), s) {
				t.Errorf("the question does not show %q:\n%s", s, out.String())
			}
		}
	}
}

// TestTerminalConfirmSanitizes: the text comes from the runbook and from
// answers; no control character reaches the terminal raw.
func TestTerminalConfirmSanitizes(t *testing.T) {
	var out syncBuffer
	ask := terminalConfirm(strings.NewReader("n\n"), &out)
	ask(t.Context(), "Delete \x1b]52;c;aGk=\x07 now?", "DELETE /x\x1b[2J")
	if strings.ContainsRune(out.String(), 0x1b) {
		t.Errorf("an escape reached the terminal: %q", out.String())
	}
}

// TestTerminalConfirmStopped: Ctrl-C while the question waits returns the
// signal's stop; the read it left pending answers the next question, so two
// reads never race for one line.
func TestTerminalConfirmStopped(t *testing.T) {
	r, w := io.Pipe()
	defer w.Close()
	var out syncBuffer
	ask := terminalConfirm(r, &out)
	ctx, cancel := context.WithCancelCause(t.Context())
	stop := &runbook.Stopped{Signal: "SIGINT", Code: runbook.ExitSIGINT}
	cancel(stop)
	if ok, err := ask(ctx, "Delete?", ""); ok || !errors.Is(err, stop) {
		t.Fatalf("stopped question: %v, %v", ok, err)
	}
	go w.Write([]byte("yes\n"))
	if ok, err := ask(t.Context(), "Delete?", ""); !ok || err != nil {
		t.Errorf("the next question: %v, %v; want yes", ok, err)
	}
}

// TestConfirmerNeedsATerminal: no terminal, JSON output or a dry run ask no
// one, and stdin is then never read.
func TestConfirmerNeedsATerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "stdin")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, fl := range []runFlags{{output: "auto"}, {output: "json"}, {output: "plain", dryRun: true}} {
		if confirmer(fl, f, f) != nil {
			t.Errorf("%+v: a file is taken for a terminal", fl)
		}
	}
	if confirmer(runFlags{output: "auto"}, os.Stdin, &syncBuffer{}) != nil {
		t.Errorf("a buffer is taken for a terminal")
	}
}
