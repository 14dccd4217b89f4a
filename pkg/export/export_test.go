package export_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/bus"
	"github.com/hemostat/hemostat/pkg/conn"
	"github.com/hemostat/hemostat/pkg/container"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/export"
	"github.com/hemostat/hemostat/pkg/store"
	"github.com/hemostat/hemostat/pkg/store/schema"
	"github.com/hemostat/hemostat/pkg/testenv"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func eventually(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, timeout, "the condition", cond)
}

type env struct {
	t   testing.TB
	st  *store.Store
	bus *bus.Bus
	exp *export.Exporter
	url string
}

func open(t testing.TB) *env {
	t.Helper()
	url := testenv.RequireRedis(t)
	st, err := store.Open(conn.Options{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &env{t: t, st: st, bus: bus.New(st.Conn, bus.Options{Block: 50 * time.Millisecond})}
}

// start runs the exporter on a loopback port until the test ends.
func (e *env) start() {
	t := e.t
	ctx, cancel := context.WithCancel(context.Background())
	e.exp = export.New(ctx, export.Options{Listen: "127.0.0.1:0", Instance: "x1"}, sourcesOf(e.st, e.bus))
	l, err := e.exp.Listen()
	if err != nil {
		t.Fatal(err)
	}
	e.url = "http://" + l.Addr().String()
	done := make(chan error, 1)
	go func() { done <- e.exp.Run(ctx, l, e.bus) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

var t0 = time.Date(2026, 11, 28, 10, 30, 0, 0, time.UTC)

// publish sends one event with a fixed envelope time.
func (e *env) publish(ts time.Time, host, incident, causation string, p event.Payload) event.Envelope {
	e.t.Helper()
	ev, err := event.New("test", host, incident, causation, p)
	if err != nil {
		e.t.Fatal(err)
	}
	ev.Timestamp = ts
	stream, _ := event.StreamFor(ev.EventType, ev.Host)
	if _, err := e.bus.Publish(context.Background(), stream, ev); err != nil {
		e.t.Fatal(err)
	}
	return ev
}

func (e *env) hset(key string, kv ...any) {
	e.t.Helper()
	if err := e.st.Conn.Client().HSet(context.Background(), key, kv...).Err(); err != nil {
		e.t.Fatal(err)
	}
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// script writes the state a monitor, analyzer, responder and alerter would have left, and publishes an
// incident sequence on the bus. It returns the number of events published.
func (e *env) script() int {
	t := e.t
	ctx := context.Background()
	e.hset(schema.ContainersKey("node-a"), // node-a is listed by its WriteHost below
		"node-a/web-1", mustJSON(t, container.Summary{ID: "aaa", Name: "web-1", Host: "node-a", Image: "nginx:1.27", State: "running",
			Health: "healthy", RestartCount: 3, Mode: "auto", Watched: true}),
		"node-a/web-2", mustJSON(t, container.Summary{ID: "bbb", Name: "web-2", Host: "node-a", Image: "api:2", State: "exited",
			ExitCode: 137, Mode: "observe", Watched: true}))
	e.hset(schema.StatsKey(schema.Target("node-a", "web-1")), "sample", mustJSON(t, container.Sample{Time: t0, Source: "cgroup", Metrics: event.Metrics{
		CPUPercent: 42.5, MemoryPercent: 25, MemoryUsage: 128 << 20, MemoryLimit: 512 << 20, NetworkRxBytes: 1000, NetworkTxBytes: 2000,
		BlkioReadBytes: 4096, BlkioWriteBytes: 8192, PIDs: 7}}))
	if err := e.st.Containers.WriteHost(ctx, schema.HostStatus{Host: "node-a", RoundSeconds: 0.012, Rounds: 42, RoundsSkipped: 1,
		SampleErrors: 2, Events: 300, Sampler: "cgroup", Watched: 2}); err != nil {
		t.Fatal(err)
	}
	e.hset(schema.KeyNotifyMetrics, "sent:slack", "5", "failed:webhook", "1", "retried:slack", "2", "deduplicated:remediated", "4",
		"suppressed:cooldown", "1")
	e.st.Conn.Client().ZAdd(ctx, schema.KeyIncidentsOpen, redisZ(1, "node-a/web-2/oom_killed"))
	e.st.Conn.Client().XAdd(ctx, xadd(event.StreamDeadLetter))
	e.hset(schema.KeyBusRejected, schema.BusRejection{Stream: event.RemediationNeededStream("node-a"), Group: "respond:node-a", Reason: "bad_mac"}.Field(), "2",
		schema.BusRejection{Stream: event.RemediationNeededStream("node-a"), Group: "respond:node-a", Reason: "replayed"}.Field(), "1")

	crash := e.publish(t0.Add(120*time.Millisecond), "node-a", "node-a/web-1/crashed", "", &event.ContainerUnhealthy{
		ContainerID: "aaa", ContainerName: "web-1", Class: event.ClassCrashed, Severity: "critical", ExitCode: 1, EventTime: t0})
	e.publish(t0.Add(40*time.Millisecond), "node-a", "node-a/web-2/oom_killed", "", &event.ContainerUnhealthy{
		ContainerID: "bbb", ContainerName: "web-2", Class: event.ClassOOMKilled, EventTime: t0,
		Anomalies: []event.Anomaly{{Type: "memory", Severity: "info"}, {Type: "oom", Severity: "warning"}}})
	e.publish(t0.Add(time.Hour), "node-a", "node-a/web-1/crashed", "", &event.ContainerUnhealthy{
		ContainerID: "aaa", ContainerName: "web-1", Class: event.ClassCrashed, Severity: "critical", EventTime: t0, Escalation: true})
	need := e.publish(t0.Add(125*time.Millisecond), "node-a", "node-a/web-1/crashed", crash.ID, &event.RemediationNeeded{
		Container: "web-1", ContainerID: "aaa", Action: "restart", Confidence: 0.9, AnalysisMethod: "rules", DurationMS: 2})
	e.publish(t0.Add(2*time.Second), "node-a", "node-a/web-3/cpu_saturated", "", &event.FalseAlarm{
		Container: "web-3", Confidence: 0.6, AnalysisMethod: "llm:openai:gpt-4o-mini", DurationMS: 1500})
	// Time to remediate through the causation chain: 10 s after Docker's event.
	e.publish(t0.Add(10*time.Second), "node-a", "node-a/web-1/crashed", need.ID, &event.RemediationComplete{
		Container: "web-1", Action: "restart", Result: event.Result{Status: "success"}, Verified: true, DurationMS: 2500, Class: "crashed"})
	e.publish(t0.Add(11*time.Second), "node-a", "node-a/web-2/oom_killed", "", &event.RemediationComplete{
		Container: "web-2", Action: "restart", Result: event.Result{Status: "denied", Details: "cooldown"}, DurationMS: 1})
	// Time to remediate from the event time carried in the payload: 30 s.
	e.publish(t0.Add(30*time.Second), "node-a", "node-a/web-2/oom_killed", "", &event.RemediationComplete{
		Container: "web-2", Action: "restart", Result: event.Result{Status: "success"}, Verified: true, DurationMS: 4000, EventTime: t0})
	e.publish(t0.Add(40*time.Second), "node-a", "node-a/web-1/crashed", "", &event.ContainerRecovered{
		ContainerID: "aaa", ContainerName: "web-1", Class: "crashed", OpenedAt: t0, Attempts: 1})
	e.publish(t0.Add(45*time.Second), "node-a", "node-a/web-2/oom_killed", "", &event.RemediationComplete{
		Container: "web-2", Action: "restart", Result: event.Result{Status: "escalated", Details: "circuit_open: breaker opened"},
		Class: "oom_killed", GaveUp: true, Attempts: 3, MaxAttempts: 3, OpenedAt: t0})
	e.publish(t0.Add(50*time.Second), "node-b", "node-b/web-4/unhealthy", "", &event.RemediationComplete{
		Container: "web-4", Action: "restart", Result: event.Result{Status: "dry_run"}, DryRun: true, DurationMS: 3})
	// A model told by the logs to stop the container: refused, escalated.
	e.publish(t0.Add(60*time.Second), "node-a", "node-a/web-5/cpu_saturated", "", &event.RemediationNeeded{
		Container: "web-5", Action: "none", ProposedAction: "stop", Confidence: 0.99, AnalysisMethod: "llm:openai:m", DurationMS: 800})
	return 12
}

// goldenNames are the metrics compared with testdata/metrics.golden: all but those that depend on the
// wall clock (heartbeats), checked separately.
var goldenNames = []string{
	"hemostat_export_redis_up", "hemostat_export_state_errors_total", "hemostat_export_events_total",
	"hemostat_container_info", "hemostat_container_running", "hemostat_container_restarts_total",
	"hemostat_container_cpu_usage_ratio", "hemostat_container_memory_working_set_bytes", "hemostat_container_memory_limit_bytes",
	"hemostat_container_memory_usage_ratio", "hemostat_container_network_receive_bytes_total",
	"hemostat_container_network_transmit_bytes_total", "hemostat_container_blkio_read_bytes_total",
	"hemostat_container_blkio_write_bytes_total", "hemostat_container_pids", "hemostat_container_last_sample_timestamp_seconds",
	"hemostat_incidents_open", "hemostat_bus_stream_entries", "hemostat_bus_pending_entries", "hemostat_bus_lag_entries",
	"hemostat_bus_dead_letter_entries", "hemostat_bus_rejected_total", "hemostat_alert_notifications_sent_total", "hemostat_alert_notifications_failed_total",
	"hemostat_alert_notification_retries_total", "hemostat_alert_notifications_deduplicated_total",
	"hemostat_alert_notifications_suppressed_total", "hemostat_monitor_round_duration_seconds", "hemostat_monitor_rounds_total",
	"hemostat_monitor_rounds_skipped_total", "hemostat_monitor_sample_errors_total", "hemostat_monitor_docker_events_total",
	"hemostat_monitor_alerts_dropped_total", "hemostat_monitor_alerts_buffered",
	"hemostat_monitor_alerts_total", "hemostat_monitor_recoveries_total", "hemostat_analyze_analyses_total",
	"hemostat_analyze_duration_seconds", "hemostat_analyze_confidence_ratio", "hemostat_respond_remediations_total",
	"hemostat_respond_remediation_duration_seconds", "hemostat_incident_time_to_detect_seconds",
	"hemostat_incident_time_to_remediate_seconds", "hemostat_incident_attempts", "hemostat_incidents_gave_up_total",
	"hemostat_incident_duration_seconds", "hemostat_monitor_containers_watched", "hemostat_analyze_llm_refused_total",
}

func TestMetricsGolden(t *testing.T) {
	e := open(t)
	if err := e.st.Agents.Heartbeat(context.Background(), schema.Agent{Kind: "monitor", Instance: "m1", Version: "v1.2.3", Host: "node-a"}, time.Now(), time.Minute); err != nil {
		t.Fatal(err)
	}
	n := e.script()
	e.start()
	eventually(t, 5*time.Second, func() bool { return e.exp.Processed() == int64(n) })

	golden := filepath.Join("testdata", "metrics.golden")
	if *update {
		got := scrape(t, e.url+"/metrics")
		if err := os.WriteFile(golden, filterExposition(got, goldenNames), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	// Acks trail the handler by a moment: poll until pending settles, then report the last difference.
	var last error
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if last = testutil.GatherAndCompare(e.exp.Registry(), bytes.NewReader(want), goldenNames...); last == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if last != nil {
		t.Fatalf("metrics differ from %s (run with -update to rewrite):\n%v", golden, last)
	}

	// Heartbeats: the live agent is up, with a recent timestamp.
	body := scrape(t, e.url+"/metrics")
	for _, want := range []string{`hemostat_agent_up{instance="m1",kind="monitor"} 1`,
		`hemostat_agent_info{host="node-a",instance="m1",kind="monitor",version="v1.2.3"} 1`,
		`hemostat_agent_last_heartbeat_timestamp_seconds{instance="m1",kind="monitor"}`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
}

func TestScrapeOverHTTPAndSeriesDisappear(t *testing.T) {
	e := open(t)
	e.script()
	e.start()
	resp, err := http.Get(e.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz = %d", resp.StatusCode)
	}
	body := string(scrape(t, e.url+"/metrics"))
	for _, want := range []string{
		`hemostat_container_cpu_usage_ratio{container="web-1",host="node-a"} 0.425`,
		`# TYPE hemostat_container_restarts_total counter`,
		`hemostat_container_restarts_total{container="web-1",host="node-a"} 3`,
		`hemostat_container_running{container="web-2",host="node-a"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	// The monitor forgets web-1 (destroyed): its series go with it.
	if err := e.st.Conn.Client().HDel(context.Background(), schema.ContainersKey("node-a"), "node-a/web-1").Err(); err != nil {
		t.Fatal(err)
	}
	body = string(scrape(t, e.url+"/metrics"))
	if strings.Contains(body, `container="web-1"`) {
		t.Errorf("web-1 series survive its removal:\n%s", grep(body, "web-1"))
	}
	if !strings.Contains(body, `container="web-2"`) {
		t.Error("web-2 series vanished too")
	}
}

func TestRedisDownIsAMetricNotAFailure(t *testing.T) {
	srv := testenv.StartRedis(t)
	st, err := store.Open(conn.Options{URL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	exp := export.New(context.Background(), export.Options{ReadTimeout: time.Second}, sourcesOf(st, bus.New(st.Conn, bus.Options{})))
	srv.Stop()
	want := "# HELP hemostat_export_redis_up 1 when the exporter could read the state from Redis at this scrape.\n" +
		"# TYPE hemostat_export_redis_up gauge\nhemostat_export_redis_up 0\n"
	if err := testutil.GatherAndCompare(exp.Registry(), strings.NewReader(want), "hemostat_export_redis_up"); err != nil {
		t.Error(err)
	}
}

func TestPromtoolCheckMetrics(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed")
	}
	e := open(t)
	n := e.script()
	e.start()
	eventually(t, 5*time.Second, func() bool { return e.exp.Processed() == int64(n) })
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(scrape(t, e.url+"/metrics"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

func scrape(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d\n%s", url, resp.StatusCode, b)
	}
	return b
}

// filterExposition keeps the families named (with their HELP and TYPE lines).
func filterExposition(b []byte, names []string) []byte {
	keep := map[string]bool{}
	for _, n := range names {
		keep[n] = true
	}
	var out bytes.Buffer
	for _, line := range strings.SplitAfter(string(b), "\n") {
		name := line
		if strings.HasPrefix(line, "# ") {
			f := strings.Fields(line)
			if len(f) < 3 {
				continue
			}
			name = f[2]
		}
		f := strings.FieldsFunc(name, func(r rune) bool { return r == '{' || r == ' ' || r == '\n' })
		if len(f) == 0 {
			continue
		}
		name = f[0]
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if base := strings.TrimSuffix(name, suf); base != name && keep[base] {
				name = base
			}
		}
		if keep[name] {
			out.WriteString(line)
		}
	}
	return out.Bytes()
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func redisZ(score float64, member string) redis.Z { return redis.Z{Score: score, Member: member} }

func xadd(stream string) *redis.XAddArgs {
	return &redis.XAddArgs{Stream: stream, Values: []any{"event", "{}", "reason", "test"}}
}

// sourcesOf is the exporter's view of a store and a bus.
func sourcesOf(st *store.Store, b *bus.Bus) export.Sources {
	return export.Sources{Containers: st.Containers, Incidents: st.Incidents, Notify: st.Notify, Agents: st.Agents, Streams: b}
}
