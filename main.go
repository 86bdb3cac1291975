// Command runbook executes YAML runbooks against busy-prone APIs: it checks a
// resource is not busy before changing it, treats a 200 as "accepted", polls until
// the change shows, honours Retry-After, and never moves on early.
package main

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/runbookhq/runbook/internal/cli"
)

func main() {
	setMemoryLimit()
	os.Exit(cli.Main(os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

// memoryLimit is the Go heap's soft limit. Everything a run holds is bounded
// by the runbook's own limits: a file of at most 4 MiB and 500,000 nodes (a
// few hundred MiB to load, in the worst case), answers cut at 10 MiB, the
// expressions' memory budget. 1 GiB is well above what an honest run holds,
// so it costs nothing there; near it the garbage collector works harder, so
// garbage never takes the process to the kernel's OOM killer. It is soft: a
// run that really needs more gets it.
const memoryLimit = 1 << 30

// setMemoryLimit sets the soft limit: GOMEMLIMIT when the user set one (the
// runtime has read it), else memoryLimit, or 90% of the memory the process's
// cgroup may use (a container, a systemd unit's MemoryMax) when that is less.
func setMemoryLimit() {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	limit := int64(memoryLimit)
	if n := cgroupMemoryMax(); n > 0 {
		limit = min(limit, n/10*9)
	}
	debug.SetMemoryLimit(limit)
}

// cgroupMemoryMax is the cgroup v2 memory.max of this process, 0 when there
// is none (unlimited, cgroup v1, not Linux).
func cgroupMemoryMax() int64 {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if path, ok := strings.CutPrefix(line, "0::"); ok {
			max, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", path, "memory.max"))
			if err != nil {
				return 0
			}
			n, _ := strconv.ParseInt(strings.TrimSpace(string(max)), 10, 64)
			return n
		}
	}
	return 0
}
