// Package export owns hemostat's Prometheus exporter: counters and histograms derived from the events its
// own consumer group reads on every work stream, and gauges and counters built at scrape time from the
// shared state in Redis (containers, samples, agents, consumer groups, notification and monitor counters),
// served on a private registry at /metrics.
package export

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/hemostat/hemostat/pkg/bus"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/prometheus/exporter-toolkit/web"
)

// Group is the exporter's consumer group.
const Group = "export"

// Consumer reads the bus; *bus.Bus implements it.
type Consumer interface {
	Consume(ctx context.Context, g bus.Group, h bus.Handler) error
	// WorkStreams names every work stream in flow order, the hosts' request streams included (one
	// SMEMBERS): the exporter consumes them all.
	WorkStreams(ctx context.Context) ([]string, error)
}

// streamDiscovery is how often the exporter looks for new hosts' request streams.
const streamDiscovery = 2 * time.Second

// Options configure the exporter.
type Options struct {
	Listen      string        // address of /metrics and /healthz, default DefaultListen
	Instance    string        // consumer name within the group
	ReadTimeout time.Duration // bound on the state read of one scrape, default 3s
	Runtime     bool          // also export the Go runtime and process collectors
	// WebConfigFile is an exporter-toolkit web configuration (TLS, basic auth, as node_exporter's
	// --web.config.file): it protects /metrics and /healthz alike. "" serves plain HTTP to anyone.
	WebConfigFile string
	Logger        *slog.Logger
}

// ValidateWebConfig checks a web configuration file as Serve will read it: its YAML, its certificate and
// key files, and its users' bcrypt hashes.
func ValidateWebConfig(path string) error {
	if err := web.Validate(path); err != nil {
		return fmt.Errorf("web config %s: %w", path, err)
	}
	return nil
}

// Exporter serves hemostat's metrics.
type Exporter struct {
	o      Options
	reg    *prometheus.Registry
	events *eventMetrics
	state  *stateCollector
}

// New builds an exporter over the state reader. Its base context bounds the scrape-time reads.
func New(base context.Context, o Options, src Sources) *Exporter {
	if o.Listen == "" {
		o.Listen = DefaultListen
	}
	if o.Instance == "" {
		o.Instance = "export"
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = defaultReadTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	reg := prometheus.NewRegistry()
	e := &Exporter{o: o, reg: reg, events: newEventMetrics(reg),
		state: newStateCollector(base, src, o.ReadTimeout, o.Logger)}
	reg.MustRegister(e.state)
	if o.Runtime {
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	return e
}

// Registry is the exporter's private registry (tests gather from it).
func (e *Exporter) Registry() *prometheus.Registry { return e.reg }

// Processed counts the events observed so far.
func (e *Exporter) Processed() int64 { return e.events.processed.Load() }

// Handle observes one event; it never fails, so every entry is acknowledged.
func (e *Exporter) Handle(_ context.Context, m bus.Message) error {
	e.events.observe(m.Envelope)
	return nil
}

// Handler serves /metrics and /healthz. /healthz answers 200 while the process serves: Redis
// reachability is the metric hemostat_export_redis_up, not a reason to restart the exporter.
func (e *Exporter) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(e.reg, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError, ErrorLog: slog.NewLogLogger(e.o.Logger.Handler(), slog.LevelWarn)}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, `<html><body><h1>hemostat exporter</h1><a href="/metrics">/metrics</a></body></html>`)
	})
	return mux
}

// Listen binds the metrics address; call it before Serve to fail fast on a taken port.
func (e *Exporter) Listen() (net.Listener, error) {
	l, err := net.Listen("tcp", e.o.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", e.o.Listen, err)
	}
	return l, nil
}

// Run serves on l and consumes every work stream until ctx is cancelled.
func (e *Exporter) Run(ctx context.Context, l net.Listener, c Consumer) error {
	srv := &http.Server{Handler: e.Handler(), ReadHeaderTimeout: 5 * time.Second,
		// Failed handshakes (scanners, a scraper without the CA) are not the operator's news.
		ErrorLog: slog.NewLogLogger(e.o.Logger.Handler(), slog.LevelDebug)}
	g, gctx := errgroup.WithContext(ctx)
	// Exits when the server is shut down below.
	g.Go(func() error {
		e.o.Logger.Info("serving metrics", "addr", l.Addr().String(), "web_config", e.o.WebConfigFile)
		// The toolkit re-reads the file on every request and handshake, so certificates and users
		// change without a restart.
		file := e.o.WebConfigFile
		quiet := slog.New(e.o.Logger.Handler()).With("component", "web")
		if err := web.Serve(l, srv, &web.FlagConfig{WebConfigFile: &file}, quiet); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve metrics: %w", err)
		}
		return nil
	})
	// Exits when gctx is done: the stop, or the server failing.
	g.Go(func() error {
		// The hosts' request streams are found at the start and every streamDiscovery after (new hosts).
		return c.Consume(gctx, bus.Group{Name: Group, Consumer: e.o.Instance, Streams: event.WorkStreams,
			Discover: c.WorkStreams, DiscoverEvery: streamDiscovery}, e.Handle)
	})
	// Exits when gctx is done, then shuts the server down.
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	return g.Wait()
}
