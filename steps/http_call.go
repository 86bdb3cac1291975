package steps

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/runbookhq/runbook/runbook"
)

// One prepared request: sending it, reading its answer within bounds, and
// telling a failure that retrying cannot help from one it may.

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
