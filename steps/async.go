package steps

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/runbookhq/runbook/runbook"
)

// Long-running operations and idempotency keys: the status monitor a
// change's answer names, which its wait polls, and the Idempotency-Key that
// makes a POST or PATCH safe to send again.

// keyHeader carries a request's idempotency key.
const keyHeader = "Idempotency-Key"

// maxMonitorURL bounds a monitor URL: it comes from the server, and is
// shown, journaled and sent back.
const maxMonitorURL = 4096

// decodeKeyed reads idempotency_key. A GET, PUT or DELETE is idempotent
// already, so the key only adds a header: validate says so.
func decodeKeyed(d *runbook.Decoder, n runbook.Node, r *request) bool {
	on, ok := d.Bool(n, "idempotency_key")
	if !ok || !on {
		return false
	}
	if r.method != "POST" && r.method != "PATCH" {
		d.Warnf(n, runbook.WarnIdempotentAlready, "idempotency_key on a %s, which is idempotent already: the key is sent, but changes nothing of how the step is re-sent", r.method)
	}
	if slices.ContainsFunc(r.headers, func(h Header) bool { return h.Name == keyHeader }) {
		d.Errorf(n, "idempotency_key: true and an Idempotency-Key header both set the Idempotency-Key header: keep one")
	}
	return true
}

// monitorOf finds the status monitor an accepted answer to a change names:
// Azure-AsyncOperation, Operation-Location, or a 202's Location, on a 200,
// 201 or 202. It returns the monitor's URL, resolved against the request's,
// or why the one named cannot be polled.
func (c *call) monitorOf(resp *http.Response) (string, string) {
	switch {
	case c.method == "GET" || c.method == "HEAD" || c.method == "OPTIONS":
		return "", ""
	case resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusAccepted:
		return "", ""
	}
	names := []string{"Azure-AsyncOperation", "Operation-Location"}
	if resp.StatusCode == http.StatusAccepted {
		names = append(names, "Location")
	}
	for _, name := range names {
		v := strings.TrimSpace(resp.Header.Get(name))
		if v == "" {
			continue
		}
		u, err := monitorURL(c.url, v)
		if err != nil {
			return "", fmt.Sprintf("its %s %q %v", name, truncateText(v, 80), err)
		}
		return u.String(), ""
	}
	return "", ""
}

// monitorURL checks a monitor URL the server gave, as any URL from outside:
// http or https, a host, no credentials, bounded; relative to base.
func monitorURL(base *url.URL, v string) (*url.URL, error) {
	if len(v) > maxMonitorURL {
		return nil, fmt.Errorf("is longer than %d bytes", maxMonitorURL)
	}
	ref, err := url.Parse(v)
	if err != nil {
		return nil, errors.New("is not a URL")
	}
	if ref.User != nil {
		return nil, errors.New("carries credentials")
	}
	u := base.ResolveReference(ref)
	u.User, u.Fragment, u.RawFragment = nil, "", ""
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, errors.New("is not an http or https URL")
	}
	return u, nil
}

// monitor is the read of a status monitor: a GET of a URL the server named.
// The runbook's credentials go with it only to a host they were meant for:
// the change's own (with what the change carried), or base_url's.
type monitor struct {
	r   *request
	u   *url.URL
	err error // the URL (from the journal, say) does not pass the checks
}

// monitor is the read of the status monitor at raw, for Info.Monitor.
func (r *request) monitor(raw string) runbook.Action {
	u, err := url.Parse(raw)
	if err == nil {
		u, err = monitorURL(u, raw)
	}
	if err != nil {
		err = fmt.Errorf("the status monitor %q %v", truncateText(raw, 80), err)
	}
	return &monitor{r: r, u: u, err: err}
}

func (m *monitor) Info() runbook.Info {
	return runbook.Info{Method: "GET", Idempotent: true, Reads: true}
}

func (m *monitor) Describe(runbook.Scope) string {
	if m.err != nil {
		return m.err.Error()
	}
	return "GET " + redactURL(m.u.String())
}

func (m *monitor) Prepare(s runbook.Scope) (runbook.Call, error) {
	if m.err != nil {
		return nil, &runbook.PermanentError{Msg: m.err.Error()}
	}
	u := *m.u
	c := m.r.newCall("GET", &u)
	c.expect = nil
	if m.trusted(s) {
		if err := m.r.credentials(c, u.String(), s); err != nil {
			return nil, err
		}
		return c, nil
	}
	// Another host: the step's plain headers, none that carries a credential.
	for _, h := range m.r.headers {
		if !secretHeader(h.Name) {
			if err := setHeaders(c.header, []Header{h}, s); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}

// trusted says whether the monitor is on a host the runbook's credentials go
// to: the change's own, or base_url's (same scheme, host and port).
func (m *monitor) trusted(s runbook.Scope) bool {
	same := func(u *url.URL) bool { return u.Scheme == m.u.Scheme && sameHost(u, m.u) }
	if raw, err := m.r.url.URL(s); err == nil {
		if u, err := m.r.resolve(raw, s); err == nil && same(u) {
			return true
		}
	}
	if m.r.def.BaseURL == nil {
		return false
	}
	text, err := m.r.def.BaseURL.String(s)
	if err != nil {
		return false
	}
	base, err := url.Parse(text)
	return err == nil && same(base)
}
