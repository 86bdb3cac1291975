package steps

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/runbookhq/runbook/runbook"
)

// http.paginate: a GET that reads a list page by page. The kind only says
// what a page holds and where the next one is; the executor sends every page
// (runbook.Pager), so each is paced and paused like any request.

// DefaultMaxPages bounds the pages of one read when max_pages is not set.
const DefaultMaxPages = 100

// maxNextURL bounds a next page's URL, which comes from the server.
const maxNextURL = 8 << 10

var paginateKeys = []string{"link", "next", "items", "max_pages"}

// paginate is a compiled http.paginate.
type paginate struct {
	link     bool          // follow Link: <url>; rel="next"
	next     *runbook.Expr // or this, on each page: the next page's URL; null or "" after the last
	items    *runbook.Expr // a page's items; nil: the body, which must be a list
	maxPages int
}

// decodePaginate reads `paginate: link` or {link: true | next, items, max_pages}.
func decodePaginate(d *runbook.Decoder, n runbook.Node) *paginate {
	pg := &paginate{maxPages: DefaultMaxPages}
	if n.IsText() {
		if n.Text() != "link" {
			d.Errorf(n, "paginate must be link (follow Link: <url>; rel=\"next\"), or a mapping with link: true or next:, and items: and max_pages:")
			return nil
		}
		pg.link = true
		return pg
	}
	if !n.IsMapping() {
		d.Errorf(n, "paginate must be link, or a mapping with link: true or next:, and items: and max_pages:")
		return nil
	}
	m := d.Fields(n, "paginate", paginateKeys...)
	if v, ok := m["link"]; ok {
		pg.link, _ = d.Bool(v, "paginate.link")
	}
	if v, ok := m["next"]; ok {
		pg.next = d.ExprWith(v, "paginate.next", "page")
		if pg.link {
			d.Errorf(v, "paginate has link: true and next:, two ways to find the next page: keep one")
		}
	} else if !pg.link {
		d.Errorf(n, "paginate needs link: true (follow Link: <url>; rel=\"next\") or next: (an expression that gives the next page's URL)")
	}
	if v, ok := m["items"]; ok {
		pg.items = d.ExprWith(v, "paginate.items", "page")
	}
	if v, ok := m["max_pages"]; ok {
		if n, ok := d.Int(v, "max_pages", 1); ok {
			pg.maxPages = n
		}
	}
	return pg
}

// describe is what plan shows of it.
func (pg *paginate) describe() string {
	how := "Link rel=\"next\""
	if pg.next != nil {
		how = "next: " + pg.next.Source
	}
	return fmt.Sprintf(" (every page, by %s, at most %d)", how, pg.maxPages)
}

// pagedCall is a prepared GET of one page of a list.
type pagedCall struct {
	*call
	pg    *paginate
	first *url.URL // the first page's URL: every page is on its host
}

var _ runbook.Pager = (*pagedCall)(nil)

func (c *pagedCall) MaxPages() int { return c.pg.maxPages }

// Page returns a page's items and the call of the next page.
func (c *pagedCall) Page(s runbook.Scope, out *runbook.Outcome, page int) ([]any, runbook.Call, error) {
	items, err := c.items(s, out)
	if err != nil {
		return nil, nil, err
	}
	raw, err := c.nextURL(s, out)
	if err != nil || raw == "" {
		return items, nil, err
	}
	u, err := c.resolveNext(raw)
	if err != nil {
		return nil, nil, err
	}
	next := *c.call
	next.url = u
	return items, &pagedCall{call: &next, pg: c.pg, first: c.first}, nil
}

func (c *pagedCall) items(s runbook.Scope, out *runbook.Outcome) ([]any, error) {
	v, what := out.Body, "the answer's body"
	if c.pg.items != nil {
		var err error
		if v, err = c.pg.items.Eval(s); err != nil {
			return nil, fmt.Errorf("paginate.items: %w", err)
		}
		what = "paginate.items (" + c.pg.items.Source + ")"
	}
	switch v := v.(type) {
	case []any:
		return v, nil
	case nil:
		return nil, nil
	}
	hint := ""
	if c.pg.items == nil {
		hint = ": say where the page's items are with paginate.items, such as response.body.items"
	}
	return nil, fmt.Errorf("%s is %s, not a list%s", what, runbook.Summarize(v), hint)
}

// nextURL is the next page's URL as the page says it; "" after the last.
func (c *pagedCall) nextURL(s runbook.Scope, out *runbook.Outcome) (string, error) {
	if c.pg.link {
		return linkNext(out.Header.Values("Link")), nil
	}
	v, err := c.pg.next.Eval(s)
	if err != nil {
		return "", fmt.Errorf("paginate.next: %w", err)
	}
	switch v := v.(type) {
	case nil:
		return "", nil
	case string:
		return strings.TrimSpace(v), nil
	}
	return "", fmt.Errorf("paginate.next (%s) gave %s, not a URL or null", c.pg.next.Source, runbook.Summarize(v))
}

// resolveNext resolves a next page's URL against the page's own. It must stay
// on the list's scheme and host: a next page elsewhere would get the
// request's credentials, so it is refused rather than followed.
func (c *pagedCall) resolveNext(raw string) (*url.URL, error) {
	if len(raw) > maxNextURL {
		return nil, fmt.Errorf("the next page's URL is longer than %d bytes: refused", maxNextURL)
	}
	u, err := c.url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("the next page's URL %q does not read: %v", truncateText(redactURL(raw), 200), err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("the next page's URL %q is not http or https: not followed", truncateText(redactURL(raw), 200))
	}
	if u.Scheme != c.first.Scheme || !sameHost(u, c.first) {
		return nil, fmt.Errorf("the next page's URL %q is not on %s://%s, where the list is: not followed, as the request's credentials would go with it", truncateText(redactURL(u.String()), 200), c.first.Scheme, c.first.Host)
	}
	u.User = nil
	return u, nil
}

// linkNext finds the target of rel="next" in Link headers (RFC 8288):
// `<url>; rel="next", <url2>; rel="last"`. A rel may list several relations
// (rel="next last"); parameters may be quoted, with commas inside quotes.
// "" when there is none.
func linkNext(values []string) string {
	for _, v := range values {
		for v != "" {
			v = strings.TrimLeft(v, " \t,")
			if !strings.HasPrefix(v, "<") {
				break // not a link: the header is malformed from here
			}
			end := strings.IndexByte(v, '>')
			if end < 0 {
				break
			}
			target := v[1:end]
			v = v[end+1:]
			var rels string
			for {
				v = strings.TrimLeft(v, " \t")
				if !strings.HasPrefix(v, ";") {
					break
				}
				var name, value string
				name, value, v = linkParam(v[1:])
				if strings.EqualFold(name, "rel") && rels == "" {
					rels = value
				}
			}
			for _, rel := range strings.Fields(rels) {
				if strings.EqualFold(rel, "next") {
					return strings.TrimSpace(target)
				}
			}
			if i := strings.IndexByte(v, ','); i >= 0 {
				v = v[i+1:]
			} else {
				v = ""
			}
		}
	}
	return ""
}

// linkParam reads one `name="value"` or `name=value` of a link, and returns
// what follows it.
func linkParam(s string) (name, value, rest string) {
	s = strings.TrimLeft(s, " \t")
	i := strings.IndexAny(s, "=;,")
	if i < 0 || s[i] != '=' {
		if i < 0 {
			return strings.TrimSpace(s), "", ""
		}
		return strings.TrimSpace(s[:i]), "", s[i:]
	}
	name, s = strings.TrimSpace(s[:i]), strings.TrimLeft(s[i+1:], " \t")
	if strings.HasPrefix(s, `"`) {
		var b strings.Builder
		for j := 1; j < len(s); j++ {
			switch s[j] {
			case '\\':
				if j+1 < len(s) {
					j++
					b.WriteByte(s[j])
				}
			case '"':
				return name, b.String(), s[j+1:]
			default:
				b.WriteByte(s[j])
			}
		}
		return name, b.String(), ""
	}
	j := strings.IndexAny(s, ";,")
	if j < 0 {
		return name, strings.TrimSpace(s), ""
	}
	return name, strings.TrimSpace(s[:j]), s[j:]
}

// paged wraps a prepared GET for its pages, when the request says paginate.
func (r *request) paged(c *call) runbook.Call {
	if r.paginate == nil {
		return c
	}
	first := *c.url
	return &pagedCall{call: c, pg: r.paginate, first: &first}
}
