package ui

import (
	"encoding/json"
	"io"
	"sync"
	"time"

	"github.com/runbookhq/runbook/runbook"
)

// JSON writes one JSON object per event per line, for programs. The field names
// are stable (documented in the README); empty fields are left out.
type JSON struct {
	mu      sync.Mutex
	enc     *json.Encoder
	verbose bool
}

var _ runbook.Observer = (*JSON)(nil)

// NewJSON returns a JSON observer writing to w; verbose adds request events.
// encoding/json escapes C0 controls but writes DEL, C1 controls (U+009B, a CSI)
// and bidi overrides raw, so each line is sanitized too: their \u escapes keep
// it valid JSON with the same values.
func NewJSON(w io.Writer, verbose bool) *JSON {
	return &JSON{enc: json.NewEncoder(Sanitized(w)), verbose: verbose}
}

// jsonEvent is the wire form of an event.
type jsonEvent struct {
	Time      string   `json:"time"`
	RunID     string   `json:"run_id,omitempty"`
	Event     string   `json:"event"`
	Step      string   `json:"step,omitempty"`
	Index     int      `json:"index,omitempty"`
	StepID    string   `json:"step_id,omitempty"`
	Item      *string  `json:"item,omitempty"`
	ItemIndex *int     `json:"item_index,omitempty"`
	Path      string   `json:"path,omitempty"` // a used runbook's step: "3/2"
	Phase     string   `json:"phase,omitempty"`
	Attempt   int      `json:"attempt,omitempty"`
	Status    int      `json:"status,omitempty"`
	Target    string   `json:"target,omitempty"`
	Reason    string   `json:"reason,omitempty"`
	Delay     *float64 `json:"delay,omitempty"`
	State     string   `json:"state,omitempty"`
	Error     string   `json:"error,omitempty"`
	Elapsed   float64  `json:"elapsed,omitempty"`
	Duration  float64  `json:"duration,omitempty"`
	Run       string   `json:"run,omitempty"`
	Result    string   `json:"result,omitempty"` // run_done: ok, failed or stopped
	Steps     int      `json:"steps,omitempty"`
	Total     int      `json:"total,omitempty"` // for_each: items, and those done, failed, stopped, running
	Done      int      `json:"done,omitempty"`
	Failed    int      `json:"failed,omitempty"`
	Stopped   int      `json:"stopped,omitempty"`
	Running   int      `json:"running,omitempty"`

	Outputs      map[string]any `json:"outputs,omitempty"`       // done: the step's outputs
	RequestBody  string         `json:"request_body,omitempty"`  // request, with -v
	ResponseBody string         `json:"response_body,omitempty"` // request, with -v
}

// Observe writes the event.
func (j *JSON) Observe(e runbook.Event) {
	if e.Type == runbook.Request && !j.verbose {
		return
	}
	out := jsonEvent{
		Time: e.Time.UTC().Format(time.RFC3339Nano), RunID: e.RunID, Event: string(e.Type),
		Step: e.StepName, Index: e.Step, StepID: e.StepID, Path: e.Path, Phase: string(e.Phase), Attempt: e.Attempt,
		Status: e.Status, Target: e.Target, Reason: e.Reason, State: e.State, Error: e.Err,
		Elapsed: e.Elapsed.Seconds(), Duration: e.Duration.Seconds(), Run: e.Run, Steps: e.Steps,
		Total: e.Total, Done: e.Done, Failed: e.Failed, Stopped: e.Stopped, Running: e.Running, Outputs: e.Outputs,
		RequestBody: e.Sent, ResponseBody: e.Received,
	}
	if e.ItemNo > 0 && e.Step > 0 {
		item, idx := e.Item, e.ItemNo-1
		out.Item, out.ItemIndex = &item, &idx
	}
	if e.Interrupted {
		out.Phase = "stopped" // the wire form says a stop in the phase field
	}
	if e.Type == runbook.RunDone {
		out.Result = "ok"
		if e.Err != "" {
			out.Result = "failed"
			if e.Interrupted {
				out.Result = "stopped"
			}
		}
	}
	if e.Type == runbook.Waiting {
		d := e.Delay.Seconds()
		out.Delay = &d
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.enc.Encode(out)
}
