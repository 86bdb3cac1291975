package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// params are the fields of a change, from the JSON body or the query string
// (PUT /configurations/1?runstate=running is as good as the body).
type params struct {
	runstate    string
	multiselect []string
	name        *string
	description *string
	templateID  string
	vmIDs       []string
	hardware    *hardwareChange
	contents    *string
}

type hardwareChange struct {
	CPUs *int `json:"cpus"`
	RAM  *int `json:"ram"`
}

func (h *hardwareChange) check() string {
	if h.CPUs != nil && (*h.CPUs < 1 || *h.CPUs > 12) {
		return fmt.Sprintf("cpus must be between 1 and 12, not %d", *h.CPUs)
	}
	if h.RAM != nil && (*h.RAM < 256 || *h.RAM > 262144) {
		return fmt.Sprintf("ram must be between 256 and 262144, not %d", *h.RAM)
	}
	return ""
}

// same says the change asks for the hardware the VM has: like a runstate it
// is already in, it is a no-op, not an edit that makes the VM busy.
func (h *hardwareChange) same(v *vm) bool {
	return (h.CPUs == nil || *h.CPUs == v.cpus) && (h.RAM == nil || *h.RAM == v.ram)
}

// flexID is an id sent as a string or as a number; clients do both.
type flexID string

func (f *flexID) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		*f = flexID(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("an id must be a string or a number, not %s", b)
	}
	*f = flexID(n)
	return nil
}

// parseParams reads a change's fields; a body that is not JSON is refused
// with the reason, as a 422.
func parseParams(r *http.Request, body []byte) (params, string) {
	var b struct {
		Runstate    *string         `json:"runstate"`
		Multiselect []flexID        `json:"multiselect"`
		Name        *string         `json:"name"`
		Description *string         `json:"description"`
		TemplateID  flexID          `json:"template_id"`
		VMIDs       []flexID        `json:"vm_ids"`
		Hardware    *hardwareChange `json:"hardware"`
		Contents    *string         `json:"contents"`
	}
	var p params
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &b); err != nil {
			return p, "The request body is not valid JSON: " + err.Error()
		}
	}
	if b.Runstate != nil {
		p.runstate = *b.Runstate
	}
	for _, id := range b.Multiselect {
		p.multiselect = append(p.multiselect, string(id))
	}
	for _, id := range b.VMIDs {
		p.vmIDs = append(p.vmIDs, string(id))
	}
	p.name, p.description, p.templateID = b.Name, b.Description, string(b.TemplateID)
	p.hardware, p.contents = b.Hardware, b.Contents

	q := r.URL.Query()
	if q.Has("runstate") {
		p.runstate = q.Get("runstate")
	}
	if q.Has("name") {
		n := q.Get("name")
		p.name = &n
	}
	if q.Has("description") {
		d := q.Get("description")
		p.description = &d
	}
	if q.Has("template_id") {
		p.templateID = q.Get("template_id")
	}
	p.multiselect = append(p.multiselect, queryList(q["multiselect"], q["multiselect[]"])...)
	p.vmIDs = append(p.vmIDs, queryList(q["vm_ids"], q["vm_ids[]"])...)
	return p, ""
}

func queryList(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		for _, v := range l {
			for id := range strings.SplitSeq(v, ",") {
				if id = strings.TrimSpace(id); id != "" {
					out = append(out, id)
				}
			}
		}
	}
	return out
}

// rename applies name and description edits, which take effect at once;
// it says whether anything changed.
func (p params) rename(name, description *string) bool {
	changed := false
	if p.name != nil && *p.name != *name {
		*name, changed = *p.name, true
	}
	if description != nil && p.description != nil && *p.description != *description {
		*description, changed = *p.description, true
	}
	return changed
}
