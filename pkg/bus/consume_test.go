package bus_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hemostat/hemostat/pkg/bus"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/testenv"
)

// TestDiscoverAddsStreamsAfterAFailure: a Discover that fails leaves the consumer on its known streams and
// is asked again; a stream it names later is read, with its group, from its first entry.
func TestDiscoverAddsStreamsAfterAFailure(t *testing.T) {
	url := testenv.RequireRedis(t)
	b, _ := newBus(t, url, bus.Options{Block: 20 * time.Millisecond})
	ctx := context.Background()
	const newStream = "hemostat:test:discovered"
	var calls atomic.Int32
	g := group("a")
	g.DiscoverEvery = 20 * time.Millisecond
	g.Discover = func(context.Context) ([]string, error) {
		if calls.Add(1) == 1 {
			return nil, errors.New("registry unavailable")
		}
		return []string{stream, newStream}, nil
	}
	var mu sync.Mutex
	from := map[string]string{} // event id: the stream it was read from
	rec := newRecorder()
	rec.fail = func(m bus.Message) error {
		mu.Lock()
		defer mu.Unlock()
		from[m.Envelope.ID] = m.Stream
		return nil
	}
	consume(t, b, g, rec.handle)
	eventually(t, 5*time.Second, "the first, failing discovery", func() bool { return calls.Load() >= 1 })
	known, added := alert(1), alert(2)
	if _, err := b.Publish(ctx, stream, known); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(ctx, newStream, added); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the entries of both streams handled", func() bool {
		return rec.times(known.ID) > 0 && rec.times(added.ID) > 0
	})
	for _, e := range []event.Envelope{known, added} {
		if n := rec.times(e.ID); n != 1 {
			t.Errorf("event %s handled %d times, want once", e.ID, n)
		}
	}
	mu.Lock()
	if from[known.ID] != stream || from[added.ID] != newStream {
		t.Errorf("read from %q and %q, want %q and %q", from[known.ID], from[added.ID], stream, newStream)
	}
	mu.Unlock()
	eventually(t, 5*time.Second, "nothing pending on the discovered stream", func() bool {
		n, err := b.Pending(ctx, newStream, "analyze")
		return err == nil && n == 0
	})
}

// TestOnceWithoutStreamOrGroupReturnsAtOnce: Once on a stream that does not exist, or that exists without
// the group, has nothing to drain: it returns nil at once, even with a long Block, and creates nothing.
func TestOnceWithoutStreamOrGroupReturnsAtOnce(t *testing.T) {
	url := testenv.RequireRedis(t)
	b, c := newBus(t, url, bus.Options{Block: 30 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rdb := c.Conn.Client()
	const missing, bare = "hemostat:test:missing", "hemostat:test:nogroup"
	if _, err := b.Publish(ctx, bare, alert(1)); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{missing, bare} {
		rec := newRecorder()
		done := make(chan error, 1)
		go func() {
			done <- b.Consume(ctx, bus.Group{Name: "drain", Consumer: "legacy", Streams: []string{s}, Once: true}, rec.handle)
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Once on %s returned %v, want nil", s, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("Once on %s did not return within 5s", s)
		}
		if n := rec.count(); n != 0 {
			t.Errorf("Once on %s handled %d entries without a group", s, n)
		}
	}
	if n, err := rdb.Exists(ctx, missing).Result(); err != nil || n != 0 {
		t.Errorf("missing stream: exists=%d (%v), want not created", n, err)
	}
	if groups, err := rdb.XInfoGroups(ctx, bare).Result(); err != nil || len(groups) != 0 {
		t.Errorf("stream without the group: groups %v (%v), want none created", groups, err)
	}
}

// TestGatedConsumersHandleEachEntryOnce: the consumers of one instance sharing a Gate handle every entry
// between them, each once, and all return when their context is cancelled.
func TestGatedConsumersHandleEachEntryOnce(t *testing.T) {
	url := testenv.RequireRedis(t)
	b, _ := newBus(t, url, bus.Options{Block: 50 * time.Millisecond, Batch: 5})
	ctx := context.Background()
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	gate := bus.NewGate()
	rec := newRecorder()
	const consumers = 4
	done := make(chan error, consumers)
	for i := range consumers {
		g := group(fmt.Sprint("gated-", i))
		g.Gate = gate
		go func() { done <- b.Consume(cctx, g, rec.handle) }()
	}
	var envs []event.Envelope
	for i := range 50 {
		env := alert(i)
		envs = append(envs, env)
		if _, err := b.Publish(ctx, stream, env); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "50 entries handled", func() bool { return rec.count() == 50 })
	eventually(t, 5*time.Second, "no pending entries", func() bool {
		n, err := b.Pending(ctx, stream, "analyze")
		return err == nil && n == 0
	})
	for _, e := range envs {
		if n := rec.times(e.ID); n != 1 {
			t.Errorf("event %s handled %d times, want once", e.ID, n)
		}
	}
	cancel()
	deadline := time.After(5 * time.Second)
	for i := range consumers {
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("consume returned %v", err)
			}
		case <-deadline:
			t.Fatalf("%d of %d gated consumers did not stop within 5s of the cancel", consumers-i, consumers)
		}
	}
}
