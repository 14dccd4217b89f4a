package dash

import (
	"context"
	"fmt"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/hemostat/hemostat/pkg/bus"
	"github.com/hemostat/hemostat/pkg/conn"
	"github.com/hemostat/hemostat/pkg/container"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/store"
	"github.com/hemostat/hemostat/pkg/testenv"
)

// bigFixture is the fixture plus n more running containers, each with a sample, a history and a ledger.
func bigFixture(now time.Time, n int) fixture {
	f := newFixture(now)
	for i := range n {
		s := container.Summary{ID: fmt.Sprintf("%064d", i), Name: fmt.Sprintf("svc-%03d", i), Host: fmt.Sprintf("node-%d", i%4),
			Image: "acme/svc:1", State: "running", Health: "healthy", Mode: "auto", Watched: true, UpdatedAt: now}
		f.containers = append(f.containers, s)
		f.samples[s.Target()] = container.Sample{Time: now, Source: "cgroup", Metrics: event.Metrics{CPUPercent: float64(i % 100), MemoryPercent: 30}}
		f.histories[s.Target()] = container.History{CPU: series(float64(i%50), 1, 60), Memory: series(30, 0.1, 60)}
		f.ledgers[s.Target()] = map[string]string{"attempts": "[]", "breaker": "closed", "backoff_step": "0", "next_allowed_ms": "0"}
	}
	return f
}

// BenchmarkRender draws the overview of 106 containers at 120x40: the cost of one frame.
func BenchmarkRender(b *testing.B) {
	f := bigFixture(t0, 100)
	m := New(context.Background(), &fakeSource{}, nil, testOptions())
	m = send(m, tea.WindowSizeMsg{Width: 120, Height: 40}, snapshotMsg{snap: f.snapshot()},
		eventsMsg{batch: EventBatch{Events: f.streamEvents()}, ok: true})
	b.ReportAllocs()
	for b.Loop() {
		_ = m.Render()
	}
}

// BenchmarkRedisSnapshot is one refresh against real Redis with 106 containers (after the first, which
// reads the audit trail in full; later refreshes read only what was appended).
func BenchmarkRedisSnapshot(b *testing.B) {
	url := testenv.RequireRedis(b)
	f := bigFixture(time.Now().UTC(), 100)
	f.seed(b, url)
	c, err := openBenchStore(url)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	src := NewRedisSource(redisSources(c))
	ctx := context.Background()
	if _, err := src.Snapshot(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := src.Snapshot(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func openBenchStore(url string) (*store.Store, error) { return store.Open(conn.Options{URL: url}) }

// BenchmarkEventBatch is one live batch of 500 events: decoding the entries and the model's update (the
// rate the timeline keeps up with is 500 events divided by this).
func BenchmarkEventBatch(b *testing.B) {
	f := newFixture(t0)
	var entries []bus.Entry
	for i := range 500 {
		e := f.events[i%len(f.events)]
		stream, _ := event.StreamFor(e.EventType, e.Host)
		entries = append(entries, bus.Entry{Stream: stream, ID: fmt.Sprintf("%d-%d", t0.UnixMilli(), i), Raw: []byte(mustJSON(e))})
	}
	m := populated(newTestModel(120, 40))
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		evs := make([]Event, len(entries))
		for i, e := range entries {
			e.ID = fmt.Sprintf("%d-%d", n, i)
			evs[i] = decodeEvent(e)
		}
		n++
		m = send(m, eventsMsg{batch: EventBatch{Events: evs}, ok: true})
	}
}
