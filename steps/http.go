package steps

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/runbookhq/runbook/runbook"
)

// DefaultBodyLimit caps how much of a response body is read.
const DefaultBodyLimit = 10 << 20

// DefaultRequestTimeout bounds one request when defaults.http.timeout is not set.
const DefaultRequestTimeout = 30 * time.Second

// maxHeaderBytes caps an answer's headers (Go's client allows 10 MiB, its
// server 1 MiB): no API needs more, and a server that sends more is broken.
const maxHeaderBytes = 1 << 20

// maxRedirects is how many redirects one request follows.
const maxRedirects = 10

// HTTP is the http step kind and probe. One value serves a whole run, so every
// step and check shares Client (and its connections).
type HTTP struct {
	Client    *http.Client
	BodyLimit int64         // default limit of a response body; 0: DefaultBodyLimit
	Clock     runbook.Clock // reads Retry-After dates; nil: real time

	once     sync.Once
	client   *http.Client // Client, with the run's redirect rule and TLS setting
	insecure bool         // defaults.http.insecure_skip_verify
}

// httpClient is the client every request of the run uses: the given one, with
// the run's redirect rule, headers capped at maxHeaderBytes, and TLS
// verification off only when the runbook says insecure_skip_verify.
func (h *HTTP) httpClient() *http.Client {
	h.once.Do(func() {
		base := h.Client
		if base == nil {
			base = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
		}
		c := *base
		c.CheckRedirect = checkRedirect
		if t, ok := c.Transport.(*http.Transport); ok && (h.insecure || t.MaxResponseHeaderBytes == 0) {
			t = t.Clone()
			if t.MaxResponseHeaderBytes == 0 {
				t.MaxResponseHeaderBytes = maxHeaderBytes
			}
			if h.insecure {
				t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
			}
			c.Transport = t
		}
		h.client = &c
	})
	return h.client
}

// redirectError is a redirect that cannot be followed, now or on any retry.
type redirectError struct{ msg string }

func (e *redirectError) Error() string { return e.msg }

// checkRedirect follows at most maxRedirects redirects, to http and https only,
// and never carries a credential to another host: Go drops Authorization
// itself, this drops the token-like headers too.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return &redirectError{fmt.Sprintf("%s was redirected %d times, the last to %s: a redirect loop, or a url the API does not serve; fix the url (curl -IL shows the chain)",
			redactURL(via[0].URL.String()), len(via), redactURL(req.URL.String()))}
	}
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return &redirectError{fmt.Sprintf("%s redirected to %s, which is not http or https: not followed; the url or the server is wrong",
			redactURL(via[len(via)-1].URL.String()), redactURL(req.URL.String()))}
	}
	if req.URL.Host != via[0].URL.Host {
		for name := range req.Header {
			if secretHeader(name) {
				req.Header.Del(name)
			}
		}
	}
	return nil
}

func (h *HTTP) now() time.Time {
	if h.Clock == nil {
		return time.Now()
	}
	return h.Clock.Now()
}

var _ runbook.Kind = (*HTTP)(nil)

// request is a compiled http action.
type request struct {
	kind     *HTTP
	def      *Defaults
	method   string
	url      *runbook.Template
	parent   *runbook.Template // a POST's: the resource its collection belongs to
	query    []Header
	headers  []Header
	auth     *BasicAuth // the step's own basic_auth
	defaults *bool      // default_credentials: nil sends defaults.http's to base_url's host only
	json     *runbook.Value
	body     *runbook.Template
	expect   []int
	keyed    bool      // idempotency_key: an Idempotency-Key header, the same on every re-send
	paginate *paginate // GET only: read every page of a list
}

// Info: GET/HEAD/OPTIONS read; PUT and DELETE are idempotent changes; POST and
// PATCH are not, unless they carry an idempotency key. The default guard and
// wait check of a request is a GET of its URL; a POST adds to a collection,
// whose list says nothing of the new item: it has no default wait check, and
// its guard reads the collection's parent, if its URL has one (POST
// /configurations/7/vms reads /configurations/7). A change's answer may name
// a status monitor, which its wait reads (Monitor).
func (r *request) Info() runbook.Info {
	read := r.method == "GET" || r.method == "HEAD" || r.method == "OPTIONS"
	info := runbook.Info{
		Method:      r.method,
		Change:      !read,
		Idempotent:  read || r.method == "PUT" || r.method == "DELETE" || r.keyed,
		WaitGone:    r.method == "DELETE",
		Reads:       true,
		SideEffects: !read,
		Keyed:       r.keyed,
	}
	if !read {
		info.Monitor = r.monitor
	}
	if r.method != "POST" {
		info.Probe = r.get(r.url)
		info.Guard = info.Probe
	} else if r.parent != nil {
		info.Guard = r.get(r.parent)
	}
	return info
}

// get is a GET of url with the request's own query and headers.
func (r *request) get(url *runbook.Template) *request {
	g := &request{kind: r.kind, def: r.def, method: "GET", url: url, query: r.query, headers: r.headers, auth: r.auth, defaults: r.defaults}
	if r.method == "GET" && url == r.url {
		g.paginate = r.paginate // a read's own check reads every page too
	}
	return g
}

// parentURL is the URL of the resource a POST's collection belongs to: the
// URL without its last segment, when the segment before that names one
// resource (an id, or a ${{ }}), as in /configurations/7/vms; nil for a
// top-level collection such as /configurations or /v2/configurations.
func parentURL(d *runbook.Decoder, n runbook.Node, url *runbook.Template, off int) *runbook.Template {
	src := url.Source
	if i := outsideExpr(src, '?'); i >= 0 {
		src = src[:i]
	}
	src = strings.TrimSuffix(src, "/")
	// The path starts after the scheme and host, when they are written.
	start := 0
	if i := strings.Index(src, "://"); i >= 0 && !strings.HasPrefix(src, "${{") {
		k := outsideExpr(src[i+3:], '/')
		if k < 0 {
			return nil
		}
		start = i + 3 + k
	}
	last := lastOutsideExpr(src[start:], '/')
	if last <= 0 {
		return nil
	}
	parent := src[:start+last]
	cut := lastOutsideExpr(parent[start:], '/')
	if cut < 0 {
		return nil // ${{ vars.api }}/configurations: a base URL, not a resource
	}
	if seg := parent[start+cut+1:]; !strings.Contains(seg, "${{") && !idSegment.MatchString(seg) {
		return nil
	}
	return d.TemplateAt(n, parent, off)
}

// idSegment is a path segment that names one resource: a number or a UUID.
// Anything else (/v2, /v1beta1, /oauth2, /2024-01-01) may be a version or a
// name, whose GET could well be refused.
var idSegment = regexp.MustCompile(`^([0-9]+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$`)

// outsideExpr is the index of the first c in s that is not inside a ${{ }}.
func outsideExpr(s string, c byte) int {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch {
		case strings.HasPrefix(s[i:], "${{"):
			depth++
			i += 2
		case strings.HasPrefix(s[i:], "}}") && depth > 0:
			depth--
			i++
		case s[i] == c && depth == 0:
			return i
		}
	}
	return -1
}

// lastOutsideExpr is the index of the last c in s that is not inside a ${{ }}.
func lastOutsideExpr(s string, c byte) int {
	last := -1
	for i, rest := 0, s; ; {
		j := outsideExpr(rest, c)
		if j < 0 {
			return last
		}
		last = i + j
		i, rest = i+j+1, rest[j+1:]
	}
}

// Describe renders the request where the scope allows; parts that depend on
// earlier steps (or on unset env) are shown as written.
func (r *request) Describe(s runbook.Scope) string {
	// As Prepare renders it: values escaped where they stand.
	raw := r.url.PartialURL(s)
	d := r.method + " " + raw
	if strings.HasPrefix(raw, "/") && r.def.BaseURL != nil {
		d = r.method + " " + strings.TrimRight(r.def.BaseURL.PartialURL(s), "/") + raw
	}
	if r.paginate != nil {
		d += r.paginate.describe()
	}
	switch {
	case r.json != nil:
		if v, err := r.json.Render(s); err == nil {
			b, _ := json.Marshal(v)
			return d + " " + string(b)
		}
		return d + " (a JSON body rendered at run time)"
	case r.body != nil:
		if b, err := r.body.String(s); err == nil {
			return d + " " + b
		}
		return d + " (a body rendered at run time)"
	}
	return d
}

// Prepare renders the request for one attempt; the body is rebuilt every time.
// The URL's values are escaped where they stand (Template.URL), and query:
// values query-escaped, so no value can retarget the request.
func (r *request) Prepare(s runbook.Scope) (runbook.Call, error) {
	raw, err := r.url.URL(s)
	if err != nil {
		return nil, err
	}
	u, err := r.resolve(raw, s)
	if err != nil {
		return nil, err
	}
	if len(r.query) > 0 {
		q := u.Query()
		for _, p := range r.query {
			v, err := p.Value.String(s)
			if err != nil {
				return nil, err
			}
			q.Set(p.Name, v)
		}
		u.RawQuery = q.Encode()
	}
	c := r.newCall(r.method, u)
	if err := r.credentials(c, raw, s); err != nil {
		return nil, err
	}
	if k := runbook.IdempotencyKey(s); r.keyed && k != "" {
		c.header.Set(keyHeader, k)
		c.shown = keyHeader + ": " + k + "\n"
	}
	switch {
	case r.json != nil:
		v, err := r.json.Render(s)
		if err != nil {
			return nil, err
		}
		if c.body, err = json.Marshal(v); err != nil {
			return nil, fmt.Errorf("json body: %w", err)
		}
		c.header.Set("Content-Type", "application/json")
	case r.body != nil:
		b, err := r.body.String(s)
		if err != nil {
			return nil, err
		}
		c.body = []byte(b)
	}
	return r.paged(c), nil
}

// newCall is a request of method to u, before its headers.
func (r *request) newCall(method string, u *url.URL) *call {
	c := &call{kind: r.kind, method: method, url: u, header: http.Header{}, timeout: r.def.Timeout, expect: r.expect, limit: r.def.MaxBody}
	c.header.Set("Accept", "application/json")
	return c
}

// credentials sets the headers of a request to u (raw as written), and its
// basic auth: defaults.http's where sendsDefaults says, the step's own over
// them.
func (r *request) credentials(c *call, raw string, s runbook.Scope) error {
	u := c.url
	var auth *BasicAuth
	if r.sendsDefaults(raw, u, s) {
		if err := setHeaders(c.header, r.def.Headers, s); err != nil {
			return err
		}
		if c.header.Get("Authorization") == "" {
			auth = r.def.BasicAuth
		}
	}
	if err := setHeaders(c.header, r.headers, s); err != nil {
		return err
	}
	if slices.ContainsFunc(r.headers, func(h Header) bool { return h.Name == "Authorization" }) {
		auth = nil // the step sets it, or removes it with Authorization: ""
	}
	if r.auth != nil {
		auth = r.auth
		c.header.Del("Authorization")
	}
	if auth != nil {
		user, err := auth.Username.String(s)
		if err != nil {
			return err
		}
		pass, err := auth.Password.String(s)
		if err != nil {
			return err
		}
		c.user, c.pass, c.auth = user, pass, true
	}
	return r.checkTransport(c)
}

// setHeaders renders headers into h; one that renders empty (or is null) is
// removed, so a step can take away a default.
func setHeaders(h http.Header, hs []Header, s runbook.Scope) error {
	for _, hd := range hs {
		v := ""
		if hd.Value != nil {
			var err error
			if v, err = hd.Value.String(s); err != nil {
				return err
			}
		}
		if v == "" {
			h.Del(hd.Name)
		} else {
			h.Set(hd.Name, v)
		}
	}
	return nil
}

// sendsDefaults says whether defaults.http's headers and basic_auth go with a
// request to u: they are the API's, so they go to base_url's host (and to a
// URL written with no host, which is joined to it), and elsewhere only when
// the step says default_credentials: true. A base_url that does not render
// here is no host's: nothing is sent.
func (r *request) sendsDefaults(raw string, u *url.URL, s runbook.Scope) bool {
	switch {
	case r.defaults != nil:
		return *r.defaults
	case strings.HasPrefix(raw, "/"):
		return true
	case r.def.BaseURL == nil:
		return false
	}
	text, err := r.def.BaseURL.String(s)
	if err != nil {
		return false
	}
	base, err := url.Parse(text)
	return err == nil && sameHost(base, u)
}

// sameHost compares the host and port of two URLs, a missing port being the
// scheme's.
func sameHost(a, b *url.URL) bool {
	port := func(u *url.URL) string {
		if p := u.Port(); p != "" {
			return p
		}
		if u.Scheme == "http" {
			return "80"
		}
		return "443"
	}
	return strings.EqualFold(a.Hostname(), b.Hostname()) && port(a) == port(b)
}

// checkTransport refuses to send credentials over plain http to a host other
// than this machine, unless the runbook allows it.
func (r *request) checkTransport(c *call) error {
	if c.url.Scheme != "http" || r.def.AllowInsecureHTTP || loopback(c.url.Hostname()) {
		return nil
	}
	credentials := c.auth
	for name := range c.header {
		credentials = credentials || secretHeader(name)
	}
	if credentials {
		return &runbook.PermanentError{Msg: fmt.Sprintf("refusing to send credentials over plain http to %s: use https, or set defaults.http.allow_insecure_http: true", c.url.Host)}
	}
	return nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// resolve joins a relative URL to defaults.http.base_url.
func (r *request) resolve(raw string, s runbook.Scope) (*url.URL, error) {
	if strings.HasPrefix(raw, "/") {
		if r.def.BaseURL == nil {
			return nil, fmt.Errorf("url %q is relative, but defaults.http.base_url is not set: set it, or write the whole URL", raw)
		}
		base, err := r.def.BaseURL.URL(s)
		if err != nil {
			return nil, fmt.Errorf("base_url: %w", err)
		}
		raw = strings.TrimRight(base, "/") + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("url %q: %v", redactURL(raw), err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("url %q must start with http:// or https:// (or with / and a base_url)", redactURL(raw))
	}
	return u, nil
}

// redactURL hides credentials written into a URL.
func redactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		u.User = url.User("***")
		return u.String()
	}
	return raw
}
