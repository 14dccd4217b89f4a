package embedded_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/embedded"
	"github.com/hemostat/hemostat/pkg/store/storetest"
	"github.com/hemostat/hemostat/pkg/testenv"
)

// state reads every key of database 0 into comparable text (storetest.State, keeping every key).
func state(t *testing.T, c *redis.Client) map[string]string {
	t.Helper()
	st, err := storetest.State(context.Background(), c, 0)
	must(t, err)
	return st
}

// TestJournalFollowsWritesThroughRewrites runs a workload across many flushes and journal rewrites
// (the rewrite threshold set tiny), then checks a restart restores exactly the state it left.
func TestJournalFollowsWritesThroughRewrites(t *testing.T) {
	defer embedded.SetRewriteMin(2000)()
	dir := t.TempDir()
	var log testenv.SyncBuffer
	o := opts(embedded.InProcess, dir, &log)
	o.FlushEvery = 10 * time.Millisecond
	s, err := embedded.Start(o)
	must(t, err)
	c := client(t, s)
	ctx := context.Background()
	must(t, c.XGroupCreateMkStream(ctx, "s", "g", "$").Err())
	must(t, c.XGroupCreateMkStream(ctx, "s", "gone", "$").Err())
	for i := range 300 {
		must(t, c.XAdd(ctx, &redis.XAddArgs{Stream: "s", MaxLen: 50, Values: []any{"i", i, "z", "last"}}).Err())
		if i%7 == 0 {
			r, err := c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: fmt.Sprint("c", i%3), Streams: []string{"s", ">"}, Count: 5}).Result()
			must(t, err)
			if i%2 == 0 {
				must(t, c.XAck(ctx, "s", "g", r[0].Messages[0].ID).Err())
			}
		}
		if i == 150 {
			must(t, c.XGroupDestroy(ctx, "s", "gone").Err())
		}
		must(t, c.HSet(ctx, fmt.Sprint("h", i%10), "n", i).Err())
		must(t, c.Set(ctx, fmt.Sprint("ttl", i%5), i, time.Hour).Err())
		if i%11 == 0 {
			must(t, c.Del(ctx, fmt.Sprint("h", (i+3)%10)).Err())
		}
		must(t, c.ZAdd(ctx, "z", redis.Z{Score: float64(i), Member: fmt.Sprint(i % 13)}).Err())
		if i%50 == 0 {
			time.Sleep(15 * time.Millisecond) // let flushes and rewrites interleave with the writes (not a synchronisation)
		}
	}
	want := state(t, c)
	must(t, embedded.Flush(s))
	if diff := cmp.Diff(want, state(t, crashCopy(t, dir))); diff != "" {
		t.Errorf("state after a crash (-want +got):\n%s", diff)
	}
	must(t, s.Close())
	if !strings.Contains(log.String(), "journal rewritten") {
		t.Errorf("no rewrite happened:\n%s", log.String())
	}
	s = start(t, embedded.InProcess, dir, nil)
	defer s.Close()
	if diff := cmp.Diff(want, state(t, client(t, s))); diff != "" {
		t.Errorf("state after restart (-want +got):\n%s", diff)
	}
}

// TestTTLsExpire: keys expire on the ticker, and a key that expired while the store was down does not
// come back.
func TestTTLsExpire(t *testing.T) {
	dir := t.TempDir()
	o := opts(embedded.InProcess, dir, nil)
	o.TTLTick = 10 * time.Millisecond
	s, err := embedded.Start(o)
	must(t, err)
	c := client(t, s)
	ctx := context.Background()
	must(t, c.Set(ctx, "short", "1", 50*time.Millisecond).Err())
	must(t, c.Set(ctx, "down", "1", 300*time.Millisecond).Err())
	must(t, c.Set(ctx, "long", "1", time.Hour).Err())
	testenv.Eventually(t, 5*time.Second, "short to expire", func() bool { return c.Exists(ctx, "short").Val() == 0 })
	must(t, s.Close())
	testenv.Eventually(t, 5*time.Second, "down's expiry to pass", func() bool {
		fi, err := os.Stat(filepath.Join(dir, embedded.JournalFile))
		return err == nil && time.Since(fi.ModTime()) > 400*time.Millisecond
	})
	s = start(t, embedded.InProcess, dir, nil)
	defer s.Close()
	c = client(t, s)
	if n := c.Exists(ctx, "short", "down").Val(); n != 0 {
		t.Errorf("%d expired keys came back", n)
	}
	if c.Exists(ctx, "long").Val() != 1 {
		t.Error("long is gone")
	}
}

// TestReadyMeansRestored: the address answers nothing until the journal is replayed, and then the whole
// state at once.
func TestReadyMeansRestored(t *testing.T) {
	dir := t.TempDir()
	s := start(t, embedded.InProcess, dir, nil)
	c := client(t, s)
	ctx := context.Background()
	for range 20 { // pipelines of 1,000: miniredis does not read while its replies wait to be read
		pipe := c.Pipeline()
		for i := range 1000 {
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: "hemostat:audit", Values: []any{"entry", i}})
		}
		_, err := pipe.Exec(ctx)
		must(t, err)
	}
	addr := s.Addr()
	must(t, s.Close())
	o := opts(embedded.InProcess, dir, nil)
	o.Addr = addr
	done := make(chan embedded.Server)
	go func() {
		s, err := embedded.Start(o)
		if err != nil {
			t.Error(err)
		}
		done <- s
	}()
	probe := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	defer probe.Close()
	for {
		if nc, err := net.Dial("tcp", addr); err != nil {
			continue // not listening yet (go-redis would log each attempt)
		} else {
			nc.Close()
		}
		select {
		case s := <-done:
			if s != nil {
				s.Close()
			}
			return
		default:
		}
		if n, err := probe.XLen(ctx, "hemostat:audit").Result(); err == nil && n != 20000 {
			t.Fatalf("served %d of 20000 entries while restoring", n)
		}
	}
}

// TestJournalCopiedMidRewriteHoldsFlushedWrites is a kill -9 without the kill: writers add stream entries
// while flushes run every millisecond and the journal is rewritten over and over (the threshold set
// tiny); each round, after a flush, it restores a copy of the journal as a crash would leave it (no clean
// stop, maybe in the middle of a rewrite): every entry acknowledged before that flush must be there.
func TestJournalCopiedMidRewriteHoldsFlushedWrites(t *testing.T) {
	defer embedded.SetRewriteMin(4096)()
	dir := t.TempDir()
	var log testenv.SyncBuffer
	o := opts(embedded.InProcess, dir, &log)
	o.FlushEvery = time.Millisecond
	s, err := embedded.Start(o)
	must(t, err)
	defer s.Close()
	ctx := context.Background()
	const writers = 4
	var acked [writers]atomic.Int64 // entries acknowledged, per writer's stream
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		c := client(t, s)
		if w%2 == 0 { // created empty, as the consumers create theirs
			must(t, c.XGroupCreateMkStream(ctx, fmt.Sprint("s", w), "g", "$").Err())
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int64(1); ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := c.XAdd(ctx, &redis.XAddArgs{Stream: fmt.Sprint("s", w), ID: fmt.Sprintf("%d-0", i), Values: []any{"pad", strings.Repeat("x", 64)}}).Err(); err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				acked[w].Store(i)
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	rewrites := func() int { return strings.Count(log.String(), "journal rewritten") }
	deadline := time.Now().Add(time.Minute)
	for round := 0; (round < 6 || rewrites() < 3) && time.Now().Before(deadline) && !t.Failed(); round++ {
		var want [writers]int64
		for w := range writers {
			want[w] = acked[w].Load()
		}
		must(t, embedded.Flush(s))
		rc := crashCopy(t, dir)
		for w := range writers {
			got, err := rc.XRevRangeN(ctx, fmt.Sprint("s", w), "+", "-", 1).Result()
			must(t, err)
			var last int64
			if len(got) == 1 {
				last, _ = strconv.ParseInt(strings.TrimSuffix(got[0].ID, "-0"), 10, 64)
			}
			n, err := rc.XLen(ctx, fmt.Sprint("s", w)).Result()
			must(t, err)
			if last < want[w] || n != last {
				t.Errorf("round %d: stream s%d restored with %d entries up to %d; %d were acknowledged before the flush", round, w, n, last, want[w])
			}
		}
	}
	if n := rewrites(); n < 3 {
		t.Errorf("%d rewrites happened, want at least 3:\n%s", n, log.String())
	}
}

// crashCopy starts a store on a copy of the journal in dir as it is on disk now: what a kill -9 now would
// leave (the writes the process made are in the page cache; a record cut short is a torn tail).
func crashCopy(t *testing.T, dir string) *redis.Client {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, embedded.JournalFile))
	must(t, err)
	copyDir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(copyDir, embedded.JournalFile), b, 0o600))
	r, err := embedded.Start(opts(embedded.InProcess, copyDir, nil))
	if err != nil {
		t.Fatalf("restore a copy of the journal: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return client(t, r)
}

// startFlushed starts the in-process store with its periodic flush an hour away: only embedded.Flush
// writes the journal.
func startFlushed(t *testing.T, dir string) (embedded.Server, *redis.Client) {
	t.Helper()
	o := opts(embedded.InProcess, dir, nil)
	o.FlushEvery = time.Hour
	s, err := embedded.Start(o)
	must(t, err)
	t.Cleanup(func() { s.Close() })
	return s, client(t, s)
}

// TestStreamJournaledEmptyKeepsLaterEntries: a stream first journaled while it had no entries (created by
// XGROUP CREATE ... MKSTREAM, as the agents' consumer groups do) gets its later entries journaled.
func TestStreamJournaledEmptyKeepsLaterEntries(t *testing.T) {
	dir := t.TempDir()
	s, c := startFlushed(t, dir)
	ctx := context.Background()
	must(t, c.XGroupCreateMkStream(ctx, "s", "g", "$").Err())
	must(t, embedded.Flush(s))
	for i := range 3 {
		must(t, c.XAdd(ctx, &redis.XAddArgs{Stream: "s", ID: fmt.Sprintf("%d-0", i+1), Values: []any{"i", i}}).Err())
	}
	must(t, embedded.Flush(s))
	got, err := crashCopy(t, dir).XRange(ctx, "s", "-", "+").Result()
	if err != nil || len(got) != 3 || got[2].ID != "3-0" {
		t.Errorf("after a crash s = %v, %v; want its 3 entries", got, err)
	}
}

// TestWriteLandingAfterTwoFlushesIsJournaled: a write that waits between the hook and its run while two
// flushes go by (a loaded machine) is still journaled by the next flush.
func TestWriteLandingAfterTwoFlushesIsJournaled(t *testing.T) {
	dir := t.TempDir()
	s, c := startFlushed(t, dir)
	ctx := context.Background()
	defer embedded.SetBeforeRun(func(cmd string, args []string) {
		if cmd == "XADD" && args[0] == "late" {
			for range 2 {
				if err := embedded.Flush(s); err != nil {
					t.Error(err)
				}
			}
		}
	})()
	must(t, c.XAdd(ctx, &redis.XAddArgs{Stream: "late", ID: "1-0", Values: []any{"i", 1}}).Err())
	must(t, embedded.Flush(s))
	if n, err := crashCopy(t, dir).XLen(ctx, "late").Result(); err != nil || n != 1 {
		t.Errorf("after a crash late has %d entries (%v); want 1", n, err)
	}
}
