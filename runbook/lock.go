package runbook

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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

// DefaultStateDir is $XDG_STATE_HOME/runbook, else ~/.local/state/runbook.
func DefaultStateDir(env map[string]string) string {
	if x := env["XDG_STATE_HOME"]; x != "" {
		return filepath.Join(x, "runbook")
	}
	home := env["HOME"]
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	return filepath.Join(home, ".local", "state", "runbook")
}

// OpenStore checks the state dir and names the runbook in it. The state dir
// holds what decides whether a change is sent again, so it is treated as ssh
// treats ~/.ssh: the default one (explicit false) is created 0700 and must be
// a directory of this user that nobody else can write to, not a symlink; one
// given with --state-dir may be any directory this user owns. Inside it, the
// directories runbook makes must be this user's own, and no file is ever
// opened through a symlink.
//
// A rehearsal (--sim) has journals and a lock of its own: a resume of the real
// runbook never continues a rehearsal against the real API.
func OpenStore(stateDir string, explicit bool, file string, rehearsal bool) (*Store, error) {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, &ConfigError{Msg: fmt.Sprintf("cannot create the state directory %s: %v (set --state-dir)", stateDir, err)}
	}
	if err := ownedDir(stateDir); err != nil {
		return nil, err
	}
	if !explicit {
		if err := ownDir(stateDir, false); err != nil {
			return nil, err
		}
	}
	real, err := filepath.EvalSymlinks(file)
	if err != nil {
		return nil, &ReadError{File: file, Err: err}
	}
	if real, err = filepath.Abs(real); err != nil {
		return nil, &ReadError{File: file, Err: err}
	}
	sum := sha256.Sum256([]byte(real))
	key := strings.TrimSuffix(filepath.Base(real), filepath.Ext(real)) + "-" + hex.EncodeToString(sum[:6])
	if rehearsal {
		key += "-sim"
	}
	return &Store{dir: stateDir, file: file, real: real, key: key, rehearsal: rehearsal}, nil
}

// ownedDir refuses a path that is not a directory this user owns.
func ownedDir(dir string) error {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return &ConfigError{Msg: fmt.Sprintf("cannot use the state directory %s: %v", dir, err)}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return &ConfigError{Msg: fmt.Sprintf("cannot use the state directory %s: it is not a directory", dir)}
	}
	if int(st.Uid) != os.Getuid() {
		return &ConfigError{Msg: fmt.Sprintf("refusing the state directory %s: it belongs to uid %d, not to you (uid %d); give --state-dir a directory of your own", dir, st.Uid, os.Getuid())}
	}
	return nil
}

// ownDir refuses dir unless it is a real directory (not a symlink) of this
// user that nobody else can write to; create makes it (0700) if it is missing,
// and without create a missing dir is fine.
func ownDir(dir string, create bool) error {
	if create {
		if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return &ConfigError{Msg: fmt.Sprintf("cannot create the state directory %s: %v (set --state-dir)", dir, err)}
		}
	}
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		if !create && errors.Is(err, unix.ENOENT) {
			return nil
		}
		return &ConfigError{Msg: fmt.Sprintf("cannot use the state directory %s: %v", dir, err)}
	}
	switch {
	case st.Mode&unix.S_IFMT == unix.S_IFLNK:
		return &ConfigError{Msg: fmt.Sprintf("refusing the state directory %s: it is a symlink, which could send the journal anywhere; remove it (runbook makes a directory there), or give --state-dir the directory it points to", dir)}
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return &ConfigError{Msg: fmt.Sprintf("cannot use the state directory %s: it is not a directory", dir)}
	case int(st.Uid) != os.Getuid():
		return &ConfigError{Msg: fmt.Sprintf("refusing the state directory %s: it belongs to uid %d, not to you (uid %d); remove it, or give --state-dir a directory of your own", dir, st.Uid, os.Getuid())}
	case st.Mode&0o022 != 0:
		return &ConfigError{Msg: fmt.Sprintf("refusing the state directory %s: others can write to it (mode %04o), so they could change what a resume sends; run chmod 700 %s", dir, st.Mode&0o7777, dir)}
	}
	return nil
}

// Lock is the exclusive lock a run holds on its runbook, so two runs of one
// runbook never interleave their changes. It is two flocks: one on the
// runbook's real path (every symlink to it, and a file replaced at that path)
// and one on its device and inode (every hard link to it).
type Lock struct {
	files []*os.File
	rb    *os.File // the runbook file, flocked
}

// LockedError is a lock another run holds (exit 75).
type LockedError struct {
	File, Holder string
	Waited       time.Duration // how long --wait-lock waited, 0 if not
}

func (e *LockedError) Error() string {
	if e.Waited > 0 {
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
// links, and runs with another state dir on this host, share it too).
func (s *Store) Lock(ctx context.Context, wait time.Duration, waiting io.Writer) (*Lock, error) {
	dir := filepath.Join(s.dir, "locks")
	if err := ownDir(dir, true); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, s.key+".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, &ConfigError{Msg: fmt.Sprintf("refusing the lock file %s: it is a symlink; remove it", path)}
		}
		return nil, &ConfigError{Msg: fmt.Sprintf("cannot open the lock %s: %v", path, err)}
	}
	l := &Lock{}
	holder := func() string {
		b := make([]byte, 200)
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
	l.files = append(l.files, f)
	f.Truncate(0)
	f.WriteAt([]byte(fmt.Sprintf("pid %d, started %s\n", os.Getpid(), time.Now().Format("2006-01-02 15:04:05 MST"))), 0)
	if s.rehearsal {
		// A rehearsal (--sim) does not keep the real runbook from running.
		return l, nil
	}
	rb, err := os.OpenFile(s.real, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		l.Release()
		return nil, &ReadError{File: s.file, Err: err}
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
		fmt.Fprintf(waiting, "runbook: waiting up to %s for the lock of %s, held by %s\n", fmtDur(wait), s.file, holder())
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
		return &LockedError{File: s.file, Holder: holder(), Waited: wait}
	}
	return nil
}

// Release gives the lock up. The lock files stay: removing one another run
// has just opened would let a third take a lock of its own.
func (l *Lock) Release() {
	if l == nil {
		return
	}
	for _, f := range l.files {
		f.Truncate(0)
		f.Close()
	}
	if l.rb != nil {
		l.rb.Close()
	}
	l.files, l.rb = nil, nil
}
