package runbook

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gofrs/flock"
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

// stateKey names a runbook's journal and lock: its base name and a hash of its
// absolute path, so two runbooks of the same name never share them.
func stateKey(file string) string {
	abs, err := filepath.Abs(file)
	if err != nil {
		abs = file
	}
	sum := sha256.Sum256([]byte(abs))
	base := strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
	return base + "-" + hex.EncodeToString(sum[:6])
}

// NewRunID returns a fresh run id: the start time and a random suffix.
func NewRunID(now time.Time) string {
	var b [3]byte
	rand.Read(b[:])
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// Record is one line of the journal.
type Record struct {
	Time        time.Time         `json:"time"`
	RunID       string            `json:"run_id"`
	Type        string            `json:"type"` // run_started, step_started, step_done, step_failed, run_done
	File        string            `json:"file,omitempty"`
	Hash        string            `json:"hash,omitempty"`
	Name        string            `json:"name,omitempty"`
	PID         int               `json:"pid,omitempty"`
	Vars        map[string]string `json:"vars,omitempty"`        // --var overrides
	SecretVars  []string          `json:"secret_vars,omitempty"` // --var names whose values are secrets (not journaled)
	ResumedFrom string            `json:"resumed_from,omitempty"`
	Step        int               `json:"step,omitempty"`
	StepName    string            `json:"step_name,omitempty"`
	StepID      string            `json:"step_id,omitempty"`
	Result      any               `json:"result,omitempty"` // steps.<id>, with outputs
	Status      string            `json:"status,omitempty"` // run_done: ok, failed, stopped
	Error       string            `json:"error,omitempty"`
}

// Journal appends a runbook's runs, a JSON line per record, to
// <state>/runs/<key>.jsonl (mode 0600). Each record is written whole and synced,
// so a crash loses at most the record being written, and a torn last line is
// skipped when the journal is read.
type Journal struct {
	mu     sync.Mutex
	f      *os.File
	path   string
	redact *Redactor
}

// OpenJournal opens (creating it, 0700/0600) the journal of a runbook file.
func OpenJournal(stateDir, file string) (*Journal, error) {
	dir := filepath.Join(stateDir, "runs")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, &ConfigError{Msg: fmt.Sprintf("cannot create the state directory %s: %v (set --state-dir)", dir, err)}
	}
	path := filepath.Join(dir, stateKey(file)+".jsonl")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, &ConfigError{Msg: fmt.Sprintf("cannot open the journal %s: %v (set --state-dir)", path, err)}
	}
	// A torn last line from a crash must not swallow the next record.
	if st, err := f.Stat(); err == nil && st.Size() > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, st.Size()-1); err == nil && last[0] != '\n' {
			f.Write([]byte("\n"))
		}
	}
	return &Journal{f: f, path: path}, nil
}

// Path is the journal's file.
func (j *Journal) Path() string { return j.path }

// Close closes the file.
func (j *Journal) Close() error { return j.f.Close() }

// write appends one record, redacted, in one write, and syncs it.
func (j *Journal) write(rec Record) error {
	if j == nil {
		return nil
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	line := []byte(j.redact.String(string(b)) + "\n")
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, err := j.f.Write(line); err != nil {
		return err
	}
	return j.f.Sync()
}

// ReadJournal reads the records of a journal file, skipping a torn line.
func ReadJournal(path string) ([]Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Record
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			var rec Record
			if json.Unmarshal(line, &rec) == nil {
				out = append(out, rec)
			}
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// Resume is what --resume carries over from an unfinished run: the results of
// the steps it completed, and the step that was in flight.
type Resume struct {
	RunID      string
	Vars       map[string]string
	SecretVars []string    // must be given again with --var
	Results    map[int]any // step index -> steps.<id>
	Next       int         // the first step to run again (1-based)
}

// FindResume finds the last run of this runbook in its journal; it must be
// unfinished and of the same file content.
func FindResume(j *Journal, rb *Runbook) (*Resume, error) {
	recs, err := ReadJournal(j.path)
	if err != nil {
		return nil, err
	}
	last := -1
	for i, r := range recs {
		if r.Type == "run_started" {
			last = i
		}
	}
	if last < 0 {
		return nil, &UsageError{Msg: fmt.Sprintf("nothing to resume: %s has no run in %s", rb.File, j.path)}
	}
	start := recs[last]
	res := &Resume{RunID: start.RunID, Vars: start.Vars, SecretVars: start.SecretVars, Results: map[int]any{}, Next: 1}
	for _, r := range recs[last+1:] {
		if r.RunID != start.RunID {
			continue
		}
		switch r.Type {
		case "step_done":
			res.Results[r.Step] = r.Result
			res.Next = max(res.Next, r.Step+1)
		case "run_done":
			if r.Status == "ok" {
				return nil, &UsageError{Msg: fmt.Sprintf("nothing to resume: the last run of %s (%s) finished at %s; run it without --resume",
					rb.File, start.RunID, r.Time.Local().Format("2006-01-02 15:04:05"))}
			}
		}
	}
	if start.Hash != rb.Hash {
		return nil, &UsageError{Msg: fmt.Sprintf("cannot resume run %s: %s has changed since it started (its content differs); run it again without --resume, or restore the file",
			start.RunID, rb.File)}
	}
	return res, nil
}

// Lock is the exclusive lock a run holds on its runbook, so two runs of one
// runbook never interleave their changes.
type Lock struct {
	fl     *flock.Flock
	holder string
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

// AcquireLock takes the runbook's lock, waiting up to wait for it (and saying so
// on waiting). The holder's pid and start time are written beside it, to name it
// to whoever waits.
func AcquireLock(ctx context.Context, stateDir, file string, wait time.Duration, waiting io.Writer) (*Lock, error) {
	dir := filepath.Join(stateDir, "locks")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, &ConfigError{Msg: fmt.Sprintf("cannot create the state directory %s: %v (set --state-dir)", dir, err)}
	}
	path := filepath.Join(dir, stateKey(file)+".lock")
	fl := flock.New(path, flock.SetPermissions(0o600))
	holderPath := path + ".holder"
	holder := func() string {
		if b, err := os.ReadFile(holderPath); err == nil {
			return strings.TrimSpace(string(b))
		}
		return "holder unknown"
	}
	ok, err := fl.TryLock()
	if err == nil && !ok && wait > 0 {
		fmt.Fprintf(waiting, "runbook: waiting up to %s for the lock of %s, held by %s\n", fmtDur(wait), file, holder())
		wctx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		ok, err = fl.TryLockContext(wctx, 200*time.Millisecond)
		if errors.Is(err, context.DeadlineExceeded) {
			err = nil
		}
	}
	if ctx.Err() != nil {
		// Stopped (Ctrl-C) while waiting for the lock: say so, with its exit code.
		if cause := context.Cause(ctx); cause != nil {
			return nil, cause
		}
		return nil, ctx.Err()
	}
	if err != nil {
		return nil, &ConfigError{Msg: fmt.Sprintf("cannot lock %s: %v", path, err)}
	}
	if !ok {
		return nil, &LockedError{File: file, Holder: holder(), Waited: wait}
	}
	os.WriteFile(holderPath, []byte(fmt.Sprintf("pid %d, started %s\n", os.Getpid(), time.Now().Format("2006-01-02 15:04:05 MST"))), 0o600)
	return &Lock{fl: fl, holder: holderPath}, nil
}

// Release gives the lock up.
func (l *Lock) Release() {
	if l == nil {
		return
	}
	os.Remove(l.holder)
	l.fl.Unlock()
}
