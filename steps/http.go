package steps

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

// Defaults is defaults.http.
type Defaults struct {
	BaseURL           *runbook.Template
	Headers           []Header
	BasicAuth         *BasicAuth
	Timeout           time.Duration
	Rate              Rate
	MaxBody           int64 // bytes of a response body read at most; 0: the kind's
	AllowInsecureHTTP bool  // credentials may go over plain http to another host
}

// Header is one header whose value is a template.
type Header struct {
	Name  string
	Value *runbook.Template
}

// BasicAuth holds the templates of HTTP basic auth.
type BasicAuth struct {
	Username, Password *runbook.Template
}

// Rate is a request rate such as 10/s: Count requests per Per.
type Rate struct {
	Count float64
	Per   time.Duration
}

// RequestRate is the configured cap, for the executor's pacing.
func (d *Defaults) RequestRate() float64 { return d.Rate.PerSecond() }

// PerSecond returns the rate in requests per second (0 when unset).
func (r Rate) PerSecond() float64 {
	if r.Per == 0 {
		return 0
	}
	return r.Count / r.Per.Seconds()
}

// The keys of the http kind's mappings.
var (
	requestKeys  = []string{"method", "url", "query", "headers", "json", "body", "expect", "basic_auth", "default_credentials", "idempotency_key", "paginate"}
	defaultsKeys = []string{"base_url", "headers", "basic_auth", "timeout", "rate", "max_body", "insecure_skip_verify", "allow_insecure_http"}
	authKeys     = []string{"username", "password"}
)

// Vocabulary names the http kind's keys, for the schema test.
func (h *HTTP) Vocabulary() map[string][]string {
	return map[string][]string{"http": requestKeys, "defaults.http": defaultsKeys, "basic_auth": authKeys, "paginate": paginateKeys}
}

// Fields: http steps keep everything under the http key.
func (h *HTTP) Fields() []string { return nil }

// DefaultsSection is defaults.http.
func (h *HTTP) DefaultsSection() string { return "http" }

// DecodeDefaults decodes defaults.http.
func (h *HTTP) DecodeDefaults(d *runbook.Decoder) (any, error) {
	def := &Defaults{Timeout: DefaultRequestTimeout}
	if d.Node.IsZero() {
		return def, nil
	}
	m := d.Fields(d.Node, "defaults.http", defaultsKeys...)
	if n, ok := m["base_url"]; ok {
		def.BaseURL = d.Template(n, "base_url")
	}
	if n, ok := m["headers"]; ok {
		def.Headers = decodeHeaders(d, n)
	}
	if n, ok := m["basic_auth"]; ok {
		def.BasicAuth = decodeBasicAuth(d, n)
	}
	// They go only to base_url's host: without one, they would go nowhere.
	if _, ok := m["base_url"]; !ok {
		for _, key := range []string{"basic_auth", "headers"} {
			if n, ok := m[key]; ok {
				d.Errorf(n, "defaults.http.%s goes only to the host of defaults.http.base_url, which is not set: set base_url to the API's address, or give the steps that need it their own %s", key, key)
			}
		}
	}
	d.SetDuration(m, "timeout", "http timeout", &def.Timeout)
	if n, ok := m["rate"]; ok {
		def.Rate = decodeRate(d, n)
	}
	if n, ok := m["max_body"]; ok {
		def.MaxBody = decodeSize(d, n)
	}
	if n, ok := m["insecure_skip_verify"]; ok {
		if b, ok := d.Bool(n, "insecure_skip_verify"); ok && b {
			h.insecure = true
			d.Warnf(n, runbook.WarnInsecure, "insecure_skip_verify: true: TLS certificates are not checked, so anyone on the path can read and change these requests, credentials included")
		}
	}
	if n, ok := m["allow_insecure_http"]; ok {
		if b, ok := d.Bool(n, "allow_insecure_http"); ok && b {
			def.AllowInsecureHTTP = true
			d.Warnf(n, runbook.WarnInsecure, "allow_insecure_http: true: credentials may be sent unencrypted over plain http")
		}
	}
	return def, nil
}

// decodeSize reads a size such as 10MiB, 512KiB or 1000000.
func decodeSize(d *runbook.Decoder, n runbook.Node) int64 {
	s, ok := d.String(n, "max_body")
	if !ok {
		return 0
	}
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}}
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range units {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v <= 0 || v > (1<<40)/mult {
		d.Errorf(n, "max_body must be a size such as 10MiB, 512KiB or 1000000, not %q", s)
		return 0
	}
	return v * mult
}

// decodeHeaders reads a header map. A header whose value is null or empty is
// not sent: on a step, that removes a default of the same name.
func decodeHeaders(d *runbook.Decoder, n runbook.Node) []Header {
	var hs []Header
	for _, p := range d.Pairs(n, "headers") {
		name := http.CanonicalHeaderKey(p.Key.Text())
		if p.Value.IsNull() {
			hs = append(hs, Header{Name: name})
			continue
		}
		if t := d.Template(p.Value, "header "+p.Key.Text()); t != nil {
			if secretHeader(name) {
				d.Secret(t)
			}
			hs = append(hs, Header{Name: name, Value: t})
		}
	}
	return hs
}

// secretHeader says whether a header carries credentials.
func secretHeader(name string) bool {
	l := strings.ToLower(name)
	return l == "authorization" || l == "proxy-authorization" || l == "cookie" ||
		strings.Contains(l, "token") || strings.Contains(l, "api-key") || strings.Contains(l, "secret")
}

func decodeBasicAuth(d *runbook.Decoder, n runbook.Node) *BasicAuth {
	m := d.Fields(n, "basic_auth", authKeys...)
	a := &BasicAuth{}
	_, user := m["username"]
	_, pass := m["password"]
	if !user || !pass {
		d.Errorf(n, "basic_auth needs username and password")
		return nil
	}
	a.Username = d.Template(m["username"], "username")
	a.Password = d.Template(m["password"], "password")
	d.Secret(a.Username)
	d.Secret(a.Password)
	// The Authorization header carries base64(user:password): hidden whole and
	// in pieces, it does not show when a server echoes it back.
	d.SecretJoin(":", a.Username, a.Password)
	return a
}

func decodeRate(d *runbook.Decoder, n runbook.Node) Rate {
	s, ok := d.String(n, "rate")
	if !ok {
		return Rate{}
	}
	count, unit, found := strings.Cut(strings.ReplaceAll(s, " ", ""), "/")
	c, err := strconv.ParseFloat(count, 64)
	per := map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour}[unit]
	if !found || err != nil || c <= 0 || per == 0 {
		d.Errorf(n, "rate must be requests per unit, such as 10/s, 600/m or 1000/h, not %q", s)
		return Rate{}
	}
	return Rate{Count: c, Per: per}
}

var methods = []string{"GET", "HEAD", "OPTIONS", "PUT", "POST", "PATCH", "DELETE"}

// Decode decodes `http: "METHOD URL"` or the long form.
func (h *HTTP) Decode(d *runbook.Decoder) (runbook.Action, error) {
	def, _ := d.Defaults.(*Defaults)
	if def == nil {
		def = &Defaults{Timeout: DefaultRequestTimeout}
	}
	r := &request{kind: h, def: def}
	n := d.Node
	errs := d.ErrorCount()
	switch {
	case n.IsText():
		method, rest, ok := strings.Cut(strings.TrimSpace(n.Text()), " ")
		if !ok || strings.TrimSpace(rest) == "" {
			d.Errorf(n, "http must be \"METHOD URL\", such as \"GET /configurations/1\", or a mapping with method and url")
			return nil, nil
		}
		r.method = strings.ToUpper(method)
		if !slices.Contains(methods, r.method) {
			d.Errorf(n, "unknown HTTP method %q (use one of %s)", method, strings.Join(methods, ", "))
		}
		lead := len([]rune(n.Text())) - len([]rune(strings.TrimLeft(n.Text(), " ")))
		urlText := strings.TrimSpace(rest)
		off := lead + len([]rune(method)) + (len([]rune(rest)) - len([]rune(strings.TrimLeft(rest, " ")))) + 1
		r.url = d.TemplateAt(n, urlText, off)
		if r.url != nil && r.method == "POST" {
			r.parent = parentURL(d, n, r.url, off)
		}
	case n.IsMapping():
		m := d.Fields(n, "http", requestKeys...)
		r.method = "GET"
		if v, ok := m["method"]; ok {
			if s, ok := d.String(v, "method"); ok {
				r.method = strings.ToUpper(s)
				if !slices.Contains(methods, r.method) {
					d.Errorf(v, "unknown HTTP method %q (use one of %s)", s, strings.Join(methods, ", "))
				}
			}
		}
		if v, ok := m["url"]; ok {
			r.url = d.Template(v, "url")
			if r.url != nil && r.method == "POST" {
				r.parent = parentURL(d, v, r.url, 0)
			}
		} else {
			d.Errorf(n, "http needs url:")
		}
		if v, ok := m["query"]; ok {
			for _, p := range d.Pairs(v, "query") {
				if t := d.Template(p.Value, "query "+p.Key.Text()); t != nil {
					r.query = append(r.query, Header{Name: p.Key.Text(), Value: t})
				}
			}
		}
		if v, ok := m["headers"]; ok {
			r.headers = decodeHeaders(d, v)
		}
		if _, hasJSON := m["json"]; hasJSON {
			if body, ok := m["body"]; ok {
				d.Errorf(body, "a request has json: or body:, not both")
			}
		}
		if v, ok := m["json"]; ok {
			r.json = d.Value(v)
		}
		if v, ok := m["body"]; ok {
			r.body = d.Template(v, "body")
		}
		if v, ok := m["expect"]; ok {
			r.expect = decodeExpect(d, v)
		}
		if v, ok := m["basic_auth"]; ok {
			r.auth = decodeBasicAuth(d, v)
			if slices.ContainsFunc(r.headers, func(h Header) bool { return h.Name == "Authorization" }) {
				d.Errorf(v, "basic_auth and an Authorization header both set the Authorization header: keep one")
			}
		}
		if v, ok := m["default_credentials"]; ok {
			if b, ok := d.Bool(v, "default_credentials"); ok {
				r.defaults = &b
			}
		}
		if v, ok := m["idempotency_key"]; ok {
			r.keyed = decodeKeyed(d, v, r)
		}
		if v, ok := m["paginate"]; ok {
			if r.method != "GET" {
				d.Errorf(v, "paginate reads a list page by page with GET; a %s is sent once: remove paginate, or read the list with GET", r.method)
			} else {
				r.paginate = decodePaginate(d, v)
			}
		}
		if (r.json != nil || r.body != nil) && (r.method == "GET" || r.method == "HEAD") {
			d.Errorf(n, "a %s request has no body: remove json:/body: or use PUT, POST or PATCH", r.method)
		}
	default:
		d.Errorf(n, "http must be \"METHOD URL\" or a mapping with method and url")
		return nil, nil
	}
	if r.url != nil && r.def.BaseURL == nil && strings.HasPrefix(r.url.Source, "/") {
		d.Errorf(n, "url %q starts with /, but defaults.http.base_url is not set: set it, or write the whole URL (https://...)", r.url.Source)
	}
	if d.ErrorCount() > errs {
		return nil, nil
	}
	return r, nil
}

func decodeExpect(d *runbook.Decoder, n runbook.Node) []int {
	nodes := n.Items()
	if !n.IsList() {
		nodes = []runbook.Node{n}
	}
	var out []int
	for _, e := range nodes {
		if v, ok := d.Int(e, "expect status", 100); ok {
			if v > 599 {
				d.Errorf(e, "expect status must be from 100 to 599, not %d", v)
				continue
			}
			out = append(out, v)
		}
	}
	return out
}

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

// call is one prepared request.
type call struct {
	kind       *HTTP
	method     string
	url        *url.URL
	header     http.Header
	auth       bool
	user, pass string
	body       []byte
	timeout    time.Duration
	expect     []int
	limit      int64
	shown      string // headers -v shows (the idempotency key), "Name: value" lines
}

func (c *call) Target() runbook.Target {
	u := *c.url
	u.User = nil
	return runbook.Target{Method: c.method, URL: u.String(), Host: c.url.Host, Body: string(c.body), Shown: c.shown}
}

// Do sends the request once and reads the whole answer (up to the body limit),
// so the connection can be reused.
func (c *call) Do(ctx context.Context) *runbook.Outcome {
	start := c.kind.now()
	timeout := c.timeout
	if c.kind.Clock != nil {
		timeout = c.kind.Clock.Real(timeout)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// The hook runs on the transport's writing goroutine.
	var written atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) { written.Store(true) },
	})
	req, err := http.NewRequestWithContext(ctx, c.method, c.url.String(), bytes.NewReader(c.body))
	if err != nil {
		return &runbook.Outcome{Err: err}
	}
	if len(c.body) == 0 {
		req.Body, req.GetBody = http.NoBody, nil
		req.ContentLength = 0
	}
	req.Header = c.header.Clone()
	if c.auth {
		req.SetBasicAuth(c.user, c.pass)
	}
	resp, err := c.kind.httpClient().Do(req)
	if err != nil {
		out := &runbook.Outcome{Err: transportError(err, c.timeout), Written: written.Load(), Elapsed: c.kind.now().Sub(start)}
		if msg, ok := c.permanent(err); ok {
			out.Err, out.Permanent = msg, true
		}
		return out
	}
	defer resp.Body.Close()
	limit := c.limit
	if limit <= 0 {
		limit = c.kind.BodyLimit
	}
	if limit <= 0 {
		limit = DefaultBodyLimit
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return &runbook.Outcome{Err: fmt.Errorf("reading the answer to %s: %w", c.method, transportError(err, c.timeout)), Written: true, Elapsed: c.kind.now().Sub(start)}
	}
	if int64(len(raw)) > limit {
		return &runbook.Outcome{Status: resp.StatusCode, Written: true, Elapsed: c.kind.now().Sub(start), Permanent: true,
			Err: fmt.Errorf("the answer's body is larger than %d bytes (defaults.http.max_body): refused", limit)}
	}
	return c.outcome(resp, raw, c.kind.now().Sub(start))
}

func (c *call) outcome(resp *http.Response, raw []byte, elapsed time.Duration) *runbook.Outcome {
	out := &runbook.Outcome{Status: resp.StatusCode, Header: resp.Header, Elapsed: elapsed}
	out.Snippet = snippet(raw)
	out.Raw = raw
	if c.expect != nil {
		out.Accepted = slices.Contains(c.expect, resp.StatusCode)
	} else {
		out.Accepted = resp.StatusCode/100 == 2 || (c.method == "DELETE" && resp.StatusCode == http.StatusNotFound)
	}
	headers := map[string]any{}
	for k, v := range resp.Header {
		headers[strings.ToLower(k)] = strings.Join(v, ", ")
	}
	out.Response = map[string]any{"status": resp.StatusCode, "headers": headers, "body": nil, "monitor": nil}
	if out.Accepted {
		if out.Monitor, out.MonitorBad = c.monitorOf(resp); out.Monitor != "" {
			out.Response["monitor"] = out.Monitor
		}
	}
	if d, ok := ParseRetryAfter(resp.Header.Get("Retry-After"), c.kind.now()); ok {
		out.RetryAfter = &d
	}
	out.Budget = ParseRateLimit(resp.Header, c.kind.now())
	set := func(body any) {
		out.Body, out.Response["body"] = body, body
		if resp.StatusCode/100 != 2 {
			return
		}
		if _, isText := body.(string); isText {
			out.Text = out.Snippet // state is nil: say why if a condition reads it
		} else {
			out.State = body
		}
	}
	js := measureBody(resp.Header.Get("Content-Type"), raw)
	if js == nil {
		set(textBody(raw))
		return out
	}
	if js.cost < deferDecode {
		set(js.decode())
		return out
	}
	out.Cost = js.cost
	out.Decode = func() {
		set(js.decode())
		out.Decode = nil
	}
	return out
}

// deferDecode is the estimated size from which an answer is decoded only once
// the run's budget has room for it; smaller ones are decoded at once.
const deferDecode = 256 << 10

// measureBody measures a JSON body for decoding; nil when it is not JSON.
func measureBody(contentType string, raw []byte) *jsonBody {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || !strings.Contains(contentType, "json") && trimmed[0] != '{' && trimmed[0] != '[' {
		return nil
	}
	if js, ok := measureJSON(trimmed); ok {
		return js
	}
	return nil
}

// textBody is a body that is not JSON: its text, nil when empty.
func textBody(raw []byte) any {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	return string(raw)
}

// snippet is the start of a body on one line, for messages.
func snippet(raw []byte) string {
	// Long enough that the executor can redact it before cutting it short.
	if len(raw) > 4096 {
		raw = raw[:4096]
	}
	return strings.Join(strings.Fields(string(raw)), " ")
}

// permanent tells a transport error that no retry can mend (the same request
// gets the same answer), in words that say what to do.
func (c *call) permanent(err error) (error, bool) {
	var cert *tls.CertificateVerificationError
	var redirect *redirectError
	var record tls.RecordHeaderError
	var malformed textproto.ProtocolError
	switch {
	case errors.As(err, &cert):
		return transportError(err, c.timeout), true
	case errors.As(err, &redirect):
		return redirect, true
	case errors.Is(err, http.ErrSchemeMismatch):
		return fmt.Errorf("%s answered in plain HTTP to an https request: that port serves http; write http://%s, or the port that serves https", c.url.Host, c.url.Host), true
	case errors.As(err, &record):
		return fmt.Errorf("%s did not answer with TLS to an https request (it sent %q): is that the port that serves https?", c.url.Host, record.RecordHeader[:]), true
	case headersTooLarge(err):
		return fmt.Errorf("the answer's headers are larger than %d bytes: refused; the server (or a proxy before it) is broken", c.headerLimit()), true
	case errors.As(err, &malformed):
		return fmt.Errorf("%s answered with malformed HTTP (%v): the server (or a proxy before it) is broken", c.url.Host, malformed), true
	}
	return nil, false
}

// headersTooLarge says whether err, or an error it wraps, is the transport's
// refusal of headers over MaxResponseHeaderBytes. Go gives that error no type;
// TestPermanentTransportErrors holds its text.
func headersTooLarge(err error) bool {
	for ; err != nil; err = errors.Unwrap(err) {
		if strings.HasPrefix(err.Error(), "net/http: server response headers exceeded") {
			return true
		}
	}
	return false
}

// headerLimit is the cap on an answer's headers of the client in use.
func (c *call) headerLimit() int64 {
	if t, ok := c.kind.httpClient().Transport.(*http.Transport); ok && t.MaxResponseHeaderBytes > 0 {
		return t.MaxResponseHeaderBytes
	}
	return 10 << 20 // Go's default
}

// transportError says what went wrong in words an operator can act on.
func transportError(err error, timeout time.Duration) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("no answer within %s (request timeout)", timeout)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("no answer within %s (request timeout)", timeout)
	}
	return err
}
