package store_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/store"
	"github.com/hemostat/hemostat/pkg/testenv"
)

func TestEmbeddedStoreSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	addr := "127.0.0.1:" + itoa(testenv.FreePort(t))
	e, err := store.StartEmbedded(store.EmbeddedOptions{Addr: addr, DataDir: dir, SnapshotEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: e.Addr()})
	ids := []string{}
	for i := range 3 {
		id, err := c.XAdd(ctx, &redis.XAddArgs{Stream: "hemostat:audit", Values: []any{"entry", itoa(i)}}).Result()
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	// A group that has read all three but acked only the first: the other two must come back.
	if err := c.XGroupCreate(ctx, "hemostat:audit", "g", "0").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "x", Streams: []string{"hemostat:audit", ">"}}).Result(); err != nil {
		t.Fatal(err)
	}
	c.XAck(ctx, "hemostat:audit", "g", ids[0])
	c.HSet(ctx, "hemostat:ledger:{h/web}", "backoff_step", "2", "breaker", "open")
	c.Set(ctx, "hemostat:done:x", "1", time.Hour)
	c.ZAdd(ctx, "hemostat:incidents:open", redis.Z{Score: 1, Member: "h/web/crashed"})
	c.Close()
	if err := e.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	e2, err := store.StartEmbedded(store.EmbeddedOptions{Addr: addr, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	c = redis.NewClient(&redis.Options{Addr: e2.Addr()})
	defer c.Close()
	msgs, err := c.XRange(ctx, "hemostat:audit", "-", "+").Result()
	if err != nil || len(msgs) != 3 || msgs[2].ID != ids[2] {
		t.Fatalf("audit after restart = %v, %v; want the 3 entries with their ids", msgs, err)
	}
	if v := c.HGet(ctx, "hemostat:ledger:{h/web}", "breaker").Val(); v != "open" {
		t.Errorf("ledger breaker = %q", v)
	}
	if ttl := c.PTTL(ctx, "hemostat:done:x").Val(); ttl <= 0 || ttl > time.Hour {
		t.Errorf("done key ttl = %s", ttl)
	}
	if n := c.ZCard(ctx, "hemostat:incidents:open").Val(); n != 1 {
		t.Errorf("open incidents = %d", n)
	}
	res, err := c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "y", Streams: []string{"hemostat:audit", ">"}}).Result()
	if err != nil || len(res[0].Messages) != 2 || res[0].Messages[0].ID != ids[1] {
		t.Fatalf("unacked entries after restart = %v, %v; want the 2 unacked", res, err)
	}
}

func TestEmbeddedTTLsFollowTheClock(t *testing.T) {
	e, err := store.StartEmbedded(store.EmbeddedOptions{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	c := redis.NewClient(&redis.Options{Addr: e.Addr()})
	defer c.Close()
	ctx := context.Background()
	if ok := c.SetNX(ctx, "hemostat:lease:{h/web}", "me", 50*time.Millisecond).Val(); !ok {
		t.Fatal("lease not taken")
	}
	deadline := time.Now().Add(5 * time.Second)
	for c.Exists(ctx, "hemostat:lease:{h/web}").Val() == 1 {
		if time.Now().After(deadline) {
			t.Fatal("lease never expired")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
