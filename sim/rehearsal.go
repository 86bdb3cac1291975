package sim

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// RehearsalSpeed is how much faster than real time a rehearsal (runbook run
// --sim) runs unless told otherwise, so the demo shows busy waits, a 423 and a
// 422 within about a minute.
const RehearsalSpeed = 10

// ServedMaxLog bounds the request log of a served simulator, so a long
// rehearsal or `runbook sim` does not grow without end.
const ServedMaxLog = 10000

// RehearsalClock is the simulator's scaled time, given to the run it serves:
// every wait of a rehearsal takes 1/speed of its real length, and the run and
// the simulator agree on dates.
type RehearsalClock struct {
	Clock
	speed float64
}

// NewRehearsalClock starts a clock that runs speed times faster than real time.
func NewRehearsalClock(speed float64) RehearsalClock {
	return RehearsalClock{ScaledClock(speed), speed}
}

// Real converts a span of the clock's time to real time, for deadlines.
func (c RehearsalClock) Real(d time.Duration) time.Duration {
	return time.Duration(float64(d) / c.speed)
}

// Rehearse serves the demo scenario on a loopback port, on clock, and sends
// every request of client there, whatever host the runbook names. It tells
// notes where, and which credentials (standIns) the run was given stand-ins
// for. It returns the simulator, whose Log tells what it saw; stop closes the
// server.
func Rehearse(client *http.Client, clock RehearsalClock, standIns []string, notes io.Writer) (srv *Server, stop func(), err error) {
	cfg, err := Scenario("demo")
	if err != nil {
		return nil, nil, err
	}
	cfg.Clock = clock
	cfg.MaxLog = ServedMaxLog
	srv = New(cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, fmt.Errorf("starting the simulator: %w", err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	addr := ln.Addr().String()
	client.Transport = redirect{addr: addr, next: client.Transport}
	fmt.Fprintf(notes, "simulator: every request goes to http://%s (scenario demo: any environment id exists, time x%g)\n", addr, clock.speed)
	if len(standIns) > 0 {
		fmt.Fprintf(notes, "simulator: %s not set; using stand-ins, as the simulator accepts any credentials\n", strings.Join(standIns, ", "))
	}
	return srv, func() { hs.Close() }, nil
}

// redirect sends every request to the simulator's address.
type redirect struct {
	addr string
	next http.RoundTripper
}

func (r redirect) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.URL.Scheme, req.URL.Host, req.Host = "http", r.addr, r.addr
	return r.next.RoundTrip(req)
}
