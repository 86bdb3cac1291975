package runbook

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"
)

// Redactor replaces secret values with *** wherever they appear: in events, error
// messages, plans and the journal. It hides each value whole, in its usual
// encodings, and, for a value of at least pieceLen characters, any run of
// pieceLen or more of its characters or of its base64 form: a server that
// echoes a token (or an Authorization header) back in two halves shows
// neither.
type Redactor struct {
	// mu: a used runbook's items add their own secrets while other items
	// are being redacted.
	mu      sync.RWMutex
	values  []string            // longest first, so a secret containing another is hidden whole
	pieces  map[string]struct{} // every pieceLen-byte window of the long values and their base64
	filter  [1 << 10]uint64     // a bit for the hash of each window's first 4 bytes
	minimum int                 // the shortest text that can hold a secret
}

// minSecret is the shortest value hidden by substring: shorter ones would turn
// ordinary text into asterisks.
const minSecret = 4

// pieceLen is the shortest run of a secret hidden on its own: long enough that
// ordinary text does not hold 12 characters of a token by chance, short enough
// that each half of a secret of 24 or more characters is hidden.
const pieceLen = 12

// NewRedactor hides each value, and its URL-encoded (as a query, a path and a
// URL's path segment), base64 and JSON-quoted forms.
func NewRedactor(values ...string) *Redactor {
	r := &Redactor{}
	r.Add(values...)
	return r
}

// Add hides more values.
func (r *Redactor) Add(values ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[string]bool{}
	for _, v := range r.values {
		seen[v] = true
	}
	for _, v := range values {
		if len(v) < minSecret || seen[v] {
			continue // too short, or hidden already with all its forms
		}
		quoted, _ := json.Marshal(v)
		b64 := base64.StdEncoding.EncodeToString([]byte(v))
		for _, form := range []string{v, url.QueryEscape(v), url.PathEscape(v), escapeSegment(v), b64, string(quoted[1 : len(quoted)-1])} {
			if !seen[form] {
				seen[form] = true
				r.values = append(r.values, form)
			}
		}
		if len(v) >= pieceLen {
			r.addPieces(v)
			r.addPieces(b64)
		}
	}
	sort.Slice(r.values, func(i, j int) bool { return len(r.values[i]) > len(r.values[j]) })
	if n := len(r.values); n > 0 {
		r.minimum = len(r.values[n-1])
	}
	if len(r.pieces) > 0 {
		r.minimum = min(r.minimum, pieceLen)
	}
}

// addPieces records every pieceLen-byte window of v, and in the filter every
// 4 bytes of it.
func (r *Redactor) addPieces(v string) {
	if r.pieces == nil {
		r.pieces = map[string]struct{}{}
	}
	for i := 0; i+pieceLen <= len(v); i++ {
		r.pieces[v[i:i+pieceLen]] = struct{}{}
	}
	for i := 0; i+4 <= len(v); i++ {
		h := quadHash(v[i:])
		r.filter[h>>6] |= 1 << (h & 63)
	}
}

// quadHash hashes the first 4 bytes of s into 16 bits, for the filter.
func quadHash(s string) uint32 {
	k := uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
	return (k * 2654435761) >> 16
}

// quadStride is how far apart hidePieces looks: every window of pieceLen bytes
// holds the 4 bytes at one of every quadStride positions, so a text is
// scanned at a ninth of its positions, and only where those 4 bytes could be
// a secret's are the windows around them looked up.
const quadStride = pieceLen - 3

// empty says whether nothing is hidden yet.
func (r *Redactor) empty() bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.values) == 0
}

// String returns s with every secret replaced by ***.
func (r *Redactor) String(s string) string {
	if r == nil {
		return s
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if len(s) < r.minimum {
		return s
	}
	for _, v := range r.values {
		if len(v) <= len(s) && strings.Contains(s, v) {
			s = strings.ReplaceAll(s, v, "***")
		}
	}
	if len(r.pieces) > 0 {
		s = r.hidePieces(s)
	}
	return s
}

// hidePieces replaces every run of s made of windows of a secret with ***, in
// one pass over s.
func (r *Redactor) hidePieces(s string) string {
	var b strings.Builder
	done := 0            // s[:done] is in b
	start, end := -1, -1 // the run being hidden
	for p := 0; p+4 <= len(s); p += quadStride {
		h := quadHash(s[p:])
		if r.filter[h>>6]&(1<<(h&63)) == 0 {
			continue
		}
		// The windows that hold s[p:p+4], in order.
		for i := max(0, p-quadStride+1); i <= p && i+pieceLen <= len(s); i++ {
			if _, ok := r.pieces[s[i:i+pieceLen]]; !ok {
				continue
			}
			if i > end { // a new run: write out the one before
				if start >= 0 {
					b.WriteString(s[done:start])
					b.WriteString("***")
					done = end
				}
				start = i
			}
			end = i + pieceLen
		}
	}
	if start < 0 {
		return s
	}
	b.WriteString(s[done:start])
	b.WriteString("***")
	b.WriteString(s[end:])
	return b.String()
}

// Event redacts every text field of an event.
func (r *Redactor) Event(e Event) Event {
	if r == nil || r.empty() {
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
// included, and every number whose digits hold a secret (an account id used as
// a username) replaced by "***".
func (r *Redactor) value(v any) any {
	switch v := v.(type) {
	case string:
		return r.String(v)
	case float64, int, int64:
		if t := Text(v); r.String(t) != t {
			return "***"
		}
		return v
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

// record redacts a journal record field by field, never its JSON text: a
// secret that is also a key, a number or part of one must not break the line
// a resume reads back.
func (r *Redactor) record(rec Record) Record {
	if r == nil || r.empty() {
		return rec
	}
	for _, f := range []*string{&rec.Name, &rec.StepName, &rec.Target, &rec.Error, &rec.Monitor} {
		*f = r.String(*f)
	}
	if rec.Vars != nil {
		vars := make(map[string]string, len(rec.Vars))
		for k, v := range rec.Vars {
			vars[k] = r.String(v)
		}
		rec.Vars = vars
	}
	rec.Before, rec.Result = r.value(rec.Before), r.value(rec.Result)
	if rec.Response != nil {
		rec.Response = r.value(rec.Response).(map[string]any)
	}
	return rec
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
	if err == nil || r == nil || r.empty() {
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
	// Control characters are left to the writer, which escapes them as it does
	// any text from outside.
	return s + more
}
