package monitor_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hemostat/hemostat/pkg/container"
	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/monitor"
	"github.com/hemostat/hemostat/pkg/monitor/monitortest"
	"github.com/hemostat/hemostat/pkg/store/containers"
	"github.com/hemostat/hemostat/pkg/store/incidents"
	"github.com/hemostat/hemostat/pkg/store/schema"
	"slices"
)

// memStore is an in-memory monitor.Store and monitor.Publisher that can be made to fail.
type memStore struct {
	mu        sync.Mutex
	down      bool
	published []event.Envelope
	open      map[string]schema.Detection
	preload   []schema.Incident
}

var errRedisDown = errors.New("redis down")

func newMemStore() *memStore { return &memStore{open: map[string]schema.Detection{}} }

func (s *memStore) setDown(v bool) { s.mu.Lock(); s.down = v; s.mu.Unlock() }

func (s *memStore) err() error {
	if s.down {
		return errRedisDown
	}
	return nil
}

func (s *memStore) Open(_ context.Context, key string, d schema.Detection) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return errRedisDown
	}
	s.open[key] = d
	return nil
}

func (s *memStore) SetCondition(context.Context, string, incidents.Change) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err()
}

func (s *memStore) Get(_ context.Context, key string) (schema.Incident, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.open[key]
	return schema.Incident{Key: key, Detection: d}, ok, s.err()
}

func (s *memStore) Realert(context.Context, string, string, time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err()
}

func (s *memStore) Close(_ context.Context, key string, _ time.Time, _ string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return errRedisDown
	}
	delete(s.open, key)
	s.preload = slices.DeleteFunc(s.preload, func(in schema.Incident) bool { return in.Key == key })
	return nil
}

// OpenIncidents returns what a restarted monitor resumes (preload) and what it opened since, like the
// open set in Redis.
func (s *memStore) OpenIncidents(context.Context, string) ([]schema.Incident, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.preload)
	for key, d := range s.open {
		out = append(out, schema.Incident{Key: key, Detection: d})
	}
	return out, s.err()
}

func (s *memStore) WriteContainers(context.Context, string, []container.Summary) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err()
}

func (s *memStore) WriteStats(context.Context, []containers.StatsEntry, time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err()
}

func (s *memStore) WriteHost(context.Context, schema.HostStatus) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err()
}

func (s *memStore) Publish(_ context.Context, _ string, env event.Envelope) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return "", errRedisDown
	}
	s.published = append(s.published, env)
	return "1-0", nil
}

func (s *memStore) incidents() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, e := range s.published {
		out = append(out, e.EventType+" "+e.Incident)
	}
	return out
}

type fakeRig struct {
	rt *monitortest.Runtime
	st *memStore
	m  *monitor.Monitor
}

func startFake(t *testing.T, rt *monitortest.Runtime, st *memStore, o monitor.Options) *fakeRig {
	t.Helper()
	if rt == nil {
		rt = monitortest.New()
	}
	if st == nil {
		st = newMemStore()
	}
	o.Host = "h"
	if o.Interval == 0 {
		o.Interval = 50 * time.Millisecond
	}
	o.ReconcileInterval = time.Hour
	o.Hysteresis = 100 * time.Millisecond
	r := &fakeRig{rt: rt, st: st, m: monitor.New(o, rt, rt, monitor.Stores{Incidents: st, State: st}, st)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	if !eventually(t, 5*time.Second, func() bool { return r.m.Counters.Reconciles.Load() > 0 && rt.Subscribers() == 1 }) {
		t.Fatal("monitor did not connect")
	}
	return r
}

func dieEvent(id, name string, code int, at time.Time) docker.Event {
	return docker.Event{ID: id, Name: name, Action: "die", ExitCode: code, Time: at, TimeNano: at.UnixNano(),
		Attributes: map[string]string{"name": name}}
}

func TestFakeReconnectReplaysWithoutDuplicates(t *testing.T) {
	r := startFake(t, nil, nil, monitor.Options{})
	now := time.Now()
	r.rt.Emit(dieEvent("c1", "web", 3, now))
	if !eventually(t, 5*time.Second, func() bool { return len(r.st.incidents()) == 1 }) {
		t.Fatalf("no alert: %v", r.st.incidents())
	}
	lists := r.m.Counters.Reconciles.Load()
	r.rt.Break() // the daemon restarts: the stream replays from last event minus 1 s, which includes the die
	if !eventually(t, 5*time.Second, func() bool { return r.m.Counters.Reconnects.Load() == 1 && r.m.Counters.Reconciles.Load() > lists }) {
		t.Fatal("no reconnect and reconcile")
	}
	r.rt.Emit(dieEvent("c2", "db", 1, time.Now()))
	eventually(t, 5*time.Second, func() bool { return len(r.st.incidents()) == 2 })
	want := []string{"container_unhealthy h/web/crashed", "container_unhealthy h/db/crashed"}
	if diff := cmp.Diff(want, r.st.incidents()); diff != "" {
		t.Errorf("alerts (-want +got):\n%s", diff)
	}
	if r.m.Counters.Duplicates.Load() < 1 {
		t.Errorf("the replayed die was not recognised as a duplicate")
	}
	var since []string
	for _, c := range r.rt.Calls() {
		if strings.HasPrefix(c, "events ") {
			since = append(since, c)
		}
	}
	wantSince := "events since=" + now.Add(-time.Second).UTC().Format(time.RFC3339Nano)
	if len(since) != 2 || since[0] != "events since=0" || since[1] != wantSince {
		t.Errorf("event subscriptions %v, want since=0 then %s", since, wantSince)
	}
}

func TestFakeDockerDownAndBack(t *testing.T) {
	r := startFake(t, nil, nil, monitor.Options{})
	r.rt.SetDown(true)
	time.Sleep(300 * time.Millisecond) // let it fail a few reconnects (the outage itself is what is tested)
	if n := r.rt.Subscribers(); n != 0 {
		t.Fatalf("subscribed while down: %d", n)
	}
	// While the engine is away a container crashed; the reconcile after the reconnect finds it.
	r.rt.Set(docker.Details{ID: "c9", Name: "batch", State: "exited", ExitCode: 2, FinishedAt: time.Now()})
	r.rt.SetDown(false)
	if !eventually(t, 15*time.Second, func() bool { return len(r.st.incidents()) == 1 }) {
		t.Fatalf("missed crash not caught after the engine came back: %v (calls %v)", r.st.incidents(), r.rt.Calls())
	}
	if got := r.st.incidents()[0]; got != "container_unhealthy h/batch/crashed" {
		t.Errorf("alert: %s", got)
	}
}

func TestFakeRedisDownBuffersAndDropsOldest(t *testing.T) {
	st := newMemStore()
	r := startFake(t, nil, st, monitor.Options{Buffer: 2})
	st.setDown(true)
	for i, name := range []string{"a", "b", "c"} {
		r.rt.Emit(dieEvent("c"+name, name, 1, time.Now().Add(time.Duration(i)*time.Millisecond)))
	}
	if !eventually(t, 5*time.Second, func() bool { _, dropped := r.m.Buffered(); return dropped == 1 }) {
		n, d := r.m.Buffered()
		t.Fatalf("buffered %d dropped %d, want one dropped", n, d)
	}
	st.setDown(false)
	if !eventually(t, 10*time.Second, func() bool { return len(st.incidents()) == 2 }) {
		t.Fatalf("buffered alerts not delivered: %v", st.incidents())
	}
	want := []string{"container_unhealthy h/b/crashed", "container_unhealthy h/c/crashed"}
	if diff := cmp.Diff(want, st.incidents()); diff != "" {
		t.Errorf("delivered (-want +got):\n%s", diff)
	}
}

func TestFakeResumesOpenIncidents(t *testing.T) {
	st := newMemStore()
	opened := time.Now().Add(-time.Minute)
	st.preload = []schema.Incident{{Key: "h/web/unhealthy", Detection: schema.Detection{Class: "unhealthy", Host: "h", Container: "web", OpenedAt: opened, LastAlertAt: opened}}}
	rt := monitortest.New()
	rt.Set(docker.Details{ID: "c1", Name: "web", State: "running", Health: "unhealthy", StartedAt: opened.Add(-time.Minute),
		Healthcheck: &docker.Healthcheck{Test: []string{"CMD", "true"}}})
	r := startFake(t, rt, st, monitor.Options{})
	now := time.Now()
	r.rt.Emit(docker.Event{ID: "c1", Name: "web", Action: "health_status: unhealthy", Health: "unhealthy", Time: now, TimeNano: now.UnixNano()})
	rounds := r.m.Counters.Rounds.Load() // a few rounds (each ends with a tick): a second alert would be out by then
	eventually(t, 5*time.Second, func() bool { return r.m.Counters.Rounds.Load() >= rounds+3 })
	if got := st.incidents(); len(got) != 0 {
		t.Errorf("resumed incident alerted again: %v", got)
	}
	r.rt.Emit(docker.Event{ID: "c1", Name: "web", Action: "health_status: healthy", Health: "healthy", Time: time.Now(), TimeNano: time.Now().UnixNano()})
	r.rt.Set(docker.Details{ID: "c1", Name: "web", State: "running", Health: "healthy", StartedAt: opened,
		Healthcheck: &docker.Healthcheck{Test: []string{"CMD", "true"}}})
	if !eventually(t, 5*time.Second, func() bool { return len(st.incidents()) == 1 }) {
		t.Fatalf("no recovery: %v", st.incidents())
	}
	if got := st.incidents()[0]; got != "container_recovered h/web/unhealthy" {
		t.Errorf("got %s", got)
	}
}
