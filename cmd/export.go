package cmd

import (
	"context"
	"net"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hemostat/hemostat/pkg/agent"
	"github.com/hemostat/hemostat/pkg/bus"
	"github.com/hemostat/hemostat/pkg/export"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

// exportOptions are the flags of hemostat export; their defaults are export.DefaultOptions().
type exportOptions struct {
	Export export.Options // Instance and Logger are set at run time
	Bus    bus.Options
}

func newExportCmd(d *Deps, runF func(context.Context, *Deps, exportOptions) error) *cobra.Command {
	if runF == nil {
		runF = exportRun
	}
	opts := exportOptions{Export: export.DefaultOptions(), Bus: bus.DefaultOptions()}
	c := &cobra.Command{
		Use:   "export",
		Short: "Serve Prometheus metrics on /metrics",
		Long: `export serves hemostat's Prometheus metrics on --listen (/metrics, and /healthz for probes).

Counters and histograms (alerts, analyses, remediations, time to detect and to remediate) come from the
events its own consumer group "export" reads on every work stream: run several exporters and sum() them.
Container, agent, stream and notification figures are read from Redis at each scrape, so a container's
series disappear with the container. Example scrape config, alert rules and a Grafana dashboard are in
examples/prometheus and examples/grafana.

--web.config.file takes the Prometheus exporter-toolkit's web configuration, as node_exporter does: TLS
(server certificate, optionally client certificates) and basic auth users with bcrypt hashes. It is read
again on every request, so certificates and users change without a restart. Without it, bind to loopback.

An address that cannot be parsed, or a web configuration that does not validate, is a usage error (exit 2);
an address that is busy or not allowed fails (exit 1).`,
		Example: `  hemostat export
  hemostat export --listen 127.0.0.1:` + strings.TrimPrefix(export.DefaultListen, ":") + `
  hemostat export --web.config.file /etc/hemostat/web.yml
  curl -s localhost:` + strings.TrimPrefix(export.DefaultListen, ":") + `/metrics | grep hemostat_incidents_open`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runF(cmd.Context(), d, opts)
		},
	}
	c.Annotations = map[string]string{annAgent: "true"}
	f := c.Flags()
	f.StringVar(&opts.Export.Listen, "listen", opts.Export.Listen, "address to serve /metrics and /healthz on (host:port; an empty host means every interface)")
	f.BoolVar(&opts.Export.Runtime, "runtime-metrics", opts.Export.Runtime, "also export the Go runtime and process metrics")
	f.StringVar(&opts.Export.WebConfigFile, "web.config.file", "", "exporter-toolkit web configuration (TLS, basic auth) protecting /metrics and /healthz, as node_exporter's")
	addBusFlags(c, &opts.Bus)
	return c
}

// checkListen makes an address that cannot be listened on by its form a usage error, before anything
// connects.
func checkListen(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err == nil && port != "" {
		_, err = net.LookupPort("tcp", port) // a number from 0 to 65535, or a service name
	}
	if err != nil {
		return UsageError("--listen %q: want host:port, e.g. %s or 127.0.0.1%s", addr, export.DefaultListen, export.DefaultListen)
	}
	return nil
}

// loopback reports whether a listen address binds only the loopback interface.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func exportRun(ctx context.Context, d *Deps, opts exportOptions) error {
	if err := checkListen(opts.Export.Listen); err != nil {
		return err
	}
	if f := opts.Export.WebConfigFile; f != "" {
		if err := export.ValidateWebConfig(f); err != nil {
			return UsageError("--web.config.file: %v", err)
		}
	} else if !loopback(opts.Export.Listen) {
		d.Logger.Warn("/metrics and /healthz are served without TLS or authentication: bind them to loopback (--listen 127.0.0.1:" +
			strings.TrimPrefix(export.DefaultListen, ":") + ") or protect them with --web.config.file")
	}
	st, err := d.Store(ctx)
	if err != nil {
		return err
	}
	b, err := d.Bus(ctx, opts.Bus)
	if err != nil {
		return err
	}
	o := opts.Export
	o.Instance, o.Logger = d.Instance(), d.Logger
	e := export.New(ctx, o, export.Sources{Containers: st.Containers, Incidents: st.Incidents, Notify: st.Notify, Agents: st.Agents, Streams: b})
	l, err := e.Listen()
	if err != nil {
		return err
	}
	return agent.Run(ctx, agent.Options{Kind: "export", Instance: d.Instance(), Version: Build().Version,
		Record: schema.Agent{Host: d.HostName(), Listen: l.Addr().String()}, Logger: d.Logger},
		st.Agents, func(ctx context.Context) error { return e.Run(ctx, l, b) })
}
