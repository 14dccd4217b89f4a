package monitor

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hemostat/hemostat/pkg/container"
	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

func testConfig() engineConfig {
	return Options{Host: "h", Hysteresis: 30 * time.Second, RealertInterval: 30 * time.Minute}.withDefaults().engineConfig()
}

func (o Options) withDefaults() Options { o.defaults(); return o }

// kinds summarises notices as "kind class" strings.
func kinds(ns []Notice) []string {
	var out []string
	for _, n := range ns {
		out = append(out, n.Kind+" "+n.Class)
	}
	return out
}

func ev(id, action string, at time.Time, attrs ...string) docker.Event {
	e := docker.Event{ID: id, Name: "web", Image: "img", Action: action, Time: at, TimeNano: at.UnixNano(), ExitCode: -1,
		Attributes: map[string]string{"name": "web", "image": "img"}}
	for i := 0; i+1 < len(attrs); i += 2 {
		e.Attributes[attrs[i]] = attrs[i+1]
	}
	if v, ok := e.Attributes["exitCode"]; ok {
		switch v {
		case "0":
			e.ExitCode = 0
		case "1":
			e.ExitCode = 1
		case "3":
			e.ExitCode = 3
		case "137":
			e.ExitCode = 137
		case "143":
			e.ExitCode = 143
		}
	}
	if h, ok := e.Attributes["health"]; ok {
		e.Action = "health_status: " + h
		e.Health = h
		delete(e.Attributes, "health")
	}
	return e
}

// run feeds steps to a fresh engine and collects "kind class" of every notice.
type step struct {
	e   docker.Event
	d   *docker.Details
	tic time.Time
	own *ownAnswer // answers the pending "was it hemostat?" questions
}

// ownAnswer is hemostat's ledger's answer to the engine's questions about a stop or kill.
type ownAnswer struct {
	own    bool
	action string
}

func runSteps(g *engine, steps []step) []string {
	var got []string
	for _, s := range steps {
		switch {
		case s.own != nil:
			for _, c := range g.takeOwnChecks() {
				g.onOwn(c, s.own.own, s.own.action)
			}
		case s.d != nil:
			got = append(got, kinds(g.onDetails(*s.d, g.byID[s.d.ID].seqOr(0), false, s.d.StartedAt))...)
		case !s.tic.IsZero():
			got = append(got, kinds(g.onTick(s.tic))...)
		default:
			got = append(got, kinds(g.onEvent(s.e, s.e.Time))...)
		}
	}
	return got
}

func (en *entry) seqOr(d int) int {
	if en == nil {
		return d
	}
	return en.seq
}

func TestEngineEvents(t *testing.T) {
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	start := func(s float64) step { return step{e: ev("c1", "start", at(s))} }
	die := func(s float64, code string) step { return step{e: ev("c1", "die", at(s), "exitCode", code)} }
	tick := func(s float64) step { return step{tic: at(s)} }
	for _, tc := range []struct {
		name  string
		steps []step
		want  []string
	}{
		{"crash opens once", []step{start(0), die(1, "3"), tick(2), tick(60)}, []string{"opened crashed"}},
		{"clean exit opens nothing", []step{start(0), die(1, "0"), tick(2)}, nil},
		{"docker stop opens nothing", []step{start(0), {e: ev("c1", "kill", at(1), "signal", "15")}, die(1.2, "143"),
			{e: ev("c1", "stop", at(1.3))}, tick(2)}, nil},
		{"docker kill opens nothing", []step{start(0), {e: ev("c1", "kill", at(1), "signal", "9")}, die(1.1, "137"), tick(2)}, nil},
		{"a crash after a deliberate restart is a crash", []step{start(0), {e: ev("c1", "kill", at(1), "signal", "15")}, die(1.1, "143"),
			start(2), die(5, "1"), tick(6)}, []string{"opened crashed"}},
		{"oom opens oom_killed, not crashed", []step{start(0), {e: ev("c1", "oom", at(1))}, die(1.04, "137"), tick(2)},
			[]string{"opened oom_killed"}},
		// Under load Docker can report the oom event after the die (up to 0.93 s after it, measured).
		{"an oom event read after its die opens oom_killed, not crashed", []step{start(0), die(1, "137"), tick(1.5),
			{e: ev("c1", "oom", at(1.9))}, tick(4), tick(10)}, []string{"opened oom_killed"}},
		{"a SIGKILL without an oom event is a crash once the wait is over", []step{start(0), die(1, "137"), tick(2.9),
			tick(3)}, []string{"opened crashed"}},
		// A restart policy starts the container again well before a late oom event.
		{"an oom event read after the restart still makes it oom_killed", []step{start(0), die(1, "137"), start(1.2),
			{e: ev("c1", "oom", at(1.9))}, tick(4)}, []string{"opened oom_killed", "condition oom_killed"}},
		{"a SIGKILL before a restart, without an oom event, is a crash once the wait is over", []step{start(0),
			die(1, "137"), start(1.2), tick(2.9), tick(3)}, []string{"opened crashed", "condition crashed"}},
		{"a SIGKILL still waiting is a crash when the container is removed", []step{start(0), die(1, "137"),
			{e: ev("c1", "destroy", at(1.5))}}, []string{"opened crashed", "closed crashed"}},
		{"crash then loop escalates", []step{start(0), die(1, "1"), start(1.1), die(2, "1"), start(2.2), die(3, "1")},
			[]string{"opened crashed", "opened crash_loop", "closed crashed"}},
		{"restart always loop on exit 0", []step{start(0), die(1, "0"), start(1.1), die(2, "0"), start(2.2), die(3, "0")},
			[]string{"opened crash_loop"}},
		{"no crashed while looping", []step{start(0), die(1, "0"), start(1.1), die(2, "0"), start(2.2), die(3, "0"), start(3.3), die(4, "1")},
			[]string{"opened crash_loop"}},
		{"unhealthy opens", []step{start(0), {e: ev("c1", "", at(5), "health", "unhealthy")}}, []string{"opened unhealthy"}},
		{"crash recovers after a restart and the hysteresis", []step{start(0), die(1, "3"), start(10), tick(30), tick(40.5)},
			[]string{"opened crashed", "condition crashed", "cleared crashed"}},
		{"unhealthy recovers when healthy long enough", []step{start(0), {e: ev("c1", "", at(5), "health", "unhealthy")},
			{e: ev("c1", "", at(10), "health", "healthy")}, tick(20), {e: ev("c1", "", at(25), "health", "unhealthy")},
			{e: ev("c1", "", at(30), "health", "healthy")}, tick(59), tick(61)},
			[]string{"opened unhealthy", "condition unhealthy", "condition unhealthy", "condition unhealthy", "cleared unhealthy"}},
		{"a crash after a restart that cleared it is a relapse of the same incident", []step{start(0), die(1, "3"), start(10),
			tick(11), die(12, "3"), tick(13), start(20), tick(21), tick(51)},
			[]string{"opened crashed", "condition crashed", "condition crashed", "condition crashed", "cleared crashed"}},
		{"realert after the interval", []step{start(0), die(1, "3"), tick(60), tick(1801), tick(1900)},
			[]string{"opened crashed", "realerted crashed"}},
		{"destroy closes", []step{start(0), die(1, "3"), {e: ev("c1", "destroy", at(2))}}, []string{"opened crashed", "closed crashed"}},
		{"stopped unhealthy container closes once the ledger says it was not hemostat", []step{start(0),
			{e: ev("c1", "", at(5), "health", "unhealthy")}, {e: ev("c1", "kill", at(6), "signal", "15")}, die(6.1, "143"),
			tick(7), {own: &ownAnswer{}}, tick(8)},
			[]string{"opened unhealthy", "closed unhealthy"}},
		{"a stop nobody explains closes after the wait", []step{start(0), {e: ev("c1", "", at(5), "health", "unhealthy")},
			{e: ev("c1", "kill", at(6), "signal", "15")}, die(6.1, "143"), tick(7), tick(12)},
			[]string{"opened unhealthy", "closed unhealthy"}},
		{"hemostat's own restart keeps the incident open", []step{start(0), {e: ev("c1", "", at(5), "health", "unhealthy")},
			{e: ev("c1", "kill", at(6), "signal", "15")}, die(6.1, "143"), tick(7), {own: &ownAnswer{own: true, action: "restart"}},
			tick(12), start(13), tick(14), {e: ev("c1", "", at(16), "health", "unhealthy")}},
			[]string{"opened unhealthy"}},
		{"hemostat's own stop closes it as such", []step{start(0), {e: ev("c1", "", at(5), "health", "unhealthy")},
			{e: ev("c1", "kill", at(6), "signal", "15")}, die(6.1, "143"), {own: &ownAnswer{own: true, action: "stop"}}, tick(7)},
			[]string{"opened unhealthy", "closed unhealthy"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newEngine(testConfig())
			g.cfg.Watch = WatchRules{Mode: WatchAll}
			if diff := cmp.Diff(tc.want, runSteps(g, tc.steps)); diff != "" {
				t.Errorf("notices (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEngineIgnoresEventsWithoutID(t *testing.T) {
	g := newEngine(testConfig())
	if got := g.onEvent(docker.Event{Action: "die", ExitCode: 1, Time: t0}, t0); got != nil || len(g.byID) != 0 {
		t.Errorf("got %v, table %v", got, g.byID)
	}
}

// startWithPeriod starts container id (named name) at t0 with a healthcheck whose start period is 10 s.
func startWithPeriod(g *engine, id, name string) {
	g.onEvent(ev(id, "start", t0), t0)
	d := docker.Details{ID: id, Name: name, Image: "img", State: "running", StartedAt: t0, Pid: 42,
		Healthcheck: &docker.Healthcheck{StartPeriod: 10 * time.Second}}
	g.onDetails(d, g.byID[id].seq, false, t0)
}

func TestEngineStartPeriod(t *testing.T) {
	g := newEngine(testConfig())
	startWithPeriod(g, "c1", "web")
	if got := kinds(g.onEvent(ev("c1", "", t0.Add(5*time.Second), "health", "unhealthy"), t0.Add(5*time.Second))); got != nil {
		t.Errorf("in start period: got %v, want nothing", got)
	}
	if got := kinds(g.onEvent(ev("c1", "", t0.Add(11*time.Second), "health", "unhealthy"), t0.Add(11*time.Second))); !cmp.Equal(got, []string{"opened unhealthy"}) {
		t.Errorf("after start period: got %v", got)
	}
}

// Docker ends the start period at the first passing probe, so it can report "unhealthy" (once: it
// reports changes) while hemostat still counts the start period; the status is looked at again when the
// period ends, and an app that failed early is not left unalerted.
func TestEngineUnhealthyInsideStartPeriodAlertsWhenItEnds(t *testing.T) {
	g := newEngine(testConfig())
	g.cfg.Watch = WatchRules{Mode: WatchAll}
	startWithPeriod(g, "c1", "web")
	if got := kinds(g.onEvent(ev("c1", "", t0.Add(3*time.Second), "health", "unhealthy"), t0.Add(3*time.Second))); got != nil {
		t.Errorf("in start period: got %v, want nothing", got)
	}
	if got := kinds(g.onTick(t0.Add(9 * time.Second))); got != nil {
		t.Errorf("tick in start period: got %v, want nothing", got)
	}
	ns := g.onTick(t0.Add(10*time.Second + 100*time.Millisecond))
	if got := kinds(ns); !cmp.Equal(got, []string{"opened unhealthy"}) {
		t.Fatalf("tick after the start period: got %v, want the unhealthy incident opened", got)
	}
	if got := kinds(g.onTick(t0.Add(11 * time.Second))); got != nil {
		t.Errorf("next tick: got %v, want nothing more", got)
	}

	// Healthy again before the period ends: nothing to look at.
	startWithPeriod(g, "c2", "api")
	g.onEvent(ev("c2", "", t0.Add(2*time.Second), "health", "unhealthy"), t0.Add(2*time.Second))
	g.onEvent(ev("c2", "", t0.Add(4*time.Second), "health", "healthy"), t0.Add(4*time.Second))
	for _, n := range g.onTick(t0.Add(12 * time.Second)) {
		if n.Envelope != nil && n.Envelope.Incident == "h/api/unhealthy" {
			t.Errorf("api healthy again inside its start period, got %s", n.Kind)
		}
	}
}

func TestEngineAlertFields(t *testing.T) {
	g := newEngine(testConfig())
	g.onEvent(ev("c1", "start", t0), t0)
	g.onDetails(docker.Details{ID: "c1", Name: "web", Image: "img:1", State: "running", StartedAt: t0, RestartCount: 2,
		Labels: map[string]string{"hemostat.mode": "observe"}}, g.byID["c1"].seq, false, t0)
	dieAt := t0.Add(time.Second)
	ns := g.onEvent(ev("c1", "die", dieAt, "exitCode", "3"), dieAt.Add(2*time.Millisecond))
	if len(ns) != 1 || ns[0].Envelope == nil {
		t.Fatalf("notices: %+v", ns)
	}
	env := ns[0].Envelope
	if env.Incident != "h/web/crashed" || env.Agent != "monitor" || env.Host != "h" || env.EventType != event.TypeContainerUnhealthy {
		t.Errorf("envelope: %+v", env)
	}
	p, err := event.DecodeData[event.ContainerUnhealthy](*env)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	want := event.ContainerUnhealthy{ContainerID: "c1", ContainerName: "web", Image: "img:1", Status: "exited",
		Class: "crashed", Severity: "critical", ExitCode: 3, RestartCount: 2, EventTime: dieAt,
		Anomalies: []event.Anomaly{{Type: "exit_code", Severity: "critical", Actual: 3}},
		Labels:    map[string]string{"hemostat.mode": "observe"},
	}
	if diff := cmp.Diff(want, *p); diff != "" {
		t.Errorf("payload (-want +got):\n%s", diff)
	}
}

// TestEngineSigkillCrashCarriesTheDiesTime: a die by SIGKILL waits for an oom event, and the crash it is
// reported as afterwards still carries the die's time and exit code.
func TestEngineSigkillCrashCarriesTheDiesTime(t *testing.T) {
	g := newEngine(testConfig())
	g.onEvent(ev("c1", "start", t0), t0)
	dieAt := t0.Add(time.Second)
	if ns := g.onEvent(ev("c1", "die", dieAt, "exitCode", "137"), dieAt); len(ns) != 0 {
		t.Fatalf("notices at the die: %v, want none until the wait for an oom event is over", kinds(ns))
	}
	ns := g.onTick(dieAt.Add(oomAfterDie))
	if len(ns) != 1 || ns[0].Envelope == nil {
		t.Fatalf("notices after the wait: %+v", ns)
	}
	p, err := event.DecodeData[event.ContainerUnhealthy](*ns[0].Envelope)
	if err != nil {
		t.Fatal(err)
	}
	if p.Class != event.ClassCrashed || !p.EventTime.Equal(dieAt) || p.ExitCode != 137 {
		t.Errorf("alert: class %s, event time %v (want %v), exit code %d", p.Class, p.EventTime, dieAt, p.ExitCode)
	}
	if len(g.pendingDies) != 0 {
		t.Errorf("dies still waiting: %v", g.pendingDies)
	}
}

func sample(at time.Time, cpuNS uint64, mem, limit uint64) container.Sample {
	s := container.Sample{Time: at, Source: "api", CPUTotalNS: cpuNS}
	s.Metrics.MemoryUsage, s.Metrics.MemoryLimit = mem, limit
	s.Metrics.MemoryPercent = 100 * float64(mem) / float64(limit)
	return s
}

func TestEngineResourceClasses(t *testing.T) {
	const mib = 1 << 20
	setup := func(labels map[string]string, nano int64) *engine {
		g := newEngine(testConfig())
		g.onEvent(ev("c1", "start", t0), t0)
		g.onDetails(docker.Details{ID: "c1", Name: "web", State: "running", StartedAt: t0, NanoCPUs: nano, Labels: labels},
			g.byID["c1"].seq, false, t0)
		return g
	}
	feed := func(g *engine, n int, cpuPerSec float64, mem func(i int) uint64) []string {
		var got []string
		for i := range n {
			at := t0.Add(time.Duration(i) * 10 * time.Second)
			got = append(got, kinds(g.onSample("c1", sample(at, uint64(cpuPerSec*1e9*10*float64(i)), mem(i), 512*mib), at))...)
			got = append(got, kinds(g.onTick(at))...)
		}
		return got
	}
	flat := func(int) uint64 { return 100 * mib }
	t.Run("cpu over the limit for k samples", func(t *testing.T) {
		g := setup(nil, 5e8) // 0.45 of 0.5 cores: 90 %
		if diff := cmp.Diff([]string{"opened cpu_saturated"}, feed(g, 6, 0.45, flat)); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("cpu below default threshold", func(t *testing.T) {
		g := setup(nil, 5e8) // 80 %
		if got := feed(g, 6, 0.40, flat); got != nil {
			t.Errorf("got %v", got)
		}
	})
	t.Run("cpu label threshold", func(t *testing.T) {
		g := setup(map[string]string{"hemostat.cpu_threshold": "50"}, 5e8)
		if diff := cmp.Diff([]string{"opened cpu_saturated"}, feed(g, 6, 0.40, flat)); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("memory pressure", func(t *testing.T) {
		g := setup(nil, 0)
		if diff := cmp.Diff([]string{"opened memory_pressure"}, feed(g, 5, 0, func(int) uint64 { return 450 * mib })); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("memory label threshold", func(t *testing.T) {
		g := setup(map[string]string{"hemostat.memory_threshold": "95"}, 0)
		if got := feed(g, 5, 0, func(int) uint64 { return 450 * mib }); got != nil {
			t.Errorf("got %v", got)
		}
	})
	t.Run("memory leak", func(t *testing.T) {
		g := setup(nil, 0)
		got := feed(g, 12, 0, func(i int) uint64 { return uint64(100+5*i) * mib })
		if diff := cmp.Diff([]string{"opened memory_leak"}, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("cpu recovers after the hysteresis", func(t *testing.T) {
		g := setup(nil, 5e8)
		var got []string
		cpu := uint64(0)
		for i := range 12 {
			at := t0.Add(time.Duration(i) * 10 * time.Second)
			rate := 0.45
			if i >= 5 {
				rate = 0.1
			}
			cpu += uint64(rate * 10e9)
			got = append(got, kinds(g.onSample("c1", sample(at, cpu, 100*mib, 512*mib), at))...)
			got = append(got, kinds(g.onTick(at))...)
		}
		if diff := cmp.Diff([]string{"opened cpu_saturated", "condition cpu_saturated", "cleared cpu_saturated"}, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("cpu recovers once its healthcheck passes too", func(t *testing.T) {
		g := newEngine(testConfig())
		g.onEvent(ev("c1", "start", t0), t0)
		g.onDetails(docker.Details{ID: "c1", Name: "web", State: "running", StartedAt: t0, NanoCPUs: 5e8, Health: "starting",
			Healthcheck: &docker.Healthcheck{Interval: 30 * time.Second}}, g.byID["c1"].seq, false, t0)
		var got []string
		cpu := uint64(0)
		for i := range 12 { // over the threshold until 40 s, under it from 50 s: clear, but not yet healthy
			at := t0.Add(time.Duration(i) * 10 * time.Second)
			rate := 0.45
			if i >= 5 {
				rate = 0.1
			}
			cpu += uint64(rate * 10e9)
			got = append(got, kinds(g.onSample("c1", sample(at, cpu, 100*mib, 512*mib), at))...)
			got = append(got, kinds(g.onTick(at))...)
		}
		if diff := cmp.Diff([]string{"opened cpu_saturated"}, got); diff != "" {
			t.Errorf("before the healthcheck passed (-want +got):\n%s", diff)
		}
		healthy := t0.Add(115 * time.Second)
		g.onEvent(ev("c1", "", healthy, "health", "healthy"), healthy)
		for _, s := range []time.Duration{116, 144, 146} {
			got = append(got, kinds(g.onTick(t0.Add(s*time.Second)))...)
		}
		if diff := cmp.Diff([]string{"opened cpu_saturated", "condition cpu_saturated", "cleared cpu_saturated"}, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		if in := g.incidents["h/web/cpu_saturated"]; in != nil {
			t.Errorf("still open after 31 s healthy and under the threshold")
		}
	})
}

func TestEngineOptOut(t *testing.T) {
	g := newEngine(testConfig())
	e := ev("c1", "start", t0, "hemostat.enable", "false")
	g.onEvent(e, t0)
	if got := kinds(g.onEvent(ev("c1", "die", t0.Add(time.Second), "exitCode", "3", "hemostat.enable", "false"), t0)); got != nil {
		t.Errorf("opted out container alerted: %v", got)
	}
	if s := g.summaries(t0)["h/web"]; s.Watched || s.State != "exited" {
		t.Errorf("opted out container not visible in the table: %+v", s)
	}
}

func TestEngineReconcile(t *testing.T) {
	g := newEngine(testConfig())
	g.load([]schema.Incident{{Key: "h/old/crashed", Detection: schema.Detection{Class: "crashed", Host: "h", Container: "old", OpenedAt: t0, LastAlertAt: t0}}})
	now := t0.Add(time.Minute)
	list := []docker.Container{
		{ID: "c1", Name: "web", State: "exited"},
		{ID: "c2", Name: "db", State: "running", Health: "unhealthy"},
		{ID: "c3", Name: "stopped", State: "exited"},
		{ID: "c4", Name: "paused", State: "paused"},
	}
	got := kinds(g.onList(list, now, now))
	got = append(got, kinds(g.onTick(now))...)
	if diff := cmp.Diff([]string{"closed crashed"}, got); diff != "" {
		t.Errorf("list (-want +got):\n%s", diff)
	}
	insp := g.takeInspects()
	if diff := cmp.Diff(map[string]bool{"c1": true, "c2": true, "c3": true, "c4": true}, insp); diff != "" {
		t.Errorf("inspects (-want +got):\n%s", diff)
	}
	details := []docker.Details{
		{ID: "c1", Name: "web", State: "exited", ExitCode: 3, FinishedAt: now.Add(-10 * time.Second)},
		{ID: "c2", Name: "db", State: "running", Health: "unhealthy", StartedAt: t0},
		{ID: "c3", Name: "stopped", State: "exited", ExitCode: 143, FinishedAt: now.Add(-10 * time.Second)},
		{ID: "c4", Name: "paused", State: "paused"},
	}
	got = nil
	for _, d := range details {
		got = append(got, kinds(g.onDetails(d, g.byID[d.ID].seq, true, now))...)
	}
	if diff := cmp.Diff([]string{"opened crashed", "opened unhealthy"}, got); diff != "" {
		t.Errorf("catch-up (-want +got):\n%s", diff)
	}
	// The same state seen again by the next reconcile opens nothing more.
	g.onList(list, now, now)
	got = nil
	for id, catchUp := range g.takeInspects() {
		for _, d := range details {
			if d.ID == id {
				got = append(got, kinds(g.onDetails(d, g.byID[id].seq, catchUp, now))...)
			}
		}
	}
	if got != nil {
		t.Errorf("second reconcile: got %v", got)
	}
	sums := g.summaries(now)
	if s := sums["h/paused"]; s.State != "paused" {
		t.Errorf("paused container: %+v", s)
	}
}

func TestEngineResumedIncidentDoesNotRealert(t *testing.T) {
	g := newEngine(testConfig())
	g.load([]schema.Incident{{Key: "h/web/crashed", Detection: schema.Detection{Class: "crashed", Host: "h", Container: "web", OpenedAt: t0, LastAlertAt: t0}}})
	now := t0.Add(time.Minute)
	g.onList([]docker.Container{{ID: "c1", Name: "web", State: "exited"}}, now, now)
	g.takeInspects()
	got := kinds(g.onDetails(docker.Details{ID: "c1", Name: "web", State: "exited", ExitCode: 3, FinishedAt: t0}, 0, true, now))
	got = append(got, kinds(g.onTick(now))...)
	if got != nil {
		t.Errorf("resumed incident alerted again: %v", got)
	}
}

// TestEngineRelapseSaysHowSoon: a relapse is a condition notice on the same incident, counting the
// relapses and carrying the time since the container's latest start.
func TestEngineRelapseSaysHowSoon(t *testing.T) {
	g := newEngine(testConfig())
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	g.onEvent(ev("c1", "start", at(0)), at(0))
	opened := g.onEvent(ev("c1", "die", at(1), "exitCode", "3"), at(1))
	g.onEvent(ev("c1", "start", at(10)), at(10))
	cleared := g.onTick(at(11))
	relapse := g.onEvent(ev("c1", "die", at(14), "exitCode", "3"), at(14))
	if len(opened) != 1 || len(cleared) != 1 || len(relapse) != 1 {
		t.Fatalf("notices: opened %v, cleared %v, relapse %v", kinds(opened), kinds(cleared), kinds(relapse))
	}
	if c := cleared[0]; c.Condition != schema.ConditionClear || c.Incident != opened[0].Incident || !c.EventTime.Equal(at(10)) {
		t.Errorf("clear notice: %+v", c)
	}
	r := relapse[0]
	if r.Kind != NoticeCondition || r.Condition != schema.ConditionFailing || !r.Relapse || r.Relapses != 1 ||
		r.RelapseAfter != 4*time.Second || r.Incident != opened[0].Incident || r.Envelope != nil {
		t.Errorf("relapse notice: %+v", r)
	}
}

// TestEngineForgetsIncidentsClosedInRedis: an incident a person closed (gone from Redis's open set) is
// dropped, unless it opened so recently that its own opening may still be on its way to Redis; a later
// failure opens a new incident.
func TestEngineForgetsIncidentsClosedInRedis(t *testing.T) {
	g := newEngine(testConfig())
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	g.onEvent(ev("c1", "start", at(0)), at(0))
	g.onEvent(ev("c1", "die", at(1), "exitCode", "3"), at(1))
	if got := g.forgetClosed(map[string]bool{}, at(5)); len(got) != 0 {
		t.Errorf("forgot an incident opened 4s before the read: %v", got)
	}
	if got := g.forgetClosed(map[string]bool{}, at(20)); len(got) != 1 || got[0] != "h/web/crashed" {
		t.Errorf("forgetClosed = %v, want the crashed incident", got)
	}
	g.onEvent(ev("c1", "start", at(21)), at(21))
	if got := kinds(g.onEvent(ev("c1", "die", at(22), "exitCode", "3"), at(22))); !cmp.Equal(got, []string{"opened crashed"}) {
		t.Errorf("after the close, a crash: %v, want a new incident", got)
	}
}

// TestEngineRecoveryWaitsForTheHealthcheck: a container with a healthcheck is not recovered until the
// healthcheck passes after its restart, as the responder's verification has it; the hysteresis (30 s) counts
// from then. Running while the first probe is still to come (Docker's default interval is 30 s) is not clear.
func TestEngineRecoveryWaitsForTheHealthcheck(t *testing.T) {
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	hc := &docker.Healthcheck{Interval: 30 * time.Second}
	details := func(s float64) step {
		return step{d: &docker.Details{ID: "c1", Name: "web", Image: "img", State: "running", StartedAt: at(s), Pid: 42,
			Health: "starting", Healthcheck: hc}}
	}
	start := func(s float64) step { return step{e: ev("c1", "start", at(s))} }
	healthy := func(s float64) step { return step{e: ev("c1", "", at(s), "health", "healthy")} }
	tick := func(s float64) step { return step{tic: at(s)} }
	for _, tc := range []struct {
		name  string
		steps []step
		want  []string
	}{
		// Restarted at 45, healthy at 85 (the first probe came late): clear from 85, recovered at 115.
		{"a crash, restarted: not clear while the healthcheck starts", []step{start(0), details(0), healthy(30),
			{e: ev("c1", "die", at(40), "exitCode", "3")}, start(45), details(45), tick(60), tick(80), healthy(85), tick(86),
			tick(114), tick(116)},
			[]string{"opened crashed", "condition crashed at 1m26s", "cleared crashed at 1m56s"}},
		{"an OOM kill, restarted: the same", []step{start(0), details(0), healthy(30), {e: ev("c1", "oom", at(40))},
			{e: ev("c1", "die", at(40.1), "exitCode", "137")}, start(45), details(45), tick(60), tick(80), healthy(85), tick(86),
			tick(114), tick(116)},
			[]string{"opened oom_killed", "condition oom_killed at 1m26s", "cleared oom_killed at 1m56s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newEngine(testConfig())
			g.cfg.Watch = WatchRules{Mode: WatchAll}
			var got []string
			for _, s := range tc.steps {
				if s.tic.IsZero() {
					got = append(got, runSteps(g, []step{s})...)
					continue
				}
				for _, k := range kinds(g.onTick(s.tic)) {
					got = append(got, fmt.Sprintf("%s at %s", k, s.tic.Sub(t0)))
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("notices (-want +got):\n%s", diff)
			}
		})
	}
}
