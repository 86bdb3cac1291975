package runbook

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Sanitize makes text from outside (answers, headers, command output, runbook
// lines, --var values) safe to show on a terminal: every control character but
// newline and tab becomes a visible escape, so a body cannot write the
// clipboard (OSC 52), retitle the window, clear the screen or draw a fake line.
// C0 controls and bytes that are not UTF-8 show as \x1b; DEL, C1 controls (a
// lone U+009B is a CSI) and the bidi embeddings, overrides and isolates, which
// make text read in another order than it runs (U+202E), show as \u009b. Those
// \u forms are JSON escapes too, so JSON whose own encoder escaped C0 stays
// valid, and means the same, once sanitized. Backslashes are left alone: a
// literal "\x1b" in the text is harmless, and sanitizing twice changes nothing.
func Sanitize(s string) string {
	i := 0
	for i < len(s) {
		c := s[i]
		if c >= utf8.RuneSelf || unsafeByte(c) {
			break
		}
		i++
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	b.WriteString(s[:i])
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r < utf8.RuneSelf && unsafeByte(byte(r)) && r != 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r == 0x7f || unsafeRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// unsafeByte is an ASCII control other than newline and tab.
func unsafeByte(c byte) bool {
	return (c < 0x20 && c != '\n' && c != '\t') || c == 0x7f
}

// unsafeRune is a C1 control or a bidi embedding, override or isolate. The
// marks (U+200E, U+200F) only nudge neutral characters and stay.
func unsafeRune(r rune) bool {
	return (r >= 0x80 && r <= 0x9f) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069)
}
