package cmd

import (
	"context"
	"path"
	"time"

	"github.com/spf13/cobra"

	"github.com/hemostat/hemostat/pkg/agent"
	"github.com/hemostat/hemostat/pkg/bus"
	"github.com/hemostat/hemostat/pkg/cgroup"
	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/monitor"
	"github.com/hemostat/hemostat/pkg/store"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

// monitorOptions are the flags of hemostat monitor: the agent's own settings, whose defaults are
// monitor.DefaultOptions(), and the command line's.
type monitorOptions struct {
	Monitor monitor.Options // Host, Output, Logger and SamplerName are set at run time
	Sampler string
	Output  string
	Bus     bus.Options
}

// defaultExclude keeps hemostat's own containers out of the watch unless --exclude says otherwise.
var defaultExclude = []string{"hemostat*"}

func newMonitorCmd(d *Deps, runF func(context.Context, *Deps, monitorOptions) error) *cobra.Command {
	if runF == nil {
		runF = monitorRun
	}
	opts := monitorOptions{Monitor: monitor.DefaultOptions(), Bus: bus.DefaultOptions()}
	m := &opts.Monitor
	c := &cobra.Command{
		Use:   "monitor",
		Short: "Watch this host's containers and publish health alerts",
		Long: `monitor watches the Docker engine's containers and publishes one health_alert per incident on
hemostat:health_alert, and one container_recovered when it clears.

Failures carried by events (crashed, oom_killed, crash_loop, unhealthy) are reported as soon as Docker
reports them; resource classes (cpu_saturated, memory_pressure, memory_leak) come from samples taken every
--interval by a pool of --sample-workers. A docker stop or kill by a user is no crash. Containers labelled
hemostat.enable=false, hemostat.self=true, or named by an --exclude glob are not watched; with
--watch labeled only those labelled hemostat.enable=true or autoheal=true are. The labels
hemostat.cpu_threshold and hemostat.memory_threshold (percent) override the thresholds per container.

stdout gets one line per incident opened, re-alerted, cleared or closed (-o jsonl for JSON lines, -o json
for indented JSON objects); logs go to stderr. While Docker is away the monitor retries; while Redis is
away it keeps watching and buffers up to --buffer notices, publishing them when Redis is back.`,
		Example: `  hemostat monitor
  hemostat monitor --watch labeled --interval 5s
  hemostat monitor --exclude 'ci-*' --cpu-threshold 95 -o jsonl | jq -c 'select(.kind == "opened")'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runF(cmd.Context(), d, opts)
		},
	}
	c.Annotations = map[string]string{annAgent: "true"}
	f := c.Flags()
	f.DurationVar(&m.Interval, "interval", m.Interval, "sampling period")
	f.DurationVar(&m.ReconcileInterval, "reconcile-interval", m.ReconcileInterval, "period of the full list that catches missed events")
	f.IntVar(&m.Workers, "sample-workers", m.Workers, "containers sampled at once")
	deprecatedAlias(f, "workers", "sample-workers")
	f.IntVar(&m.APIWorkers, "api-workers", m.APIWorkers, "stats API calls at once with the api sampler (each mostly waits for the daemon)")
	choiceVar(f, &opts.Sampler, "sampler", "", monitor.SamplerAuto, "sampler: auto (cgroup files when readable, else the stats API), cgroup or api",
		monitor.SamplerAuto, monitor.SamplerCgroup, monitor.SamplerAPI)
	choiceVar(f, &m.Watch.Mode, "watch", "", m.Watch.Mode, "which containers: all, or labeled (hemostat.enable=true or autoheal=true)",
		monitor.WatchAll, monitor.WatchLabeled)
	f.StringSliceVar(&m.Watch.Include, "include", m.Watch.Include, "watch only containers whose name matches one of these globs")
	f.StringSliceVar(&m.Watch.Exclude, "exclude", defaultExclude, "never watch containers whose name matches one of these globs")
	f.Float64Var(&m.CPUThreshold, "cpu-threshold", m.CPUThreshold, "cpu_saturated above this percent of the CPU limit (host cores without one)")
	f.Float64Var(&m.MemoryThreshold, "memory-threshold", m.MemoryThreshold, "memory_pressure above this percent of the memory limit")
	f.IntVar(&m.Consecutive, "consecutive", m.Consecutive, "samples over a threshold before an incident opens")
	f.DurationVar(&m.LeakHorizon, "leak-horizon", m.LeakHorizon, "memory_leak when steady growth reaches the limit within this")
	f.IntVar(&m.LeakMinSamples, "leak-min-samples", m.LeakMinSamples, "fewest samples before judging a memory trend")
	f.DurationVar(&m.Hysteresis, "recovery-hysteresis", m.Hysteresis, "how long a condition must stay clear before container_recovered")
	f.DurationVar(&m.RealertInterval, "realert-interval", m.RealertInterval, "alert again for an incident still open after this")
	f.DurationVar(&m.KillWindow, "kill-window", m.KillWindow, "a container dying this soon after a docker stop or kill did not crash")
	f.DurationVar(&m.CatchUp, "catch-up", m.CatchUp, "at start and reconcile, report exits at most this old")
	f.IntVar(&m.Buffer, "buffer", m.Buffer, "notices kept while Redis is away (the oldest are dropped)")
	addOutputFlag(f, &opts.Output, formatText, formatJSON, formatJSONL)
	addBusFlags(c, &opts.Bus)
	return c
}

func (o monitorOptions) validate() error {
	m := o.Monitor
	switch {
	case m.Interval <= 0 || m.ReconcileInterval <= 0:
		return UsageError("--interval and --reconcile-interval must be positive")
	case m.Workers <= 0 || m.APIWorkers <= 0 || m.Buffer <= 0 || m.Consecutive <= 0:
		return UsageError("--sample-workers, --api-workers, --buffer and --consecutive must be positive")
	case m.CPUThreshold <= 0 || m.CPUThreshold > 100 || m.MemoryThreshold <= 0 || m.MemoryThreshold > 100:
		return UsageError("--cpu-threshold and --memory-threshold are percentages in (0, 100]")
	}
	for _, g := range append(append([]string(nil), m.Watch.Include...), m.Watch.Exclude...) {
		if _, err := pathMatch(g); err != nil {
			return UsageError("glob %q: %v", g, err)
		}
	}
	return nil
}

// connectDocker waits for the engine, retrying with backoff and logging once per state change.
func connectDocker(ctx context.Context, d *Deps) (*docker.Client, error) {
	state := agent.NewState(d.Logger, "docker")
	bo := agent.Backoff{Min: 500 * time.Millisecond, Max: 10 * time.Second}
	for {
		c, err := d.Docker(ctx)
		if err != nil && ctx.Err() != nil {
			return nil, ctx.Err() // stopped while connecting: the ping's error does not wrap the cancellation
		}
		state.Set(err)
		if err == nil {
			return c, nil
		}
		if !agent.Sleep(ctx, bo.Next()) {
			return nil, ctx.Err()
		}
	}
}

// buildMonitor builds a monitor over a connected engine, this process's store and bus.
func buildMonitor(d *Deps, opts monitorOptions, dc *docker.Client, st *store.Store, b *bus.Bus) (*monitor.Monitor, error) {
	sampler, name, err := monitor.NewSampler(opts.Sampler, dc, cgroup.NewReader(cgroup.Options{}))
	if err != nil {
		return nil, UsageError("%v", err)
	}
	d.Logger.Info("sampler selected", "sampler", name, "requested", opts.Sampler, "docker_api", dc.APIVersion)
	o := opts.Monitor
	o.Host, o.SamplerName, o.Logger = d.HostName(), name, d.Logger.With("agent", "monitor")
	o.Output, o.Format = d.Out, monitor.FormatJSONL
	switch opts.Output {
	case formatText:
		o.Format = monitor.FormatText
	case formatJSON:
		o.Output = &indentWriter{w: d.Out}
	}
	return monitor.New(o, dc, sampler, monitor.Stores{Incidents: st.Incidents, State: st.Containers, Ledger: st.Ledger}, b), nil
}

// monitorRun checks the flags, connects to Redis (unreachable at start: exit 3), then heartbeats while it
// waits for the Docker engine (retrying with backoff) and watches it.
func monitorRun(ctx context.Context, d *Deps, opts monitorOptions) error {
	if err := opts.validate(); err != nil {
		return err
	}
	st, err := d.Store(ctx)
	if err != nil {
		return err
	}
	b, err := d.Bus(ctx, opts.Bus)
	if err != nil {
		return err
	}
	return agent.Run(ctx, agent.Options{Kind: "monitor", Instance: d.Instance(), Version: Build().Version,
		Record: schema.Agent{Host: d.HostName()}, Logger: d.Logger}, st.Agents, func(ctx context.Context) error {
		dc, err := connectDocker(ctx, d)
		if err != nil {
			return err // only when stopped while waiting
		}
		m, err := buildMonitor(d, opts, dc, st, b)
		if err != nil {
			return err
		}
		return m.Run(ctx)
	})
}

// pathMatch checks a glob's syntax.
func pathMatch(glob string) (bool, error) { return path.Match(glob, "") }
