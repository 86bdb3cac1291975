package runbook

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSanitize(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"plain text passes", "PUT /v2/configurations/1 -> 200 OK", "PUT /v2/configurations/1 -> 200 OK"},
		{"newline and tab stay", "a\n\tb", "a\n\tb"},
		{"clipboard write (OSC 52)", "\x1b]52;c;cm0gLXJmIH4=\x07", `\x1b]52;c;cm0gLXJmIH4=\x07`},
		{"window title (OSC 0)", "\x1b]0;pwned\x07", `\x1b]0;pwned\x07`},
		{"screen clear and home", "\x1b[2J\x1b[Hrun done in 1s", `\x1b[2J\x1b[Hrun done in 1s`},
		{"carriage return over the line", "failed\rok    ", `failed\x0dok    `},
		{"NUL, backspace, DEL", "a\x00b\bc\x7f", `a\x00b\x08c\u007f`},
		{"C1 CSI as UTF-8", "\u009b2J", `\u009b2J`},
		{"C1 OSC and ST", "\u009d0;t\u009c", `\u009d0;t\u009c`},
		{"a lone 0x9b byte, not UTF-8", "\x9b2J", `\x9b2J`},
		{"a cut UTF-8 sequence", "caf\xc3", `caf\xc3`},
		{"bidi override", "admin\u202egnp.exe", `admin\u202egnp.exe`},
		{"bidi isolates", "\u2066a\u2069", `\u2066a\u2069`},
		{"other Unicode stays", "café ⠋ ✓ 東京 \u200f", "café ⠋ ✓ 東京 \u200f"},
		{"backslashes stay", `C:\x1b\path`, `C:\x1b\path`},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := Sanitize(c.in)
			if got != c.want {
				t.Errorf("Sanitize(%q) = %q, want %q", c.in, got, c.want)
			}
			if again := Sanitize(got); again != got {
				t.Errorf("sanitizing twice changed %q to %q", got, again)
			}
			for _, r := range got {
				if r != '\n' && r != '\t' && (r < 0x20 || r == 0x7f || unsafeRune(r)) {
					t.Errorf("Sanitize(%q) = %q still holds %U", c.in, got, r)
				}
			}
		})
	}
}

// JSON sanitized after encoding stays valid and decodes to the same text: the
// encoder escapes C0 itself, and the \u forms of the rest are JSON escapes.
func TestSanitizeKeepsJSON(t *testing.T) {
	in := "\x1b]52;c;eA==\x07 \u009b2J \x7f \u202e \t\n\r ok"
	enc, err := json.Marshal(map[string]string{"reason": in})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(enc), "\u009b") {
		t.Fatalf("encoding/json now escapes C1 itself (%s): the JSON observer may not need sanitizing", enc)
	}
	clean := Sanitize(string(enc))
	var back map[string]string
	if err := json.Unmarshal([]byte(clean), &back); err != nil {
		t.Fatalf("sanitized JSON %s is not valid: %v", clean, err)
	}
	if back["reason"] != in {
		t.Errorf("sanitized JSON decodes to %q, want %q", back["reason"], in)
	}
	if clean != Sanitize(clean) || strings.ContainsAny(clean, "\x1b\x07\u009b\x7f\u202e") {
		t.Errorf("sanitized JSON still holds a raw control: %q", clean)
	}
}

// A runbook line holding a control character is shown escaped, with the caret
// still under the spot.
func TestPrettySanitizesTheSourceLine(t *testing.T) {
	// Column 12 is the "b" of "bad".
	e := &Error{File: "x.yaml", Pos: Pos{Line: 3, Col: 12}, Msg: "unknown key \"na\x1b[2Jme\"", Source: "n\x1b]0;t\x07: 1\tbad"}
	line := `n\x1b]0;t\x07: 1 bad`
	want := "x.yaml:3:12: unknown key \"na\\x1b[2Jme\"\n" +
		" 3 | " + line + "\n" +
		"   | " + strings.Repeat(" ", strings.Index(line, "bad")) + "^"
	if got := e.Pretty(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

// FuzzSanitize: whatever the text, what is shown holds no control character
// but newline and tab, sanitizing it again changes nothing, and text with
// nothing to escape is shown as it is.
func FuzzSanitize(f *testing.F) {
	for _, s := range []string{"ok", "\x1b]52;c;eA==\x07", "\u009b2J", "\xff\xfe", "a\u202eb", "\t\n\r", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := Sanitize(s)
		clean := true
		for i, r := range got {
			if r == utf8.RuneError && !strings.HasPrefix(got[i:], "\uFFFD") {
				t.Fatalf("Sanitize(%q) = %q is not UTF-8", s, got)
			}
			if r != '\n' && r != '\t' && (r < 0x20 || r == 0x7f || unsafeRune(r)) {
				t.Fatalf("Sanitize(%q) = %q holds %U", s, got, r)
			}
		}
		for _, r := range s {
			clean = clean && (r == '\n' || r == '\t' || !(r < 0x20 || r == 0x7f || unsafeRune(r))) && r != utf8.RuneError
		}
		if Sanitize(got) != got {
			t.Fatalf("Sanitize is not idempotent on %q", got)
		}
		if clean && utf8.ValidString(s) && got != s {
			t.Fatalf("Sanitize(%q) = %q changed clean text", s, got)
		}
	})
}
