// Package sim is a simulated Skytap REST API: an http.Handler (and an
// in-memory http.RoundTripper) that behaves the way the real API does when
// resources are busy, so that runbook's executor can be tested, demonstrated
// and rehearsed without an account.
//
// It models environments ("configurations") and their VMs, runstate changes
// that take time, busy answers (422, 423, 200 with the change dropped),
// HTTP rate limiting (429), account-wide operation queueing (rate_limited),
// graceful stops that fail and leave a lingering error, deletes that end in
// 404, and faults injected on demand (5xx, slow responses, dropped
// connections), and hardware changes of stopped VMs (busy for a while, the
// new hardware showing once done). A webhook sink (POST /webhook/..., see
// webhook.go) gives runbooks' notifications somewhere to land, body logged.
// Every request is logged with the server-side truth at the
// moment it arrived, so tests can assert that a client never sent a change
// while the resource was busy and never came back before Retry-After.
//
// Nothing runs in the background. Time comes from a Clock, and every request
// first brings the state up to the clock's now: operations that have ended
// since are completed in time order, and queued operations start at the
// moment their slot freed up. That is what makes the simulator usable under
// testing/synctest, where goroutines that outlive a request are not allowed,
// and with a scaled clock for demonstrations.
//
// A second personality, under /async/ (async.go), is a generic cloud API
// that says busy its own ways: changes answered 202 Accepted with an
// Operation-Location monitor (NotStarted, Running, Succeeded or Failed, with
// Retry-After while not done), a per-client request budget announced on
// every answer (RateLimit and RateLimit-Policy, X-RateLimit-*) with 429 past
// it, or a GitHub-style 403 on its search route, lists paged by Link
// rel="next", and POSTs that honour Idempotency-Key. Config.Async shapes it;
// its log entries say the budget left at each request and whether the
// client came back before it was told to.
//
// It follows what is known of the real API (paths, fields, runstate rules,
// error bodies, real clients' fixtures); the rules a client must keep with it
// are in docs/executor.md.
package sim
