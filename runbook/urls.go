package runbook

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// URL evaluates the template as a request's URL. Each ${{ }} is rendered for
// where it stands, so that no value can retarget the request:
//   - one that starts the URL (a base_url, a whole URL from a var or an
//     answer) is taken as a URL and checked: http or https and a host, or a
//     path from the base_url (/...);
//   - in the host (https://${{ h }}/...), it must be a host name, and a port;
//   - in the path, it is one segment, percent-escaped (/ becomes %2F, ? %3F,
//     # %23), and a segment that comes out . or .. is refused; path(x) gives
//     several segments, each escaped;
//   - after ? (or #), it is query-escaped.
//
// No expression may give nothing (null, "") or a list or an object: in a URL
// an empty id (an unset --var) would address another resource (DELETE
// /configurations/ instead of one of them), and a list or an object is no
// part of a URL.
func (t *Template) URL(s Scope) (string, error) { return t.url(s, nil) }

// PartialURL is Partial for a URL, for plans: what can be rendered now is, as
// URL renders it (escaped); the rest is left as written, and so is a value
// that a run would refuse.
func (t *Template) PartialURL(s Scope) string {
	asWritten := map[*Expr]bool{}
	for {
		u, err := t.url(s, asWritten)
		var dot *dotError
		if !errors.As(err, &dot) || asWritten[dot.expr] {
			return u
		}
		asWritten[dot.expr] = true
	}
}

// pathPart is where a value rendered in the path was written.
type pathPart struct {
	from, to int
	expr     *Expr
}

// dotError is a value that makes a path segment . or ..
type dotError struct {
	expr *Expr
	seg  string
}

func (e *dotError) Error() string {
	return fmt.Sprintf("${{ %s }} makes the path segment %q, which would climb out of the path the runbook wrote; refused", e.expr.Source, e.seg)
}

// url renders a URL. With asWritten (for a plan) it leaves each part that
// cannot be rendered, and those asWritten names, as written instead of
// failing; a dot segment it still returns as an error, with the URL so far.
func (t *Template) url(s Scope, asWritten map[*Expr]bool) (string, error) {
	partial := asWritten != nil
	if lit, ok := t.Literal(); ok {
		return lit, nil
	}
	var b strings.Builder
	var before strings.Builder // b, with a letter for each part left as written
	var inPaths []pathPart
	for _, p := range t.parts {
		if p.expr == nil {
			b.WriteString(p.lit)
			before.WriteString(p.lit)
			continue
		}
		ctx := urlContextOf(before.String())
		v, err := p.expr.Eval(s)
		if _, ok := v.(unknown); (ok || asWritten[p.expr]) && err == nil {
			err = errUnknown
		}
		var text string
		if err == nil {
			text, err = urlPart(ctx, v, p.expr.Source)
		}
		if err != nil {
			if !partial {
				return "", err
			}
			b.WriteString("${{ " + p.expr.Source + " }}")
			before.WriteString("x")
			continue
		}
		if ctx == inPath {
			inPaths = append(inPaths, pathPart{b.Len(), b.Len() + len(text), p.expr})
		}
		b.WriteString(text)
		before.WriteString(text)
	}
	out := b.String()
	for _, p := range inPaths {
		if dot := dotSegment(out, p.from, p.to); dot != "" {
			if partial {
				return out, &dotError{p.expr, dot}
			}
			return "", &dotError{p.expr, dot}
		}
	}
	return out, nil
}

// urlContext is where in a URL an expression stands.
type urlContext int

const (
	atStart    urlContext = iota // nothing before it: a whole URL
	inHost                       // after scheme://, before the path
	inPath                       // after the host, or after a leading /
	inQuery                      // after ?
	inFragment                   // after #
)

var urlScheme = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://`)

// urlContextOf says where an expression stands from the URL before it.
func urlContextOf(before string) urlContext {
	switch {
	case before == "":
		return atStart
	case strings.Contains(before, "#"):
		return inFragment
	case strings.Contains(before, "?"):
		return inQuery
	}
	if m := urlScheme.FindString(before); m != "" && !strings.Contains(before[len(m):], "/") {
		return inHost
	}
	return inPath
}

// urlPart renders one expression's value for where it stands in a URL.
func urlPart(ctx urlContext, v any, src string) (string, error) {
	switch v := v.(type) {
	case nil, string:
		if v == nil || strings.TrimSpace(v.(string)) == "" {
			return "", fmt.Errorf("${{ %s }} in the URL is empty, so the request would go to another resource; give it a value", src)
		}
	case []any, map[string]any:
		return "", fmt.Errorf("${{ %s }} in the URL is %s; a URL takes text, a number or true/false", src, describe(v))
	}
	if p, ok := v.(PathValue); ok {
		switch ctx {
		case atStart:
			return "/" + p.escaped(), nil
		case inPath:
			return p.escaped(), nil
		case inHost:
			return "", fmt.Errorf("${{ %s }} is a path, but it stands in the URL's host", src)
		}
		return url.QueryEscape(p.String()), nil
	}
	text := Text(v)
	switch ctx {
	case atStart:
		if strings.HasPrefix(text, "/") && !strings.HasPrefix(text, "//") {
			return text, nil
		}
		u, err := url.Parse(text)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "", fmt.Errorf("${{ %s }} starts the URL, so it must be a whole URL (https://host/...) or a path from the base_url (/...), not %q", src, truncate(text, 60))
		}
		return text, nil
	case inHost:
		if strings.ContainsFunc(text, func(r rune) bool { return strings.ContainsRune(`/?#@\%`, r) || r <= ' ' || r == 0x7f }) {
			return "", fmt.Errorf("${{ %s }} stands in the URL's host, so it must be a host name (and :port), not %q", src, truncate(text, 60))
		}
		return text, nil
	case inPath:
		return escapeSegment(text), nil
	}
	return url.QueryEscape(text), nil
}

// escapeSegment percent-escapes everything in a path segment but letters,
// digits and -._~ (RFC 3986's unreserved characters): / ? # ; % and the rest
// can neither end the segment nor mean anything to the server's router.
func escapeSegment(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// dotSegment returns the path segment that holds or touches the text at
// [from, to) of u when it is . or .., else "".
func dotSegment(u string, from, to int) string {
	start := strings.LastIndexByte(u[:from], '/') + 1
	end := len(u)
	if i := strings.IndexAny(u[to:], "/?#"); i >= 0 {
		end = to + i
	}
	for _, seg := range strings.Split(u[start:end], "/") {
		if seg == "." || seg == ".." {
			return seg
		}
	}
	return ""
}

// PathValue is what path(x) gives: segments a URL takes as a path, each
// escaped on its own, rather than as one segment.
type PathValue struct {
	Segments []string
}

// String is the path as written, for logs and messages.
func (p PathValue) String() string { return strings.Join(p.Segments, "/") }

// MarshalJSON makes a path in a JSON body its text.
func (p PathValue) MarshalJSON() ([]byte, error) { return json.Marshal(p.String()) }

func (p PathValue) escaped() string {
	out := make([]string, len(p.Segments))
	for i, s := range p.Segments {
		out[i] = escapeSegment(s)
	}
	return strings.Join(out, "/")
}

// pathFunc is path(x): a text split at its slashes (a leading or a trailing
// one ignored), or a list whose elements are the segments as they are. A
// segment that is empty, . or .. is refused: it would leave the path the
// runbook wrote.
func pathFunc(params ...any) (any, error) {
	var segs []string
	switch v := params[0].(type) {
	case []any:
		for _, e := range v {
			switch e.(type) {
			case nil, []any, map[string]any:
				return nil, fmt.Errorf("path(): a segment is %s; give text or numbers", describe(e))
			}
			segs = append(segs, Text(e))
		}
	case PathValue:
		segs = v.Segments
	case nil, map[string]any:
		return nil, fmt.Errorf("path() takes a text or a list of segments, not %s", describe(v))
	default:
		if t := strings.Trim(Text(v), "/"); t != "" {
			segs = strings.Split(t, "/")
		}
	}
	if len(segs) == 0 {
		return nil, fmt.Errorf("path(): %s has no segment, so the request would go to another resource", describe(params[0]))
	}
	for _, s := range segs {
		switch strings.TrimSpace(s) {
		case "", ".", "..":
			return nil, fmt.Errorf("path(): %s has the segment %q, which would leave the path the runbook wrote; refused", describe(params[0]), s)
		}
	}
	return PathValue{Segments: segs}, nil
}
