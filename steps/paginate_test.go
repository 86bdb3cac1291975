package steps

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/runbookhq/runbook/runbook"
)

func TestLinkNext(t *testing.T) {
	for _, tt := range []struct{ header, want string }{
		{`<https://api.example.com/x?page=2>; rel="next"`, "https://api.example.com/x?page=2"},
		{`</x?page=2>; rel=next`, "/x?page=2"},
		{`<https://a/1>; rel="prev", <https://a/3>; rel="next", <https://a/9>; rel="last"`, "https://a/3"},
		{`<https://a/3>; title="a, b; c"; rel="next"`, "https://a/3"},
		{`<https://a/3>; rel="last next"`, "https://a/3"},
		{`<https://a/3>; REL="Next"`, "https://a/3"},
		{`<https://a/3?a=1,2>; rel="next"`, "https://a/3?a=1,2"},
		{`<https://a/1>; rel="prev"`, ""},
		{`<https://a/1>; rel="nextish"`, ""},
		{`garbage <https://a/3>; rel="next"`, ""},
		{`<https://a/3; rel="next"`, ""},
		{`<https://a/3>; rel="next`, "https://a/3"},
		{``, ""},
	} {
		if got := linkNext([]string{tt.header}); got != tt.want {
			t.Errorf("linkNext(%q) = %q, want %q", tt.header, got, tt.want)
		}
	}
	if got := linkNext([]string{`<https://a/1>; rel="prev"`, `<https://a/2>; rel="next"`}); got != "https://a/2" {
		t.Errorf("two Link headers: %q", got)
	}
	// Hostile: a long header of parameters is read in one pass.
	long := "<https://a/1>" + strings.Repeat(`; x="`+strings.Repeat(",", 100)+`"`, 10000) + `; rel="next"`
	if got := linkNext([]string{long}); got != "https://a/1" {
		t.Errorf("long header: %q", got)
	}
}

// A next page is resolved against the page's URL and must stay on the
// list's scheme and host.
func TestResolveNext(t *testing.T) {
	first, _ := url.Parse("https://api.example.com/v1/items?page=1")
	c := &pagedCall{call: &call{url: first, header: http.Header{}}, pg: &paginate{link: true, maxPages: 5}, first: first}
	for _, tt := range []struct{ link, want, err string }{
		{"</v1/items?page=2>", "https://api.example.com/v1/items?page=2", ""},
		{"<?page=2>", "https://api.example.com/v1/items?page=2", ""},
		{"<https://API.example.com:443/v1/items?page=2>", "https://API.example.com:443/v1/items?page=2", ""},
		{"<https://user:pw@api.example.com/v1/items?page=2>", "https://api.example.com/v1/items?page=2", ""},
		{"<https://evil.example.net/v1/items?page=2>", "", "is not on https://api.example.com"},
		{"<http://api.example.com/v1/items?page=2>", "", "is not on https://api.example.com"},
		{"<ftp://api.example.com/x>", "", "not http or https"},
		{"<" + strings.Repeat("a", maxNextURL+1) + ">", "", "longer than"},
	} {
		out := &runbook.Outcome{Body: []any{1.0}, Header: http.Header{"Link": {tt.link + `; rel="next"`}}}
		items, next, err := c.Page(runbook.Scope{}, out, 0)
		switch {
		case tt.err != "":
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%.60s: err %v, want %q", tt.link, err, tt.err)
			}
		case err != nil:
			t.Errorf("%s: %v", tt.link, err)
		case len(items) != 1 || next == nil || next.Target().URL != tt.want:
			t.Errorf("%s: items %v, next %v, want %s", tt.link, items, next, tt.want)
		}
	}
	// The last page has no next, and a body that is not a list is refused.
	if items, next, err := c.Page(runbook.Scope{}, &runbook.Outcome{Body: []any{1.0, 2.0}, Header: http.Header{}}, 0); err != nil || next != nil || len(items) != 2 {
		t.Errorf("last page: %v %v %v", items, next, err)
	}
	_, _, err := c.Page(runbook.Scope{}, &runbook.Outcome{Body: map[string]any{"value": []any{}}, Header: http.Header{}}, 0)
	if err == nil || !strings.Contains(err.Error(), "not a list: say where the page's items are with paginate.items") {
		t.Errorf("an object body: %v", err)
	}
}
