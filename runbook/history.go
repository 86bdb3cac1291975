package runbook

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Past runs, as their journals tell them (`runbook history`), and the pruning
// of old journals (`run --keep-runs`).

// PastRun is one run as its journal tells it.
type PastRun struct {
	RunID       string    `json:"run_id"`
	Runbook     string    `json:"runbook"` // its name, else its file
	File        string    `json:"file"`
	Rehearsal   bool      `json:"rehearsal,omitempty"` // a --sim run
	Start       time.Time `json:"start"`
	End         time.Time `json:"end,omitzero"` // zero: no end journaled
	Result      string    `json:"result"`       // ok, failed, stopped, running, cut off
	ExitCode    *int      `json:"exit_code,omitempty"`
	FailedStep  int       `json:"failed_step,omitempty"`
	StepName    string    `json:"failed_step_name,omitempty"`
	Error       string    `json:"error,omitempty"` // redacted, as journaled
	ResumedFrom string    `json:"resumed_from,omitempty"`
	Journal     string    `json:"journal"`
}

// Duration is how long the run took; 0 when it journaled no end.
func (p PastRun) Duration() time.Duration {
	if p.End.IsZero() {
		return 0
	}
	return p.End.Sub(p.Start)
}

// pastRun reads a run's journal into a PastRun; ok is false for a file that
// journaled no start (a run stopped before it began). holder is the pid that
// holds the runbook's lock now (0: none).
func pastRun(log *RunLog, holder int) (PastRun, bool) {
	start, ok := log.started()
	if !ok {
		return PastRun{}, false
	}
	p := PastRun{RunID: start.RunID, Runbook: start.Name, File: start.File, Start: start.Time,
		ResumedFrom: start.ResumedFrom, Journal: log.Path, Result: "cut off"}
	if p.Runbook == "" {
		p.Runbook = start.File
	}
	for _, r := range log.Records {
		switch r.Type {
		case recRunDone:
			p.End, p.Result, p.Error = r.Time, r.Outcome, r.Error
			if r.Outcome != "ok" {
				p.FailedStep = r.Step
			}
		case recStepFailed:
			if r.Path == "" && p.StepName == "" {
				// The main step's: the first, since cleanup steps that
				// failed after it are journaled too.
				p.StepName = r.StepName
			}
		case recExit:
			p.ExitCode = r.Exit
		}
	}
	if p.End.IsZero() && holder != 0 && holder == start.PID {
		p.Result = "running"
	}
	if p.FailedStep == 0 {
		p.StepName = ""
	}
	return p, true
}

// History reads the past runs in the state dir, oldest first: of the runbook
// file (its real runs and its --sim rehearsals), or of every runbook when file
// is "". It creates nothing; a missing state dir has no runs. The state dir is
// checked as a run checks it.
func History(stateDir string, explicit bool, file string) ([]PastRun, error) {
	if _, err := os.Stat(stateDir); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err := ownedDir(stateDir); err != nil {
		return nil, err
	}
	if !explicit {
		if err := ownDir(stateDir, false); err != nil {
			return nil, err
		}
	}
	runs := filepath.Join(stateDir, "runs")
	if err := ownDir(runs, false); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(runs)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, &ConfigError{Msg: fmt.Sprintf("cannot read the journals in %s: %v", runs, err)}
	}
	fileKey := ""
	if file != "" {
		if _, fileKey, err = runbookKey(file); err != nil {
			return nil, err
		}
	}
	var keys []string
	for _, e := range entries {
		// A file's runs: its own, its rehearsals', and those of each target
		// its lock: names (fileKey~name).
		if k := e.Name(); e.IsDir() && (file == "" || k == fileKey || k == fileKey+"-sim" || strings.HasPrefix(k, fileKey+"~")) {
			keys = append(keys, k)
		}
	}
	var out []PastRun
	for _, key := range keys {
		dir := filepath.Join(runs, key)
		if err := ownDir(dir, false); err != nil {
			return nil, err
		}
		files, err := listRuns(dir)
		if err != nil {
			return nil, err
		}
		lockFile := key + ".lock"
		if i := strings.LastIndex(key, "~"); i >= 0 {
			lockFile = "named-" + key[i+1:] + ".lock" // as Store.Named names it
		}
		holder := lockHolder(filepath.Join(stateDir, "locks", lockFile))
		for i, f := range files {
			log, err := readJournal(filepath.Join(dir, f.name), true)
			if err != nil {
				return nil, &ConfigError{Msg: fmt.Sprintf("cannot read the journal %s: %v", filepath.Join(dir, f.name), err)}
			}
			h := 0
			if i == len(files)-1 {
				h = holder // only the newest run can be the one holding the lock
			}
			if p, ok := pastRun(log, h); ok {
				p.Rehearsal = strings.HasSuffix(key, "-sim")
				out = append(out, p)
			}
		}
	}
	slices.SortStableFunc(out, func(a, b PastRun) int { return a.Start.Compare(b.Start) })
	return out, nil
}

// lockHolder is the pid a lock file names, if that process is alive; 0 when
// none. It reads the file and takes no lock, so a run starting meanwhile is
// not refused.
func lockHolder(path string) int {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return 0
	}
	defer f.Close()
	b := make([]byte, 200)
	n, _ := f.Read(b)
	var pid int
	if _, err := fmt.Sscanf(string(b[:n]), "pid %d,", &pid); err != nil || pid <= 0 {
		return 0
	}
	if err := unix.Kill(pid, 0); err != nil && !errors.Is(err, unix.EPERM) {
		return 0
	}
	return pid
}

// Prune removes the runbook's oldest journals so that at most keep remain
// (0: keep all), and never the one at protect (the run being resumed, or the
// newest that began, whose pauses and unfinished state a next run reads). It
// must be called under the runbook's lock, which no other run then holds, with
// this run's journal already created: the newest file is this run's and is
// kept. It returns the journals it removed; one it could not remove is an
// error, and the rest are still tried.
func (s *Store) Prune(keep int, protect string) ([]string, error) {
	if keep <= 0 {
		return nil, nil
	}
	files, err := s.runFiles()
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for i := 0; i < len(files)-keep; i++ {
		path := filepath.Join(s.runsDir(), files[i].name)
		if path == protect {
			continue
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, path)
	}
	return removed, errors.Join(errs...)
}

// LastSuccess is when the newest run of the runbook that succeeded ended;
// zero when none of its journals shows one. It reads journals newest first
// and stops at that run.
func (s *Store) LastSuccess() time.Time {
	files, err := s.runFiles()
	if err != nil {
		return time.Time{}
	}
	for i := len(files) - 1; i >= 0; i-- {
		log, err := readJournal(filepath.Join(s.runsDir(), files[i].name), true)
		if err != nil {
			continue
		}
		if t, ok := log.finished(); ok {
			return t
		}
	}
	return time.Time{}
}
