package runbook

import (
	"slices"
	"testing"
)

// TestStepFieldsAreTheResultsShape: the loader checks steps.<id>.x against
// stepFields, so they must be exactly what a result holds.
func TestStepFieldsAreTheResultsShape(t *testing.T) {
	var keys []string
	for k := range (StepResult{}).scope() {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := slices.Sorted(slices.Values(stepFields))
	if !slices.Equal(keys, want) {
		t.Errorf("a result holds %v, the loader offers %v", keys, want)
	}
}

// TestRunFieldsAreTheRunScope: the loader checks run.x against runFields.
func TestRunFieldsAreTheRunScope(t *testing.T) {
	r := &run{rb: &Runbook{}}
	var keys []string
	for k := range r.runScope() {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := slices.Sorted(slices.Values(runFields)); !slices.Equal(keys, want) {
		t.Errorf("run holds %v, the loader offers %v", keys, want)
	}
}
