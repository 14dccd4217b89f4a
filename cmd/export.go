package cmd

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/hemostat/hemostat/pkg/agent"
	"github.com/hemostat/hemostat/pkg/bus"
	"github.com/hemostat/hemostat/pkg/export"
)

type exportOptions struct {
	Listen  string
	Runtime bool
	Bus     bus.Options
}

func newExportCmd(d *Deps) *cobra.Command {
	var opts exportOptions
	c := &cobra.Command{
		Use:   "export",
		Short: "Serve Prometheus metrics on /metrics",
		Long: `export serves hemostat's Prometheus metrics on --listen (/metrics, and /healthz for probes).

Counters and histograms (alerts, analyses, remediations, time to detect and to remediate) come from the
events its own consumer group "export" reads on every work stream: run several exporters and sum() them.
Container, agent, stream and notification figures are read from Redis at each scrape, so a container's
series disappear with the container. Example scrape config, alert rules and a Grafana dashboard are in
examples/prometheus and examples/grafana.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return exportRun(cmd.Context(), d, opts)
		},
	}
	f := c.Flags()
	f.StringVar(&opts.Listen, "listen", export.DefaultListen, "address to serve /metrics and /healthz on")
	f.BoolVar(&opts.Runtime, "runtime-metrics", true, "also export the Go runtime and process metrics")
	addBusFlags(c, &opts.Bus)
	return c
}

func exportRun(ctx context.Context, d *Deps, opts exportOptions) error {
	st, err := d.Store(ctx)
	if err != nil {
		return err
	}
	b, err := d.Bus(ctx, opts.Bus)
	if err != nil {
		return err
	}
	e := export.New(ctx, export.Options{Listen: opts.Listen, Instance: d.Instance(), Runtime: opts.Runtime, Logger: d.Logger}, st)
	l, err := e.Listen()
	if err != nil {
		return err
	}
	return agent.Run(ctx, agent.Options{Kind: "export", Instance: d.Instance(), Version: Build().Version,
		Fields: map[string]string{"host": d.HostName(), "listen": l.Addr().String()}, Logger: d.Logger},
		st, func(ctx context.Context) error { return e.Run(ctx, l, b) })
}
