package runbook_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runbookhq/runbook/runbook"
	"github.com/runbookhq/runbook/steps"
)

// TestAuthorizationEchoedInHalvesIsHidden: a server that answers 400 with the
// Authorization header it got, cut in two halves and apart in its message,
// shows neither half in the events, the error or the journal.
func TestAuthorizationEchoedInHalvesIsHidden(t *testing.T) {
	var halves []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := strings.TrimPrefix(r.Header.Get("Authorization"), "Basic ")
		h1, h2 := auth[:len(auth)/2], auth[len(auth)/2:]
		halves = []string{h1, h2}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]any{"errors": []string{"credentials start " + h1, "and end " + h2 + " and are wrong"}})
	}))
	defer srv.Close()
	src := "version: 1\nname: echo\ndefaults:\n  http:\n    base_url: " + srv.URL + "\n    basic_auth: {username: \"${{ env.USER }}\", password: \"${{ env.TOKEN }}\"}\n" +
		"steps:\n  - name: Read\n    http: GET /configurations/1\n"
	rb, err := runbook.Load("echo.yaml", []byte(src), steps.Kinds(srv.Client(), nil))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "echo.yaml")
	os.WriteFile(file, []byte(src), 0o600)
	store, err := runbook.OpenStore(t.TempDir(), true, file, false)
	if err != nil {
		t.Fatal(err)
	}
	j, err := store.Create("r01")
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	var shown []string
	err = rb.Run(t.Context(), runbook.Options{
		Env:     map[string]string{"USER": "ops-user-7f3a", "TOKEN": "tok-S3CRET-9d2e1-abcdef"},
		Journal: j,
		Observer: runbook.ObserverFunc(func(e runbook.Event) {
			shown = append(shown, e.Reason, e.Err, e.State, e.Target)
		}),
	})
	if err == nil || !strings.Contains(err.Error(), "400 Bad Request: credentials start ***; and end *** and are wrong") {
		t.Fatalf("error %v", err)
	}
	journal, _ := os.ReadFile(j.Path())
	if len(halves) != 2 || len(journal) == 0 {
		t.Fatalf("halves %q, journal %d bytes", halves, len(journal))
	}
	for _, h := range halves {
		for _, s := range append(shown, err.Error(), string(journal)) {
			if strings.Contains(s, h) {
				t.Errorf("half %q of the Authorization header shows: %s", h, s)
			}
		}
	}
}
