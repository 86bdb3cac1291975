package ui

import (
	"io"
	"os"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
	"golang.org/x/sys/unix"
)

// Styles is every colour and emphasis the views use, built in one place. Without
// colour every style renders its text unchanged.
type Styles struct {
	Title, Name, Label, Faint, OK, Warn, Fail, Busy, Code lipgloss.Style
}

// NewStyles builds the styles for w: colour only on a terminal, and never when
// NO_COLOR is set.
func NewStyles(w io.Writer, env func(string) string) Styles {
	r := lipgloss.NewRenderer(w)
	switch {
	case !Colour(w, env):
		r.SetColorProfile(termenv.Ascii)
	case r.ColorProfile() == termenv.Ascii:
		// A terminal whose TERM says little still shows the 16 basic colours.
		r.SetColorProfile(termenv.ANSI)
	}
	return Styles{
		Title: r.NewStyle().Bold(true),
		Name:  r.NewStyle().Bold(true),
		Label: r.NewStyle().Foreground(lipgloss.Color("6")),
		Faint: r.NewStyle().Faint(true),
		OK:    r.NewStyle().Foreground(lipgloss.Color("2")),
		Warn:  r.NewStyle().Foreground(lipgloss.Color("3")),
		Fail:  r.NewStyle().Foreground(lipgloss.Color("1")).Bold(true),
		Busy:  r.NewStyle().Foreground(lipgloss.Color("5")),
		Code:  r.NewStyle().Foreground(lipgloss.Color("4")),
	}
}

// Terminal reports whether w is a terminal.
func Terminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Colour reports whether output to w may be coloured: a terminal, and NO_COLOR
// unset (https://no-color.org), and TERM not "dumb".
func Colour(w io.Writer, env func(string) string) bool {
	return Terminal(w) && env("NO_COLOR") == "" && env("TERM") != "dumb"
}

// Width is the terminal's width in columns, 0 when w is not a terminal.
func Width(w io.Writer) int {
	f, ok := w.(*os.File)
	if !ok {
		return 0
	}
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return 0
	}
	return int(ws.Col)
}
