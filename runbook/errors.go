package runbook

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Exit codes of the command line (docs/running.md, "Exit codes"). They live here,
// beside the errors that carry them, so every error knows its own code; main only
// asks.
const (
	ExitOK       = 0
	ExitFailed   = 1
	ExitUsage    = 2
	ExitInvalid  = 65
	ExitNoInput  = 66
	ExitIOErr    = 74
	ExitBusy     = 75
	ExitConfig   = 78
	ExitDeadline = 124
	ExitSIGINT   = 130
	ExitSIGTERM  = 143
)

// ExitCoder is implemented by errors that decide the process's exit code.
type ExitCoder interface {
	ExitCode() int
}

// ExitCode returns the exit code for err: 0 for nil, the code of the first
// ExitCoder in its chain, else 1.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var c ExitCoder
	if errors.As(err, &c) {
		return c.ExitCode()
	}
	return ExitFailed
}

// Pos is a position in a runbook file, 1-based like yaml.Node.
type Pos struct {
	Line, Col int
}

// Error is one mistake in a runbook file, found before anything was sent.
type Error struct {
	File    string
	Pos     Pos
	Msg     string
	Source  string // the source line, for the caret display; may be empty
	Warning bool
	Name    string // a warning's name, by which ignore_warnings silences it
	// UsedBy is the chain of uses that led to a used file, nearest first:
	// the mistake is told where it is, then where each use is.
	UsedBy []UsedAt
}

func (e *Error) Error() string { return e.line() + e.notes() }

func (e *Error) line() string {
	if !e.Warning {
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Pos.Line, e.Pos.Col, e.Msg)
	}
	name := ""
	if e.Name != "" && e.Name != WarnInsecure {
		name = " [" + e.Name + "]"
	}
	return fmt.Sprintf("%s:%d:%d: warning: %s%s", e.File, e.Pos.Line, e.Pos.Col, e.Msg, name)
}

// notes are the lines that say which uses led to the file.
func (e *Error) notes() string {
	var b strings.Builder
	for _, u := range e.UsedBy {
		b.WriteString("\n   used by " + u.String())
	}
	return b.String()
}

// at is where the error is in the file depth uses down from the top-level
// runbook: its own position there, or that of the uses that leads to it.
func (e *Error) at(depth int) Pos {
	if i := len(e.UsedBy) - depth - 1; i >= 0 {
		return e.UsedBy[i].Pos
	}
	return e.Pos
}

// Insecure says whether the warning is about an insecure setting: it shows on
// every run, even with -q.
func (e *Error) Insecure() bool { return e.Name == WarnInsecure }

// Pretty renders the error as a compiler would: the message, the source line and a
// caret under the spot. The line is sanitized (a runbook is text from outside),
// and the caret counts the escapes that stand for its control characters.
func (e *Error) Pretty() string {
	var b strings.Builder
	b.WriteString(Sanitize(e.line()))
	if e.Source != "" && e.Pos.Col > 0 {
		num := fmt.Sprint(e.Pos.Line)
		text, col := sourceWindow(strings.ReplaceAll(e.Source, "\t", " "), e.Pos.Col)
		src := []rune(text)
		before := string(src[:min(col-1, len(src))])
		pad := utf8.RuneCountInString(Sanitize(before)) + max(col-1-len(src), 0)
		fmt.Fprintf(&b, "\n %s | %s\n %s | %s^", num, Sanitize(text),
			strings.Repeat(" ", len(num)), strings.Repeat(" ", pad))
	}
	b.WriteString(Sanitize(e.notes()))
	return b.String()
}

// sourceWidth is how much of a source line an error shows around its column.
const sourceWidth = 120

// sourceWindow cuts a long source line (a 4 MiB flow list is one line) to
// sourceWidth characters around col, marking the cuts with "...", and returns
// the caret's column in what it shows.
func sourceWindow(line string, col int) (string, int) {
	r := []rune(line)
	if len(r) <= sourceWidth {
		return line, col
	}
	start := max(0, min(col-1-sourceWidth/2, len(r)-sourceWidth))
	end := min(len(r), start+sourceWidth)
	text := string(r[start:end])
	col -= start
	if start > 0 {
		text, col = "..."+text, col+3
	}
	if end < len(r) {
		text += "..."
	}
	return text, col
}

// ExitCode makes a single load error exit 65.
func (e *Error) ExitCode() int { return ExitInvalid }

// Errors is every mistake found in one runbook.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Pretty renders every error with its source line and caret.
func (es Errors) Pretty() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Pretty()
	}
	return strings.Join(parts, "\n")
}

// ExitCode is 65: the runbook is invalid.
func (es Errors) ExitCode() int { return ExitInvalid }

// ReadError is a runbook file that could not be read (exit 66).
type ReadError struct {
	What string // "runbook" or "var file"
	File string
	Err  error
}

func (e *ReadError) Error() string {
	return fmt.Sprintf("cannot read %s %s: %v", e.What, e.File, e.Err)
}
func (e *ReadError) Unwrap() error { return e.Err }
func (e *ReadError) ExitCode() int { return ExitNoInput }

// ConfigError is missing configuration, such as an environment variable the
// runbook reads (exit 78).
type ConfigError struct {
	Msg string
}

func (e *ConfigError) Error() string { return e.Msg }
func (e *ConfigError) ExitCode() int { return ExitConfig }

// PermanentError is a step that cannot be done as written, found when its
// request is prepared (such as credentials over plain http): it fails the step
// at once, unretried.
type PermanentError struct {
	Msg string
}

func (e *PermanentError) Error() string { return e.Msg }

// UsageError is a mistake on the command line (exit 2).
type UsageError struct {
	Msg string
}

func (e *UsageError) Error() string { return e.Msg }
func (e *UsageError) ExitCode() int { return ExitUsage }

// Failure says why a step failed; it decides the exit code.
type Failure int

const (
	// Failed is a definite failure: validation 422, other 4xx, fail_when, assert,
	// a non-idempotent request not re-sent, an evaluation error (exit 1).
	Failed Failure = iota
	// StillBusy is the retry budget or max_retry_after used up while the API still
	// said busy, locked or slow down (exit 75).
	StillBusy
	// DeadlinePassed is a step's or the run's deadline passed (exit 124).
	DeadlinePassed
	// Interrupted is a signal stopped the run (exit 130 or 143), or the
	// program running it cancelled it (exit 1): a stop, not a failure.
	Interrupted
	// JournalBroken is a journal record that could not be written: nothing more
	// is sent (exit 74).
	JournalBroken
	// Unconfirmed is a step with confirm that no one could be asked about and
	// that was not approved in advance: the run stops before it (exit 75).
	Unconfirmed
)

// StepError is a step that did not take effect.
type StepError struct {
	Step    string  // the step's display name
	Index   int     // 1-based
	Item    *string // the for_each item, when the failure is one item's
	Why     Failure
	Msg     string    // what happened and what to do
	Expect  string    // what the step was waiting for, if it was waiting
	Last    string    // a few fields of the last state seen
	Signal  int       // Interrupted by a signal: its exit code; 0 when the run was cancelled
	Until   time.Time // StillBusy: the end of the longest Retry-After pause (wall clock), if any
	Wrapped error
}

func (e *StepError) Error() string {
	var b strings.Builder
	if e.Index > 0 {
		// Not a step's when the run failed after its last step (finally).
		fmt.Fprintf(&b, "step %d %q", e.Index, e.Step)
		if e.Item != nil {
			fmt.Fprintf(&b, " (item %s)", *e.Item)
		}
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Expect != "" {
		fmt.Fprintf(&b, "; expected %s", e.Expect)
	}
	if e.Last != "" {
		fmt.Fprintf(&b, "; last state: %s", e.Last)
	}
	return b.String()
}

func (e *StepError) Unwrap() error { return e.Wrapped }

// ExitCode maps the failure to the design's exit codes.
func (e *StepError) ExitCode() int {
	switch e.Why {
	case StillBusy, Unconfirmed:
		return ExitBusy
	case DeadlinePassed:
		return ExitDeadline
	case JournalBroken:
		return ExitIOErr
	case Interrupted:
		if e.Signal != 0 {
			return e.Signal
		}
	}
	return ExitFailed
}

// Stopped is the cause of a run's context when a signal stopped it.
type Stopped struct {
	Signal string // "SIGINT" or "SIGTERM"
	Code   int    // 130 or 143
}

func (s *Stopped) Error() string { return "stopped by " + s.Signal }
func (s *Stopped) ExitCode() int { return s.Code }
