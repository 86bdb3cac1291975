package runbook

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The journal is written ahead of every change, so that a run killed at any
// instant can be resumed without sending a change twice or skipping one:
//
//   - every record is one JSON line, written whole with one write and synced
//     (fsync) before the executor goes on; a record that cannot be written
//     stops the run before its next request (exit 74);
//   - the intent of a change (step, item, attempt, target and the `before` its
//     wait compares with) is synced before the request is sent, and its answer
//     after it comes back; a Retry-After pause is synced when it begins;
//   - each run has a file of its own, created with O_EXCL and O_NOFOLLOW, and
//     the directory is synced once it exists, so the file survives a crash;
//   - a record holds at most maxRecord bytes: what does not fit (a large body,
//     a large `before`) is left out and named in `omitted`.
//
// A resume reads only the newest run's file, so it costs the same however long
// the history.

// maxRecord bounds one journal line.
const maxRecord = 1 << 20

// Record types.
const (
	recRunStarted  = "run_started"
	recStepStarted = "step_started"
	recIntent      = "intent" // a change is about to be sent
	recAnswer      = "answer" // what came back, or that nothing did
	recPause       = "pause"  // a host asked for a pause until Until
	recItemDone    = "item_done"
	recStepDone    = "step_done"
	recStepFailed  = "step_failed"
	recCleanup     = "cleanup" // the cleanup list in Outcome begins: what follows is not a main step
	recRunDone     = "run_done"
	recExit        = "exit" // the process's exit code, which only the command line knows
)

// Record is one line of the journal.
type Record struct {
	Time        time.Time         `json:"time"`
	RunID       string            `json:"run_id"`
	Type        string            `json:"type"`
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
	Item        *int              `json:"item,omitempty"`     // a for_each item's index
	ItemKey     string            `json:"item_key,omitempty"` // and what it is: a hash of its value
	// Path is the uses: frame of a used runbook's step: the using steps from
	// the top level down, each with its item's key, "3", "3@<key>",
	// "3@<key>/2"; "" for a top-level step. Step, Item and ItemKey are then
	// the used runbook's own.
	Path string `json:"path,omitempty"`

	// intent and answer
	Attempt  int            `json:"attempt,omitempty"`
	Target   string         `json:"target,omitempty"`          // "POST https://host/path"
	Before   any            `json:"before,omitempty"`          // intent: the state the wait compares with
	Status   int            `json:"status,omitempty"`          // answer: the HTTP status
	Accepted bool           `json:"accepted,omitempty"`        // answer: the kind's own success
	Written  bool           `json:"written,omitempty"`         // answer with Error: the request had been written
	Response map[string]any `json:"response,omitempty"`        // answer: `response`
	Monitor  string         `json:"monitor,omitempty"`         // answer: the status monitor it names, which a resume polls
	Key      string         `json:"idempotency_key,omitempty"` // intent: the Idempotency-Key, which a re-send repeats

	Host  string    `json:"host,omitempty"` // pause
	Until time.Time `json:"until,omitzero"` // pause: wall-clock time

	Result  any      `json:"result,omitempty"`  // steps.<id>, or one item's
	Omitted []string `json:"omitted,omitempty"` // parts left out to fit maxRecord
	Outcome string   `json:"outcome,omitempty"` // run_done: ok, failed, stopped
	Error   string   `json:"error,omitempty"`
	Exit    *int     `json:"exit_code,omitempty"` // exit: the process's exit code
}

// NewRunID returns a fresh run id: the start time and a random suffix.
func NewRunID(now time.Time) string {
	var b [3]byte
	rand.Read(b[:])
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// syncFile is what a journal writes to: an *os.File, or a test's stand-in.
type syncFile interface {
	io.Writer
	Sync() error
	Close() error
}

// Journal appends one run's records to its own file.
type Journal struct {
	mu     sync.Mutex
	f      syncFile
	path   string
	redact *Redactor
	err    error // the first write that failed: nothing is written after it
}

// JournalError is a journal record that could not be written (exit 74): the
// run sends nothing more, since a resume could not tell what it sent.
type JournalError struct {
	Path string
	Err  error
}

func (e *JournalError) Error() string {
	return fmt.Sprintf("the journal %s cannot be written (%v): nothing more is sent, so that a resume knows what was; free some space or fix the state dir, then continue with --resume", e.Path, e.Err)
}
func (e *JournalError) Unwrap() error { return e.Err }
func (e *JournalError) ExitCode() int { return ExitIOErr }

// Path is the journal's file.
func (j *Journal) Path() string { return j.path }

// Close closes the file.
func (j *Journal) Close() error { return j.f.Close() }

// Exit journals the exit code the run ends with, after its end, for
// `runbook history`. It is best effort: a resume does not read it.
func (j *Journal) Exit(runID string, code int) error {
	return j.write(Record{Time: time.Now(), RunID: runID, Type: recExit, Exit: &code})
}

// Err is the first write error, if any.
func (j *Journal) Err() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.err
}

// write appends records, each redacted and cut to maxRecord, in one write,
// and syncs them once. After a failure every write fails the same way.
func (j *Journal) write(recs ...Record) error {
	var lines []byte
	for _, rec := range recs {
		line, err := j.encode(rec)
		if err != nil {
			return err
		}
		lines = append(lines, line...)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err != nil {
		return j.err
	}
	if _, err := j.f.Write(lines); err != nil {
		j.err = &JournalError{Path: j.path, Err: err}
		return j.err
	}
	if err := j.f.Sync(); err != nil {
		j.err = &JournalError{Path: j.path, Err: err}
		return j.err
	}
	return nil
}

// encode marshals a record, redacted; a record over maxRecord loses its large
// parts, which it names, so that no line grows without bound.
func (j *Journal) encode(rec Record) ([]byte, error) {
	rec = j.redact.record(rec)
	for _, drop := range []func(*Record) bool{nil, dropBodies, dropAll} {
		if drop != nil && !drop(&rec) {
			continue
		}
		b, err := json.Marshal(rec)
		if err != nil {
			return nil, &JournalError{Path: j.path, Err: err}
		}
		if line := append(b, '\n'); len(line) <= maxRecord {
			return line, nil
		}
	}
	return nil, &JournalError{Path: j.path, Err: errors.New("a record is too large even without its answer")}
}

// dropBodies leaves out the answer's body and the state before the change:
// the parts that grow with the server's answers.
func dropBodies(rec *Record) bool {
	changed := false
	if rec.Before != nil {
		rec.Before, rec.Omitted, changed = nil, append(rec.Omitted, "before"), true
	}
	if rec.Response != nil {
		if _, ok := rec.Response["body"]; ok {
			rec.Response = withoutBody(rec.Response)
			rec.Omitted, changed = append(rec.Omitted, "response.body"), true
		}
	}
	if res, ok := rec.Result.(map[string]any); ok {
		if resp, ok := res["response"].(map[string]any); ok {
			res = copyMap(res)
			res["response"] = withoutBody(resp)
			res["state"] = nil
			rec.Result = res
			rec.Omitted, changed = append(rec.Omitted, "result.response.body"), true
		}
	}
	return changed
}

// dropAll leaves out the answer and the result whole.
func dropAll(rec *Record) bool {
	if rec.Response == nil && rec.Result == nil {
		return false
	}
	if rec.Response != nil {
		rec.Response, rec.Omitted = nil, append(rec.Omitted, "response")
	}
	if rec.Result != nil {
		rec.Result, rec.Omitted = nil, append(rec.Omitted, "result")
	}
	return true
}

func withoutBody(resp map[string]any) map[string]any {
	out := copyMap(resp)
	delete(out, "body")
	delete(out, "stdout")
	delete(out, "json")
	return out
}

func copyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// maxLine bounds a line read back: a record is at most maxRecord, so a longer
// line is not ours and is skipped.
const maxLine = maxRecord + 1024

// readRecords reads the records of a journal file. Only the last line may be
// torn by a crash, and is skipped; damaged is the number of the first other
// line that does not read (0: none), which a resume must not pass over.
// With brief, it keeps only the run-level records (runLevel), without their
// answers.
func readRecords(r io.Reader, brief bool) (recs []Record, damaged int, err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	bad := 0
	for n := 1; ; n++ {
		line, err := readLine(br)
		if len(bytes.TrimSpace(line)) > 0 {
			rec, ok := decodeRecord(line, brief)
			if ok {
				if !brief || slices.Contains(runLevel, rec.Type) {
					recs = append(recs, rec)
				}
				if bad > 0 && damaged == 0 {
					damaged = bad
				}
			} else {
				bad = n
			}
		}
		if err == io.EOF {
			return recs, damaged, nil
		}
		if err != nil {
			return recs, damaged, err
		}
	}
}

func decodeRecord(line []byte, brief bool) (Record, bool) {
	if brief {
		var b briefRecord
		err := json.Unmarshal(line, &b)
		return b.Record, err == nil && b.Type != ""
	}
	var rec Record
	err := json.Unmarshal(line, &rec)
	return rec, err == nil && rec.Type != ""
}

// runLevel are the records that tell what became of a run: whether it
// started and ended, the steps done or failed, where cleanup began, the
// pauses. They are a few, whatever the fleet; the rest (a fleet's items, its
// changes and answers, 12 MB for 5000 VMs) only a resume reads.
var runLevel = []string{recRunStarted, recStepDone, recStepFailed, recCleanup, recPause, recRunDone, recExit}

// briefRecord reads a record without its answers: its fields hide Record's
// of the same names, and pass over their values without decoding them.
type briefRecord struct {
	Record
	Before   unread `json:"before"`
	Response unread `json:"response"`
	Result   unread `json:"result"`
}

type unread struct{}

func (*unread) UnmarshalJSON([]byte) error { return nil }

// readLine reads one line of at most maxLine bytes; a longer one is skipped
// whole and read as empty.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	long := false
	for {
		chunk, err := br.ReadSlice('\n')
		if !long {
			if len(line)+len(chunk) > maxLine {
				long, line = true, nil
			} else {
				line = append(line, chunk...)
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		return line, err
	}
}

// ReadJournal reads one journal file.
func ReadJournal(path string) (*RunLog, error) {
	return readJournal(path, false)
}

// readJournal reads one journal file, whole or, with brief, its run-level
// records only.
func readJournal(path string, brief bool) (*RunLog, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	recs, damaged, err := readRecords(f, brief)
	return &RunLog{Path: path, Records: recs, Damaged: damaged, brief: brief}, err
}

// RunLog is the journal of one run, as read back.
type RunLog struct {
	Path    string
	Records []Record
	Damaged int  // the first line, not the last, that does not read; 0: none
	brief   bool // Records are the run-level ones only: FindResume reads the file again
}

// started is the run's run_started record; ok is false for a file without one.
func (l *RunLog) started() (Record, bool) {
	for _, r := range l.Records {
		if r.Type == recRunStarted {
			return r, true
		}
	}
	return Record{}, false
}

// mainRecords are the records of the main steps: those before the first
// cleanup list began. A resume continues the main steps; cleanup runs anew.
func (l *RunLog) mainRecords() []Record {
	// Up to the run's cleanup, unless a used runbook's began first: a prefix,
	// not a copy, which for a fleet is megabytes.
	i := slices.IndexFunc(l.Records, func(r Record) bool { return r.Type == recCleanup })
	switch {
	case i < 0:
		return l.Records
	case l.Records[i].Path == "":
		return l.Records[:i:i]
	}
	var out []Record
	var cut []string // frames whose cleanup began: the used runbooks' paths
	for _, r := range l.Records {
		if r.Type == recCleanup {
			if r.Path == "" {
				return out // all that follows is the run's cleanup
			}
			cut = append(cut, r.Path)
			continue
		}
		if slices.ContainsFunc(cut, func(p string) bool { return r.Path == p || strings.HasPrefix(r.Path, p+"/") }) {
			continue
		}
		out = append(out, r)
	}
	return out
}

// finished says whether the run ended well, and when.
func (l *RunLog) finished() (time.Time, bool) {
	for _, r := range l.Records {
		if r.Type == recRunDone && r.Outcome == "ok" {
			return r.Time, true
		}
	}
	return time.Time{}, false
}

// Unfinished says whether the run ended before its last step, how ("failed",
// "stopped", or "was cut off" when it journaled no end) and at which step: a
// fresh run warns that it leaves such a run behind.
func (l *RunLog) Unfinished() (runID, how string, step int, ok bool) {
	if l == nil {
		return "", "", 0, false
	}
	start, found := l.started()
	if !found {
		return "", "", 0, false
	}
	if _, done := l.finished(); done {
		return "", "", 0, false
	}
	step, how = 1, "was cut off"
	for _, r := range l.mainRecords() {
		if r.Type == recStepDone && r.Path == "" {
			step = max(step, r.Step+1)
		}
	}
	for _, r := range l.Records {
		if r.Type == recRunDone {
			how = r.Outcome
		}
	}
	return start.RunID, how, step, true
}

// Pauses are the Retry-After pauses the run journaled that have not ended by
// now: a resume, or a new run of the same runbook, waits them out.
func (l *RunLog) Pauses(now time.Time) map[string]time.Time {
	out := map[string]time.Time{}
	if l == nil {
		return out
	}
	for _, r := range l.Records {
		if r.Type == recPause && r.Until.After(now) && r.Until.After(out[r.Host]) {
			out[r.Host] = r.Until
		}
	}
	return out
}
