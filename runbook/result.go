package runbook

// StepResult is what steps.<id> holds for a step, or for each item of a
// for_each step: the one place its shape is written. The executor builds it,
// the journal keeps its scope form, and the loader checks reads against
// stepFields.
type StepResult struct {
	Skipped  bool
	Response any
	State    any
	Outputs  map[string]any
	Attempts int
	Error    string
}

// stepFields are the names steps.<id> offers: the keys of StepResult.scope.
var stepFields = []string{"response", "state", "outputs", "attempts", "error", "skipped"}

// scope is the result as expressions read it.
func (r StepResult) scope() map[string]any {
	outputs := r.Outputs
	if outputs == nil {
		outputs = map[string]any{}
	}
	return map[string]any{"skipped": r.Skipped, "response": r.Response, "state": r.State,
		"outputs": outputs, "attempts": r.Attempts, "error": r.Error}
}

// runScope is what run holds while the main steps run; cleanup steps see how
// the run ended.
func (r *run) runScope() map[string]any {
	return map[string]any{"id": r.id, "name": r.rb.Name, "result": "running", "error": "",
		"failed_step": "", "failed_step_id": "", "exit_code": 0}
}
