package runbook

import (
	"context"
	"errors"
	"strings"
)

// dryRun shows the change a real run would send, with one guard read to say
// whether it would have to wait, and sends nothing.
//
// What a change the dry run did not send would have answered is unknown: a
// later step that reads it is shown as written, not failed.
func (p *pipeline) dryRun(ctx context.Context) (map[string]any, error) {
	var t Target
	note := ""
	call, err := p.s.Action.Prepare(p.scope)
	switch {
	case errors.Is(err, errUnknown):
		t = Target{Method: p.s.Action.Info().Method, URL: p.s.Action.Describe(p.scope)}
		if t.Method != "" {
			t.URL = strings.TrimPrefix(t.URL, t.Method+" ")
		}
		note = "it reads what an earlier change answers, known only at run time"
	case err != nil:
		return nil, p.failure(Failed, err, err.Error())
	default:
		t = call.Target()
	}
	if g := p.s.Guard; g.On && g.Check != nil {
		if _, err := g.Check.Prepare(p.scope); !errors.Is(err, errUnknown) {
			out, err := p.read(ctx, g.Check, PhaseGuard)
			if err != nil {
				return nil, err
			}
			if busy, _ := p.busyState(out); busy {
				note = "busy now (" + p.summary(out.State) + "): a real run would wait"
			}
		}
	}
	target := t.String()
	if t.Body != "" {
		target += " " + t.Body
	}
	phase := PhaseSend
	if t.Method == "" {
		phase = PhaseRun
	}
	if f := p.flight; f != nil {
		note = strings.TrimSuffix(p.resumeNote(f)+"; "+note, "; ")
	}
	p.emit(Event{Type: DryRun, Phase: phase, Target: target, Reason: note})
	return p.result()
}

// dryResume shows what a resume would do with the change the stopped run sent,
// or may have sent, and does it no more than a dry run does: a change it would
// send again is shown as any dry run shows one; one it would wait for or only
// check is shown as such, and nothing is read for it.
func (p *pipeline) dryResume(ctx context.Context, f *flight) (map[string]any, error) {
	a := f.answer
	switch {
	case a != nil && refused(a), (a == nil || !a.Accepted) && p.idempotent():
		return p.dryRun(ctx)
	case a != nil && a.Accepted:
		// What it answered is known: later steps that read it are shown with it.
		p.took(replay(a))
		p.emit(Event{Type: DryRun, Phase: PhaseWaitFor, Target: f.intent.Target, Reason: p.resumeNote(f)})
	default:
		p.emit(Event{Type: DryRun, Phase: PhaseCheck, Target: f.intent.Target, Reason: p.resumeNote(f)})
	}
	return p.result()
}
