package runbook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Lock is the exclusive lock a run holds on its runbook, so two runs of one
// runbook never interleave their changes (see Store.Lock).
type Lock struct {
	state *os.File // the lock file in the state dir, which names the holder
	rb    *os.File // the runbook file itself
}

// LockedError is a lock another run holds (exit 75).
type LockedError struct {
	File, Holder string
	Name         string        // the runbook's lock: name; "": its file's lock
	Waited       time.Duration // how long --wait-lock waited, 0 if not
}

func (e *LockedError) Error() string {
	switch {
	case e.Name != "" && e.Waited > 0:
		return fmt.Sprintf("another run still holds the lock %q after %s (%s)", e.Name, fmtDur(e.Waited), e.Holder)
	case e.Name != "":
		return fmt.Sprintf("another run holds the lock %q (%s); wait for it, or use --wait-lock 10m", e.Name, e.Holder)
	case e.Waited > 0:
		return fmt.Sprintf("another run of %s still holds its lock after %s (%s)", e.File, fmtDur(e.Waited), e.Holder)
	}
	return fmt.Sprintf("another run of %s holds its lock (%s); wait for it, or use --wait-lock 10m", e.File, e.Holder)
}
func (e *LockedError) ExitCode() int { return ExitBusy }

// lockRetry is how often --wait-lock tries again.
const lockRetry = 200 * time.Millisecond

// Lock takes the runbook's lock, waiting up to wait for it (and saying so on
// waiting). It is two flocks: one on a lock file in the state dir named for
// the runbook's real path (so every symlink to it, and a file replaced at that
// path, share it), into which the holder's pid and start time are written
// through its own descriptor; and one on the runbook file itself (so hard
// links, and runs with another state dir on this host, share it too). A
// runbook with lock: takes one flock, on a lock file named for that name
// (Named), and not the file's: its runs on other targets go on at once.
func (s *Store) Lock(ctx context.Context, wait time.Duration, waiting io.Writer) (*Lock, error) {
	dir := filepath.Join(s.dir, "locks")
	if err := ownDir(dir, true); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, s.lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, &ConfigError{Msg: fmt.Sprintf("refusing the lock file %s: it is a symlink; remove it", path)}
		}
		return nil, &ConfigError{Msg: fmt.Sprintf("cannot open the lock %s: %v", path, err)}
	}
	l := &Lock{}
	holder := func() string {
		b := make([]byte, 1024)
		n, _ := f.ReadAt(b, 0)
		if h := strings.TrimSpace(string(b[:n])); h != "" {
			return h
		}
		return "holder unknown"
	}
	if err := s.flock(ctx, f, wait, waiting, holder); err != nil {
		f.Close()
		return nil, err
	}
	l.state = f
	f.Truncate(0)
	who := fmt.Sprintf("pid %d, started %s", os.Getpid(), time.Now().Format("2006-01-02 15:04:05 MST"))
	if s.lockName != "" {
		// Runbooks of any file take this lock: say which holds it.
		who += ", runbook " + s.real
	}
	f.WriteAt([]byte(who+"\n"), 0)
	if s.rehearsal || s.lockName != "" {
		// A rehearsal (--sim) does not keep the real runbook from running,
		// nor does a run on one target keep the runbook from another.
		return l, nil
	}
	rb, err := os.OpenFile(s.real, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		l.Release()
		return nil, &ReadError{What: "runbook", File: s.file, Err: err}
	}
	elsewhere := func() string { return "through another path to it, or with another state dir" }
	if err := s.flock(ctx, rb, wait, waiting, elsewhere); err != nil {
		rb.Close()
		l.Release()
		return nil, err
	}
	l.rb = rb
	return l, nil
}

// flock takes the lock on f, trying again every lockRetry for up to wait.
func (s *Store) flock(ctx context.Context, f *os.File, wait time.Duration, waiting io.Writer, holder func() string) error {
	try := func() (bool, error) {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if errors.Is(err, unix.EWOULDBLOCK) {
			return false, nil
		}
		return err == nil, err
	}
	ok, err := try()
	if err == nil && !ok && wait > 0 {
		what := "the lock of " + s.file
		if s.lockName != "" {
			what = fmt.Sprintf("the lock %q", s.lockName)
		}
		fmt.Fprintf(waiting, "runbook: waiting up to %s for %s, held by %s\n", fmtDur(wait), what, holder())
		deadline := time.Now().Add(wait)
		t := time.NewTicker(lockRetry)
		defer t.Stop()
		for !ok && err == nil && time.Now().Before(deadline) {
			select {
			case <-ctx.Done():
				// Stopped (Ctrl-C) while waiting for the lock: say so, with its exit code.
				if cause := context.Cause(ctx); cause != nil {
					return cause
				}
				return ctx.Err()
			case <-t.C:
			}
			ok, err = try()
		}
	}
	if err != nil {
		return &ConfigError{Msg: fmt.Sprintf("cannot lock %s: %v", f.Name(), err)}
	}
	if !ok {
		return &LockedError{File: s.file, Name: s.lockName, Holder: holder(), Waited: wait}
	}
	return nil
}

// Release gives the lock up. The lock files stay: removing one another run
// has just opened would let a third take a lock of its own.
func (l *Lock) Release() {
	if l == nil {
		return
	}
	if l.state != nil {
		l.state.Truncate(0)
		l.state.Close()
	}
	if l.rb != nil {
		l.rb.Close()
	}
	l.state, l.rb = nil, nil
}
