package monitor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hemostat/hemostat/pkg/bus"
	"github.com/hemostat/hemostat/pkg/conn"
	"github.com/hemostat/hemostat/pkg/container"
	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/monitor"
	"github.com/hemostat/hemostat/pkg/store"
	"github.com/hemostat/hemostat/pkg/store/schema"
	"github.com/hemostat/hemostat/pkg/testenv"
)

// eventually polls cond until it holds or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, cond func() bool) bool {
	return testenv.Poll(timeout, cond)
}

// syncBuffer is safe for concurrent writers and the test.
type syncBuffer = testenv.SyncBuffer

// harness is a monitor on the real engine and a Redis database, watching only containers named prefix-nonce-*.
type harness struct {
	t      testing.TB
	dc     *docker.Client
	st     *store.Store
	bus    *bus.Bus
	m      *monitor.Monitor
	o      monitor.Options
	prefix string
	out    *syncBuffer
	stop   func()
}

const testHost = "test-host"

// fastOptions are short periods so a test takes seconds.
func fastOptions() monitor.Options {
	return monitor.Options{
		Host: testHost, Interval: 200 * time.Millisecond, ReconcileInterval: time.Second, Workers: 8,
		Hysteresis: 300 * time.Millisecond, RealertInterval: time.Hour, KillWindow: 30 * time.Second,
		LeakMinSamples: 5, Format: monitor.FormatJSONL,
	}
}

func newHarness(t testing.TB, prefix string, redisURL string, o monitor.Options) *harness {
	t.Helper()
	return newHarnessExact(t, nonced(prefix), redisURL, o)
}

// nonced adds a nonce of this run to a prefix: a container another run of the same test left behind (a
// killed run cannot clean up) is not watched, and cannot add its alerts to this run's.
func nonced(prefix string) string { return fmt.Sprintf("%s-%04x", prefix, rand.IntN(1<<16)) }

// newHarnessExact is newHarness watching prefix-* as given, for a test that names its containers before
// the harness starts (make the prefix with nonced).
func newHarnessExact(t testing.TB, prefix string, redisURL string, o monitor.Options) *harness {
	t.Helper()
	dc := testenv.RequireDocker(t)
	if redisURL == "" {
		redisURL = testenv.RequireRedis(t)
	}
	st, err := store.Open(conn.Options{URL: redisURL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	o.Watch.Include = append(o.Watch.Include, prefix+"-*")
	h := &harness{t: t, dc: dc, st: st, bus: bus.New(st.Conn, bus.Options{}), o: o, prefix: prefix, out: &syncBuffer{}}
	h.start()
	t.Cleanup(func() { h.stop() })
	return h
}

// start runs a fresh monitor and waits for its first reconcile.
func (h *harness) start() {
	h.t.Helper()
	o := h.o
	o.Output = h.out
	var sampler monitor.Sampler = monitor.APISampler{Client: h.dc}
	if o.SamplerName != "" && o.SamplerName != monitor.SamplerAPI {
		s, name, err := monitor.NewSampler(o.SamplerName, h.dc, nil)
		if err != nil {
			h.t.Fatalf("sampler: %v", err)
		}
		sampler, o.SamplerName = s, name
	}
	h.m = monitor.New(o, h.dc, sampler, monitor.Stores{Incidents: h.st.Incidents, State: h.st.Containers, Ledger: h.st.Ledger}, h.bus)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	m := h.m
	go func() { done <- m.Run(ctx) }()
	var once sync.Once
	h.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					h.t.Errorf("monitor run: %v", err)
				}
			case <-time.After(10 * time.Second):
				h.t.Errorf("monitor did not stop")
			}
		})
	}
	if !eventually(h.t, 15*time.Second, func() bool { return m.Counters.Reconciles.Load() > 0 }) {
		h.t.Fatal("monitor never reconciled")
	}
}

// run starts a test container named prefix-...
func (h *harness) run(o docker.CreateOptions) (id, name string) {
	h.t.Helper()
	o.Name = h.prefix
	return testenv.RunContainer(h.t, h.dc, o)
}

type alert struct {
	env event.Envelope
	p   *event.ContainerUnhealthy
}

// alerts returns the health alerts published so far, optionally of one class.
func (h *harness) alerts(class string) []alert {
	h.t.Helper()
	out, err := h.readAlerts(class)
	if err != nil {
		h.t.Fatalf("range: %v", err)
	}
	return out
}

// readAlerts is alerts, with Redis's error returned.
func (h *harness) readAlerts(class string) ([]alert, error) {
	h.t.Helper()
	entries, err := h.bus.Range(context.Background(), event.StreamHealthAlert, "-", "+", 1000)
	if err != nil {
		return nil, err
	}
	var out []alert
	seen := map[string]bool{}
	for _, e := range entries {
		env, err := event.Decode(e.Raw)
		if err != nil {
			h.t.Fatalf("decode alert: %v", err)
		}
		if seen[env.ID] {
			continue // a publish retried after a timeout: the bus is at-least-once, consumers dedupe by id
		}
		seen[env.ID] = true
		p, err := event.DecodeData[event.ContainerUnhealthy](env)
		if err != nil {
			h.t.Fatalf("decode payload: %v", err)
		}
		if class == "" || p.Class == class {
			out = append(out, alert{env: env, p: p})
		}
	}
	return out, nil
}

func (h *harness) recoveries() []event.ContainerRecovered {
	h.t.Helper()
	entries, err := h.bus.Range(context.Background(), event.StreamContainerRecovered, "-", "+", 1000)
	if err != nil {
		h.t.Fatalf("range: %v", err)
	}
	var out []event.ContainerRecovered
	for _, e := range entries {
		env, err := event.Decode(e.Raw)
		if err != nil {
			h.t.Fatalf("decode: %v", err)
		}
		p, err := event.DecodeData[event.ContainerRecovered](env)
		if err != nil {
			h.t.Fatalf("decode payload: %v", err)
		}
		out = append(out, *p)
	}
	return out
}

// waitAlerts waits until n alerts of class exist and returns them.
func (h *harness) waitAlerts(class string, n int, timeout time.Duration) []alert {
	h.t.Helper()
	var got []alert
	var err error
	// Redis may be unreachable for a moment (a test that restarts it, a loaded machine): read again.
	if !eventually(h.t, timeout, func() bool { got, err = h.readAlerts(class); return err == nil && len(got) >= n }) {
		h.t.Fatalf("want %d %s alerts, got %d (last read error: %v)\nstdout:\n%s", n, class, len(got), err, h.out.String())
	}
	return got
}

func (h *harness) classes() []string {
	var out []string
	for _, a := range h.alerts("") {
		out = append(out, a.p.ContainerName+"/"+a.p.Class)
	}
	return out
}

// summary reads a container's entry of its host's container table.
func (h *harness) summary(name string) (container.Summary, bool) {
	raw, err := h.st.Conn.Client().HGet(context.Background(), schema.ContainersKey(testHost), event.Target(testHost, name)).Result()
	if err != nil {
		return container.Summary{}, false
	}
	var s container.Summary
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		h.t.Fatalf("summary %s: %v", name, err)
	}
	return s, true
}

// waitState waits until the table shows the container in state.
func (h *harness) waitState(name, state string, timeout time.Duration) container.Summary {
	h.t.Helper()
	var s container.Summary
	if !eventually(h.t, timeout, func() bool { s, _ = h.summary(name); return s.State == state }) {
		h.t.Fatalf("%s: state %q, want %q", name, s.State, state)
	}
	return s
}

func (h *harness) incident(key string) map[string]string {
	return h.st.Conn.Client().HGetAll(context.Background(), schema.IncidentKey(key)).Val()
}

func (h *harness) openIncidents() []string {
	return h.st.Conn.Client().ZRange(context.Background(), schema.KeyIncidentsOpen, 0, -1).Val()
}

// stdoutLines returns the monitor's JSON lines.
func (h *harness) stdoutLines() []monitor.Notice {
	var out []monitor.Notice
	for _, l := range strings.Split(strings.TrimSpace(h.out.String()), "\n") {
		if l == "" {
			continue
		}
		var n monitor.Notice
		if err := json.Unmarshal([]byte(l), &n); err != nil {
			h.t.Errorf("stdout line %q: %v", l, err)
			continue
		}
		out = append(out, n)
	}
	return out
}

var probe = []string{"CMD", "/app", "-probe", "http://127.0.0.1:8080/health"}
