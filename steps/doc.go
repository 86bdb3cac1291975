// Package steps holds the step kinds: http, exec, shell, sleep, log and
// assert. Each decodes its own part of a step through runbook.Decoder (it
// never sees the YAML library), compiles its templates at load, and tells the
// executor through runbook.Info how its actions are to be treated: whether
// they change something, are guarded by default, can be re-sent, or run a
// local command. Kinds returns the registry the loader uses.
package steps
