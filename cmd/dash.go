package cmd

import (
	"context"
	"errors"
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

// dashOptions are the flags of hemostat dash; their defaults are dash.DefaultOptions().
type dashOptions struct {
	Dash    dash.Options // Color and RedisAddr are set at run time
	NoColor bool
}

// agentKinds are the kinds of agent a heartbeat can name (the choices of --expect-agents).
var agentKinds = []string{"monitor", "analyze", "respond", "alert", "export"}

func newDashCmd(d *Deps, runF func(context.Context, *Deps, dashOptions) error) *cobra.Command {
	if runF == nil {
		runF = dashRun
	}
	opts := dashOptions{Dash: dash.DefaultOptions()}
	o := &opts.Dash
	c := &cobra.Command{
		Use:   "dash",
		Short: "Terminal dashboard: containers, incidents, live events, remediation history, and why hemostat acted",
		Long: `dash shows what hemostat sees and decides, read from Redis: containers with their state, health, CPU
and memory (with sparklines), open incidents, the live event timeline, the remediation history from the
audit trail, and for each container its safety ledger (attempts, cooldown left, breaker) and the reasons
hemostat did or did not act.

It needs no other agent to be running and keeps retrying while Redis is unreachable.
Keys: tab/shift-tab views, arrows or j/k move, / filter, enter detail, esc back, p pause, r refresh,
? help, q quit. NO_COLOR (or --no-color) turns colour off. --filter and --result start with the
filters set (the shell completes container names and results).`,
		Example: `  hemostat dash
  hemostat dash --redis-url redis://redis:6379/0 --refresh 5s
  hemostat dash --filter web-1 --result failed`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runF(cmd.Context(), d, opts)
		},
	}
	c.Annotations = map[string]string{annAgent: "true"}
	f := c.Flags()
	f.DurationVar(&o.Refresh, "refresh", o.Refresh, "how often containers, incidents, ledgers and history are re-read (events are live)")
	f.StringSliceVar(&o.ExpectedAgents, "expect-agents", o.ExpectedAgents, "agent kinds counted in \"agents alive\"")
	suggest(f, "expect-agents", agentKinds...)
	f.BoolVar(&opts.NoColor, "no-color", false, "render without colour (NO_COLOR does the same)")
	f.StringVar(&o.Filter, "filter", "", "start with this filter on the containers, events and history (the / filter)")
	completeWith(f, "filter", completeNames)
	choiceVar(f, &o.Result, "result", "", o.Result, "start the history with this result filter: "+orList(dash.ResultChoices), dash.ResultChoices...)
	perInvocation(f, "filter", "result")
	return c
}

func dashRun(ctx context.Context, d *Deps, opts dashOptions) error {
	if opts.Dash.Refresh < 100*time.Millisecond {
		return UsageError("--refresh %s: want at least 100ms", opts.Dash.Refresh)
	}
	if f, ok := d.Out.(*os.File); !ok || !term.IsTerminal(f.Fd()) {
		return UsageError("dash draws on a terminal and stdout is not one (for scripts: hemostat audit -o json)")
	}
	// Not d.Store: the dashboard starts without Redis, says so on screen and keeps retrying.
	c, err := conn.Open(d.redisOptions(4))
	if err != nil {
		return UsageError("%v", err)
	}
	d.OnClose(func() { c.Close() })
	// A cluster is refused before the screen is taken; an unreachable Redis is not (see above).
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	err = c.Check(cctx)
	cancel()
	if errors.Is(err, conn.ErrCluster) {
		return err
	}
	// The dashboard owns the terminal while it runs: nothing else may write to it, the driver included.
	conn.QuietDriverLogs(nil)
	st := store.New(c)
	o := opts.Dash
	o.Color, o.RedisAddr = !opts.NoColor && os.Getenv("NO_COLOR") == "", c.Addr()
	src := dash.NewRedisSource(dash.Sources{Containers: st.Containers, Ledgers: st.Ledger, Incidents: st.Incidents,
		Agents: st.Agents, Audit: st.Audit, Events: st.Notify, Streams: bus.New(c, bus.Options{})})
	return dash.Run(ctx, src, o, tea.WithInput(d.In), tea.WithOutput(d.Out))
}
