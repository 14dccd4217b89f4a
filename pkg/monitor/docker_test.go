package monitor_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hemostat/hemostat/pkg/cgroup"
	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/monitor"
	"github.com/hemostat/hemostat/pkg/store/schema"
	"github.com/hemostat/hemostat/pkg/testenv"
)

// settle waits until the monitor has run a few more rounds and a reconcile, so a second alert would
// have had its chance.
func (h *harness) settle() {
	h.t.Helper()
	rounds, lists := h.m.Counters.Rounds.Load(), h.m.Counters.Reconciles.Load()
	if !eventually(h.t, 15*time.Second, func() bool {
		return h.m.Counters.Rounds.Load() >= rounds+3 && h.m.Counters.Reconciles.Load() >= lists+1
	}) {
		h.t.Fatal("monitor stalled")
	}
	// Let the publisher drain what those rounds produced.
	eventually(h.t, 5*time.Second, func() bool { n, _ := h.m.Buffered(); return n == 0 })
}

func TestCrashedOpensOneIncident(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "mon-crash", "", fastOptions())
	id, name := h.run(docker.CreateOptions{Cmd: []string{"-exit-code", "3", "-exit-after", "300ms"}})
	got := h.waitAlerts(event.ClassCrashed, 1, 20*time.Second)
	h.settle()
	if all := h.alerts(""); len(all) != 1 {
		t.Fatalf("want exactly one alert, got %v", h.classes())
	}
	a := got[0]
	key := event.IncidentKey(testHost, name, event.ClassCrashed)
	if a.env.Incident != key || a.env.Agent != "monitor" || a.env.Host != testHost {
		t.Errorf("envelope: %+v", a.env)
	}
	p := a.p
	if p.ContainerID != id || p.ContainerName != name || p.ExitCode != 3 || p.Status != "exited" ||
		p.Severity != event.SeverityCritical || p.Image == "" || p.Labels["hemostat.test"] != "1" {
		t.Errorf("payload: %+v", p)
	}
	if p.EventTime.IsZero() || p.EventTime.After(a.env.Timestamp) || a.env.Timestamp.Sub(p.EventTime) > time.Second {
		t.Errorf("event time %v vs envelope time %v", p.EventTime, a.env.Timestamp)
	}
	inc := h.incident(key)
	if inc["state"] != "open" || inc["class"] != "crashed" || inc["alert_id"] != a.env.ID || inc["container_id"] != id ||
		inc["severity"] != "critical" || inc["host"] != testHost || inc["container"] != name || inc["opened_at"] == "" {
		t.Errorf("incident hash: %v", inc)
	}
	if !slices.Contains(h.openIncidents(), key) {
		t.Errorf("open set %v lacks %s", h.openIncidents(), key)
	}
	if s := h.waitState(name, "exited", 5*time.Second); !slices.Equal(s.Incidents, []string{"crashed"}) || !s.Watched || s.ExitCode != 3 {
		t.Errorf("summary: %+v", s)
	}
	lines := h.stdoutLines()
	if len(lines) != 1 || lines[0].Kind != monitor.NoticeOpened || lines[0].Incident != key {
		t.Errorf("stdout: %+v", lines)
	}
}

func TestOOMKilledOpensOneIncident(t *testing.T) {
	t.Parallel()
	o := fastOptions()
	// Until its die event is read the container counts as running, and a running container without a
	// healthcheck is back: on a loaded machine the die event came more than the harness's 300 ms
	// hysteresis after the oom event, the incident closed, and a later read opened it again.
	o.Hysteresis = 10 * time.Second
	h := newHarness(t, "mon-oom", "", o)
	_, name := h.run(docker.CreateOptions{MemoryBytes: 32 << 20, Cmd: []string{"-leak-mb-per-s", "200"}})
	got := h.waitAlerts(event.ClassOOMKilled, 1, 20*time.Second)
	h.waitState(name, "exited", 10*time.Second)
	h.settle()
	if diff := cmp.Diff([]string{name + "/oom_killed"}, h.classes()); diff != "" {
		t.Errorf("alerts (-want +got):\n%s", diff)
	}
	if p := got[0].p; p.ContainerName != name || p.Severity != event.SeverityCritical || !p.OOMKilled {
		t.Errorf("payload: %+v", p)
	}
}

func TestCrashLoopEscalates(t *testing.T) {
	t.Parallel()
	o := fastOptions()
	// Each run lasts 100 ms once the process is up, but starting it can take longer than the harness's
	// 300 ms hysteresis on a loaded machine: the first crash would recover between two restarts.
	o.Hysteresis = 10 * time.Second
	h := newHarness(t, "mon-loop", "", o)
	_, name := h.run(docker.CreateOptions{RestartPolicy: "on-failure", Cmd: []string{"-exit-code", "1", "-exit-after", "100ms"}})
	loop := h.waitAlerts(event.ClassCrashLoop, 1, 90*time.Second) // Docker's restart backoff doubles, and a loaded engine is slow to start
	h.settle()
	if diff := cmp.Diff([]string{name + "/crashed", name + "/crash_loop"}, h.classes()); diff != "" {
		t.Errorf("alerts (-want +got):\n%s", diff)
	}
	if p := loop[0].p; !p.Escalation || p.Severity != event.SeverityCritical {
		t.Errorf("crash_loop payload: %+v", p)
	}
	if inc := h.incident(event.IncidentKey(testHost, name, event.ClassCrashed)); inc["state"] != "closed" {
		t.Errorf("crashed incident after escalation: %v", inc)
	}
}

func TestUnhealthyOpensOneIncident(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "mon-unhealthy", "", fastOptions())
	_, name := h.run(docker.CreateOptions{
		Cmd:    []string{"-health-addr", ":8080", "-unhealthy-after", "1s"},
		Health: &docker.Healthcheck{Test: probe, Interval: 500 * time.Millisecond, Timeout: time.Second, Retries: 1},
	})
	got := h.waitAlerts(event.ClassUnhealthy, 1, 20*time.Second)
	h.settle()
	if diff := cmp.Diff([]string{name + "/unhealthy"}, h.classes()); diff != "" {
		t.Errorf("alerts (-want +got):\n%s", diff)
	}
	if p := got[0].p; p.HealthStatus != "unhealthy" || p.Status != "running" {
		t.Errorf("payload: %+v", p)
	}
}

func TestStartPeriodIsRespected(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "mon-startperiod", "", fastOptions())
	const period = 3 * time.Second
	id, _ := h.run(docker.CreateOptions{ // no health server: every probe fails
		Health: &docker.Healthcheck{Test: probe, Interval: 300 * time.Millisecond, Timeout: time.Second, Retries: 1, StartPeriod: period},
	})
	got := h.waitAlerts(event.ClassUnhealthy, 1, 20*time.Second)
	d, err := h.dc.Inspect(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if at := got[0].p.EventTime; at.Before(d.StartedAt.Add(period)) {
		t.Errorf("unhealthy at %v, inside the start period ending %v", at, d.StartedAt.Add(period))
	}
}

func TestCPUSaturatedWithLabelThreshold(t *testing.T) {
	t.Parallel()
	o := fastOptions()
	o.SamplerName = monitor.SamplerAuto
	h := newHarness(t, "mon-cpu", "", o)
	_, name := h.run(docker.CreateOptions{NanoCPUs: 2e8, Cmd: []string{"-cpu", "1"},
		Labels: map[string]string{"hemostat.cpu_threshold": "50"}})
	got := h.waitAlerts(event.ClassCPUSaturated, 1, 30*time.Second)
	h.settle()
	if diff := cmp.Diff([]string{name + "/cpu_saturated"}, h.classes()); diff != "" {
		t.Errorf("alerts (-want +got):\n%s", diff)
	}
	p := got[0].p
	if p.Severity != event.SeverityWarning || len(p.Anomalies) != 1 || p.Anomalies[0].Threshold != 50 || p.Anomalies[0].Actual <= 50 {
		t.Errorf("payload: %+v", p)
	}
}

func TestMemoryPressureWithLabelThreshold(t *testing.T) {
	t.Parallel()
	o := fastOptions()
	o.SamplerName = monitor.SamplerAuto // cgroup reads where readable
	// The 40 MiB are touched at start, a ramp that takes seconds on a loaded machine: enough samples of it
	// would look like a leak. This test is about the threshold alone.
	o.LeakMinSamples = 1000
	h := newHarness(t, "mon-mem", "", o)
	_, name := h.run(docker.CreateOptions{MemoryBytes: 64 << 20, Cmd: []string{"-hold-mb", "40"},
		Labels: map[string]string{"hemostat.memory_threshold": "50"}})
	got := h.waitAlerts(event.ClassMemoryPressure, 1, 30*time.Second)
	h.settle()
	if diff := cmp.Diff([]string{name + "/memory_pressure"}, h.classes()); diff != "" {
		t.Errorf("alerts (-want +got):\n%s", diff)
	}
	if p := got[0].p; p.Metrics.MemoryLimit != 64<<20 || p.Metrics.MemoryPercent <= 50 || p.Severity != event.SeverityWarning {
		t.Errorf("payload: %+v", p)
	}
	if raw := h.st.Conn.Client().HGet(context.Background(), schema.StatsKey(schema.Target(testHost, name)), "sample").Val(); !strings.Contains(raw, `"source":"cgroup"`) &&
		cgroup.NewReader(cgroup.Options{}).Available() == nil {
		t.Errorf("auto sampler did not read cgroup files: %s", raw)
	}
}

func TestMemoryLeakPredictsTheLimit(t *testing.T) {
	t.Parallel()
	o := fastOptions()
	o.SamplerName = monitor.SamplerCgroup
	if cgroup.NewReader(cgroup.Options{}).Available() != nil {
		o.SamplerName = monitor.SamplerAPI
	}
	h := newHarness(t, "mon-leak", "", o)
	_, name := h.run(docker.CreateOptions{MemoryBytes: 256 << 20, Cmd: []string{"-leak-mb-per-s", "4", "-leak-max-mb", "150"}})
	got := h.waitAlerts(event.ClassMemoryLeak, 1, 30*time.Second)
	if diff := cmp.Diff([]string{name + "/memory_leak"}, h.classes()); diff != "" {
		t.Errorf("alerts (-want +got):\n%s", diff)
	}
	if a := got[0].p.Anomalies; len(a) != 1 || a[0].Actual <= 0 || a[0].Actual > (30*time.Minute).Seconds() {
		t.Errorf("anomalies: %+v", a)
	}
}

func TestDeliberateStopsAndHealthyContainersOpenNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "mon-quiet", "", fastOptions())
	ctx := context.Background()
	stopID, stopName := h.run(docker.CreateOptions{})
	killID, killName := h.run(docker.CreateOptions{})
	_, healthyName := h.run(docker.CreateOptions{Cmd: []string{"-health-addr", ":8080"},
		// Generous timeout and retries: on a loaded machine a probe can take seconds, and this one must not fail.
		Health: &docker.Healthcheck{Test: probe, Interval: 500 * time.Millisecond, Timeout: 10 * time.Second, Retries: 5}})
	_, optOutName := h.run(docker.CreateOptions{Cmd: []string{"-exit-code", "3", "-exit-after", "300ms"},
		Labels: map[string]string{"hemostat.enable": "false"}})
	h.waitState(stopName, "running", 10*time.Second)
	h.waitState(killName, "running", 10*time.Second)
	if err := h.dc.StopContainer(ctx, stopID, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := h.dc.KillContainer(ctx, killID, "SIGKILL"); err != nil {
		t.Fatal(err)
	}
	h.waitState(stopName, "exited", 10*time.Second)
	h.waitState(killName, "exited", 10*time.Second)
	h.waitState(optOutName, "exited", 10*time.Second)
	// The healthy one stays healthy over several rounds, with samples written.
	eventually(t, 10*time.Second, func() bool { s, _ := h.summary(healthyName); return s.Health == "healthy" })
	start := h.m.Counters.Rounds.Load()
	eventually(t, 10*time.Second, func() bool { return h.m.Counters.Rounds.Load() >= start+4 })
	if got := h.classes(); len(got) != 0 {
		t.Errorf("want no alerts, got %v\nstdout:\n%s", got, h.out.String())
	}
	if s, _ := h.summary(optOutName); s.Watched {
		t.Errorf("opted-out container is watched: %+v", s)
	}
	var stats map[string]string
	eventually(t, 5*time.Second, func() bool {
		stats = h.st.Conn.Client().HGetAll(ctx, schema.StatsKey(schema.Target(testHost, healthyName))).Val()
		return stats["sample"] != ""
	})
	if stats["sample"] == "" || stats["history"] == "" {
		t.Errorf("stats of %s: %v", healthyName, stats)
	}
	if ttl := h.st.Conn.Client().PTTL(ctx, schema.StatsKey(schema.Target(testHost, healthyName))).Val(); ttl <= 0 || ttl > 3*5*time.Second {
		t.Errorf("stats ttl %v, want up to 3 periods", ttl)
	}
	var hs schema.HostStatus
	eventually(t, 5*time.Second, func() bool {
		hs, _, _ = h.st.Containers.Host(ctx, testHost)
		return hs.Rounds > 0
	})
	if hs.Host != testHost || hs.Rounds == 0 || hs.Watched == 0 || hs.UpdatedAt.IsZero() {
		t.Errorf("host figures: %+v", hs)
	}
}

func TestRecoveryPublishesContainerRecovered(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "mon-recover", "", fastOptions())
	id, name := h.run(docker.CreateOptions{Cmd: []string{"-exit-code", "3", "-exit-after", "2s"}})
	got := h.waitAlerts(event.ClassCrashed, 1, 20*time.Second)
	if err := h.dc.StartContainer(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	var rec []event.ContainerRecovered
	if !eventually(t, 10*time.Second, func() bool { rec = h.recoveries(); return len(rec) > 0 }) {
		t.Fatalf("no container_recovered; stdout:\n%s", h.out.String())
	}
	want := event.ContainerRecovered{ContainerID: id, ContainerName: name, Class: event.ClassCrashed, OpenedAt: rec[0].OpenedAt}
	if diff := cmp.Diff(want, rec[0]); diff != "" || rec[0].OpenedAt.IsZero() {
		t.Errorf("recovered (-want +got):\n%s", diff)
	}
	key := event.IncidentKey(testHost, name, event.ClassCrashed)
	if inc := h.incident(key); inc["state"] != "closed" || inc["closed_at"] == "" || inc["alert_id"] != got[0].env.ID {
		t.Errorf("incident after recovery: %v", inc)
	}
}

func TestReconcileAtStartCatchesMissedCrash(t *testing.T) {
	t.Parallel()
	dc := testenv.RequireDocker(t)
	prefix := nonced("mon-missed")
	id, name := testenv.RunContainer(t, dc, docker.CreateOptions{Name: prefix, Cmd: []string{"-exit-code", "4", "-exit-after", "50ms"}})
	var d docker.Details
	eventually(t, 10*time.Second, func() bool { d, _ = dc.Inspect(context.Background(), id); return d.State == "exited" })
	h := newHarnessExact(t, prefix, "", fastOptions())
	got := h.waitAlerts(event.ClassCrashed, 1, 10*time.Second)
	if p := got[0].p; p.ContainerName != name || p.ExitCode != 4 || !p.EventTime.Equal(d.FinishedAt) {
		t.Errorf("payload %+v, want exit 4 at %v", p, d.FinishedAt)
	}
	// A restarted monitor resumes the incident instead of alerting again.
	h.stop()
	h.start()
	start := h.m.Counters.Reconciles.Load()
	eventually(t, 10*time.Second, func() bool { return h.m.Counters.Reconciles.Load() >= start+2 })
	if n := len(h.alerts("")); n != 1 {
		t.Errorf("after a monitor restart: %d alerts, want 1 (%v)", n, h.classes())
	}
}

func TestWatchLabeled(t *testing.T) {
	t.Parallel()
	o := fastOptions()
	o.Watch.Mode = monitor.WatchLabeled
	h := newHarness(t, "mon-labeled", "", o)
	_, plain := h.run(docker.CreateOptions{Cmd: []string{"-exit-code", "3", "-exit-after", "200ms"}})
	_, labeled := h.run(docker.CreateOptions{Cmd: []string{"-exit-code", "3", "-exit-after", "200ms"},
		Labels: map[string]string{"autoheal": "true"}})
	h.waitAlerts(event.ClassCrashed, 1, 20*time.Second)
	h.waitState(plain, "exited", 10*time.Second)
	h.settle()
	if diff := cmp.Diff([]string{labeled + "/crashed"}, h.classes()); diff != "" {
		t.Errorf("alerts (-want +got):\n%s", diff)
	}
}

func TestRedisOutageBuffersAlerts(t *testing.T) {
	t.Parallel()
	rs := testenv.StartRedis(t)
	h := newHarness(t, "mon-outage", rs.URL(), fastOptions())
	rs.Stop()
	_, name := h.run(docker.CreateOptions{Cmd: []string{"-exit-code", "3", "-exit-after", "200ms"}})
	if !eventually(t, 20*time.Second, func() bool { n, _ := h.m.Buffered(); return n > 0 }) {
		t.Fatal("no alert buffered while Redis is down")
	}
	rs.Start()
	got := h.waitAlerts(event.ClassCrashed, 1, 20*time.Second)
	if got[0].p.ContainerName != name {
		t.Errorf("payload: %+v", got[0].p)
	}
	// The alert is read from Redis as soon as its XADD lands, a moment before the publisher takes it out
	// of the buffer: wait for that, with a deadline.
	var n int
	var dropped int64
	if !eventually(t, 10*time.Second, func() bool { n, dropped = h.m.Buffered(); return n == 0 }) || dropped != 0 {
		t.Errorf("buffer after recovery: %d waiting, %d dropped", n, dropped)
	}
}
