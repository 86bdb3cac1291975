package sim

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// vmView is what a GET of a VM shows at one moment, independent of the API
// version; lagged and stale reads keep an old one.
type vmView struct {
	ID, Name, Runstate string
	RateLimited        bool
	Err, ErrDetail     string
	SupportsSuspend    bool
	EnvID              string
	CPUs, RAM          int
	CreatedAt          time.Time
}

// envView is what a GET of an environment shows at one moment.
type envView struct {
	ID, Name, Description, Runstate string
	RateLimited                     bool
	Errors, ErrorDetails            []string
	VMs                             []vmView
	Version                         int
	CreatedAt, LastRun              time.Time
}

func (s *Server) vmView(v *vm, now time.Time) vmView {
	return vmView{
		ID: v.id, Name: v.name, Runstate: s.vmRunstate(v, now), RateLimited: v.rateLimited(),
		Err: v.err, ErrDetail: v.errDetail, SupportsSuspend: v.canSuspend, EnvID: v.env.id,
		CPUs: v.cpus, RAM: v.ram, CreatedAt: v.createdAt,
	}
}

func (s *Server) envView(e *environment, now time.Time) envView {
	ev := envView{
		ID: e.id, Name: e.name, Description: e.description, Runstate: s.envRunstate(e, now),
		RateLimited: e.rateLimited(), Errors: clone(e.errors), ErrorDetails: clone(e.errorDetails),
		Version: e.version, CreatedAt: e.createdAt, LastRun: e.lastRun,
	}
	for _, v := range e.vms {
		ev.VMs = append(ev.VMs, s.vmView(v, now))
	}
	return ev
}

func clone(s []string) []string { return append([]string{}, s...) }

// render turns views into the API's JSON. The versions differ in their error
// fields: v1 has an environment "error" string ("" when none); v2 has
// "errors" and "error_details" lists. A VM's "error" is false when none.
type render struct {
	base string // scheme://host of the request, for url fields
	v2   bool
}

const timeLayout = "2006/01/02 15:04:05 -0700"

func skytapTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeLayout)
}

func (r render) path(p string) string {
	if r.v2 {
		return r.base + "/v2" + p
	}
	return r.base + p
}

type hardwareJSON struct {
	CPUs         int        `json:"cpus"`
	RAM          int        `json:"ram"`
	SVMs         int        `json:"svms"`
	GuestOS      string     `json:"guestOS"`
	Architecture string     `json:"architecture"`
	Storage      int        `json:"storage"`
	Disks        []diskJSON `json:"disks"`
}

type diskJSON struct {
	ID         string `json:"id"`
	Size       int    `json:"size"`
	Type       string `json:"type"`
	Controller string `json:"controller"`
	LUN        string `json:"lun"`
}

type interfaceJSON struct {
	ID          string `json:"id"`
	IP          string `json:"ip"`
	Hostname    string `json:"hostname"`
	Status      string `json:"status"`
	VMID        string `json:"vm_id"`
	VMName      string `json:"vm_name"`
	NetworkID   string `json:"network_id"`
	NetworkName string `json:"network_name"`
	NICType     string `json:"nic_type"`
}

type vmJSON struct {
	ID                     string          `json:"id"`
	Name                   string          `json:"name"`
	Runstate               string          `json:"runstate"`
	RateLimited            bool            `json:"rate_limited"`
	Hardware               hardwareJSON    `json:"hardware"`
	Error                  any             `json:"error"`                   // false or a message
	ErrorDetails           any             `json:"error_details,omitempty"` // v2: false or a detail
	Interfaces             []interfaceJSON `json:"interfaces"`
	CreatedAt              string          `json:"created_at"`
	SupportsSuspend        bool            `json:"supports_suspend"`
	CanChangeObjectState   bool            `json:"can_change_object_state"`
	MaintenanceLockEngaged bool            `json:"maintenance_lock_engaged"`
	HardwareVersion        int             `json:"hardware_version"`
	ConfigurationURL       string          `json:"configuration_url,omitempty"`
	TemplateURL            string          `json:"template_url,omitempty"`
}

func (r render) vm(v vmView, n int) vmJSON {
	status := map[string]string{"running": "Running", "stopped": "Powered off", "suspended": "Suspended"}[v.Runstate]
	if status == "" {
		status = "Busy"
	}
	out := vmJSON{
		ID: v.ID, Name: v.Name, Runstate: v.Runstate, RateLimited: v.RateLimited,
		Hardware: hardwareJSON{
			CPUs: v.CPUs, RAM: v.RAM, SVMs: 1, GuestOS: "centos-64", Architecture: "x86", Storage: 30720,
			Disks: []diskJSON{{ID: fmt.Sprintf("disk-%s-%s-scsi-0-0", v.EnvID, v.ID), Size: 30720, Type: "SCSI", Controller: "0", LUN: "0"}},
		},
		Error: false,
		Interfaces: []interfaceJSON{{
			ID: fmt.Sprintf("nic-%s-%s-0", v.EnvID, v.ID), IP: fmt.Sprintf("10.0.0.%d", n+1),
			Hostname: fmt.Sprintf("host-%d", n+1), Status: status, VMID: v.ID, VMName: v.Name,
			NetworkID: "net-" + v.EnvID, NetworkName: "Default Network", NICType: "vmxnet3",
		}},
		CreatedAt: skytapTime(v.CreatedAt), SupportsSuspend: v.SupportsSuspend,
		CanChangeObjectState: true, HardwareVersion: 11,
		ConfigurationURL: r.path("/configurations/" + v.EnvID),
	}
	if v.Err != "" {
		out.Error = v.Err
	}
	if r.v2 {
		out.ErrorDetails = false
		if v.ErrDetail != "" {
			out.ErrorDetails = v.ErrDetail
		}
	}
	return out
}

type networkJSON struct {
	ID          string `json:"id"`
	URL         string `json:"url"`
	Name        string `json:"name"`
	NetworkType string `json:"network_type"`
	Subnet      string `json:"subnet"`
	Gateway     string `json:"gateway"`
	Region      string `json:"region"`
}

type envJSON struct {
	ID                   string        `json:"id"`
	URL                  string        `json:"url"`
	Name                 string        `json:"name"`
	Description          string        `json:"description"`
	Error                *string       `json:"error,omitempty"`          // v1
	Errors               []string      `json:"errors,omitzero"`          // v2
	ErrorDetails         []string      `json:"error_details,omitzero"`   // v2
	PlatformErrors       []string      `json:"platform_errors,omitzero"` // v2
	Runstate             string        `json:"runstate"`
	RateLimited          bool          `json:"rate_limited"`
	LastRun              string        `json:"last_run,omitempty"`
	CreatedAt            string        `json:"created_at"`
	Region               string        `json:"region"`
	RegionBackend        string        `json:"region_backend"`
	OwnerName            string        `json:"owner_name,omitempty"` // v2
	Owner                string        `json:"owner,omitempty"`      // v1
	VMCount              int           `json:"vm_count"`
	VMs                  []vmJSON      `json:"vms"`
	Networks             []networkJSON `json:"networks"`
	CanChangeState       bool          `json:"can_change_state"`
	CanDelete            bool          `json:"can_delete"`
	CanEdit              bool          `json:"can_edit"`
	AllVMsSupportSuspend bool          `json:"all_vms_support_suspend"`
	LabelCount           int           `json:"label_count"`
	Lockversion          string        `json:"lockversion,omitempty"` // v1
	DisableInternet      bool          `json:"disable_internet"`
	Routable             bool          `json:"routable"`
}

func (r render) env(e envView) envJSON {
	out := envJSON{
		ID: e.ID, URL: r.path("/configurations/" + e.ID), Name: e.Name, Description: e.Description,
		Runstate: e.Runstate, RateLimited: e.RateLimited, LastRun: skytapTime(e.LastRun),
		CreatedAt: skytapTime(e.CreatedAt), Region: "US-West", RegionBackend: "skytap",
		VMCount: len(e.VMs), VMs: []vmJSON{},
		Networks: []networkJSON{{
			ID: "net-" + e.ID, URL: r.path("/configurations/" + e.ID + "/networks/net-" + e.ID),
			Name: "Default Network", NetworkType: "automatic", Subnet: "10.0.0.0/24", Gateway: "10.0.0.254", Region: "US-West",
		}},
		CanChangeState: true, CanDelete: true, CanEdit: true, AllVMsSupportSuspend: true,
	}
	for i, v := range e.VMs {
		out.VMs = append(out.VMs, r.vm(v, i))
		out.AllVMsSupportSuspend = out.AllVMsSupportSuspend && v.SupportsSuspend
	}
	if r.v2 {
		out.Errors, out.ErrorDetails, out.PlatformErrors = clone(e.Errors), clone(e.ErrorDetails), []string{}
		out.OwnerName = "Simulated User"
	} else {
		msg := strings.Join(e.Errors, "; ")
		out.Error = &msg
		out.Owner = r.base + "/users/1"
		sum := sha1.Sum(fmt.Appendf(nil, "%s/%d", e.ID, e.Version))
		out.Lockversion = hex.EncodeToString(sum[:])
	}
	return out
}

type templateJSON struct {
	ID          string   `json:"id"`
	URL         string   `json:"url"`
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Busy        *bool    `json:"busy"` // null when not busy
	Errors      []string `json:"errors"`
	Public      bool     `json:"public"`
	Region      string   `json:"region"`
	VMCount     int      `json:"vm_count"`
	VMs         []vmJSON `json:"vms"`
}

func (r render) template(t *template, now time.Time) templateJSON {
	out := templateJSON{
		ID: t.id, URL: r.path("/templates/" + t.id), Name: t.name, Errors: []string{},
		Public: true, Region: "US-West", VMCount: len(t.vms), VMs: []vmJSON{},
	}
	if t.busyUntil.After(now) {
		busy := true
		out.Busy = &busy
	}
	for i, spec := range t.vms {
		v := r.vm(vmView{ID: spec.ID, Name: spec.Name, Runstate: spec.Runstate, SupportsSuspend: !spec.NoSuspend,
			EnvID: t.id, CPUs: 1, RAM: 1024}, i)
		v.ConfigurationURL, v.TemplateURL = "", out.URL
		out.VMs = append(out.VMs, v)
	}
	return out
}

// busyMessage is the 422 body text the SDK's tests use for a busy resource.
const busyMessage = "The machine was busy. Try again later."

func errorBody(msg string) []byte { return mustJSON(map[string]string{"error": msg}) }

func errorsBody(msgs ...string) []byte { return mustJSON(map[string][]string{"errors": msgs}) }

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("sim: encoding %T: %v", v, err)) // our own types always encode
	}
	return b
}

func statusText(code int) string {
	if t := http.StatusText(code); t != "" {
		return t
	}
	return fmt.Sprintf("status %d", code)
}
