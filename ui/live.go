package ui

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/runbookhq/runbook/runbook"
)

// Live is the terminal view: a header, one line per step with its state, elapsed
// time and counts, and while waiting a status line with a spinner that says what
// it waits for and why, the last state seen and a countdown to the next check. It
// redraws in place (no alternate screen, nothing taken over) and leaves a final
// summary behind.
type Live struct {
	mu     sync.Mutex
	w      io.Writer
	st     Styles
	now    func() time.Time // the run's clock, for elapsed times and countdowns
	width  func() int       // terminal width; 0: unknown
	name   string
	rows   []*row
	byStep map[int]*row
	// section heads the next row added: cleanup steps get rows as they start,
	// under the name of their list.
	section string
	status  status
	drawn   int // lines of the last frame, to move back over them
	frame   int
	start   time.Time
	end     string // the final summary, once the run is over
	held    bool   // a question is on the terminal: no redraw moves over it
	stop    chan struct{}
	done    chan struct{}
}

type row struct {
	index                                       int    // the step's
	section                                     string // a cleanup list's name, above its first row
	name                                        string
	state                                       string // pending, running, waiting, done, skipped, failed
	start, end                                  time.Time
	checks, attempts, retries                   int
	items, itemsDone, itemsFailed, itemsStopped int
	started                                     int // for_each items started
	note                                        string
}

type status struct {
	step   int
	item   string
	reason string
	state  string
	next   time.Time // when the next check or send is due
	verb   string    // "next check", "sending again", "pausing"
}

var _ runbook.Observer = (*Live)(nil)

const spinner = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"

// NewLive returns the live view of a run of the named steps; now is the run's
// clock and width reports the terminal's width (0 when unknown).
func NewLive(w io.Writer, st Styles, now func() time.Time, width func() int, name string, steps []string) *Live {
	l := &Live{w: w, st: st, now: now, width: width, name: oneLine(name), start: now(), stop: make(chan struct{}), done: make(chan struct{}), byStep: map[int]*row{}}
	for i, s := range steps {
		l.addRow(&row{index: i + 1, name: oneLine(s), state: "pending"})
	}
	return l
}

func (l *Live) addRow(r *row) {
	l.rows = append(l.rows, r)
	l.byStep[r.index] = r
}

// oneLine makes text from outside fit a row of the view: sanitized before it is
// styled (the styles' own escapes must pass), and on one line, so a redraw
// moves back over exactly the lines it drew.
func oneLine(s string) string {
	return lineBreaks.Replace(runbook.Sanitize(s))
}

var lineBreaks = strings.NewReplacer("\n", " ", "\t", " ")

// Start redraws ten times a second (the spinner and countdown move) until Stop.
func (l *Live) Start() {
	go func() {
		defer close(l.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-t.C:
				l.mu.Lock()
				l.frame++
				if !l.held {
					l.draw()
				}
				l.mu.Unlock()
			}
		}
	}()
}

// Stop draws the last frame, with the summary, and returns when the redrawing
// has stopped.
func (l *Live) Stop() {
	close(l.stop)
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	l.draw()
}

// Observe updates the view's model; the next redraw shows it.
func (l *Live) Observe(e runbook.Event) {
	for _, f := range []*string{&e.Run, &e.StepName, &e.Item, &e.Target, &e.Reason, &e.State, &e.Err} {
		*f = oneLine(*f)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.byStep[e.Step]
	if r == nil && e.Type == runbook.StepStarted && e.Step > 0 {
		r = &row{index: e.Step, section: l.section, state: "pending"}
		l.section = ""
		l.addRow(r)
	}
	now := l.now()
	item := e.ItemNo > 0
	if e.Path != "" && r != nil {
		// A used runbook's step: its reads and sends count for the using
		// step's row, its start and end are not the row's.
		switch e.Type {
		case runbook.StepStarted, runbook.StepSkipped, runbook.StepDone, runbook.StepFailed, runbook.Progress:
			return
		}
	}
	if e.Type == runbook.Confirm && e.Phase == runbook.PhaseAsk {
		// The question is written below the frame and answered there: the
		// frame is drawn now, and the next one starts below the answer.
		l.draw()
		l.held, l.drawn = true, 0
		return
	}
	l.held = false
	switch e.Type {
	case runbook.RunDone:
		elapsed := runbook.FormatDuration(now.Sub(l.start))
		if e.Err != "" && e.Interrupted {
			l.end = l.st.Warn.Render("■ stopped") + " after " + elapsed + "; " + e.Reason
		} else if e.Err != "" {
			l.end = l.st.Fail.Render("✗ failed") + " after " + elapsed
		} else {
			l.end = l.st.OK.Render("✓ done") + " in " + elapsed
			if e.Reason != "" {
				l.end += "; " + e.Reason
			}
		}
		l.status = status{}
	case runbook.CleanupStarted:
		if e.Path == "" { // not a used runbook's, which is part of its step
			l.section = e.Reason
		}
	case runbook.StepStarted:
		r.state, r.start = "running", now
		if e.StepName != "" {
			r.name = e.StepName
		}
	case runbook.StepSkipped:
		r.state, r.note, r.end = "skipped", e.Reason, now
	case runbook.Probe:
		r.checks++
	case runbook.Attempt:
		r.attempts++
	case runbook.Retrying:
		r.retries++
	case runbook.Waiting:
		if r.state == "running" {
			r.state = "waiting"
		}
		verb := "next check in"
		switch e.Phase {
		case runbook.PhaseChange:
			verb = "sending again in"
		case runbook.PhasePause:
			verb = "pausing"
		}
		l.status = status{step: e.Step, reason: e.Reason, state: e.State, next: now.Add(e.Delay), verb: verb}
		if item {
			l.status.item = e.Item
		}
	case runbook.LogLine:
		if r != nil && !item {
			// A log step's text is what it is for: shown on its row.
			r.note = e.Reason
		}
	case runbook.Progress:
		r.items = e.Total
	case runbook.StepDone:
		if item {
			r.itemsDone++
			return
		}
		r.state, r.end = "done", now
		if e.State != "" {
			r.note = e.State
		}
		if e.Reason != "" {
			r.note = e.Reason
		}
		l.clearStatus(e.Step)
	case runbook.StepFailed:
		stopped := e.Interrupted
		if item && stopped {
			r.itemsStopped++
			return
		}
		if item {
			r.itemsFailed++
			return
		}
		r.state, r.end, r.note = "failed", now, e.Err
		if stopped {
			r.state = "stopped"
		}
		l.clearStatus(e.Step)
	}
	if r != nil && item {
		// Items start in order, so the highest index seen counts those started.
		r.started = max(r.started, e.ItemNo)
	}
	if r != nil && (e.Type == runbook.Probe || e.Type == runbook.Attempt) && r.state == "waiting" {
		r.state = "running"
	}
}

func (l *Live) clearStatus(step int) {
	if l.status.step == step {
		l.status = status{}
	}
}

// draw moves back over the last frame and writes the current one.
func (l *Live) draw() {
	lines := l.lines()
	var b strings.Builder
	if l.drawn > 0 {
		fmt.Fprintf(&b, "\r\x1b[%dA\x1b[J", l.drawn)
	}
	for _, line := range lines {
		b.WriteString(line)
		b.WriteString("\n")
	}
	io.WriteString(l.w, b.String())
	l.drawn = len(lines)
}

// lines renders the frame: plain text is cut to the terminal's width before it is
// styled, so a line never wraps and the redraw stays in place.
func (l *Live) lines() []string {
	now := l.now()
	width := 0
	if l.width != nil {
		width = l.width()
	}
	fit := func(s string, room int) string {
		if width <= 0 || room <= 0 || utf8.RuneCountInString(s) <= room {
			return s
		}
		r := []rune(s)
		return string(r[:max(room-1, 0)]) + "…"
	}
	header := fmt.Sprintf("%s  %s", l.name, runbook.FormatDuration(now.Sub(l.start)))
	out := []string{l.st.Title.Render(fit(header, width-1))}
	spin := string([]rune(spinner)[l.frame%utf8.RuneCountInString(spinner)])
	for _, r := range l.rows {
		if r.section != "" {
			out = append(out, l.st.Faint.Render(fit(r.section+":", width-1)))
		}
		icon, style := "·", l.st.Faint
		switch r.state {
		case "running":
			icon, style = spin, l.st.Busy
		case "waiting":
			icon, style = spin, l.st.Warn
		case "done":
			icon, style = "✓", l.st.OK
		case "skipped":
			icon, style = "-", l.st.Faint
		case "failed":
			icon, style = "✗", l.st.Fail
		case "stopped":
			icon, style = "■", l.st.Warn
		}
		text := fmt.Sprintf("%2d  %s", r.index, r.name)
		var detail []string
		if !r.start.IsZero() {
			end := r.end
			if end.IsZero() {
				end = now
			}
			detail = append(detail, runbook.FormatDuration(end.Sub(r.start)))
		}
		if r.items > 0 {
			ended := r.itemsDone + r.itemsFailed + r.itemsStopped
			detail = append(detail, counts(r.itemsDone, r.itemsFailed, r.itemsStopped, max(r.started-ended, 0), r.items))
		}
		for _, c := range []struct {
			n    int
			what string
		}{{r.checks, "check"}, {r.attempts, "attempt"}, {r.retries, "retry"}} {
			if c.n > 0 {
				word := c.what + "s"
				if c.n == 1 {
					word = c.what
				} else if c.what == "retry" {
					word = "retries"
				}
				detail = append(detail, fmt.Sprintf("%d %s", c.n, word))
			}
		}
		if r.note != "" && (r.state == "failed" || r.state == "stopped" || r.state == "skipped" || r.state == "done") {
			detail = append(detail, r.note)
		}
		line := text
		if len(detail) > 0 {
			line += "  " + strings.Join(detail, " · ")
		}
		line = fit(line, width-3)
		out = append(out, style.Render(icon)+" "+line)
	}
	if s := l.status; s.reason != "" {
		text := s.reason
		if s.item != "" {
			text = "[" + s.item + "] " + text
		}
		if left := s.next.Sub(now); left > 0 {
			// The countdown first, so a narrow terminal cuts the reason, not it.
			text = fmt.Sprintf("%s %s · %s", s.verb, runbook.FormatDuration(left.Round(time.Second)), text)
		}
		if s.state != "" && !strings.Contains(s.reason, s.state) {
			text += " · last: " + s.state
		}
		out = append(out, "   "+l.st.Warn.Render(spin)+" "+fit(text, width-6))
	}
	if l.end != "" {
		out = append(out, l.end)
	}
	return out
}
