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

type monitorOptions struct {
	Interval          time.Duration
	ReconcileInterval time.Duration
	Workers           int
	APIWorkers        int
	Sampler           string
	Watch             string
	Include           []string
	Exclude           []string
	CPUThreshold      float64
	MemoryThreshold   float64
	Consecutive       int
	LeakHorizon       time.Duration
	LeakMinSamples    int
	Hysteresis        time.Duration
	RealertInterval   time.Duration
	KillWindow        time.Duration
	CatchUp           time.Duration
	Buffer            int
	Output            string
	Bus               bus.Options
}

func newMonitorCmd(d *Deps) *cobra.Command {
	var opts monitorOptions
	c := &cobra.Command{
		Use:   "monitor",
		Short: "Watch this host's containers and publish health alerts",
		Long: `monitor watches the Docker engine's containers and publishes one health_alert per incident on
hemostat:health_alert, and one container_recovered when it clears.

Failures carried by events (crashed, oom_killed, crash_loop, unhealthy) are reported as soon as Docker
reports them; resource classes (cpu_saturated, memory_pressure, memory_leak) come from samples taken every
--interval by a pool of --workers. A docker stop or kill by a user is no crash. Containers labelled
hemostat.enable=false, hemostat.self=true, or named by an --exclude glob are not watched; with
--watch labeled only those labelled hemostat.enable=true or autoheal=true are. The labels
hemostat.cpu_threshold and hemostat.memory_threshold (percent) override the thresholds per container.

stdout gets one line per incident opened, re-alerted, cleared or closed (-o jsonl for JSON lines);
logs go to stderr. While Docker is away the monitor retries; while Redis is away it keeps watching and
buffers up to --buffer notices, publishing them when Redis is back.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return monitorRun(cmd.Context(), d, opts)
		},
	}
	def := defaultMonitorOptions()
	f := c.Flags()
	f.DurationVar(&opts.Interval, "interval", def.Interval, "sampling period")
	f.DurationVar(&opts.ReconcileInterval, "reconcile-interval", def.ReconcileInterval, "period of the full list that catches missed events")
	f.IntVar(&opts.Workers, "workers", def.Workers, "containers sampled at once")
	f.IntVar(&opts.APIWorkers, "api-workers", def.APIWorkers, "stats API calls at once with the api sampler (each mostly waits for the daemon)")
	f.StringVar(&opts.Sampler, "sampler", def.Sampler, "sampler: auto (cgroup files when readable, else the stats API), cgroup or api")
	f.StringVar(&opts.Watch, "watch", def.Watch, "which containers: all, or labeled (hemostat.enable=true or autoheal=true)")
	f.StringSliceVar(&opts.Include, "include", def.Include, "watch only containers whose name matches one of these globs")
	f.StringSliceVar(&opts.Exclude, "exclude", def.Exclude, "never watch containers whose name matches one of these globs")
	f.Float64Var(&opts.CPUThreshold, "cpu-threshold", def.CPUThreshold, "cpu_saturated above this percent of the CPU limit (host cores without one)")
	f.Float64Var(&opts.MemoryThreshold, "memory-threshold", def.MemoryThreshold, "memory_pressure above this percent of the memory limit")
	f.IntVar(&opts.Consecutive, "consecutive", def.Consecutive, "samples over a threshold before an incident opens")
	f.DurationVar(&opts.LeakHorizon, "leak-horizon", def.LeakHorizon, "memory_leak when steady growth reaches the limit within this")
	f.IntVar(&opts.LeakMinSamples, "leak-min-samples", def.LeakMinSamples, "fewest samples before judging a memory trend")
	f.DurationVar(&opts.Hysteresis, "recovery-hysteresis", def.Hysteresis, "how long a condition must stay clear before container_recovered")
	f.DurationVar(&opts.RealertInterval, "realert-interval", def.RealertInterval, "alert again for an incident still open after this")
	f.DurationVar(&opts.KillWindow, "kill-window", def.KillWindow, "a container dying this soon after a docker stop or kill did not crash")
	f.DurationVar(&opts.CatchUp, "catch-up", def.CatchUp, "at start and reconcile, report exits at most this old")
	f.IntVar(&opts.Buffer, "buffer", def.Buffer, "notices kept while Redis is away (the oldest are dropped)")
	f.StringVarP(&opts.Output, "output", "o", def.Output, "stdout format: text or jsonl")
	addBusFlags(c, &opts.Bus)
	return c
}

// defaultMonitorOptions are the flags' defaults; hemostat run starts its monitor with them.
func defaultMonitorOptions() monitorOptions {
	return monitorOptions{
		Interval: 10 * time.Second, ReconcileInterval: 15 * time.Second, Workers: 8, APIWorkers: 128,
		Sampler: monitor.SamplerAuto, Watch: monitor.WatchAll, Exclude: []string{"hemostat*"},
		CPUThreshold: 85, MemoryThreshold: 80, Consecutive: 3, LeakHorizon: 30 * time.Minute, LeakMinSamples: 10,
		Hysteresis: 30 * time.Second, RealertInterval: 30 * time.Minute, KillWindow: 60 * time.Second,
		CatchUp: time.Hour, Buffer: 1000, Output: monitor.FormatText,
	}
}

func (o monitorOptions) validate() error {
	switch {
	case o.Watch != monitor.WatchAll && o.Watch != monitor.WatchLabeled:
		return UsageError("--watch %q: want all or labeled", o.Watch)
	case o.Output != monitor.FormatText && o.Output != monitor.FormatJSONL:
		return UsageError("--output %q: want text or jsonl", o.Output)
	case o.Sampler != monitor.SamplerAuto && o.Sampler != monitor.SamplerCgroup && o.Sampler != monitor.SamplerAPI:
		return UsageError("--sampler %q: want auto, cgroup or api", o.Sampler)
	case o.Interval <= 0 || o.ReconcileInterval <= 0:
		return UsageError("--interval and --reconcile-interval must be positive")
	case o.Workers <= 0 || o.APIWorkers <= 0 || o.Buffer <= 0 || o.Consecutive <= 0:
		return UsageError("--workers, --api-workers, --buffer and --consecutive must be positive")
	case o.CPUThreshold <= 0 || o.CPUThreshold > 100 || o.MemoryThreshold <= 0 || o.MemoryThreshold > 100:
		return UsageError("--cpu-threshold and --memory-threshold are percentages in (0, 100]")
	}
	for _, g := range append(append([]string(nil), o.Include...), o.Exclude...) {
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
	return monitor.New(monitor.Options{
		Host: d.HostName(), Interval: opts.Interval, ReconcileInterval: opts.ReconcileInterval, Workers: opts.Workers,
		APIWorkers:   opts.APIWorkers,
		Watch:        monitor.WatchRules{Mode: opts.Watch, Include: opts.Include, Exclude: opts.Exclude},
		CPUThreshold: opts.CPUThreshold, MemoryThreshold: opts.MemoryThreshold, Consecutive: opts.Consecutive,
		LeakHorizon: opts.LeakHorizon, LeakMinSamples: opts.LeakMinSamples, Hysteresis: opts.Hysteresis,
		RealertInterval: opts.RealertInterval, KillWindow: opts.KillWindow, CatchUp: opts.CatchUp, Buffer: opts.Buffer,
		SamplerName: name, Output: d.Out, Format: opts.Output, Logger: d.Logger.With("agent", "monitor"),
	}, dc, sampler, monitor.Stores{Incidents: st.Incidents, State: st.Containers, Ledger: st.Ledger}, b), nil
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
