package runbook

import (
	"encoding/base64"
	"strings"
	"testing"
)

// TestRedactorHidesPieces: a secret of pieceLen characters or more is hidden
// whole, and so is any run of pieceLen or more of its characters or of its
// base64; a shorter secret only whole.
func TestRedactorHidesPieces(t *testing.T) {
	const user, token, short = "ops-user", "tok-S3CRET-9d2e1-abcdef", "pw-1234"
	basic := base64.StdEncoding.EncodeToString([]byte(user + ":" + token)) // what Authorization carries
	b64 := base64.StdEncoding.EncodeToString([]byte(token))
	r := NewRedactor(user, token, short, user+":"+token, "p:w+d=ab@c")
	half := len(basic) / 2
	cases := []struct{ in, want string }{
		{"nothing secret here, just a long line of ordinary text", "nothing secret here, just a long line of ordinary text"},
		{"token " + token + " refused", "token *** refused"},
		{"Authorization: Basic " + basic, "Authorization: Basic ***"},
		// The Authorization header echoed in two halves, apart.
		{`{"error":"bad credentials ` + basic[:half] + `", "hint":"the rest was ` + basic[half:] + `"}`,
			`{"error":"bad credentials ***", "hint":"the rest was ***"}`},
		// Runs of 12 characters or more of the value, anywhere.
		{"first " + token[:12] + ", then " + token[12:] + "!", "first ***, then " + token[12:] + "!"},
		{"middle x" + token[5:18] + "y", "middle x***y"},
		{"the end " + token[len(token)-12:], "the end ***"},
		// 11 characters are not enough to say it is the secret.
		{"eleven " + token[:11] + ".", "eleven " + token[:11] + "."},
		// Pieces of the value's base64.
		{"b64 " + b64[:14] + " and " + b64[14:], "b64 *** and ***"},
		// Two pieces side by side are one run.
		{"[" + token[:12] + token[:12] + "]", "[***]"},
		// A secret escaped as a URL's path segment.
		{"/x/" + escapeSegment("p:w+d=ab@c") + "/y", "/x/***/y"},
		// A short secret is hidden whole only.
		{"pw " + short + " and pw-12", "pw *** and pw-12"},
		{"user " + user + " is fine", "user *** is fine"},
	}
	for _, c := range cases {
		if got := r.String(c.in); got != c.want {
			t.Errorf("String(%q)\n = %q\nwant %q", c.in, got, c.want)
		}
	}
	if got := NewRedactor().String("no secrets at all"); got != "no secrets at all" {
		t.Errorf("an empty redactor changed the text: %q", got)
	}
}

// BenchmarkRedactorString is a redactor with a run's usual secrets (a user, a
// token, both joined for basic auth) on an event's text without any of them,
// the common case: every event passes through it.
func BenchmarkRedactorString(b *testing.B) {
	const user, token = "ops-user-7f3a", "tok-S3CRET-9d2e1-0123456789abcdef"
	r := NewRedactor(user, token, user+":"+token)
	text := `step 3 "Run each VM" [12: 101]: attempt 2: PUT https://cloud.skytap.com/v2/configurations/1234567/vms/101 -> 422 Unprocessable Entity: The resource is busy and cannot be changed now; runstate=busy rate_limited=false`
	b.ReportAllocs()
	for b.Loop() {
		if got := r.String(text); len(got) != len(text) || strings.Contains(got, "***") {
			b.Fatal(got)
		}
	}
}
