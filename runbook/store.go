package runbook

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The state dir: where a runbook's journals and lock live, and the checks that
// keep anyone else from changing what a resume sends.

// DefaultStateDir is $XDG_STATE_HOME/runbook, else ~/.local/state/runbook.
func DefaultStateDir(env map[string]string) (string, error) {
	// A relative XDG_STATE_HOME is to be ignored (the XDG spec), and a
	// relative home would put journals and locks under whatever directory the
	// run starts in, where the next run would not find them.
	if x := env["XDG_STATE_HOME"]; filepath.IsAbs(x) {
		return filepath.Join(x, "runbook"), nil
	}
	home := env["HOME"]
	if !filepath.IsAbs(home) {
		return "", &ConfigError{Msg: "no state directory: HOME is not set to an absolute path (nor XDG_STATE_HOME); give one with --state-dir, where journals and locks are kept between runs"}
	}
	return filepath.Join(home, ".local", "state", "runbook"), nil
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
	real, key, err := runbookKey(file)
	if err != nil {
		return nil, err
	}
	s := &Store{dir: stateDir, file: file, real: real, fileKey: key, rehearsal: rehearsal}
	s.key, s.lockFile = key+s.simSuffix(), key+s.simSuffix()+".lock"
	return s, nil
}

// Named makes the store's lock the runbook's lock: name (LockName) instead of
// its file's, and its journals those of the file under that name: a resume
// continues the run of the same target, and runs of the file on other
// targets have journals of their own. Call it once, before Lock.
func (s *Store) Named(name string) {
	k := lockKey(name) + s.simSuffix()
	s.lockName, s.lockFile, s.key = name, "named-"+k+".lock", s.fileKey+"~"+k
}

func (s *Store) simSuffix() string {
	if s.rehearsal {
		return "-sim"
	}
	return ""
}

// runbookKey is the runbook's real path, and its name in the state dir: its
// file's name and a hash of the real path.
func runbookKey(file string) (real, key string, err error) {
	real, err = filepath.EvalSymlinks(file)
	if err != nil {
		return "", "", &ReadError{What: "runbook", File: file, Err: err}
	}
	if real, err = filepath.Abs(real); err != nil {
		return "", "", &ReadError{What: "runbook", File: file, Err: err}
	}
	sum := sha256.Sum256([]byte(real))
	return real, strings.TrimSuffix(filepath.Base(real), filepath.Ext(real)) + "-" + hex.EncodeToString(sum[:6]), nil
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

// Store is where one runbook's journals and locks live: a checked state dir,
// and the runbook's key in it.
type Store struct {
	dir       string // the state dir
	file      string // the runbook as named on the command line, for messages
	real      string // the runbook's real path
	fileKey   string // the runbook's name and a hash of its real path
	key       string // its journals' directory: fileKey, with the lock name's key (Named) and -sim
	lockFile  string // the lock's file in STATE/locks
	lockName  string // the runbook's lock: name; "": the runbook file is locked
	rehearsal bool   // --sim
}

// runsDir is where the runbook's run files are.
func (s *Store) runsDir() string { return filepath.Join(s.dir, "runs", s.key) }

// Last reads the newest run of the runbook; nil when it has none. A file
// without a run_started record is a run stopped before it began (its start is
// its last record of setting up), and is passed over.
func (s *Store) Last() (*RunLog, error) {
	return s.last(false)
}

// LastSummary is Last with the run-level records only (its start and end,
// the steps done and failed, the pauses): what a new run reads of the last,
// at a cost that does not grow with its fleet. FindResume reads the rest.
func (s *Store) LastSummary() (*RunLog, error) {
	return s.last(true)
}

func (s *Store) last(brief bool) (*RunLog, error) {
	files, err := s.runFiles()
	if err != nil {
		return nil, err
	}
	for i := len(files) - 1; i >= 0; i-- {
		path := filepath.Join(s.runsDir(), files[i].name)
		log, err := readJournal(path, brief)
		if err != nil {
			return nil, &ConfigError{Msg: fmt.Sprintf("cannot read the journal %s: %v", path, err)}
		}
		if _, ok := log.started(); ok {
			return log, nil
		}
	}
	return nil, nil
}

// runFile is one run's journal: <seq>-<run id>.jsonl. The sequence number is
// taken under the lock, so it orders runs as they began whatever the clock
// says.
type runFile struct {
	seq  int
	name string
}

// runFiles lists the runbook's journals, oldest first, in directories that
// must be this user's own.
func (s *Store) runFiles() ([]runFile, error) {
	for _, d := range []string{filepath.Dir(s.runsDir()), s.runsDir()} {
		if err := ownDir(d, false); err != nil {
			return nil, err
		}
	}
	return listRuns(s.runsDir())
}

// listRuns lists the journals in dir, oldest first; none if dir is missing.
func listRuns(dir string) ([]runFile, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, &ConfigError{Msg: fmt.Sprintf("cannot read the journals in %s: %v", dir, err)}
	}
	var files []runFile
	for _, e := range entries {
		seq, _, ok := strings.Cut(e.Name(), "-")
		n, err := strconv.Atoi(seq)
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".jsonl") && ok && err == nil {
			files = append(files, runFile{n, e.Name()})
		}
	}
	slices.SortFunc(files, func(a, b runFile) int { return a.seq - b.seq })
	return files, nil
}

// Create creates the journal of a new run, numbered after the last one: a
// file of its own, which nothing else may already be (O_EXCL), never through
// a symlink; the directories are synced so that the file outlives a crash. It
// must be called under the runbook's lock.
func (s *Store) Create(runID string) (*Journal, error) {
	dir := s.runsDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := ownDir(d, true); err != nil {
			return nil, err
		}
	}
	files, err := s.runFiles()
	if err != nil {
		return nil, err
	}
	seq := 1
	if len(files) > 0 {
		seq = files[len(files)-1].seq + 1
	}
	path := filepath.Join(dir, fmt.Sprintf("%06d-%s.jsonl", seq, runID))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, &JournalError{Path: path, Err: err}
	}
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := syncDir(d); err != nil {
			f.Close()
			return nil, &JournalError{Path: path, Err: err}
		}
	}
	return &Journal{f: f, path: path}, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
