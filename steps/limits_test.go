package steps

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/runbookhq/runbook/runbook"
)

func TestParseRateLimit(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name   string
		header http.Header
		want   *runbook.Budget
	}{
		{"IETF draft, one policy", http.Header{"Ratelimit": {`"default";r=50;t=30`}}, &runbook.Budget{Remaining: 50, Reset: 30 * time.Second}},
		{"IETF draft, the policy with fewest left", http.Header{"Ratelimit": {`"burst";r=9;t=1, "daily";r=0;t=3600`}}, &runbook.Budget{Remaining: 0, Reset: time.Hour}},
		{"earlier draft, a dictionary", http.Header{"Ratelimit": {`limit=100, remaining=7, reset=12`}}, &runbook.Budget{Remaining: 7, Reset: 12 * time.Second}},
		{"RateLimit-Remaining and -Reset", http.Header{"Ratelimit-Remaining": {"3"}, "Ratelimit-Reset": {"20"}}, &runbook.Budget{Remaining: 3, Reset: 20 * time.Second}},
		{"X-RateLimit in seconds", http.Header{"X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset": {"45"}}, &runbook.Budget{Remaining: 0, Reset: 45 * time.Second}},
		{"X-RateLimit as a Unix time", http.Header{"X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset": {strconv.FormatInt(now.Unix()+90, 10)}}, &runbook.Budget{Remaining: 0, Reset: 90 * time.Second}},
		{"a Unix time past", http.Header{"X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset": {"1700000000"}}, &runbook.Budget{Remaining: 0}},
		{"remaining without reset", http.Header{"X-Ratelimit-Remaining": {"10"}}, &runbook.Budget{Remaining: 10}},
		{"malformed structured field falls through", http.Header{"Ratelimit": {`"x";r=-1;t=oops`}, "X-Ratelimit-Remaining": {"4"}, "X-Ratelimit-Reset": {"2"}}, &runbook.Budget{Remaining: 4, Reset: 2 * time.Second}},
		{"garbage", http.Header{"X-Ratelimit-Remaining": {"lots"}, "Ratelimit": {"((("}}, nil},
		{"negative", http.Header{"X-Ratelimit-Remaining": {"-3"}}, nil},
		{"none", http.Header{}, nil},
	} {
		got := ParseRateLimit(c.header, now)
		if (got == nil) != (c.want == nil) || got != nil && *got != *c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

// FuzzParseRateLimit: whatever a server sends, the budget read is sane or
// absent, and reading it never panics.
func FuzzParseRateLimit(f *testing.F) {
	for _, s := range []string{`"default";r=50;t=30`, `limit=100, remaining=7, reset=12`, "0", "1795608090", `"a";r=1, "b";r=0;t=9`, "", "(((", `r=1;t=2`} {
		f.Add(s, s)
	}
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, structured, plain string) {
		for _, h := range []http.Header{
			{"Ratelimit": {structured}},
			{"X-Ratelimit-Remaining": {plain}, "X-Ratelimit-Reset": {structured}},
		} {
			b := ParseRateLimit(h, now)
			if b != nil && (b.Remaining < 0 || b.Reset < 0 || b.Reset > maxRetryAfter) {
				t.Fatalf("%v gave %+v", h, b)
			}
		}
	})
}
