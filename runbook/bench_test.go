package runbook_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/runbookhq/runbook/runbook"
	"github.com/runbookhq/runbook/steps"
)

// bigRunbook is a 200-step runbook: reads, guarded changes with waits, loops.
func bigRunbook() []byte {
	var b strings.Builder
	b.WriteString(`version: 1
name: Big
vars:
  env_id: "1234567"
  api: ${{ env?.SKYTAP_URL ?? "https://cloud.skytap.com" }}
defaults:
  http:
    base_url: ${{ vars.api }}
    basic_auth: {username: "${{ env.SKYTAP_USER }}", password: "${{ env.SKYTAP_TOKEN }}"}
steps:
`)
	for i := range 200 {
		switch i % 4 {
		case 0:
			fmt.Fprintf(&b, "  - id: s%d\n    name: Read %d\n    http: GET /v2/configurations/${{ vars.env_id }}\n    outputs:\n      vms: map(response.body.vms, .id)\n", i, i)
		case 1:
			fmt.Fprintf(&b, "  - name: Suspend %d\n    if: steps.s%d.response.body.runstate == \"running\"\n    http:\n      method: PUT\n      url: /v2/configurations/${{ vars.env_id }}\n      json: {runstate: suspended}\n    wait_for: state.runstate == \"suspended\"\n", i, i-1)
		case 2:
			fmt.Fprintf(&b, "  - name: Each VM %d\n    for_each: steps.s%d.outputs.vms\n    as: vm\n    http:\n      method: PUT\n      url: /v2/configurations/${{ vars.env_id }}/vms/${{ vm }}\n      json: {runstate: running}\n    guard:\n      check: GET /v2/configurations/${{ vars.env_id }}\n    wait_for:\n      until: state.runstate == \"running\"\n      timeout: 20m\n", i, i-2)
		default:
			fmt.Fprintf(&b, "  - name: Delete %d\n    http: DELETE /v2/configurations/${{ vars.env_id }}\n    retry: {max_attempts: 5, backoff: 2}\n", i)
		}
	}
	return []byte(b.String())
}

// BenchmarkLoad parses, validates and compiles a 200-step runbook.
//
//	go test -run '^$' -bench 'BenchmarkLoad|BenchmarkCondition' ./runbook
func BenchmarkLoad(b *testing.B) {
	src := bigRunbook()
	k := steps.Kinds(http.DefaultClient, nil)
	b.ReportAllocs()
	for b.Loop() {
		rb, err := runbook.Load("big.yaml", src, k)
		if err != nil || len(rb.Steps) != 200 {
			b.Fatal(err)
		}
	}
}

// BenchmarkCondition evaluates a wait condition on a read state, as every poll
// does: compiled once at load, never per poll.
func BenchmarkCondition(b *testing.B) {
	rb, err := runbook.Load("c.yaml", []byte(`version: 1
name: c
steps:
  - http: PUT https://x/y
    wait_for: state.runstate == "running" && state?.rate_limited != true
`), steps.Kinds(http.DefaultClient, nil))
	if err != nil {
		b.Fatal(err)
	}
	until := rb.Steps[0].Wait.Until
	scope := runbook.Scope{"state": map[string]any{"runstate": "running", "rate_limited": false, "id": "1", "name": "vm"}}
	b.ReportAllocs()
	for b.Loop() {
		ok, err := until.Bool(scope)
		if err != nil || !ok {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseYAML is yaml.v3's parse of bigRunbook alone: the share of
// BenchmarkLoad that is reading the file rather than checking and compiling it.
func BenchmarkParseYAML(b *testing.B) {
	src := bigRunbook()
	b.ReportAllocs()
	for b.Loop() {
		var n yaml.Node
		if err := yaml.Unmarshal(src, &n); err != nil {
			b.Fatal(err)
		}
	}
}
