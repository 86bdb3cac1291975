package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/runbookhq/runbook/runbook"
	"github.com/runbookhq/runbook/sim"
)

func simCommand(ctx context.Context, stderr io.Writer) *cobra.Command {
	var addr, scenario string
	var seed uint64
	c := &cobra.Command{
		Use:   "sim",
		Short: "Serve the Skytap-style simulator",
		Long: `Serve a simulated Skytap API on a loopback port, with HTTP basic auth (any
credentials) and a request log at GET /__sim/log. Under /async/ the same server
is a generic cloud API of another kind: 202 Accepted with an Operation-Location
monitor, a request budget in RateLimit and X-RateLimit-* headers (429 past it;
a GitHub-style 403 on /async/search/environments), lists paged by Link
rel="next" (GET /async/environments?per_page=100: 250 environments), and POSTs
that honour Idempotency-Key. Scenarios:`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := sim.Scenario(scenario)
			if err != nil {
				return &runbook.UsageError{Msg: err.Error()}
			}
			cfg.Seed = seed
			cfg.MaxLog = sim.ServedMaxLog
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return &runbook.UsageError{Msg: fmt.Sprintf("--addr %s: %v", addr, err)}
			}
			hs := &http.Server{Handler: sim.New(cfg), ReadHeaderTimeout: 10 * time.Second}
			fmt.Fprintf(stderr, "simulator (scenario %s: %s) listening on http://%s; Ctrl-C stops it\n", scenario, sim.About(scenario), ln.Addr())
			go func() {
				<-ctx.Done()
				hs.Close()
			}()
			if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
	c.Flags().StringVar(&addr, "addr", "127.0.0.1:8080", "address to listen on (loopback by default)")
	c.Flags().StringVar(&scenario, "scenario", "default", "behaviour preset: "+strings.Join(sim.ScenarioNames(), ", ")+" (see --help)")
	for _, name := range sim.ScenarioNames() {
		c.Long += fmt.Sprintf("\n  %-8s %s", name, sim.About(name))
	}
	c.Flags().Uint64Var(&seed, "seed", 1, "seed for the simulator's choices")
	return c
}
