package runbook_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/runbookhq/runbook/runbook"
)

// TestEveryStepIsCheckedInItsPlace: in a long runbook each step's references
// are judged against the steps before and after it (an earlier list, a later
// id), every mistake is reported, and env names come in order of first use.
func TestEveryStepIsCheckedInItsPlace(t *testing.T) {
	many := func(mistakes bool) []byte {
		var b strings.Builder
		b.WriteString("version: 1\nname: Many\nvars: {env_id: \"1\"}\nsecrets: [TOKEN]\ndefaults:\n  http:\n    base_url: https://x\n")
		b.WriteString("    headers: {Authorization: \"Bearer ${{ env.TOKEN }}\"}\nsteps:\n")
		for i := range 100 {
			switch i % 5 {
			case 0:
				fmt.Fprintf(&b, "  - id: s%d\n    http: GET /e/${{ vars.env_id }}/${{ env.E%d }}\n    outputs: {vms: response.body.vms}\n", i, i%7)
			case 1:
				fmt.Fprintf(&b, "  - for_each: steps.s%d.outputs.vms\n    http: PUT /v/${{ item }}\n    guard: false\n", i-1) // a warning
			case 2:
				fmt.Fprintf(&b, "  - id: t%d\n    for_each: '[1]'\n    log: ${{ env.F%d }}\n", i, i%3)
			case 3:
				if mistakes {
					fmt.Fprintf(&b, "  - http: PUT /e/${{ vars.nope%d }}\n", i)
				} else {
					fmt.Fprintf(&b, "  - http: PUT /e/${{ vars.env_id }}\n")
				}
			default:
				if mistakes {
					fmt.Fprintf(&b, "  - log: ${{ steps.t%d.state }} ${{ steps.s%d.state }}\n", i-2, i+1)
				} else {
					fmt.Fprintf(&b, "  - log: ${{ steps.t%d[0].state }} ${{ steps.s%d.state }}\n", i-2, i-4)
				}
			}
		}
		return []byte(b.String())
	}
	load := func(src []byte) string {
		rb, err := runbook.Load("many.yaml", src, kinds())
		if err != nil {
			return err.Error()
		}
		return fmt.Sprintf("%d steps, env %v, auth %v, warnings %v", len(rb.Steps), rb.Env, rb.AuthEnv, rb.Warnings)
	}
	got := load(many(true))
	if strings.Count(got, "unknown var") != 20 || strings.Count(got, "is a list") != 20 || strings.Count(got, "runs later") != 19 { // s100 does not exist
		t.Errorf("the runbook should have 20 of each mistake (19 later steps):\n%s", got)
	}
	got = load(many(false))
	const env = "env [{TOKEN {8 46}} {E0 {11 45}} {F2 {18 18}} {E5 {22 45}} {F1 {29 18}} {E3 {33 45}} {F0 {40 18}} {E1 {44 45}} {E6 {55 45}} {E4 {66 45}} {E2 {77 45}}]"
	if !strings.HasPrefix(got, "100 steps, "+env+", auth [TOKEN]") || strings.Count(got, "guard: false") != 20 {
		t.Errorf("the runbook should load with %s and 20 warnings:\n%s", env, got)
	}
}
