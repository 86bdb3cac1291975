package sim

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// routeKind is what a path addresses.
type routeKind int

const (
	routeNone     routeKind = iota
	routeEnvs               // /configurations
	routeEnv                // /configurations/{id}
	routeEnvVMs             // /configurations/{id}/vms
	routeEnvVM              // /configurations/{id}/vms/{vm}
	routeUserData           // /configurations/{id}/user_data
	routeVM                 // /vms/{vm}
	routeTemplate           // /templates/{id}
	routeAsync              // /async/...: the second personality (async.go)
	routeWebhook            // /webhook/...: a sink for notifications (webhook.go)
)

type route struct {
	kind          routeKind
	env, vm, tmpl string
	v2            bool // the path said /v2/
	async         asyncRoute
	hook          string // routeWebhook: the path after /webhook
}

// parseRoute maps every spelling clients use (a /v1/ or /v2/ prefix, a .json
// suffix, a trailing slash) to one route. path is the path as sent (escaped).
func parseRoute(path string) route {
	var rt route
	if isAsync(path) {
		return route{kind: routeAsync, async: parseAsyncRoute(path)}
	}
	if hook, ok := webhookName(path); ok {
		return route{kind: routeWebhook, hook: hook}
	}
	p := strings.TrimSuffix(path, "/")
	switch {
	case strings.HasPrefix(p, "/v2/"):
		rt.v2, p = true, p[3:]
	case strings.HasPrefix(p, "/v1/"):
		p = p[3:]
	}
	seg := strings.Split(strings.TrimPrefix(strings.TrimSuffix(p, ".json"), "/"), "/")
	if slices.Contains(seg, "") {
		return rt
	}
	// The path is split as sent, then each segment unescaped: 1%2F..%2Fadmin
	// is the id "1/../admin", not three segments.
	for i, s := range seg {
		u, err := url.PathUnescape(s)
		if err != nil {
			return route{}
		}
		seg[i] = u
	}
	switch {
	case len(seg) == 1 && seg[0] == "configurations":
		rt.kind = routeEnvs
	case len(seg) == 2 && seg[0] == "configurations":
		rt.kind, rt.env = routeEnv, seg[1]
	case len(seg) == 3 && seg[0] == "configurations" && seg[2] == "vms":
		rt.kind, rt.env = routeEnvVMs, seg[1]
	case len(seg) == 3 && seg[0] == "configurations" && seg[2] == "user_data":
		rt.kind, rt.env = routeUserData, seg[1]
	case len(seg) == 4 && seg[0] == "configurations" && seg[2] == "vms":
		rt.kind, rt.env, rt.vm = routeEnvVM, seg[1], seg[3]
	case len(seg) == 2 && seg[0] == "vms":
		rt.kind, rt.vm = routeVM, seg[1]
	case len(seg) == 2 && seg[0] == "templates":
		rt.kind, rt.tmpl = routeTemplate, seg[1]
	}
	return rt
}

// target names the resource a route addresses, as faults and the log name it.
func (rt route) target() string {
	switch rt.kind {
	case routeEnv, routeEnvVMs, routeUserData:
		return "env/" + rt.env
	case routeEnvVM, routeVM:
		return "vm/" + rt.vm
	case routeTemplate:
		return "template/" + rt.tmpl
	case routeAsync:
		return rt.async.target()
	case routeWebhook:
		return "webhook/" + rt.hook
	}
	return ""
}

func (rt route) allows(method string) bool {
	var ok []string
	switch rt.kind {
	case routeEnvs:
		ok = []string{http.MethodGet, http.MethodPost}
	case routeEnv, routeEnvVM, routeVM:
		ok = []string{http.MethodGet, http.MethodPut, http.MethodDelete}
	case routeEnvVMs:
		ok = []string{http.MethodGet}
	case routeUserData, routeTemplate:
		ok = []string{http.MethodGet, http.MethodPut}
	case routeWebhook:
		ok = []string{http.MethodPost}
	}
	return slices.Contains(ok, method)
}

func isMutation(method string) bool {
	switch method {
	case http.MethodPut, http.MethodPost, http.MethodPatch, http.MethodDelete:
		return true
	}
	return false
}
