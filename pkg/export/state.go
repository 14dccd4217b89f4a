package export

import (
	"context"
	"log/slog"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hemostat/hemostat/pkg/store/schema"
)

var containerLabels = []string{"host", "container"}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

// stateCollector builds const metrics from Redis at scrape time, so a container's series disappear with
// the container (its entry in its host's container table, or its stats key) and nothing stale is kept in
// memory.
type stateCollector struct {
	src     Sources
	base    context.Context
	timeout time.Duration
	log     *slog.Logger
	errors  atomic.Int64

	redisUp, stateErrors                                      *prometheus.Desc
	info, running, restarts                                   *prometheus.Desc
	cpu, memWS, memLimit, memRatio, rx, tx, rd, wr, pids, age *prometheus.Desc
	openIncidents                                             *prometheus.Desc
	agentUp, agentHeartbeat, agentInfo                        *prometheus.Desc
	streamEntries, pending, lag, deadLetters, rejected        *prometheus.Desc
	notifySent, notifyFailed, notifyRetried, notifyDedup      *prometheus.Desc
	notifySuppressed                                          *prometheus.Desc
	roundSeconds, rounds                                      *prometheus.Desc
	monitorFields                                             []monitorField
}

// monitorField maps a figure of a host's monitor (schema.HostStatus) to a metric labelled by host.
type monitorField struct {
	desc  *prometheus.Desc
	typ   prometheus.ValueType
	value func(schema.HostStatus) float64
}

func newStateCollector(base context.Context, src Sources, timeout time.Duration, log *slog.Logger) *stateCollector {
	return &stateCollector{
		src: src, base: base, timeout: timeout, log: log,
		redisUp:     desc("hemostat_export_redis_up", "1 when the exporter could read the state from Redis at this scrape."),
		stateErrors: desc("hemostat_export_state_errors_total", "State entries the exporter could not read or decode."),
		info: desc("hemostat_container_info", "Known containers (value 1) with their image, state, health and hemostat mode.",
			"host", "container", "image", "state", "health", "mode"),
		running:  desc("hemostat_container_running", "1 when the container is running.", containerLabels...),
		restarts: desc("hemostat_container_restarts_total", "Restarts of the container counted by Docker (restart_count).", containerLabels...),
		cpu: desc("hemostat_container_cpu_usage_ratio",
			"CPU used over the latest sample, relative to the container's CPU limit or the host's cores (1 = 100 %).", containerLabels...),
		memWS:         desc("hemostat_container_memory_working_set_bytes", "Memory working set (usage minus inactive file).", containerLabels...),
		memLimit:      desc("hemostat_container_memory_limit_bytes", "Memory limit of the container (absent without a limit).", containerLabels...),
		memRatio:      desc("hemostat_container_memory_usage_ratio", "Working set relative to the memory limit (1 = 100 %).", containerLabels...),
		rx:            desc("hemostat_container_network_receive_bytes_total", "Bytes received since the container started.", containerLabels...),
		tx:            desc("hemostat_container_network_transmit_bytes_total", "Bytes transmitted since the container started.", containerLabels...),
		rd:            desc("hemostat_container_blkio_read_bytes_total", "Bytes read from block devices since the container started.", containerLabels...),
		wr:            desc("hemostat_container_blkio_write_bytes_total", "Bytes written to block devices since the container started.", containerLabels...),
		pids:          desc("hemostat_container_pids", "Processes and threads in the container.", containerLabels...),
		age:           desc("hemostat_container_last_sample_timestamp_seconds", "Unix time of the latest sample.", containerLabels...),
		openIncidents: desc("hemostat_incidents_open", "Incidents currently open."),
		agentUp: desc("hemostat_agent_up",
			"1 for each agent instance whose heartbeat is fresh, 0 when it is stale; absent once it expired.", "kind", "instance"),
		agentHeartbeat: desc("hemostat_agent_last_heartbeat_timestamp_seconds", "Unix time of the agent's latest heartbeat.", "kind", "instance"),
		agentInfo:      desc("hemostat_agent_info", "Live agent instances (value 1) with their version and host.", "kind", "instance", "version", "host"),
		streamEntries:  desc("hemostat_bus_stream_entries", "Entries kept in a work stream (capped).", "stream"),
		pending:        desc("hemostat_bus_pending_entries", "Entries delivered to a consumer group but not acknowledged.", "stream", "group"),
		lag:            desc("hemostat_bus_lag_entries", "Entries of a stream a consumer group has not read yet.", "stream", "group"),
		deadLetters:    desc("hemostat_bus_dead_letter_entries", "Entries in the dead letter stream."),
		rejected: desc("hemostat_bus_rejected_total",
			"Entries a consumer group refused and dead-lettered, never acted on, by reason: unsigned, bad_mac, unknown_key (with --signing-key), stale, replayed.",
			"stream", "group", "reason"),
		notifySent:    desc("hemostat_alert_notifications_sent_total", "Notifications delivered, by sink.", "sink"),
		notifyFailed:  desc("hemostat_alert_notifications_failed_total", "Notifications that failed for good, by sink.", "sink"),
		notifyRetried: desc("hemostat_alert_notification_retries_total", "Delivery attempts that were retried, by sink.", "sink"),
		notifyDedup: desc("hemostat_alert_notifications_deduplicated_total",
			"Repeats of an incident state within the re-notify window, counted and not sent, by state.", "state"),
		notifySuppressed: desc("hemostat_alert_notifications_suppressed_total",
			"Outcomes counted but never sent (cooldown denials, skips), by reason.", "reason"),
		roundSeconds: desc("hemostat_monitor_round_duration_seconds", "Duration of the monitor's latest sampling round.", "host"),
		rounds:       desc("hemostat_monitor_rounds_total", "Sampling rounds the monitor completed.", "host"),
		monitorFields: []monitorField{
			{desc("hemostat_monitor_rounds_skipped_total", "Sampling rounds skipped because the previous one was still running.", "host"),
				prometheus.CounterValue, func(h schema.HostStatus) float64 { return float64(h.RoundsSkipped) }},
			{desc("hemostat_monitor_sample_errors_total", "Container samples that failed.", "host"),
				prometheus.CounterValue, func(h schema.HostStatus) float64 { return float64(h.SampleErrors) }},
			{desc("hemostat_monitor_docker_events_total", "Docker engine events the monitor received.", "host"),
				prometheus.CounterValue, func(h schema.HostStatus) float64 { return float64(h.Events) }},
			{desc("hemostat_monitor_alerts_dropped_total", "Health alerts the monitor could not buffer while Redis was away.", "host"),
				prometheus.CounterValue, func(h schema.HostStatus) float64 { return float64(h.AlertsDropped) }},
			{desc("hemostat_monitor_alerts_buffered", "Health alerts waiting in the monitor's buffer for Redis.", "host"),
				prometheus.GaugeValue, func(h schema.HostStatus) float64 { return float64(h.AlertsBuffered) }},
			{desc("hemostat_monitor_containers_watched", "Containers the monitor watches (the blast radius's denominator).", "host"),
				prometheus.GaugeValue, func(h schema.HostStatus) float64 { return float64(h.Watched) }},
		},
	}
}

func (c *stateCollector) descs() []*prometheus.Desc {
	out := []*prometheus.Desc{c.redisUp, c.stateErrors, c.info, c.running, c.restarts, c.cpu, c.memWS, c.memLimit, c.memRatio,
		c.rx, c.tx, c.rd, c.wr, c.pids, c.age, c.openIncidents, c.agentUp, c.agentHeartbeat, c.agentInfo, c.streamEntries,
		c.pending, c.lag, c.deadLetters, c.rejected, c.notifySent, c.notifyFailed, c.notifyRetried, c.notifyDedup, c.notifySuppressed,
		c.roundSeconds, c.rounds}
	for _, f := range c.monitorFields {
		out = append(out, f.desc)
	}
	return out
}

// Describe implements prometheus.Collector.
func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs() {
		ch <- d
	}
}

// Collect implements prometheus.Collector: one read of the state per scrape.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(c.base, c.timeout)
	defer cancel()
	s, err := c.src.read(ctx)
	gauge := func(d *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv...)
	}
	counter := func(d *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, lv...)
	}
	defer func() { counter(c.stateErrors, float64(c.errors.Load())) }()
	if err != nil {
		c.log.Warn("read state for metrics", "err", err)
		gauge(c.redisUp, 0)
		return
	}
	c.errors.Add(int64(s.problems))
	gauge(c.redisUp, 1)
	c.containers(s, gauge, counter)
	gauge(c.openIncidents, float64(s.openIncidents))

	now := time.Now()
	for _, a := range s.agents {
		up := 1.0
		if t := a.LastHeartbeat; !t.IsZero() {
			gauge(c.agentHeartbeat, float64(t.UnixNano())/1e9, a.Kind, a.Instance)
			if now.Sub(t) > agentStale {
				up = 0
			}
		}
		gauge(c.agentUp, up, a.Kind, a.Instance)
		gauge(c.agentInfo, 1, a.Kind, a.Instance, a.Version, a.Host)
	}

	for _, st := range s.streams {
		gauge(c.streamEntries, float64(s.streamLen[st]), st)
	}
	for _, g := range s.groups {
		gauge(c.pending, float64(g.Pending), g.stream, g.Name)
		if g.Lag >= 0 {
			gauge(c.lag, float64(g.Lag), g.stream, g.Name)
		}
	}
	gauge(c.deadLetters, float64(s.deadLetters))
	for _, k := range sortedRejections(s.rejected) {
		counter(c.rejected, float64(s.rejected[k]), k.Stream, k.Group, k.Reason)
	}

	for _, k := range sortedCounters(s.counters) {
		v := float64(s.counters[k])
		switch k.Counter {
		case schema.CounterSent:
			counter(c.notifySent, v, k.Label)
		case schema.CounterFailed:
			counter(c.notifyFailed, v, k.Label)
		case schema.CounterRetried:
			counter(c.notifyRetried, v, k.Label)
		case schema.CounterDeduplicated:
			counter(c.notifyDedup, v, k.Label)
		case schema.CounterSuppressed:
			counter(c.notifySuppressed, v, k.Label)
		}
	}
	for _, h := range s.hosts {
		gauge(c.roundSeconds, h.RoundSeconds, h.Host)
		counter(c.rounds, float64(h.Rounds), h.Host)
		for _, f := range c.monitorFields {
			ch <- prometheus.MustNewConstMetric(f.desc, f.typ, f.value(h), h.Host)
		}
	}
}

// agentStale is how long after its last heartbeat an agent counts as down.
const agentStale = 30 * time.Second

func (c *stateCollector) containers(s *state, gauge, counter func(*prometheus.Desc, float64, ...string)) {
	for _, target := range sortedKeys(s.containers) {
		sum := s.containers[target]
		if sum.Name == "" {
			c.errors.Add(1)
			continue
		}
		// The hash field is unique, so its host/name keep the series unique even if a summary disagrees.
		h, n, ok := strings.Cut(target, "/")
		if !ok || n == "" {
			h, n = sum.Host, sum.Name
		}
		gauge(c.info, 1, h, n, sum.Image, sum.State, sum.Health, sum.Mode)
		running := 0.0
		if sum.State == "running" {
			running = 1
		}
		gauge(c.running, running, h, n)
		counter(c.restarts, float64(sum.RestartCount), h, n)

		st, ok := s.samples[target]
		if !ok || st.Sample == nil {
			continue
		}
		smp := st.Sample
		m := smp.Metrics
		gauge(c.cpu, m.CPUPercent/100, h, n)
		gauge(c.memWS, float64(m.MemoryUsage), h, n)
		if m.MemoryLimit > 0 {
			gauge(c.memLimit, float64(m.MemoryLimit), h, n)
			gauge(c.memRatio, m.MemoryPercent/100, h, n)
		}
		counter(c.rx, float64(m.NetworkRxBytes), h, n)
		counter(c.tx, float64(m.NetworkTxBytes), h, n)
		counter(c.rd, float64(m.BlkioReadBytes), h, n)
		counter(c.wr, float64(m.BlkioWriteBytes), h, n)
		gauge(c.pids, float64(m.PIDs), h, n)
		if !smp.Time.IsZero() {
			gauge(c.age, float64(smp.Time.UnixNano())/1e9, h, n)
		}
	}
}

func sortedRejections(m map[schema.BusRejection]int64) []schema.BusRejection {
	out := make([]schema.BusRejection, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Field() < out[j].Field() })
	return out
}

func sortedCounters(m map[schema.NotifyCounter]int64) []schema.NotifyCounter {
	out := make([]schema.NotifyCounter, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Field() < out[j].Field() })
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
