package ui

import (
	"io"

	"github.com/runbookhq/runbook/runbook"
)

// Sanitized returns a writer that passes everything written through
// runbook.Sanitize, so no control character from outside (a server's body, a
// command's output, a runbook line) reaches the terminal raw. Each write is
// sanitized whole: writers write whole lines, as fmt does. It is for unstyled
// output; styled views sanitize their text before styling it.
func Sanitized(w io.Writer) io.Writer { return sanitized{w} }

type sanitized struct{ w io.Writer }

func (s sanitized) Write(p []byte) (int, error) {
	if _, err := io.WriteString(s.w, runbook.Sanitize(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}
