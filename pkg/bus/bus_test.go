package bus_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/bus"
	"github.com/hemostat/hemostat/pkg/conn"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/store"
	"github.com/hemostat/hemostat/pkg/testenv"
)

const stream = event.StreamHealthAlert

func newBus(t *testing.T, url string, o bus.Options) (*bus.Bus, *store.Store) {
	return newBusTB(t, url, o)
}

func newBusTB(t testing.TB, url string, o bus.Options) (*bus.Bus, *store.Store) {
	t.Helper()
	c, err := store.Open(conn.Options{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return bus.New(c.Conn, o), c
}

func alert(i int) event.Envelope {
	env, err := event.New("monitor", "h", fmt.Sprintf("h/web-%d/crashed", i), "", &event.ContainerUnhealthy{
		ContainerID: fmt.Sprint("id-", i), ContainerName: fmt.Sprint("web-", i), Class: event.ClassCrashed, ExitCode: 1,
	})
	if err != nil {
		panic(err)
	}
	return env
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, timeout, what, cond)
}

// recorder is a handler that records event ids, optionally failing some.
type recorder struct {
	mu   sync.Mutex
	seen map[string]int
	fail func(m bus.Message) error
}

func newRecorder() *recorder { return &recorder{seen: map[string]int{}} }

func (r *recorder) handle(_ context.Context, m bus.Message) error {
	r.mu.Lock()
	r.seen[m.Envelope.ID]++
	f := r.fail
	r.mu.Unlock()
	if f != nil {
		return f(m)
	}
	return nil
}

func (r *recorder) count() int { r.mu.Lock(); defer r.mu.Unlock(); return len(r.seen) }

func (r *recorder) times(id string) int { r.mu.Lock(); defer r.mu.Unlock(); return r.seen[id] }

func consume(t *testing.T, b *bus.Bus, g bus.Group, h bus.Handler) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Consume(ctx, g, h) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("consume returned %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Error("consumer did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func group(consumer string) bus.Group {
	return bus.Group{Name: "analyze", Consumer: consumer, Streams: []string{stream}}
}

func TestPublishConsumeAck(t *testing.T) {
	url := testenv.RequireRedis(t)
	b, c := newBus(t, url, bus.Options{Block: 100 * time.Millisecond})
	ctx := context.Background()

	sub := c.Conn.Client().Subscribe(ctx, stream)
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	var envs []event.Envelope
	for i := range 50 {
		env := alert(i)
		envs = append(envs, env)
		if _, err := b.Publish(ctx, stream, env); err != nil {
			t.Fatal(err)
		}
	}
	msg, err := sub.ReceiveMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if mirrored, _ := event.Decode([]byte(msg.Payload)); mirrored.ID != envs[0].ID {
		t.Errorf("pub/sub mirror carried %q, want the first envelope %s", msg.Payload, envs[0].ID)
	}

	rec := newRecorder()
	consume(t, b, group("a"), rec.handle)
	eventually(t, 10*time.Second, "50 entries handled", func() bool { return rec.count() == 50 })
	for _, e := range envs {
		if n := rec.times(e.ID); n != 1 {
			t.Errorf("event %s handled %d times", e.ID, n)
		}
	}
	eventually(t, 5*time.Second, "no pending entries", func() bool {
		n, err := b.Pending(ctx, stream, "analyze")
		return err == nil && n == 0
	})
}

func TestTwoConsumersSplitWithoutDuplicates(t *testing.T) {
	url := testenv.RequireRedis(t)
	b, _ := newBus(t, url, bus.Options{Block: 50 * time.Millisecond, Batch: 10})
	ctx := context.Background()
	const n = 1000
	ids := map[string]bool{}
	var envs []event.Envelope
	for i := range n {
		e := alert(i)
		envs = append(envs, e)
		ids[e.ID] = true
	}
	if err := b.PublishBatch(ctx, stream, envs); err != nil {
		t.Fatal(err)
	}
	ra, rb := newRecorder(), newRecorder()
	slow := func(bus.Message) error { time.Sleep(100 * time.Microsecond); return nil }
	ra.fail, rb.fail = slow, slow
	consume(t, b, group("a"), ra.handle)
	consume(t, b, group("b"), rb.handle)
	eventually(t, 20*time.Second, "all entries handled", func() bool { return ra.count()+rb.count() >= n })
	if ra.count() == 0 || rb.count() == 0 {
		t.Errorf("work not shared: a=%d b=%d", ra.count(), rb.count())
	}
	for id := range ids {
		if got := ra.times(id) + rb.times(id); got != 1 {
			t.Errorf("event %s handled %d times", id, got)
		}
	}
}

func TestDeadConsumerEntriesAreReclaimed(t *testing.T) {
	url := testenv.RequireRedis(t)
	b, c := newBus(t, url, bus.Options{Block: 50 * time.Millisecond, ClaimIdle: 300 * time.Millisecond})
	ctx := context.Background()
	env := alert(1)
	if _, err := b.Publish(ctx, stream, env); err != nil {
		t.Fatal(err)
	}
	// A consumer reads the entry and dies before acking.
	rdb := c.Conn.Client()
	if err := rdb.XGroupCreateMkStream(ctx, stream, "analyze", "0").Err(); err != nil {
		t.Fatal(err)
	}
	res, err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "analyze", Consumer: "dead", Streams: []string{stream, ">"}, Count: 10}).Result()
	if err != nil || len(res[0].Messages) != 1 {
		t.Fatalf("dead consumer read: %v %v", res, err)
	}
	start := time.Now()
	rec := newRecorder()
	consume(t, b, group("alive"), rec.handle)
	eventually(t, 10*time.Second, "entry reclaimed", func() bool { return rec.times(env.ID) == 1 })
	if waited := time.Since(start); waited < 250*time.Millisecond {
		t.Errorf("reclaimed after %s, before the claim-idle of 300ms", waited)
	}
	if b.Stats().Reclaimed.Load() != 1 {
		t.Errorf("reclaimed = %d, want 1", b.Stats().Reclaimed.Load())
	}
	eventually(t, 5*time.Second, "ack", func() bool { n, _ := b.Pending(ctx, stream, "analyze"); return n == 0 })
}

func TestPoisonEntryGoesToDeadLetterAfterMaxDeliveries(t *testing.T) {
	url := testenv.RequireRedis(t)
	b, _ := newBus(t, url, bus.Options{Block: 50 * time.Millisecond, RetryDelay: 10 * time.Millisecond, MaxDeliveries: 3})
	ctx := context.Background()
	poison, good := alert(1), alert(2)
	rec := newRecorder()
	rec.fail = func(m bus.Message) error {
		if m.Envelope.ID == poison.ID {
			return errors.New("cannot handle this one")
		}
		return nil
	}
	consume(t, b, group("a"), rec.handle)
	if _, err := b.Publish(ctx, stream, poison); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "dead letter", func() bool { n, _ := b.Len(ctx, event.StreamDeadLetter); return n == 1 })
	if got := rec.times(poison.ID); got != 3 {
		t.Errorf("poison handled %d times, want 3 (max deliveries)", got)
	}
	dl, err := b.DeadLetters(ctx, 10)
	if err != nil || len(dl) != 1 {
		t.Fatalf("dead letters: %v %v", dl, err)
	}
	if dl[0].Stream != stream || !strings.Contains(dl[0].Reason, "delivered 4 times") {
		t.Errorf("dead letter = %+v", dl[0])
	}
	// The consumer goes on.
	if _, err := b.Publish(ctx, stream, good); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "next entry handled", func() bool { return rec.times(good.ID) == 1 })
	eventually(t, 5*time.Second, "nothing pending", func() bool { n, _ := b.Pending(ctx, stream, "analyze"); return n == 0 })
}

func TestMalformedEntryGoesToDeadLetterAtOnce(t *testing.T) {
	url := testenv.RequireRedis(t)
	b, _ := newBus(t, url, bus.Options{Block: 50 * time.Millisecond})
	ctx := context.Background()
	rec := newRecorder()
	consume(t, b, group("a"), rec.handle)
	bad := []string{`{"id":"x", "event_type":`, `{"id":"x","event_type":"container_unhealthy","timestamp":"2026-11-28T10:30:45Z","data":{"container_id":"c","container_name":"w","class":"crashed","metrics":{"cpu_percent":"lots"}}}`}
	for _, raw := range bad {
		if _, err := b.PublishRaw(ctx, stream, []byte(raw)); err != nil {
			t.Fatal(err)
		}
	}
	good := alert(3)
	if _, err := b.Publish(ctx, stream, good); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "good entry handled", func() bool { return rec.times(good.ID) == 1 })
	eventually(t, 5*time.Second, "two dead letters", func() bool { n, _ := b.Len(ctx, event.StreamDeadLetter); return n == 2 })
	dl, _ := b.DeadLetters(ctx, 10)
	reasons := dl[0].Reason + " | " + dl[1].Reason
	if !strings.Contains(reasons, "invalid JSON") || !strings.Contains(reasons, "data.metrics.cpu_percent") {
		t.Errorf("reasons = %q", reasons)
	}
	if dl[0].Deliveries != "1" {
		t.Errorf("malformed entry dead-lettered after %s deliveries, want 1", dl[0].Deliveries)
	}
	if rec.count() != 1 {
		t.Errorf("handler saw %d entries, want only the good one", rec.count())
	}
	if got := b.Stats().Malformed.Load(); got != 2 {
		t.Errorf("malformed count = %d, want 2", got)
	}
}

func TestHandlerPanicIsRetriedNotFatal(t *testing.T) {
	url := testenv.RequireRedis(t)
	b, _ := newBus(t, url, bus.Options{Block: 50 * time.Millisecond, RetryDelay: 10 * time.Millisecond})
	ctx := context.Background()
	env := alert(1)
	rec := newRecorder()
	rec.fail = func(m bus.Message) error {
		if m.Deliveries == 1 {
			panic("boom")
		}
		return nil
	}
	consume(t, b, group("a"), rec.handle)
	if _, err := b.Publish(ctx, stream, env); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "retried after panic", func() bool { return rec.times(env.ID) == 2 })
	eventually(t, 5*time.Second, "acked", func() bool { n, _ := b.Pending(ctx, stream, "analyze"); return n == 0 })
}

func TestRedisRestartLosesNothing(t *testing.T) {
	srv := testenv.StartRedis(t)
	b, _ := newBus(t, srv.URL(), bus.Options{Block: 50 * time.Millisecond, Batch: 10, ClaimIdle: time.Second})
	ctx := context.Background()
	rec := newRecorder()
	rec.fail = func(bus.Message) error { time.Sleep(time.Millisecond); return nil }
	consume(t, b, group("a"), rec.handle)

	var all []event.Envelope
	for i := range 100 {
		all = append(all, alert(i))
	}
	if err := b.PublishBatch(ctx, stream, all); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "some handled", func() bool { return rec.count() >= 20 })
	srv.Stop()
	srv.Start()
	var more []event.Envelope
	for i := 100; i < 150; i++ {
		more = append(more, alert(i))
	}
	eventually(t, 10*time.Second, "publish after restart", func() bool { return b.PublishBatch(ctx, stream, more) == nil })
	all = append(all, more...)
	eventually(t, 20*time.Second, "every entry handled", func() bool { return rec.count() == len(all) })
	dups := 0
	for _, e := range all {
		if n := rec.times(e.ID); n > 1 {
			dups += n - 1
		}
	}
	// Only a batch in flight when Redis died may be handled again (its ack was lost); nothing acked returns.
	if dups > 10 {
		t.Errorf("%d redeliveries, more than one batch of 10", dups)
	}
	eventually(t, 10*time.Second, "nothing pending", func() bool { n, err := b.Pending(ctx, stream, "analyze"); return err == nil && n == 0 })
}

func TestGracefulStopFinishesInFlightHandler(t *testing.T) {
	url := testenv.RequireRedis(t)
	b, _ := newBus(t, url, bus.Options{Block: 50 * time.Millisecond})
	ctx := context.Background()
	started := make(chan struct{})
	release := make(chan struct{})
	var finished sync.WaitGroup
	finished.Add(1)
	h := func(ctx context.Context, m bus.Message) error {
		close(started)
		<-release
		finished.Done()
		return ctx.Err() // the handler context is still live during the grace period
	}
	stop := consume(t, b, group("a"), h)
	if _, err := b.Publish(ctx, stream, alert(1)); err != nil {
		t.Fatal(err)
	}
	<-started
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("consumer stopped before its in-flight handler finished")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-stopped
	finished.Wait()
	if n, _ := b.Pending(ctx, stream, "analyze"); n != 0 {
		t.Errorf("in-flight entry not acked at stop: %d pending", n)
	}
}

func TestSkipAckWaitsWithoutCountingDeliveries(t *testing.T) {
	url := testenv.RequireRedis(t)
	b, _ := newBus(t, url, bus.Options{Block: 20 * time.Millisecond, RetryDelay: time.Millisecond, MaxDeliveries: 3})
	ctx := context.Background()
	env := alert(1)
	rec := newRecorder()
	rec.fail = func(m bus.Message) error {
		if rec.times(m.Envelope.ID) <= 6 {
			return fmt.Errorf("the dependency is away: %w", bus.ErrSkipAck)
		}
		return nil
	}
	consume(t, b, group("a"), rec.handle)
	if _, err := b.Publish(ctx, stream, env); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "handled after waiting", func() bool { return rec.times(env.ID) == 7 })
	eventually(t, 5*time.Second, "acked", func() bool { n, _ := b.Pending(ctx, stream, "analyze"); return n == 0 })
	if n, _ := b.Len(ctx, event.StreamDeadLetter); n != 0 {
		t.Errorf("a waiting entry was dead-lettered (%d)", n)
	}
	if got := b.Stats().Failed.Load(); got != 0 {
		t.Errorf("waits counted as %d failures", got)
	}
}

// TestSkipAckOutlastsTheClaimIdle: an entry that waits (ErrSkipAck) for longer than many claim-idle
// periods stays with its consumer: the waiting consumer refreshes its idle time before the group's other
// consumers would take it over, whose claims would count deliveries and dead-letter it.
func TestSkipAckOutlastsTheClaimIdle(t *testing.T) {
	url := testenv.RequireRedis(t)
	b, _ := newBus(t, url, bus.Options{Block: 20 * time.Millisecond, RetryDelay: 50 * time.Millisecond,
		ClaimIdle: 300 * time.Millisecond, MaxDeliveries: 2})
	ctx := context.Background()
	env := alert(1)
	rec := newRecorder()
	var mu sync.Mutex
	var first time.Time
	rec.fail = func(bus.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if first.IsZero() {
			first = time.Now()
		}
		if time.Since(first) < 3*time.Second { // ten claim-idle periods
			return fmt.Errorf("another responder holds the lease: %w", bus.ErrSkipAck)
		}
		return nil
	}
	consume(t, b, group("a"), rec.handle)
	consume(t, b, group("b"), rec.handle)
	if _, err := b.Publish(ctx, stream, env); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "acked", func() bool {
		n, _ := b.Pending(ctx, stream, "analyze")
		dl, _ := b.Len(ctx, event.StreamDeadLetter)
		return rec.times(env.ID) > 0 && (n == 0 || dl > 0)
	})
	if n, _ := b.Len(ctx, event.StreamDeadLetter); n != 0 {
		t.Errorf("a waiting entry was taken over and dead-lettered after %d handler calls", rec.times(env.ID))
	}
}

// TestSlowHandlerKeepsItsEntry: while a handler runs for many claim-idle periods, the group's other
// consumers do not take its entry over (which would run it twice and count deliveries up to the dead letter).
func TestSlowHandlerKeepsItsEntry(t *testing.T) {
	url := testenv.RequireRedis(t)
	b, _ := newBus(t, url, bus.Options{Block: 20 * time.Millisecond, ClaimIdle: 300 * time.Millisecond, MaxDeliveries: 2})
	ctx := context.Background()
	env := alert(1)
	rec := newRecorder()
	rec.fail = func(bus.Message) error {
		time.Sleep(2 * time.Second) // the slow work itself: ten claim-idle periods
		return nil
	}
	consume(t, b, group("a"), rec.handle)
	consume(t, b, group("b"), rec.handle)
	if _, err := b.Publish(ctx, stream, env); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "handled and acked", func() bool {
		n, _ := b.Pending(ctx, stream, "analyze")
		return rec.times(env.ID) > 0 && n == 0
	})
	if n := rec.times(env.ID); n != 1 {
		t.Errorf("the entry was handled %d times, want once", n)
	}
	if n, _ := b.Len(ctx, event.StreamDeadLetter); n != 0 {
		t.Errorf("the entry was dead-lettered while its handler ran")
	}
}

// TestConsumeBatchGivesWholeReadsAndPerEntryOutcomes: a batch handler gets the entries of a read together;
// its per-entry answers ack, retry (error) or wait (ErrSkipAck) each entry on its own, and a panic fails the
// batch without stopping the consumer.
func TestConsumeBatchGivesWholeReadsAndPerEntryOutcomes(t *testing.T) {
	url := testenv.RequireRedis(t)
	b, _ := newBus(t, url, bus.Options{Block: 20 * time.Millisecond, Batch: 10, RetryDelay: time.Millisecond})
	ctx := context.Background()
	envs := make([]event.Envelope, 30)
	index := map[string]int{}
	for i := range envs {
		envs[i] = alert(i)
		index[envs[i].ID] = i
	}
	if err := b.PublishBatch(ctx, stream, envs); err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		seen     = map[string]int{}
		largest  int
		panicked bool
	)
	h := func(_ context.Context, ms []bus.Message) []error {
		mu.Lock()
		defer mu.Unlock()
		if !panicked {
			panicked = true
			panic("bad batch")
		}
		largest = max(largest, len(ms))
		errs := make([]error, len(ms))
		for k, m := range ms {
			seen[m.Envelope.ID]++
			if seen[m.Envelope.ID] > 1 {
				continue
			}
			switch index[m.Envelope.ID] % 3 {
			case 0:
				errs[k] = errors.New("transient")
			case 1:
				errs[k] = fmt.Errorf("wait: %w", bus.ErrSkipAck)
			}
		}
		return errs
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- b.ConsumeBatch(cctx, group("a"), h) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("consume returned %v", err)
		}
	}()
	eventually(t, 20*time.Second, "every entry handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for i, e := range envs {
			if seen[e.ID] < 1 || (i%3 != 2 && seen[e.ID] < 2) {
				return false
			}
		}
		return true
	})
	eventually(t, 20*time.Second, "every entry acked", func() bool { n, err := b.Pending(ctx, stream, "analyze"); return err == nil && n == 0 })
	mu.Lock()
	defer mu.Unlock()
	for i, e := range envs {
		want := 1
		if i%3 != 2 {
			want = 2
		}
		if seen[e.ID] != want {
			t.Errorf("entry %d handled %d times, want %d", i, seen[e.ID], want)
		}
	}
	if largest < 2 {
		t.Errorf("largest batch %d: entries of one read were not handed over together", largest)
	}
	if got := b.Stats().Failed.Load(); got < 10 {
		t.Errorf("failures counted %d, want at least the 10 transient errors", got)
	}
}

// TestFollowReadsNewEntriesOfSeveralStreams: nothing new within the block is no entries and no error;
// entries appended to either stream after the given ids come back with their stream.
func TestFollowReadsNewEntriesOfSeveralStreams(t *testing.T) {
	url := testenv.RequireRedis(t)
	b, _ := newBus(t, url, bus.Options{})
	ctx := context.Background()
	after := map[string]string{event.StreamHealthAlert: "0-0", event.StreamFalseAlarm: "0-0"}
	got, err := b.Follow(ctx, after, 20*time.Millisecond)
	if err != nil || got != nil {
		t.Fatalf("empty streams: %v, %v; want nothing and no error", got, err)
	}
	first, err := b.Publish(ctx, event.StreamHealthAlert, alert(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(ctx, event.StreamFalseAlarm, alert(2)); err != nil {
		t.Fatal(err)
	}
	got, err = b.Follow(ctx, after, time.Second)
	if err != nil || len(got) != 2 {
		t.Fatalf("got %d entries (%v), want 2", len(got), err)
	}
	streams := map[string]bool{got[0].Stream: true, got[1].Stream: true}
	if !streams[event.StreamHealthAlert] || !streams[event.StreamFalseAlarm] {
		t.Errorf("entries of %v, want one of each stream", streams)
	}
	got, err = b.Follow(ctx, map[string]string{event.StreamHealthAlert: first}, 20*time.Millisecond)
	if err != nil || got != nil {
		t.Errorf("after the last entry: %v, %v; want nothing", got, err)
	}
}
