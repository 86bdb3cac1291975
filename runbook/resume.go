package runbook

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The executor's side of the journal: what a run journals as it goes, and how
// a resumed run takes over from the one that stopped.

// inherit journals what the run takes over from earlier runs (a resumed run's
// completed steps and items and the changes it had in flight, and any
// Retry-After pause that has not ended), so that this run can be resumed in
// turn without the older one, and then its start. The start comes last: a run
// stopped before it is not taken for a run at all, and the older one is
// resumed instead.
func (r *run) inherit(started Record, pauses map[string]time.Time) error {
	var recs []Record
	if r.resume != nil {
		recs = append(recs, r.resume.carry...)
	}
	for _, host := range slices.Sorted(maps.Keys(pauses)) {
		if t := r.clockTime(pauses[host]); r.pauses.extend(host, t) {
			recs = append(recs, Record{Type: recPause, Host: host, Until: pauses[host]})
		}
	}
	// One write, one sync: a fleet's inheritance is many records.
	return r.record(append(recs, started)...)
}

// clockTime converts a wall-clock time to the run's clock, which --sim scales.
func (r *run) clockTime(wall time.Time) time.Time {
	d := time.Until(wall)
	if real := r.clock.Real(time.Hour); real > 0 && real != time.Hour {
		// Rounded up: a pause must never end early, not even by a nanosecond.
		d = time.Duration(math.Ceil(float64(d) * float64(time.Hour) / float64(real)))
	}
	return r.clock.Now().Add(d)
}

// restore carries a step completed by the resumed run over into this one; it
// is false for a completed read whose answer was too large to journal, which
// is read again (reads are safe to repeat, changes are never).
func (r *run) restore(s *Step) bool {
	if r.resume.reread[s.Index] && !s.Action.Info().SideEffects {
		return false
	}
	res := r.resume.results[s.Index]
	if s.ID != "" {
		if s.ForEach != nil {
			res = r.resume.itemResults(s.Index)
		}
		r.steps[s.ID] = res
	}
	r.emit(Event{Type: StepSkipped, Step: s.Index, StepName: r.names[s.Index], StepID: s.ID,
		Reason: "done in run " + r.resume.RunID})
	return true
}

// flight is what the resumed run journaled of the change of step s (the item
// of this key, "" for none) it was sending when it stopped; nil when none.
func (r *run) flight(s *Step, key string) *flight {
	if r.resume == nil || s.Index != r.resume.Next {
		return nil
	}
	return r.resume.flights[key]
}

// itemKeys names each for_each item by what it is, for the journal: a hash of
// its value, and which occurrence of that value it is.
func itemKeys(items []any) []string {
	keys := make([]string, len(items))
	seen := map[string]int{}
	for i, item := range items {
		b, _ := json.Marshal(item)
		sum := sha256.Sum256(b)
		h := hex.EncodeToString(sum[:8])
		keys[i] = fmt.Sprintf("%s.%d", h, seen[h])
		seen[h]++
	}
	return keys
}

// recover carries on with a change the stopped run journaled, as that run
// would have: an answer that refused the change (a 4xx, a 423, a busy 422)
// means it was not made, and the step runs as new; an answer that accepted it
// goes where that answer leads (the wait). With no answer, or one that leaves
// it unknown (a 5xx, a connection lost after the request was written), the
// change may or may not have been made, as after an ambiguous failure: an
// idempotent change is sent again (from its guard); any other is judged by
// its wait from the journaled `before`, and not sent again unless it shows.
func (p *pipeline) recover(ctx context.Context, f *flight, idempotent bool) (move, error) {
	a := f.answer
	target := f.intent.Target
	p.attempts = f.intent.Attempt
	p.scope["attempt"] = p.attempts
	// A re-send carries the key the stopped run sent, so the API can tell
	// it is the same request.
	p.key = f.intent.Key
	if a != nil && refused(a) {
		what := fmt.Sprintf("the stopped run's %s was answered %s, so it was not made: sending it as new", target, journaledAnswer(a))
		if a.Status == 0 {
			what = fmt.Sprintf("the stopped run's %s did not start (%s): running it again", target, journaledAnswer(a))
		}
		p.emit(Event{Type: LogLine, Reason: what})
		return resend, nil
	}
	if a != nil && a.Accepted {
		p.before = f.intent.Before
		p.scope["before"] = p.before
		out := replay(a)
		p.took(out)
		p.emit(Event{Type: LogLine, Reason: fmt.Sprintf("the stopped run's %s was accepted (%s): waiting for it to take effect, not sending it again", target, journaledAnswer(a))})
		return p.answered(ctx, out, idempotent)
	}
	why := "no answer was journaled"
	if a != nil {
		why = "it was answered " + journaledAnswer(a)
	}
	if idempotent {
		p.emit(Event{Type: LogLine, Reason: fmt.Sprintf("the stopped run may have sent %s (%s); it is idempotent: sending it again", target, why)})
		return resend, nil
	}
	p.before = f.intent.Before
	p.scope["before"] = p.before
	if a != nil && a.Response != nil {
		p.took(replay(a))
	}
	method := p.what()
	refuse := func(what string) error {
		return p.failure(Failed, nil, fmt.Sprintf("the stopped run may have sent %s (%s), and %s; %s is not idempotent, so it was not re-sent. Check the resource before running again; set retry.idempotent: true if re-sending is safe",
			target, why, what, method))
	}
	w := p.s.Wait
	switch {
	case !w.On:
		return 0, refuse("nothing tells whether it took effect (the step has no wait_for)")
	case slices.Contains(f.intent.Omitted, "before"):
		return 0, refuse("the state before it was too large to journal, so its effect cannot be judged")
	}
	if check := p.waitCheck(); check != nil {
		if _, err := check.Prepare(p.scope); err != nil {
			return 0, refuse("its wait's check reads the answer, which never came, so nothing can tell")
		}
	}
	p.emit(Event{Type: LogLine, Reason: fmt.Sprintf("the stopped run may have sent %s (%s): checking whether it took effect", target, why)})
	v, err := p.waitNotBusyThenCheck(ctx, nil, 0)
	if err != nil {
		return 0, err
	}
	if v != done {
		return 0, refuse(fmt.Sprintf("it does not show (%s does not hold)", w.Until.Source))
	}
	p.emit(Event{Type: LogLine, Reason: fmt.Sprintf("the change the stopped run may have sent (%s) shows, %s holds: not sent again", target, w.Until.Source)})
	return done, nil
}

// refused says whether a journaled answer shows the change was not made: a
// client error (busy, locked and throttled included), or a request that was
// never written.
func refused(a *Record) bool {
	if a.Error != "" {
		return !a.Written
	}
	return !a.Accepted && a.Status >= 400 && a.Status < 500 && a.Status != http.StatusRequestTimeout
}

// replay rebuilds the outcome of a journaled answer.
func replay(a *Record) *Outcome {
	out := &Outcome{Status: a.Status, Accepted: a.Accepted, Response: a.Response, Monitor: a.Monitor}
	if a.Response != nil {
		out.Body = a.Response["body"]
		if out.Body == nil {
			out.Body = a.Response["json"]
		}
	}
	if _, text := out.Body.(string); !text && (a.Status/100 == 2 || a.Status == 0 && a.Accepted) {
		out.State = out.Body
	}
	if a.Error != "" {
		out.Err, out.Written = errors.New(a.Error), a.Written
	}
	return out
}

// journaledAnswer describes a journaled answer in a few words.
func journaledAnswer(a *Record) string {
	if a.Error != "" {
		return a.Error
	}
	if a.Status == 0 {
		if a.Accepted {
			return "ok"
		}
		return "failed"
	}
	return fmt.Sprintf("%d %s", a.Status, http.StatusText(a.Status))
}

// resumeNote says what a resume would do with a change the stopped run sent,
// or may have sent: what recover does, in words.
func (p *pipeline) resumeNote(f *flight) string {
	a, target := f.answer, f.intent.Target
	idempotent := p.idempotent()
	switch {
	case a != nil && refused(a):
		return fmt.Sprintf("the stopped run's %s was answered %s: a resume sends it as new", target, journaledAnswer(a))
	case a != nil && a.Accepted:
		return fmt.Sprintf("the stopped run's %s was accepted (%s): a resume waits for it to take effect and does not send it again", target, journaledAnswer(a))
	case idempotent:
		return fmt.Sprintf("the stopped run may have sent %s: a resume sends it again (it is idempotent)", target)
	}
	return fmt.Sprintf("the stopped run may have sent %s: a resume sends nothing unless its wait shows it took effect", target)
}

// record fills in the step and item of a journal record.
func (p *pipeline) record(rec Record) Record {
	rec.Step, rec.StepID = p.s.Index, p.s.ID
	if p.itemIndex >= 0 {
		i := p.itemIndex
		rec.Item, rec.ItemKey = &i, p.itemKey
	}
	return rec
}

// journalFailure is the step's failure when the journal could not be written
// before a request: nothing was sent.
func (p *pipeline) journalFailure(out *Outcome) error {
	var je *JournalError
	if out != nil && errors.As(out.Err, &je) {
		return p.failure(JournalBroken, je, je.Error())
	}
	return nil
}

// MergeVars completes given, the --var values of a resume, with the resumed
// run's values of the vars not given again, so the run goes on as it began.
// Secret values were not journaled: each secret var must be given again.
func (res *Resume) MergeVars(given map[string]string) error {
	for _, k := range res.SecretVars {
		if _, set := given[k]; !set {
			return &ConfigError{Msg: fmt.Sprintf("resuming run %s needs --var %s=... again: its value is a secret, and secrets are not journaled", res.RunID, k)}
		}
	}
	for k, v := range res.Vars {
		if _, set := given[k]; !set {
			given[k] = v
		}
	}
	return nil
}

// Resume is what --resume carries over from an unfinished run: the steps it
// completed, the items of the step in flight that it completed, and what it may
// have sent of the rest.
type Resume struct {
	RunID      string
	Vars       map[string]string
	SecretVars []string // must be given again with --var
	Next       int      // the first step to run again (1-based)
	results    map[int]any
	reread     map[int]bool                // completed reads whose body did not fit the journal
	items      map[int]map[string]doneItem // step -> item key -> a done item
	flights    map[string]*flight          // item key ("": none) -> the last change sent, of the step in flight
	carry      []Record                    // what the resumed run journals again first, so that it can be resumed in turn
	// frames are the used runbooks (uses:) of the step in flight, by the
	// journal's Path, each as a Resume of its own steps; shared by all.
	frames map[string]*Resume
}

// flight is a change the stopped run sent, or was about to send.
type flight struct {
	intent Record
	answer *Record // nil: the run stopped before it journaled an answer
}

// FindResume reads what a resume of log's run needs; it must be unfinished and
// of the same runbook content. Given a summary (Store.LastSummary), it reads
// the whole journal.
func FindResume(log *RunLog, rb *Runbook) (*Resume, error) {
	if log != nil && log.brief {
		whole, err := ReadJournal(log.Path)
		if err != nil {
			return nil, &ConfigError{Msg: fmt.Sprintf("cannot read the journal %s: %v", log.Path, err)}
		}
		log = whole
	}
	var start Record
	ok := false
	if log != nil {
		start, ok = log.started()
	}
	if !ok {
		return nil, &UsageError{Msg: fmt.Sprintf("nothing to resume: %s has no journaled run", rb.File)}
	}
	if at, done := log.finished(); done {
		return nil, &UsageError{Msg: fmt.Sprintf("nothing to resume: the last run of %s (%s) finished at %s; run it without --resume",
			rb.File, start.RunID, at.Local().Format("2006-01-02 15:04:05"))}
	}
	if log.Damaged > 0 {
		return nil, &UsageError{Msg: fmt.Sprintf("cannot resume run %s: line %d of its journal %s does not read, so what it sent cannot be told; check the resources by hand, then run again without --resume",
			start.RunID, log.Damaged, log.Path)}
	}
	if start.Hash != rb.Hash {
		return nil, &UsageError{Msg: fmt.Sprintf("cannot resume run %s: %s has changed since it started (its content, or that of a file it uses, differs); run it again without --resume, or restore the file",
			start.RunID, rb.File)}
	}
	res := newResume(start, nil)
	top, frames := byFrame(log.mainRecords())
	res.fill(top)
	for _, f := range frames {
		if frameStep(f[0].Path) != res.Next {
			// A used runbook of a completed step: done with it.
			continue
		}
		sub := newResume(start, res.frames)
		sub.fill(f)
		res.frames[f[0].Path] = sub
		res.carry = append(res.carry, sub.carry...)
	}
	return res, nil
}

func newResume(start Record, frames map[string]*Resume) *Resume {
	if frames == nil {
		frames = map[string]*Resume{}
	}
	return &Resume{RunID: start.RunID, Vars: start.Vars, SecretVars: start.SecretVars, Next: 1,
		results: map[int]any{}, reread: map[int]bool{}, items: map[int]map[string]doneItem{}, flights: map[string]*flight{}, frames: frames}
}

// fill reads what one frame's records (the top level's, or a used
// runbook's) say: the steps done, the items done, what was in flight.
func (res *Resume) fill(recs []Record) {
	for _, r := range recs {
		if r.Type == recStepDone {
			res.results[r.Step] = r.Result
			res.reread[r.Step] = len(r.Omitted) > 0
			res.Next = max(res.Next, r.Step+1)
		}
	}
	// A done item is not run again, so what it sent is in flight no more:
	// neither kept nor journaled again (a fleet's would be most of the journal).
	done := map[string]bool{}
	for _, r := range recs {
		if r.Type == recItemDone && r.Item != nil && r.Step == res.Next {
			done[r.ItemKey] = true
		}
	}
	for _, r := range recs {
		switch {
		case r.Type == recStepDone:
			res.carry = append(res.carry, r)
		case r.Type == recItemDone && r.Item != nil && (r.Step == res.Next || r.Step < res.Next && r.Result != nil):
			// The step in flight needs to know which items are done; a
			// completed fleet, only the results later steps can read.
			if res.items[r.Step] == nil {
				res.items[r.Step] = map[string]doneItem{}
			}
			res.items[r.Step][r.ItemKey] = doneItem{index: *r.Item, result: r.Result}
			res.carry = append(res.carry, r)
		case r.Step != res.Next, done[r.ItemKey]:
		case r.Type == recIntent:
			res.flights[r.ItemKey] = &flight{intent: r}
			res.carry = append(res.carry, r)
		case r.Type == recAnswer:
			if f := res.flights[r.ItemKey]; f != nil && f.intent.Attempt == r.Attempt {
				a := r
				f.answer = &a
				res.carry = append(res.carry, r)
			}
		}
	}
}

// byFrame splits records into the top level's and each used runbook's, in
// the order each frame first appears.
func byFrame(recs []Record) (top []Record, frames [][]Record) {
	if !slices.ContainsFunc(recs, func(r Record) bool { return r.Path != "" }) {
		return recs, nil // no used runbook: not a copy
	}
	at := map[string]int{}
	for _, r := range recs {
		if r.Path == "" {
			top = append(top, r)
			continue
		}
		i, ok := at[r.Path]
		if !ok {
			i = len(frames)
			at[r.Path] = i
			frames = append(frames, nil)
		}
		frames[i] = append(frames[i], r)
	}
	return top, frames
}

// frameStep is the top-level step a frame's path starts from: 3 in "3@k/2".
func frameStep(path string) int {
	first, _, _ := strings.Cut(path, "/")
	first, _, _ = strings.Cut(first, "@")
	n, _ := strconv.Atoi(first)
	return n
}

// frame is the Resume of the used runbook at path; nil when the stopped run
// journaled nothing of it.
func (res *Resume) frame(path string) *Resume {
	if res == nil {
		return nil
	}
	return res.frames[path]
}

// doneItem is a for_each item the resumed run completed.
type doneItem struct {
	index  int
	result any
}

// itemResults is steps.<id> of a completed for_each step: the list of its
// items' results, as far as the journal has them.
func (res *Resume) itemResults(step int) []any {
	items := res.items[step]
	n := 0
	for _, d := range items {
		n = max(n, d.index+1)
	}
	out := make([]any, n)
	for _, d := range items {
		out[d.index] = d.result
	}
	return out
}
