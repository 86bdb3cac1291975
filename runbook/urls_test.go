package runbook

import (
	"net/url"
	"strings"
	"testing"
)

// testTemplate compiles a template without a runbook around it.
func testTemplate(t testing.TB, src string) *Template {
	t.Helper()
	segs, err := scanTemplate(src)
	if err != nil {
		t.Fatalf("%s: %v", src, err)
	}
	tpl := &Template{Source: src}
	for _, s := range segs {
		if !s.isExpr {
			tpl.parts = append(tpl.parts, tplPart{lit: s.lit})
			continue
		}
		prog, problems, _, _ := compileExpr(s.expr, nil, "item", false)
		if prog == nil {
			t.Fatalf("%s: %v", s.expr, problems)
		}
		tpl.parts = append(tpl.parts, tplPart{expr: &Expr{Source: s.expr, prog: prog}})
	}
	return tpl
}

// TestURLRendering: a value in a URL's path is one escaped segment, never . or
// ..; in the query it is query-escaped; a value that starts the URL is a URL,
// checked; one in the host, a host. path(x) gives several segments.
func TestURLRendering(t *testing.T) {
	scope := Scope{"vars": map[string]any{
		"id": "1/../../admin", "q": "1?x=1", "frag": "1#frag", "dotdot": "..", "dot": ".", "uni": "café 東京",
		"semi": "1;jsessionid=x", "pct": "50%", "p": "a/b/c", "api": "https://api.example.com/v2", "num": 7.0,
		"host": "api.example.com:8443", "badhost": "evil.com/x?", "empty": "", "blank": " ", "none": nil,
		"list": []any{"a", "b"}, "next": "https://other.example.com/ops/5?page=2", "rel": "/v2/operations/5",
		"js": "javascript:alert(1)", "amp": "a&b=c",
	}}
	cases := []struct {
		tpl, want, err string
	}{
		// In the path: one segment, escaped.
		{"/configurations/${{ vars.id }}", "/configurations/1%2F..%2F..%2Fadmin", ""},
		{"/configurations/${{ vars.q }}", "/configurations/1%3Fx%3D1", ""},
		{"/configurations/${{ vars.frag }}", "/configurations/1%23frag", ""},
		{"/configurations/${{ vars.semi }}/vms", "/configurations/1%3Bjsessionid%3Dx/vms", ""},
		{"/configurations/${{ vars.pct }}", "/configurations/50%25", ""},
		{"/configurations/${{ vars.uni }}", "/configurations/caf%C3%A9%20%E6%9D%B1%E4%BA%AC", ""},
		{"/configurations/${{ vars.num }}/vms/${{ vars.p }}", "/configurations/7/vms/a%2Fb%2Fc", ""},
		{"/files/${{ vars.dot }}json", "/files/.json", ""},
		{"https://api.example.com/v2/${{ vars.id }}", "https://api.example.com/v2/1%2F..%2F..%2Fadmin", ""},
		// . and .. segments are refused, naming the expression.
		{"/configurations/${{ vars.dotdot }}", "", `${{ vars.dotdot }} makes the path segment ".."`},
		{"/configurations/${{ vars.dot }}/vms", "", `${{ vars.dot }} makes the path segment "."`},
		{"/configurations/${{ vars.dot }}${{ vars.dot }}", "", `makes the path segment ".."`},
		{"/configurations/.${{ vars.dot }}?x=1", "", `${{ vars.dot }} makes the path segment ".."`},
		// Nothing, a list or an object is refused as before.
		{"/configurations/${{ vars.empty }}", "", "${{ vars.empty }} in the URL is empty"},
		{"/configurations/${{ vars.blank }}", "", "is empty"},
		{"/configurations/${{ vars.none }}", "", "is empty"},
		{"/configurations/${{ vars.list }}", "", "is a list of 2"},
		// path(x): several segments, each escaped; none empty, . or ..
		{"/files/${{ path(vars.p) }}", "/files/a/b/c", ""},
		{"/files/${{ path('/' + vars.p + '/') }}/meta", "/files/a/b/c/meta", ""},
		{"/files/${{ path(['x/y', vars.num, vars.q]) }}", "/files/x%2Fy/7/1%3Fx%3D1", ""},
		{"/files/${{ path(vars.uni) }}", "/files/caf%C3%A9%20%E6%9D%B1%E4%BA%AC", ""},
		{"/files/${{ path(vars.id) }}", "", `path(): the string "1/../../admin" has the segment ".."`},
		{"/files/${{ path('a//b') }}", "", `has the segment ""`},
		{"/files/${{ path(['a', '..']) }}", "", `has the segment ".."`},
		{"/files/${{ path(vars.empty) }}", "", "has no segment"},
		{"${{ path(['configurations', vars.num]) }}", "/configurations/7", ""},
		// In the query: query-escaped.
		{"/search?q=${{ vars.q }}&n=${{ vars.num }}", "/search?q=1%3Fx%3D1&n=7", ""},
		{"/search?q=${{ vars.amp }}", "/search?q=a%26b%3Dc", ""},
		{"/search?q=${{ vars.uni }}", "/search?q=caf%C3%A9+%E6%9D%B1%E4%BA%AC", ""},
		{"/search?q=${{ vars.frag }}", "/search?q=1%23frag", ""},
		{"/search?q=${{ vars.dotdot }}", "/search?q=..", ""},
		{"/files/${{ vars.p }}?q=${{ path(vars.p) }}", "/files/a%2Fb%2Fc?q=a%2Fb%2Fc", ""},
		// A value that starts the URL is a URL, checked, not escaped.
		{"${{ vars.api }}", "https://api.example.com/v2", ""},
		{"${{ vars.api }}/configurations/${{ vars.id }}", "https://api.example.com/v2/configurations/1%2F..%2F..%2Fadmin", ""},
		{"${{ vars.next }}", "https://other.example.com/ops/5?page=2", ""},
		{"${{ vars.rel }}", "/v2/operations/5", ""},
		{"${{ vars.id }}", "", `${{ vars.id }} starts the URL, so it must be a whole URL (https://host/...) or a path from the base_url (/...), not "1/../../admin"`},
		{"${{ vars.js }}", "", "starts the URL"},
		{"${{ vars.num }}", "", "starts the URL"},
		{"${{ '//evil.example.com/x' }}", "", "starts the URL"},
		{"${{ vars.empty }}", "", "is empty"},
		// In the host: a host name and a port.
		{"https://${{ vars.host }}/v2/x", "https://api.example.com:8443/v2/x", ""},
		{"https://${{ vars.badhost }}/v2/x", "", `${{ vars.badhost }} stands in the URL's host, so it must be a host name (and :port), not "evil.com/x?"`},
		{"https://user@${{ vars.host }}", "https://user@api.example.com:8443", ""},
		// A literal is the author's.
		{"/a/../b?x=${{ vars.num }}", "/a/../b?x=7", ""},
	}
	for _, c := range cases {
		got, err := testTemplate(t, c.tpl).URL(scope)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: %q, %v; want error %q", c.tpl, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s = %q, %v; want %q", c.tpl, got, err, c.want)
		}
	}
}

// TestPartialURL: a plan shows a URL as it will be sent, escaped, and what is
// known only at run time as written.
func TestPartialURL(t *testing.T) {
	scope := Scope{"vars": map[string]any{"id": "1/../x", "dd": ".."}, "item": unknown{}}
	for tpl, want := range map[string]string{
		"/configurations/${{ vars.id }}/vms/${{ item }}":  "/configurations/1%2F..%2Fx/vms/${{ item }}",
		"/configurations/${{ item }}/vms/${{ vars.id }}":  "/configurations/${{ item }}/vms/1%2F..%2Fx",
		"/search?q=${{ item ?? 'x' }}&id=${{ vars.id }}":  "/search?q=${{ item ?? 'x' }}&id=1%2F..%2Fx",
		"/configurations/${{ vars.dd }}/x/${{ vars.id }}": "/configurations/${{ vars.dd }}/x/1%2F..%2Fx",
	} {
		if got := testTemplate(t, tpl).PartialURL(scope); got != want {
			t.Errorf("%s = %q, want %q", tpl, got, want)
		}
	}
}

// TestPathValueOutsideURLs: path(x) reads as its text in a log or a body.
func TestPathValueOutsideURLs(t *testing.T) {
	got, err := testTemplate(t, "moving ${{ path('a/b') }}").String(Scope{})
	if err != nil || got != "moving a/b" {
		t.Errorf("%q, %v", got, err)
	}
}

// FuzzURLPathValue: whatever text a value holds, in a path it stays one
// segment that reads back as the value, and adds no query or fragment; or it
// is refused.
func FuzzURLPathValue(f *testing.F) {
	for _, s := range []string{"1", "1/../../admin", "1?x=1", "1#frag", "..", ".", "café", "%2e%2e", "a;b=c", " x ", "\x00\n", "../", "?", "#", "@evil.com"} {
		f.Add(s)
	}
	tpl := testTemplate(f, "https://api.example.com/v2/items/${{ vars.v }}/meta?q=${{ vars.v }}")
	f.Fuzz(func(t *testing.T, v string) {
		got, err := tpl.URL(Scope{"vars": map[string]any{"v": v}})
		if err != nil {
			if strings.TrimSpace(v) != "" && v != "." && v != ".." {
				t.Fatalf("%q refused: %v", v, err)
			}
			return
		}
		u, err := url.Parse(got)
		if err != nil {
			t.Fatalf("%q gave %q, which does not parse: %v", v, got, err)
		}
		segs := strings.Split(u.EscapedPath(), "/")
		if u.Host != "api.example.com" || len(segs) != 5 || segs[2] != "items" || segs[4] != "meta" || u.Fragment != "" {
			t.Fatalf("%q gave %q: host %q, path %q, fragment %q", v, got, u.Host, u.EscapedPath(), u.Fragment)
		}
		if back, err := url.PathUnescape(segs[3]); err != nil || back != v {
			t.Fatalf("%q gave the segment %q, which reads back as %q", v, segs[3], back)
		}
		if q := u.Query(); len(q) != 1 || q.Get("q") != v {
			t.Fatalf("%q gave the query %q", v, u.RawQuery)
		}
	})
}
