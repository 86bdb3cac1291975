package steps

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/dunglas/httpsfv"

	"github.com/runbookhq/runbook/runbook"
)

// What a server says of when to come back: Retry-After, and the rate-limit
// headers of the APIs that announce their budget before it runs out.

// ParseRetryAfter reads a Retry-After header: delay-seconds or an HTTP-date,
// relative to now. A date in the past is zero; anything else is unreadable.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if v[0] >= '0' && v[0] <= '9' {
		n, err := strconv.ParseUint(v, 10, 63)
		if err != nil {
			if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
				return maxRetryAfter, true
			}
			return 0, false
		}
		if n > uint64(maxRetryAfter/time.Second) {
			return maxRetryAfter, true
		}
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d := t.Sub(now)
	if d < 0 {
		return 0, true
	}
	return min(d, maxRetryAfter), true
}

// maxRetryAfter caps absurd values; max_retry_after then refuses to wait them.
const maxRetryAfter = 365 * 24 * time.Hour

// ParseRateLimit reads what the answer says of the host's request budget, from
// the first of these that reads: the IETF draft's RateLimit structured field
// (`"policy";r=50;t=30`; of several policies, the one with the fewest left),
// its earlier form (`limit=100, remaining=50, reset=30`),
// RateLimit-Remaining/RateLimit-Reset, and X-RateLimit-Remaining/Reset, whose
// reset is seconds, or a Unix time when larger than a year of seconds.
// Malformed values are ignored: nil when nothing reads.
func ParseRateLimit(h http.Header, now time.Time) *runbook.Budget {
	if v := h.Values("RateLimit"); len(v) > 0 {
		if b := ietfList(v); b != nil {
			return b
		}
		if b := ietfDictionary(v); b != nil {
			return b
		}
	}
	for _, prefix := range []string{"RateLimit-", "X-RateLimit-"} {
		if b := remainingReset(h.Get(prefix+"Remaining"), h.Get(prefix+"Reset"), now); b != nil {
			return b
		}
	}
	return nil
}

// ietfList reads `"name";r=R;t=T, ...`.
func ietfList(v []string) *runbook.Budget {
	list, err := httpsfv.UnmarshalList(v)
	if err != nil {
		return nil
	}
	var best *runbook.Budget
	for _, m := range list {
		item, ok := m.(httpsfv.Item)
		if !ok || item.Params == nil {
			continue
		}
		r, rok := paramInt(item.Params, "r")
		t, tok := paramInt(item.Params, "t")
		if !rok {
			continue
		}
		b := &runbook.Budget{Remaining: r}
		if tok {
			b.Reset = seconds(t)
		}
		if best == nil || b.Remaining < best.Remaining {
			best = b
		}
	}
	return best
}

// ietfDictionary reads the earlier draft's `limit=L, remaining=R, reset=T`.
func ietfDictionary(v []string) *runbook.Budget {
	d, err := httpsfv.UnmarshalDictionary(v)
	if err != nil {
		return nil
	}
	r, ok := memberInt(d, "remaining")
	if !ok {
		return nil
	}
	b := &runbook.Budget{Remaining: r}
	if t, ok := memberInt(d, "reset"); ok {
		b.Reset = seconds(t)
	}
	return b
}

func paramInt(p *httpsfv.Params, k string) (int64, bool) {
	v, ok := p.Get(k)
	n, isInt := v.(int64)
	return n, ok && isInt && n >= 0
}

func memberInt(d *httpsfv.Dictionary, k string) (int64, bool) {
	m, ok := d.Get(k)
	item, isItem := m.(httpsfv.Item)
	if !ok || !isItem {
		return 0, false
	}
	n, isInt := item.Value.(int64)
	return n, isInt && n >= 0
}

// remainingReset reads a pair of plain headers. A reset larger than a year of
// seconds is a Unix time.
func remainingReset(remaining, reset string, now time.Time) *runbook.Budget {
	r, err := strconv.ParseInt(strings.TrimSpace(remaining), 10, 64)
	if err != nil || r < 0 {
		return nil
	}
	b := &runbook.Budget{Remaining: r}
	if t, err := strconv.ParseInt(strings.TrimSpace(reset), 10, 64); err == nil && t >= 0 {
		if t > int64(maxRetryAfter/time.Second) {
			b.Reset = max(time.Unix(t, 0).Sub(now), 0)
		} else {
			b.Reset = seconds(t)
		}
		b.Reset = min(b.Reset, maxRetryAfter)
	}
	return b
}

func seconds(n int64) time.Duration {
	if n > int64(maxRetryAfter/time.Second) {
		return maxRetryAfter
	}
	return time.Duration(n) * time.Second
}
