package runbook_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runbookhq/runbook/runbook"
	"github.com/runbookhq/runbook/steps"
)

// oneAnswer answers every request with the same body.
type oneAnswer []byte

func (a oneAnswer) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(bytes.NewReader(a)), ContentLength: int64(len(a)), Request: r}, nil
}

// peakHeap samples the heap in use every millisecond until stop is called, and
// returns the highest.
func peakHeap() (stop func() uint64) {
	var peak atomic.Uint64
	done := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	return func() uint64 {
		close(done)
		<-ended
		return peak.Load()
	}
}

// BenchmarkForEachLargeAnswers runs a for_each of 8 items, 8 at a time, each
// reading a 9 MB JSON list of small objects (about 250 MB decoded), and reports
// the peak heap in use: without a budget for decoded answers (every item holds
// its answer at once) and with the run's (they take turns).
//
//	go test -run '^$' -bench ForEachLargeAnswers -benchtime 1x ./runbook
func BenchmarkForEachLargeAnswers(b *testing.B) {
	var body bytes.Buffer
	body.WriteByte('[')
	for i := 0; body.Len() < 9<<20; i++ {
		if i > 0 {
			body.WriteByte(',')
		}
		fmt.Fprintf(&body, `{"id":%d}`, i)
	}
	body.WriteByte(']')
	step := `  - name: Read
    for_each: '[1, 2, 3, 4, 5, 6, 7, 8]'
    as: n
    concurrency: 8
    http: GET https://api.example.com/big/${{ n }}
`
	noID := "version: 1\nname: big\nsteps:\n" + step
	// With an id, each item's result is kept for the steps after it.
	outputsRead := "version: 1\nname: big\nsteps:\n  - id: big\n" + strings.Replace(step, "  - name", "    name", 1) +
		"    outputs:\n      count: len(state)\n  - log: ${{ sum(map(steps.big, .outputs.count)) }} objects\n"
	stateRead := strings.Replace(outputsRead, "map(steps.big, .outputs.count)", "map(steps.big, len(.state))", 1)
	for _, c := range []struct {
		name, src string
		budget    int64
	}{
		{"no-budget", noID, 1 << 50},
		{"budget-256MiB", noID, 256 << 20},
		{"id-later-reads-outputs", outputsRead, 256 << 20},
		{"id-later-reads-state", stateRead, 256 << 20},
	} {
		b.Run(c.name, func(b *testing.B) {
			defer runbook.SetAnswerBudget(c.budget)()
			rb, err := runbook.Load("big.yaml", []byte(c.src), steps.Kinds(&http.Client{Transport: oneAnswer(body.Bytes())}, nil))
			if err != nil {
				b.Fatal(err)
			}
			var peak uint64
			for b.Loop() {
				runtime.GC()
				stop := peakHeap()
				if err := rb.Run(b.Context(), runbook.Options{}); err != nil {
					b.Fatal(err)
				}
				peak = max(peak, stop())
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
		})
	}
}
