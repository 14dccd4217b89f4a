package embedded_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
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
