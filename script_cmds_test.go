package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"golang.org/x/sys/unix"

	"github.com/runbookhq/runbook/sim"
)

// simCmd starts a simulator in the test process for the rest of the script, on a
// loopback port, and sets $API to its URL: `sim [scenario] [scale]
// [async-retry-after=DURATION]`. Its request log outlives the runbook
// processes, so a script can check what the server saw across a run and its
// resume. A client outside the simulator's scaled clock waits out each
// Retry-After in real time, so a script can shorten the /async/ one.
func simCmd(ts *testscript.TestScript, neg bool, args []string) {
	scenario, scale := "quiet", 20.0
	if len(args) > 0 {
		scenario = args[0]
	}
	if len(args) > 1 {
		scale, _ = strconv.ParseFloat(args[1], 64)
	}
	cfg, err := sim.Scenario(scenario)
	ts.Check(err)
	for _, a := range args[min(len(args), 2):] {
		v, ok := strings.CutPrefix(a, "async-retry-after=")
		if !ok {
			ts.Fatalf("usage: sim [scenario] [scale] [async-retry-after=DURATION]")
		}
		cfg.Async.RetryAfter, err = time.ParseDuration(v)
		ts.Check(err)
	}
	cfg.Clock = sim.ScaledClock(scale)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	srv := &http.Server{Handler: sim.New(cfg)}
	go srv.Serve(ln)
	ts.Defer(func() { srv.Close() })
	ts.Setenv("API", "http://"+ln.Addr().String())
}

// hookCmd starts a server in the test process for the rest of the script that
// stands for another host (a webhook), sets $HOOK to its URL, and appends each
// request it receives to FILE (and answers {}, or on a path that ends in
// /echo, the request's body): "METHOD PATH" and then the credentials it
// carried, as "Name=value" of Authorization and every token-like header:
// `hook FILE`.
func hookCmd(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: hook FILE")
	}
	file := ts.MkAbs(args[0])
	var mu sync.Mutex
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		line := r.Method + " " + r.URL.Path
		for _, name := range slices.Sorted(maps.Keys(r.Header)) {
			if l := strings.ToLower(name); l == "authorization" || strings.Contains(l, "token") {
				line += " " + name + "=" + r.Header.Get(name)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		f, err := os.OpenFile(file, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			fmt.Fprintln(f, line)
			f.Close()
		}
		if body, _ := io.ReadAll(r.Body); strings.HasSuffix(r.URL.Path, "/echo") {
			w.Write(body)
			return
		}
		io.WriteString(w, `{}`)
	})}
	go srv.Serve(ln)
	ts.Defer(func() { srv.Close() })
	ts.Setenv("HOOK", "http://"+ln.Addr().String())
}

// simLogCmd writes the simulator's request log to a file, one request a line:
// "METHOD PATH STATUS OUTCOME BODY".
func simLogCmd(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: simlog FILE")
	}
	resp, err := http.Get(ts.Getenv("API") + "/__sim/log")
	ts.Check(err)
	defer resp.Body.Close()
	var log []sim.Entry
	ts.Check(json.NewDecoder(resp.Body).Decode(&log))
	var b strings.Builder
	for _, e := range log {
		fmt.Fprintf(&b, "%s %s %d %s %s\n", e.Method, e.Path, e.Status, e.Outcome, e.Body)
	}
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), []byte(b.String()), 0o644))
}

// ptyCmd runs a program with its stdin, stdout and stderr on a pseudo-terminal
// and writes everything it drew to FILE: `pty [-answer TEXT] FILE prog args...`.
// With -answer, TEXT and a newline are typed once the program asks a
// question (it draws "[y/N]").
func ptyCmd(ts *testscript.TestScript, neg bool, args []string) {
	answer, typed := "", true
	if len(args) > 1 && args[0] == "-answer" {
		answer, typed, args = args[1], false, args[2:]
	}
	if len(args) < 2 {
		ts.Fatalf("usage: pty [-answer TEXT] FILE program [args...]")
	}
	master, slave, err := openPTY()
	ts.Check(err)
	defer master.Close()
	cmd := scriptCommand(ts, args[1:])
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &unix.SysProcAttr{Setsid: true, Setctty: true}
	ts.Check(cmd.Start())
	slave.Close()
	var out bytes.Buffer
	buf := make([]byte, 4096)
	for {
		// Ends with EIO when the program exits.
		n, err := master.Read(buf)
		out.Write(buf[:n])
		if !typed && bytes.Contains(out.Bytes(), []byte("[y/N]")) {
			master.Write([]byte(answer + "\n"))
			typed = true
		}
		if err != nil {
			break
		}
	}
	err = cmd.Wait()
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), out.Bytes(), 0o644))
	if (err != nil) != neg {
		ts.Fatalf("%s: %v\n%s", args[1], err, out.String())
	}
}

// closedOutCmd runs a program whose stdout is a pipe nobody reads any more, as
// under `| head` once head has quit, and checks its exit code:
// `closedout CODE program [args...]`. Its stderr can be checked afterwards.
func closedOutCmd(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: closedout CODE program [args...]")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	r, w, err := os.Pipe()
	ts.Check(err)
	r.Close()
	defer w.Close()
	cmd := scriptCommand(ts, args[1:])
	cmd.Stdout, cmd.Stderr = w, ts.Stderr()
	err = cmd.Run()
	if got := cmd.ProcessState.ExitCode(); got != want {
		ts.Fatalf("%s exited with %d (%v), want %d", args[1], got, err, want)
	}
}

// scriptCommand is a program as a script's exec would run it: found on the
// script's PATH, in $WORK, with the script's environment.
func scriptCommand(ts *testscript.TestScript, args []string) *exec.Cmd {
	path := args[0]
	for _, dir := range filepath.SplitList(ts.Getenv("PATH")) {
		if p := filepath.Join(dir, args[0]); fileExists(p) {
			path = p
			break
		}
	}
	cmd := exec.Command(path, args[1:]...)
	cmd.Dir = ts.Getenv("WORK")
	cmd.Env = scriptEnv(ts)
	return cmd
}

// scriptEnv is the environment a script's exec would get: the script's own
// values of the variables these tests use, over the process's.
func scriptEnv(ts *testscript.TestScript) []string {
	env := os.Environ()
	for _, k := range []string{"PATH", "HOME", "WORK", "TMPDIR", "NO_COLOR", "TERM", "API", "HOOK", "HOSTILE", "XDG_STATE_HOME", "SKYTAP_USER", "SKYTAP_TOKEN"} {
		env = append(env, k+"="+ts.Getenv(k))
	}
	return env
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// openPTY opens a pseudo-terminal pair.
func openPTY() (*os.File, *os.File, error) {
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, err
	}
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		return nil, nil, err
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		master.Close()
		return nil, nil, err
	}
	slave, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		return nil, nil, err
	}
	unix.IoctlSetWinsize(int(slave.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 40, Col: 120})
	return master, slave, nil
}

// waitForCmd waits until a file (glob) contains a pattern: `waitfor GLOB PATTERN`,
// for scripts that must act at a given point of a background run.
func waitForCmd(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: waitfor GLOB PATTERN")
	}
	re := regexp.MustCompile(args[1])
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		files, _ := filepath.Glob(ts.MkAbs(args[0]))
		for _, f := range files {
			if b, err := os.ReadFile(f); err == nil && re.Match(b) {
				return
			}
		}
	}
	ts.Fatalf("%s never matched %q", args[0], args[1])
}

// hostileCmd serves a fixed hostile answer on a loopback port for the rest of
// the script and sets $HOSTILE to its URL ($HOSTILE_ADDR to its host:port): `hostile STATUS BODY [NAME=VALUE...]`,
// where BODY is read as a Go string, so \x1b is an ESC, and each NAME=VALUE is
// a header of the answer. A read (GET) answers 200 with {"runstate":"running"},
// so a change passes its guard and is sent; any other request gets STATUS, the
// headers and BODY as text.
func hostileCmd(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: hostile STATUS BODY [NAME=VALUE...]")
	}
	status, err := strconv.Atoi(args[0])
	ts.Check(err)
	body, err := strconv.Unquote(`"` + strings.ReplaceAll(args[1], `"`, `\"`) + `"`)
	ts.Check(err)
	header := http.Header{"Content-Type": {"text/plain"}}
	for _, h := range args[2:] {
		name, value, ok := strings.Cut(h, "=")
		if !ok {
			ts.Fatalf("hostile: header %q is not NAME=VALUE", h)
		}
		header.Add(name, value)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"runstate":"running"}`)
			return
		}
		for k, v := range header {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	})}
	go srv.Serve(ln)
	ts.Defer(func() { srv.Close() })
	ts.Setenv("HOSTILE", "http://"+ln.Addr().String())
	ts.Setenv("HOSTILE_ADDR", ln.Addr().String())
}
