package runbook

import (
	"context"
	"fmt"
	"maps"
	"time"
)

// Pager is a call that reads a list in pages (http.paginate). The executor,
// not the kind, sends every page after the first: each goes through the
// run's request path (run.do), so it waits for the host's pauses and its
// pacer, and counts against the server's budget, like any request.
type Pager interface {
	// Page reads the answer to page number page (from 0) of the list: its
	// items, and the call of the next page, nil after the last. s is the
	// step's scope with response and page set for this page.
	Page(s Scope, out *Outcome, page int) (items []any, next Call, err error)
	// MaxPages bounds the pages one read may take.
	MaxPages() int
}

// pages reads the rest of a paged list whose first page is out. A page
// answered 423, 429 or 5xx, or not at all, is asked for again after its wait
// (run.do has paused the host for a Retry-After or an empty budget); any
// other refusal fails the step, as a list cut short is not the list. The
// outcome is the last page's, with every page's items as its body and state.
func (p *pipeline) pages(ctx context.Context, call Call, out *Outcome) (*Outcome, error) {
	pager, ok := call.(Pager)
	if !ok || out.Err != nil || !out.Accepted {
		return out, nil
	}
	defer func() { p.pageBodies = nil }()
	var items []any
	page := 0
	for ; ; page++ {
		scope := maps.Clone(p.scope)
		scope["response"], scope["page"] = out.Response, page
		got, next, err := pager.Page(scope, out, page)
		if err != nil {
			return nil, p.failure(Failed, err, fmt.Sprintf("page %d of %s: %v", page+1, call.Target(), err))
		}
		items = append(items, got...)
		if next == nil {
			break
		}
		if page+1 >= pager.MaxPages() {
			return nil, p.failure(Failed, nil, fmt.Sprintf("%s has more than %d pages (paginate.max_pages), read %d items: not all of the list; raise max_pages, or ask for larger pages", call.Target(), pager.MaxPages(), len(items)))
		}
		p.pageBodies = append(p.pageBodies, out.Body)
		if out, err = p.page(ctx, next, page+1); err != nil {
			return nil, err
		}
		if pager, ok = next.(Pager); !ok {
			return nil, p.failure(Failed, nil, fmt.Sprintf("page %d of %s cannot be paged on", page+2, call.Target()))
		}
	}
	all := *out
	all.Body, all.State, all.Text = items, items, ""
	all.Response = maps.Clone(out.Response)
	all.Response["body"] = items
	p.pageBodies = append(p.pageBodies, out.Body)
	p.rootHolds(items)
	if page > 0 {
		p.emit(Event{Type: LogLine, Reason: fmt.Sprintf("read %d items in %d pages from %s", len(items), page+1, call.Target())})
	}
	return &all, nil
}

// page sends the call of one page until it is answered, waiting as the
// answer asks.
func (p *pipeline) page(ctx context.Context, call Call, n int) (*Outcome, error) {
	for tries := 1; ; tries++ {
		out := p.r.do(ctx, p, call, nil, false)
		if err := p.journalFailure(out); err != nil {
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, p.ctxError(ctx)
		}
		if out.Err == nil && out.Accepted {
			return out, nil
		}
		what := fmt.Sprintf("page %d (%s) answered %s", n+1, call.Target(), answer(out))
		again := out.Err != nil && !out.Permanent || out.Status >= 500 || slowDown(out)
		switch {
		case !again:
			return nil, p.failure(Failed, out.Err, what)
		case out.RetryAfter != nil && *out.RetryAfter > p.s.Retry.MaxRetryAfter:
			return nil, p.failure(StillBusy, nil, fmt.Sprintf("%s, longer than max_retry_after %s", what, fmtDur(p.s.Retry.MaxRetryAfter)))
		case spent(p.s.Retry, tries):
			return nil, p.fail(giveUp(tries, what, slowDown(out)))
		}
		// A pause that run.do set is waited out by the next run.do.
		var delay time.Duration
		if !slowDown(out) {
			delay = retryDelay(p.s.Retry, tries-1)
		}
		if err := p.waitOut(ctx, Event{Type: Waiting, Phase: PhaseChange, Attempt: p.attempts, Status: out.Status, Reason: what + ", asking again", Delay: delay}); err != nil {
			return nil, err
		}
	}
}
