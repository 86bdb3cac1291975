package runbook

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"unicode/utf8"
)

// Redactor replaces secret values with *** wherever they appear: in events, error
// messages, plans and the journal.
type Redactor struct {
	values []string // longest first, so a secret containing another is hidden whole
}

// minSecret is the shortest value hidden by substring: shorter ones would turn
// ordinary text into asterisks.
const minSecret = 4

// NewRedactor hides each value, and its URL-encoded and base64 forms.
func NewRedactor(values ...string) *Redactor {
	r := &Redactor{}
	r.Add(values...)
	return r
}

// Add hides more values.
func (r *Redactor) Add(values ...string) {
	seen := map[string]bool{}
	for _, v := range r.values {
		seen[v] = true
	}
	for _, v := range values {
		if len(v) < minSecret {
			continue
		}
		quoted, _ := json.Marshal(v)
		for _, form := range []string{v, url.QueryEscape(v), url.PathEscape(v), base64.StdEncoding.EncodeToString([]byte(v)), string(quoted[1 : len(quoted)-1])} {
			if !seen[form] {
				seen[form] = true
				r.values = append(r.values, form)
			}
		}
	}
	sort.Slice(r.values, func(i, j int) bool { return len(r.values[i]) > len(r.values[j]) })
}

// String returns s with every secret replaced by ***.
func (r *Redactor) String(s string) string {
	if r == nil {
		return s
	}
	for _, v := range r.values {
		if strings.Contains(s, v) {
			s = strings.ReplaceAll(s, v, "***")
		}
	}
	return s
}

// Event redacts every text field of an event.
func (r *Redactor) Event(e Event) Event {
	if r == nil || len(r.values) == 0 {
		return e
	}
	for _, f := range []*string{&e.Run, &e.StepName, &e.Item, &e.Target, &e.Reason, &e.State, &e.Err, &e.Sent, &e.Received} {
		*f = r.String(*f)
	}
	if e.Outputs != nil {
		e.Outputs = r.value(e.Outputs).(map[string]any)
	}
	return e
}

// value is a copy of v (decoded JSON) with every text in it redacted, keys
// included.
func (r *Redactor) value(v any) any {
	switch v := v.(type) {
	case string:
		return r.String(v)
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[r.String(k)] = r.value(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = r.value(e)
		}
		return out
	}
	return v
}

// redactedError is an error whose text has been redacted; it keeps the original
// for errors.As (exit codes), but never prints it.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// Error redacts an error's text, keeping its type for exit codes.
func (r *Redactor) Error(err error) error {
	if err == nil || r == nil || len(r.values) == 0 {
		return err
	}
	msg := r.String(err.Error())
	if msg == err.Error() {
		return err
	}
	return &redactedError{msg: msg, err: err}
}

// maxShownBody is how much of a body -v shows.
const maxShownBody = 4 << 10

// shownBody is a request's or an answer's body as -v shows it: redacted, then
// cut at maxShownBody (saying how much was cut), and with control characters
// and invalid UTF-8 replaced, since it may come from anyone and reach a
// terminal.
func shownBody(red *Redactor, b []byte) string {
	if len(b) == 0 {
		return ""
	}
	s := strings.ReplaceAll(red.String(string(b)), "\r\n", "\n")
	more := ""
	if len(s) > maxShownBody {
		cut := maxShownBody
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		more = fmt.Sprintf(" ... (%d more bytes not shown)", len(s)-cut)
		s = s[:cut]
	}
	s = strings.Map(func(c rune) rune {
		if c < 0x20 && c != '\n' && c != '\t' || c == 0x7f || c >= 0x80 && c < 0xa0 {
			return utf8.RuneError
		}
		return c
	}, strings.ToValidUTF8(s, string(utf8.RuneError)))
	return s + more
}
