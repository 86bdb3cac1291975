package runbook_test

import (
	"testing"

	"github.com/runbookhq/runbook/runbook"
)

func TestDeleteWaitsForGoneByDefault(t *testing.T) {
	rb, err := runbook.Load("d.yaml", []byte(header+"steps:\n  - name: d\n    http: DELETE /x\n"), kinds())
	if err != nil {
		t.Fatal(err)
	}
	w := rb.Steps[0].Wait
	if !w.On || !w.Gone || w.Until.Source != "response.status == 404" {
		t.Errorf("DELETE wait = %+v", w)
	}
}
