// Package metrics exports what a run of a runbook did, for a scheduler's
// monitoring: a file in the text format the node exporter's textfile collector
// reads, and a push to a Prometheus Pushgateway. Both hold the same group of
// metrics, built in a registry of its own: the process's global registry (Go
// runtime and process metrics) stays out of them.
package metrics

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Job is the Pushgateway job every runbook pushes under; Label names the
// runbook in the file and in the push's grouping key.
const (
	Job   = "runbook"
	Label = "runbook"
)

// The metrics' names.
const (
	LastRun     = "runbook_last_run_timestamp_seconds"
	LastSuccess = "runbook_last_success_timestamp_seconds"
	Duration    = "runbook_last_run_duration_seconds"
	ExitCode    = "runbook_last_run_exit_code"
	Requests    = "runbook_requests_total"
	Retries     = "runbook_retries_total"
	Steps       = "runbook_steps_total"
)

// Run is what one run of a runbook leaves for monitoring.
type Run struct {
	Runbook    string    // the runbook's name: the label's value
	Start, End time.Time // wall-clock
	ExitCode   int
	// LastSuccess is the end of the last run that succeeded: End when this
	// one did, else what the previous export said (zero: none ever did).
	LastSuccess time.Time
	Counts      Counts
}

// registry builds the run's metrics in a registry of their own; labelled puts
// the runbook's name on each (the file needs it; a push carries it in its
// grouping key, and the Pushgateway refuses it twice).
func (r *Run) registry(labelled bool) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	var constant prometheus.Labels
	if labelled {
		constant = prometheus.Labels{Label: r.Runbook}
	}
	gauge := func(name, help string, v float64) {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: constant})
		g.Set(v)
		reg.MustRegister(g)
	}
	counter := func(name, help, label string, by map[string]float64) {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: constant}, []string{label})
		for k, v := range by {
			c.WithLabelValues(k).Add(v)
		}
		reg.MustRegister(c)
	}
	gauge(LastRun, "When the last run of the runbook ended, in seconds since the epoch.", seconds(r.End))
	if !r.LastSuccess.IsZero() {
		gauge(LastSuccess, "When the last run of the runbook that succeeded (exit 0) ended, in seconds since the epoch.", seconds(r.LastSuccess))
	}
	gauge(Duration, "How long the last run of the runbook took, in seconds.", r.End.Sub(r.Start).Seconds())
	gauge(ExitCode, "The exit code of the last run of the runbook (0: every step took effect).", float64(r.ExitCode))
	counter(Requests, "HTTP requests the last run sent, by the answer's status code (error: no answer).", "code", r.Counts.Requests)
	counter(Retries, "Changes the last run sent again, by what made it (the answer's status code; no_answer; dropped: accepted but never took effect).", "reason", r.Counts.Retries)
	counter(Steps, "Steps of the last run, by result (done, failed, stopped, skipped).", "result", r.Counts.Steps)
	return reg
}

func seconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// WriteFile writes the run's metrics to path atomically: a temporary file in
// the same directory (a dot file, which the textfile collector, reading only
// *.prom, passes over), synced, then renamed over path, so a reader sees the
// old file or the new one, never a part. When the run failed, the last success
// is the later of r's and the one path held before; a file before that does
// not read is replaced all the same (the run's exit code matters more), and
// said in warning.
func WriteFile(path string, r Run) (warning, err error) {
	if r.ExitCode != 0 {
		prev, err := ReadLastSuccess(path, r.Runbook)
		if err != nil {
			warning = err
		}
		if prev.After(r.LastSuccess) {
			r.LastSuccess = prev
		}
	}
	return warning, writeFile(path, r)
}

func writeFile(path string, r Run) error {
	mfs, err := r.registry(true).Gather()
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // nothing left behind when the rename did not happen
	w := bufio.NewWriter(tmp)
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(w, mf); err != nil {
			tmp.Close()
			return err
		}
	}
	err = errors.Join(w.Flush(), tmp.Chmod(0o644), tmp.Sync())
	if err = errors.Join(err, tmp.Close()); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	// The rename outlives a crash only once the directory is synced.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// ReadLastSuccess is the last success a metrics file at path says of the
// runbook; zero when there is no file, or it has none for that runbook.
func ReadLastSuccess(path, runbook string) (time.Time, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	defer f.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(f)
	if err != nil {
		return time.Time{}, fmt.Errorf("cannot read the last success from %s: %w", path, err)
	}
	mf := mfs[LastSuccess]
	if mf == nil {
		return time.Time{}, nil
	}
	for _, m := range mf.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == Label && l.GetValue() == runbook && m.GetGauge() != nil {
				return time.Unix(0, int64(m.GetGauge().GetValue()*1e9)), nil
			}
		}
	}
	return time.Time{}, nil
}

// pushTimeout bounds a push: a Pushgateway that does not answer must not keep
// a scheduled job from ending.
const pushTimeout = 10 * time.Second

// Push replaces the runbook's group on the Pushgateway at gateway (PUT
// /metrics/job/runbook/runbook/<name>) with the run's metrics. The error never
// holds the URL's password.
func Push(ctx context.Context, gateway string, r Run, client *http.Client) error {
	if client == nil {
		client = &http.Client{Timeout: pushTimeout}
	}
	ctx, cancel := context.WithTimeout(ctx, pushTimeout)
	defer cancel()
	if err := push(ctx, client, gateway, r); err != nil {
		return errors.New(RedactURL(err.Error(), gateway))
	}
	return nil
}

// push PUTs the group, replacing what the gateway held of it. The runbook's
// name goes in the path base64-encoded (the protocol's `@base64` form): a name
// with spaces would otherwise come out of the gateway with `+` in it.
func push(ctx context.Context, client *http.Client, gateway string, r Run) error {
	families, err := r.registry(false).Gather()
	if err != nil {
		return err
	}
	var body bytes.Buffer
	enc := expfmt.NewEncoder(&body, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range families {
		if err := enc.Encode(f); err != nil {
			return err
		}
	}
	value := base64.RawURLEncoding.EncodeToString([]byte(r.Runbook))
	if value == "" {
		value = "="
	}
	target := strings.TrimRight(gateway, "/") + "/metrics/job/" + url.PathEscape(Job) + "/" + Label + "@base64/" + value
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, target, &body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		said, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("the Pushgateway at %s answered %s: %s", gateway, resp.Status, strings.TrimSpace(string(said)))
	}
	return nil
}

// RedactURL hides, in text, the password of a URL such as
// https://user:pass@host as the URL was written (the push library quotes it
// so in its errors; Go's HTTP client already writes ***).
func RedactURL(text, raw string) string {
	full := raw
	if !strings.Contains(full, "://") {
		full = "http://" + full
	}
	u, err := url.Parse(full)
	if err != nil || u.User == nil {
		return text
	}
	if _, ok := u.User.Password(); !ok {
		return text
	}
	authority := full[strings.Index(full, "://")+3:]
	if end := strings.IndexAny(authority, "/?#"); end >= 0 {
		authority = authority[:end]
	}
	userinfo := authority[:max(strings.LastIndex(authority, "@"), 0)]
	return strings.ReplaceAll(text, userinfo+"@", u.User.Username()+":***@")
}
