package ui

import (
	"bufio"
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/runbookhq/runbook/runbook"
)

// hostile is what a hostile server puts in a 4xx body: a clipboard write, a
// window title, a screen clear (also as a C1 CSI), and a fake last line.
const hostile = "\x1b]52;c;cm0gLXJmIH4=\x07\x1b]0;title\x07\x1b[2J\u009b2J\nrun done in 1s"

// hostileEvents carry it in every text field a view shows.
func hostileEvents() []runbook.Event {
	at := time.Date(2026, 11, 26, 13, 14, 15, 0, time.UTC)
	evs := []runbook.Event{
		{Type: runbook.RunStarted, Run: "Run " + hostile, Steps: 1},
		{Type: runbook.StepStarted, Step: 1, StepName: "Step " + hostile},
		{Type: runbook.Attempt, Step: 1, Attempt: 1, Target: "PUT https://x/1", Reason: "400 Bad Request: " + hostile, State: "error=" + hostile},
		{Type: runbook.Request, Step: 1, Target: "PUT https://x/1", Status: 400, Reason: "400 Bad Request", Sent: `{"note":"` + hostile + `"}`, Received: hostile},
		{Type: runbook.Waiting, Step: 1, Phase: "change", Reason: "423: " + hostile, Delay: time.Second},
		{Type: runbook.LogLine, Step: 1, Reason: hostile},
		{Type: runbook.StepFailed, Step: 1, StepName: "Step " + hostile, Item: hostile, ItemNo: 1, Err: "400 Bad Request: " + hostile},
		{Type: runbook.StepFailed, Step: 1, StepName: "Step " + hostile, Err: "400 Bad Request: " + hostile},
		{Type: runbook.RunDone, Err: hostile, Reason: hostile},
	}
	for i := range evs {
		evs[i].Time = at
	}
	return evs
}

// ours are the escapes the views write themselves: colours and the live view's
// redraw.
var ours = regexp.MustCompile(`\x1b\[[0-9;]*m|\r\x1b\[[0-9]+A\x1b\[J`)

// assertClean fails when out holds a control character from the hostile text,
// or lacks its escaped form.
func assertClean(t *testing.T, out string) {
	t.Helper()
	rest := ours.ReplaceAllString(out, "")
	for _, r := range rest {
		if r != '\n' && r != '\t' && (r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f)) {
			t.Fatalf("output holds %U raw:\n%q", r, out)
		}
	}
	if !strings.Contains(out, `\x1b]52;c;cm0gLXJmIH4=\x07\x1b]0;title\x07\x1b[2J\u009b2J`) {
		t.Errorf("output lacks the escaped text:\n%s", out)
	}
}

// assertNoFakeLine fails when a line of a line-per-event output is the
// hostile text's own: a continuation must be indented.
func assertNoFakeLine(t *testing.T, out string) {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "run done") {
			t.Errorf("a line passes for the run's end: %q in\n%s", line, out)
		}
	}
}

func TestPlainSanitizes(t *testing.T) {
	var b bytes.Buffer
	p := NewPlain(&b, true)
	for _, e := range hostileEvents() {
		p.Observe(e)
	}
	assertClean(t, b.String())
	assertNoFakeLine(t, b.String())
}

func TestQuietSanitizes(t *testing.T) {
	var b bytes.Buffer
	q := NewQuiet(&b)
	for _, e := range hostileEvents() {
		q.Observe(e)
	}
	if !strings.Contains(b.String(), "its story") {
		t.Fatalf("no story told:\n%s", b.String())
	}
	assertClean(t, b.String())
	assertNoFakeLine(t, b.String())
}

// The live view, in colour, writes its own escapes and only those.
func TestLiveSanitizes(t *testing.T) {
	var b bytes.Buffer
	r := lipgloss.NewRenderer(&b)
	r.SetColorProfile(termenv.ANSI)
	st := Styles{Title: r.NewStyle().Bold(true), Name: r.NewStyle().Bold(true), Label: r.NewStyle(), Faint: r.NewStyle().Faint(true),
		OK: r.NewStyle().Foreground(lipgloss.Color("2")), Warn: r.NewStyle().Foreground(lipgloss.Color("3")),
		Fail: r.NewStyle().Foreground(lipgloss.Color("1")), Busy: r.NewStyle().Foreground(lipgloss.Color("5")), Code: r.NewStyle()}
	now := time.Date(2026, 11, 26, 13, 14, 15, 0, time.UTC)
	l := NewLive(&b, st, func() time.Time { return now }, func() int { return 0 }, "Run "+hostile, []string{"Step " + hostile})
	for _, e := range hostileEvents() {
		l.Observe(e)
		if e.Type == runbook.Waiting {
			l.draw() // the status line shows the reason while waiting
		}
	}
	l.draw()
	if !strings.Contains(b.String(), "\x1b[1m") {
		t.Fatalf("no colour in the frame: the test would not tell ours from theirs:\n%q", b.String())
	}
	assertClean(t, b.String())
	// Each frame moves back over as many lines as it drew: a line break in an
	// answer would leave a line behind at every redraw.
	frames := strings.Split(b.String(), "\r\x1b[")
	last := frames[len(frames)-1]
	if n, drew := strings.Count(last, "\n"), len(l.rows)+2; n != drew {
		t.Errorf("the last frame has %d lines, want %d (header, row, summary):\n%s", n, drew, last)
	}
}

// JSON stays valid with the same values, and holds no raw control character.
func TestJSONSanitizes(t *testing.T) {
	var b bytes.Buffer
	j := NewJSON(&b, true)
	for _, e := range hostileEvents() {
		j.Observe(e)
	}
	assertRawFree(t, b.String())
	sc := bufio.NewScanner(&b)
	n := 0
	for sc.Scan() {
		var ev map[string]any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("line %d is not JSON: %v\n%s", n+1, err, sc.Text())
		}
		if ev["event"] == "log" && ev["reason"] != hostile {
			t.Errorf("the log event's reason decodes to %q, want %q", ev["reason"], hostile)
		}
		n++
	}
	if n != len(hostileEvents()) {
		t.Errorf("%d lines, want %d", n, len(hostileEvents()))
	}
}

func assertRawFree(t *testing.T, out string) {
	t.Helper()
	for _, r := range strings.TrimSuffix(out, "\n") {
		if r < 0x20 && r != '\n' || r == 0x7f || (r >= 0x80 && r <= 0x9f) {
			t.Fatalf("output holds %U raw:\n%q", r, out)
		}
	}
}

func TestPlanSanitizes(t *testing.T) {
	var b bytes.Buffer
	r := lipgloss.NewRenderer(&b)
	r.SetColorProfile(termenv.ANSI)
	st := Styles{Title: r.NewStyle().Bold(true), Name: r.NewStyle().Bold(true), Label: r.NewStyle().Foreground(lipgloss.Color("6")), Faint: r.NewStyle().Faint(true)}
	Plan(&b, st, "Run "+hostile, "1h", "10m", "env-"+hostile, []string{"token (" + hostile + ")"}, []runbook.PlanStep{{Index: 1, Name: "Step " + hostile, ID: "x", Action: "PUT https://x/" + hostile, Wait: hostile}})
	assertClean(t, b.String())
}
