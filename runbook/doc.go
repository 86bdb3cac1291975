// Package runbook is the runbook language and the engine that carries it out.
//
// Loading (Load, LoadFile) parses a file with yaml.v3, checks every key,
// compiles every expression and template once, and checks every reference, so
// a mistake is reported with its file:line:col before anything is sent. The
// loader's files follow its phases: parse.go, decode.go, compile.go and
// compile_step.go, compile_check.go (guards, waits, probes), compile_expr.go,
// refs.go, vars.go, defaults.go, warnings.go.
//
// Running (Runbook.Run) carries the steps out by the API's rules: a change is
// sent only when its resource is not busy, its answer is classified and judged
// by a pure policy (policy.go), and the step is done only when its wait shows
// the change took effect (poll.go). Hosts are paced and paused per their
// Retry-After (pacer.go, hosts.go); fleets fan out in fleet.go; on_failure
// and finally run in cleanup.go. Every change is journaled before it is sent
// (journal.go, store.go, lock.go), so a resumed run neither repeats nor skips
// it (resume.go). The engine emits Events; it never writes to a terminal.
//
// The rules users rely on are in docs/language.md and docs/executor.md.
package runbook
