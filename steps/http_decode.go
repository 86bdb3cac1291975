package steps

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/runbookhq/runbook/runbook"
)

// Decoding an http step and defaults.http: keys, headers, credentials, rates.

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
