package main

import (
	"runtime/debug"
	"testing"
)

// TestMemoryLimit: the soft memory limit is set, at most 1 GiB, unless the
// user set GOMEMLIMIT (even to off), which the runtime has applied already.
func TestMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(prev)

	t.Setenv("GOMEMLIMIT", "")
	debug.SetMemoryLimit(1 << 62)
	setMemoryLimit()
	if got := debug.SetMemoryLimit(-1); got <= 0 || got > memoryLimit {
		t.Errorf("limit %d, want at most %d", got, memoryLimit)
	}

	t.Setenv("GOMEMLIMIT", "off")
	debug.SetMemoryLimit(1 << 62)
	setMemoryLimit()
	if got := debug.SetMemoryLimit(-1); got != 1<<62 {
		t.Errorf("GOMEMLIMIT=off was overridden: limit %d", got)
	}
}
