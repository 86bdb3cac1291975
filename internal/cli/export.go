package cli

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/runbookhq/runbook/internal/metrics"
	"github.com/runbookhq/runbook/runbook"
)

// export is what `run --metrics-file` and `--pushgateway` need: the run's
// counts as its events go by, and where to send them when it ends.
type export struct {
	file, gateway string
	name          string // the runbook's name: the metrics' label
	start         time.Time
	tally         *metrics.Tally
	store         *runbook.Store // the runbook's journals, once opened
}

// checkGateway refuses a --pushgateway that is not an http(s) URL or a
// host:port, before anything runs.
func checkGateway(raw string) error {
	full := raw
	if !strings.Contains(full, "://") {
		full = "http://" + full
	}
	u, err := url.Parse(full)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return &runbook.UsageError{Msg: fmt.Sprintf("--pushgateway %s: give the Pushgateway's URL, such as http://pushgateway:9091", metrics.RedactURL(raw, raw))}
	}
	return nil
}

// newExport starts counting for the exports f asks for; nil when none.
func newExport(f runFlags, rb *runbook.Runbook, file string) *export {
	if f.metricsFile == "" && f.pushgateway == "" {
		return nil
	}
	name := rb.Name
	if name == "" {
		name = strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
	}
	return &export{file: f.metricsFile, gateway: f.pushgateway, name: name, start: time.Now(), tally: metrics.NewTally()}
}

// observe counts e, then hands it to obs.
func (x *export) observe(obs runbook.Observer) runbook.Observer {
	return runbook.ObserverFunc(func(e runbook.Event) {
		x.tally.Observe(e)
		obs.Observe(e)
	})
}

// finish writes and pushes the run's metrics. A failure is a warning: the
// run's own exit code stands.
func (x *export) finish(ctx context.Context, err error, warn io.Writer) {
	r := metrics.Run{Runbook: x.name, Start: x.start, End: time.Now(), ExitCode: runbook.ExitCode(err), Counts: x.tally.Counts()}
	switch {
	case r.ExitCode == 0:
		r.LastSuccess = r.End
	case x.store != nil:
		// The journals know the last success too (a push has no file to
		// keep it); WriteFile keeps the later of theirs and the file's.
		r.LastSuccess = x.store.LastSuccess()
	}
	if x.file != "" {
		warning, err := metrics.WriteFile(x.file, r)
		if warning != nil {
			fmt.Fprintf(warn, "runbook: warning: %v; the metrics file is written anew\n", warning)
		}
		if err != nil {
			fmt.Fprintf(warn, "runbook: warning: the metrics file %s was not written: %v\n", x.file, err)
		}
	}
	if x.gateway != "" {
		// The run may have been stopped by a signal: the push still goes,
		// within its own timeout.
		if err := metrics.Push(context.WithoutCancel(ctx), x.gateway, r, nil); err != nil {
			fmt.Fprintf(warn, "runbook: warning: the metrics were not pushed to %s: %v\n", metrics.RedactURL(x.gateway, x.gateway), err)
		}
	}
}
