package steps

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestMonitorOf: which answers name a status monitor, resolved against the
// request's URL, and which named ones are refused.
func TestMonitorOf(t *testing.T) {
	base, _ := url.Parse("https://api.example.com/v1/things?x=1")
	cases := []struct {
		method, header, value string
		status                int
		want, bad             string
	}{
		{"POST", "Operation-Location", "/v1/operations/7", 202, "https://api.example.com/v1/operations/7", ""},
		{"PUT", "Azure-AsyncOperation", "https://ops.example.com/op/1?api-version=2", 201, "https://ops.example.com/op/1?api-version=2", ""},
		{"DELETE", "Location", "operations/2#frag", 202, "https://api.example.com/v1/operations/2", ""},
		{"POST", "Location", "/v1/things/9", 201, "", ""}, // a 201's Location is the thing made
		{"POST", "Operation-Location", "/v1/operations/7", 204, "", ""},
		{"GET", "Operation-Location", "/v1/operations/7", 202, "", ""},
		{"POST", "Operation-Location", "ftp://api.example.com/op", 202, "", "is not an http or https URL"},
		{"POST", "Operation-Location", "https://u:p@api.example.com/op", 202, "", "carries credentials"},
		{"POST", "Operation-Location", "https://api.example.com/" + strings.Repeat("a", 5000), 202, "", "longer than 4096 bytes"},
		{"POST", "Operation-Location", "https://api.example.com/%zz", 202, "", "is not a URL"},
	}
	for _, c := range cases {
		h := http.Header{}
		h.Set(c.header, c.value)
		call := &call{method: c.method, url: base}
		got, bad := call.monitorOf(&http.Response{StatusCode: c.status, Header: h})
		if got != c.want || c.bad == "" && bad != "" || c.bad != "" && !strings.Contains(bad, c.bad) {
			t.Errorf("%s answered %d with %s: %q: got %q (%q), want %q (%q)", c.method, c.status, c.header, c.value, got, bad, c.want, c.bad)
		}
		if len(bad) > 300 {
			t.Errorf("the reason holds the whole hostile header: %d bytes", len(bad))
		}
	}
}
