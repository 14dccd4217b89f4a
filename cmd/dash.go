package cmd

import (
	"context"
	"os"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/term"
	"github.com/spf13/cobra"

	"github.com/hemostat/hemostat/pkg/bus"
	"github.com/hemostat/hemostat/pkg/conn"
	"github.com/hemostat/hemostat/pkg/dash"
	"github.com/hemostat/hemostat/pkg/store"
)

type dashOptions struct {
	Refresh time.Duration
	Expect  []string
	NoColor bool
}

func newDashCmd(d *Deps) *cobra.Command {
	opts := dashOptions{}
	c := &cobra.Command{
		Use:   "dash",
		Short: "Terminal dashboard: containers, incidents, live events, remediation history, and why hemostat acted",
		Long: `dash shows what hemostat sees and decides, read from Redis: containers with their state, health, CPU
and memory (with sparklines), open incidents, the live event timeline, the remediation history from the
audit trail, and for each container its safety ledger (attempts, cooldown left, breaker) and the reasons
hemostat did or did not act.

It needs no other agent to be running and keeps retrying while Redis is unreachable.
Keys: tab/shift-tab views, arrows or j/k move, / filter, enter detail, esc back, p pause, r refresh,
? help, q quit. NO_COLOR (or --no-color) turns colour off.`,
		Example: `  hemostat dash
  hemostat dash --redis-url redis://redis:6379/0 --refresh 5s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return dashRun(cmd.Context(), d, opts)
		},
	}
	f := c.Flags()
	f.DurationVar(&opts.Refresh, "refresh", 2*time.Second, "how often containers, incidents, ledgers and history are re-read (events are live)")
	f.StringSliceVar(&opts.Expect, "expect-agents", dash.DefaultExpectedAgents, "agent kinds counted in \"agents alive\"")
	f.BoolVar(&opts.NoColor, "no-color", false, "render without colour (NO_COLOR does the same)")
	return c
}

func dashRun(ctx context.Context, d *Deps, opts dashOptions) error {
	if opts.Refresh < 100*time.Millisecond {
		return UsageError("--refresh %s: want at least 100ms", opts.Refresh)
	}
	if f, ok := d.Out.(*os.File); !ok || !term.IsTerminal(f.Fd()) {
		return UsageError("dash draws on a terminal and stdout is not one (for scripts: hemostat audit -o json)")
	}
	// Not d.Store: the dashboard starts without Redis, says so on screen and keeps retrying.
	c, err := conn.Open(conn.Options{URL: d.Global.RedisURL, Password: d.Global.RedisPassword, PoolSize: 4})
	if err != nil {
		return UsageError("%v", err)
	}
	d.OnClose(func() { c.Close() })
	// The dashboard owns the terminal while it runs: nothing else may write to it, the driver included.
	conn.QuietDriverLogs(nil)
	st := store.New(c)
	o := dash.Options{
		Refresh:        opts.Refresh,
		Color:          !opts.NoColor && os.Getenv("NO_COLOR") == "",
		ExpectedAgents: opts.Expect,
		RedisAddr:      c.Addr(),
	}
	src := dash.NewRedisSource(dash.Sources{Containers: st.Containers, Ledgers: st.Ledger, Incidents: st.Incidents,
		Agents: st.Agents, Audit: st.Audit, Events: st.Notify, Streams: bus.New(c, bus.Options{})})
	return dash.Run(ctx, src, o, tea.WithInput(d.In), tea.WithOutput(d.Out))
}
