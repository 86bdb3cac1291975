package sim

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Server is a simulated Skytap API. It is safe for concurrent requests; one
// mutex guards all of its state.
type Server struct {
	mu    sync.Mutex
	cfg   Config
	clock Clock
	rng   *rand.Rand // busy answers and jitter
	ids   *rand.Rand // X-Request-ID, apart so ids do not shift the answers

	envs      map[string]*environment
	vms       map[string]*vm
	templates map[string]*template
	gone      map[string]bool // "env/ID", "vm/ID" deleted for good

	running []*operation // started, not yet completed
	queue   []*operation // accepted runstate operations waiting for a slot
	opSeq   int

	buckets map[string]*bucket
	async   *asyncState // the /async/ personality
	faults  []*Fault
	script  []*Fault

	log       []Entry
	seq       int // requests logged so far (the log may have dropped old ones)
	lastEnvID int
	lastVMID  int
}

// New returns a simulator; zero fields of cfg get their defaults (see
// DefaultConfig), so New(Config{}) works.
func New(cfg Config) *Server {
	cfg = cfg.withDefaults()
	s := &Server{
		cfg:       cfg,
		clock:     cfg.Clock,
		rng:       rand.New(rand.NewPCG(cfg.Seed, 0x9e3779b97f4a7c15)),
		ids:       rand.New(rand.NewPCG(cfg.Seed, 0x6a09e667f3bcc908)),
		envs:      map[string]*environment{},
		vms:       map[string]*vm{},
		templates: map[string]*template{},
		gone:      map[string]bool{},
		buckets:   map[string]*bucket{},
		lastEnvID: 7000000,
		lastVMID:  80000000,
	}
	s.async = newAsyncState(cfg)
	for _, f := range cfg.Demo.Script {
		s.script = append(s.script, armed(f))
	}
	return s
}

// MakeBusy plays another actor: target ("env/ID", "vm/ID" or "template/ID")
// is busy for d from now. A busy environment makes its VMs busy, and a busy VM
// its environment. Unknown targets are ignored (or provisioned, with AutoProvision).
func (s *Server) MakeBusy(target string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	s.advance(now)
	until := now.Add(d)
	kind, id, _ := strings.Cut(target, "/")
	switch kind {
	case "env":
		if e := s.findEnv(id, now, true); e != nil && until.After(e.busyUntil) {
			e.busyUntil = until
		}
	case "vm":
		if v := s.findVM(id, now, true); v != nil && until.After(v.busyUntil) {
			v.busyUntil = until
		}
	case "template":
		if t := s.findTemplate(id, true); t != nil && until.After(t.busyUntil) {
			t.busyUntil = until
		}
	}
}

// FailNext makes the next run, resume, suspend or graceful stop of the VM fail
// when it completes: the VM returns to where it was, with a lingering error.
func (s *Server) FailNext(vmID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	s.advance(now)
	if v := s.findVM(vmID, now, true); v != nil {
		v.failNext = true
	}
}

// Runstate returns the true runstate of "env/ID" or "vm/ID" now, as a GET
// would show it without lag or faults; false if it does not exist (or no
// longer does). It never provisions.
func (s *Server) Runstate(target string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	s.advance(now)
	kind, id, _ := strings.Cut(target, "/")
	switch kind {
	case "env":
		if e := s.envs[id]; e != nil {
			return s.envRunstate(e, now), true
		}
	case "vm":
		if v := s.vms[id]; v != nil {
			return s.vmRunstate(v, now), true
		}
	}
	return "", false
}

// reply is an answer before it is written: the same for ServeHTTP and Transport.
type reply struct {
	status     int
	body       []byte
	outcome    string
	retryAfter string
	retryAt    time.Time
	requestID  string
	shown      string // for a read of an environment or a VM: the runstate it showed
	extra      http.Header
}

func (rep reply) header() http.Header {
	h := rep.extra.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Set("Content-Type", "application/json")
	h.Set("X-Request-ID", rep.requestID)
	if rep.retryAfter != "" {
		h.Set("Retry-After", rep.retryAfter)
	}
	return h
}

func (s *Server) requestID() string {
	a, b := s.ids.Uint64(), s.ids.Uint64()
	return fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", a>>32, a>>16&0xffff, a&0xfff, b>>48&0xfff, b&0xffffffffffff)
}

// The errors a dropped connection gives the client, shaped like the real ones
// (errors.Is(err, syscall.ECONNRESET) holds).
var (
	errDropBeforeWrite = &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", syscall.ECONNRESET)}
	errDropAfterWrite  = &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
)

// exchange runs one API request through the simulator. wrote is called once
// the request counts as written, just before it is handled. onServer says the
// caller is ServeHTTP, where a connection cannot break before the request was
// written, so both drops act after it.
func (s *Server) exchange(r *http.Request, body []byte, wrote func(), onServer bool) (reply, error) {
	c := s.newCall(r, body)

	s.mu.Lock()
	if c.authed {
		c.fault = s.takeFault(c.method, c.route.target(), c.route.kind != routeAsync)
	}
	if f := c.fault; f != nil && f.Drop == DropBeforeWrite && !onServer {
		c.now = s.clock.Now()
		s.advance(c.now)
		e := c.entry()
		s.describe(&e, c, s.resolve(c, false))
		e.Outcome, e.Fault = "dropped", f.describe()
		s.record(e)
		s.mu.Unlock()
		return reply{}, errDropBeforeWrite
	}
	s.mu.Unlock()

	if wrote != nil {
		wrote()
	}

	s.mu.Lock()
	c.now = s.clock.Now()
	s.advance(c.now)
	rep := s.respond(c)
	s.mu.Unlock()

	if f := c.fault; f != nil {
		// The work is done; only the answer is slow, as when a server
		// completes a change and the response is lost in a timeout.
		if f.Delay > 0 {
			if err := s.clock.Sleep(r.Context(), f.Delay); err != nil {
				return reply{}, err
			}
			s.answeredLate(c.seq)
		}
		if f.Drop != DropNone {
			return reply{}, errDropAfterWrite
		}
	}
	return rep, nil
}

// ServeHTTP serves the simulated API, and the control endpoints under /__sim/
// (see control). A dropped connection, of either kind, applies the request and
// then aborts the connection with panic(http.ErrAbortHandler), as does a slow
// response whose client went away.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	var rep reply
	if isControl(r.URL.Path) {
		rep = s.control(r, body)
	} else if rep, err = s.exchange(r, body, nil, true); err != nil {
		panic(http.ErrAbortHandler)
	}
	for k, v := range rep.header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rep.status)
	w.Write(rep.body)
}

// Transport returns an http.RoundTripper that hands requests straight to the
// simulator, without a network, for a plain http.Client in tests (also under
// testing/synctest: it starts no goroutine). It calls httptrace's WroteRequest
// hook after consuming the request body, except when a DropBeforeWrite fault
// breaks the connection first; a Delay fault honours the request's context.
func (s *Server) Transport() http.RoundTripper { return transport{s} }

type transport struct{ s *Server }

func (t transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		var err error
		body, err = io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
	}
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	var rep reply
	if isControl(req.URL.Path) {
		rep = t.s.control(req, body)
	} else {
		var err error
		rep, err = t.s.exchange(req, body, func() { wroteRequest(req) }, false)
		if err != nil {
			return nil, err
		}
	}
	return &http.Response{
		Status:        fmt.Sprintf("%d %s", rep.status, statusText(rep.status)),
		StatusCode:    rep.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        rep.header(),
		Body:          io.NopCloser(bytes.NewReader(rep.body)),
		ContentLength: int64(len(rep.body)),
		Request:       req,
	}, nil
}

func wroteRequest(req *http.Request) {
	if trace := httptrace.ContextClientTrace(req.Context()); trace != nil && trace.WroteRequest != nil {
		trace.WroteRequest(httptrace.WroteRequestInfo{})
	}
}

// bucket is one credential's token bucket, refilled lazily from the clock.
type bucket struct {
	tokens float64
	at     time.Time
}

// allow takes a token from user's bucket, if there is one.
func (s *Server) allow(user string, now time.Time) bool {
	if s.cfg.Rate < 0 {
		return true
	}
	b := s.buckets[user]
	if b == nil {
		b = &bucket{tokens: float64(s.cfg.Burst), at: now}
		s.buckets[user] = b
	}
	if now.After(b.at) {
		b.tokens = math.Min(float64(s.cfg.Burst), b.tokens+s.cfg.Rate*now.Sub(b.at).Seconds())
		b.at = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// retryAfter formats a Retry-After header for d from now, in whole seconds
// (rounded up) or as an HTTP-date, and says when exactly the client may come
// back: the moment the header names, never earlier than now+d.
func (s *Server) retryAfter(now time.Time, d time.Duration) (string, time.Time) {
	if s.cfg.RetryAfterDate {
		at := now.Add(d)
		if t := at.Truncate(time.Second); !t.Equal(at) {
			at = t.Add(time.Second)
		}
		return at.UTC().Format(http.TimeFormat), at
	}
	secs := int64(math.Ceil(d.Seconds()))
	return strconv.FormatInt(secs, 10), now.Add(time.Duration(secs) * time.Second)
}
