package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/store"
	"github.com/hemostat/hemostat/pkg/testenv"
)

func containersStore(t *testing.T) (*store.Client, *redis.Client) {
	t.Helper()
	c, err := store.Open(store.Options{URL: testenv.RequireRedis(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, c.Redis()
}

func TestIncidentLifecycle(t *testing.T) {
	c, rdb := containersStore(t)
	ctx := context.Background()
	opened := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	in := store.Incident{Key: "h1/web/crashed", Class: "crashed", Host: "h1", Container: "web", ContainerID: "abc",
		Severity: "critical", AlertID: "a1", OpenedAt: opened, LastAlertAt: opened}
	other := in
	other.Key, other.Host = "h2/web/crashed", "h2"
	for _, x := range []store.Incident{in, other} {
		if err := c.OpenIncident(ctx, x); err != nil {
			t.Fatalf("open: %v", err)
		}
	}
	if err := c.RealertIncident(ctx, in.Key, "a2", opened.Add(time.Hour)); err != nil {
		t.Fatalf("realert: %v", err)
	}
	got, err := c.OpenIncidents(ctx, "h1")
	if err != nil {
		t.Fatalf("open incidents: %v", err)
	}
	want := in
	want.State, want.AlertID, want.LastAlertAt = "open", "a2", opened.Add(time.Hour)
	if diff := cmp.Diff([]store.Incident{want}, got); diff != "" {
		t.Errorf("open incidents of h1 (-want +got):\n%s", diff)
	}
	if score := rdb.ZScore(ctx, store.KeyIncidentsOpen, in.Key).Val(); score != float64(opened.UnixMilli()) {
		t.Errorf("score: got %v, want opened ms", score)
	}
	if err := c.CloseIncident(ctx, in.Key, opened.Add(2*time.Hour), "recovered"); err != nil {
		t.Fatalf("close: %v", err)
	}
	h := rdb.HGetAll(ctx, event.IncidentHashKey(in.Key)).Val()
	if h["state"] != "closed" || h["closed_at"] != "2026-11-28T14:00:00Z" || h["close_reason"] != "recovered" {
		t.Errorf("closed hash: %v", h)
	}
	if ttl := rdb.TTL(ctx, event.IncidentHashKey(in.Key)).Val(); ttl < 6*24*time.Hour {
		t.Errorf("closed ttl: %v", ttl)
	}
	if got, _ := c.OpenIncidents(ctx, "h1"); len(got) != 0 {
		t.Errorf("closed incident still open: %+v", got)
	}
	// Reopening starts afresh: no expiry, no fields of the previous opening.
	rdb.HSet(ctx, event.IncidentHashKey(in.Key), "action", "restart")
	if err := c.OpenIncident(ctx, in); err != nil {
		t.Fatalf("reopen: %v", err)
	}
	if ttl := rdb.TTL(ctx, event.IncidentHashKey(in.Key)).Val(); ttl != -1 {
		t.Errorf("reopened ttl: got %v, want none", ttl)
	}
	if h := rdb.HGetAll(ctx, event.IncidentHashKey(in.Key)).Val(); h["action"] != "" || h["close_reason"] != "" || h["state"] != "open" {
		t.Errorf("reopened hash keeps the previous opening: %v", h)
	}
	if all, _ := c.OpenIncidents(ctx, ""); len(all) != 2 {
		t.Errorf("all hosts: got %d incidents, want 2", len(all))
	}
}

func TestWriteContainersAndStats(t *testing.T) {
	c, rdb := containersStore(t)
	ctx := context.Background()
	rdb.HSet(ctx, event.KeyContainers, "h2/db", "{}")
	if err := c.WriteContainers(ctx, "h1", map[string][]byte{"h1/a": []byte(`{"name":"a"}`), "h1/b": []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteContainers(ctx, "h1", map[string][]byte{"h1/a": []byte(`{"name":"a2"}`)}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"h1/a": `{"name":"a2"}`, "h2/db": "{}"}
	if diff := cmp.Diff(want, rdb.HGetAll(ctx, event.KeyContainers).Val()); diff != "" {
		t.Errorf("containers (-want +got):\n%s", diff)
	}
	err := c.WriteStats(ctx, []store.StatsEntry{{Host: "h1", Name: "a", Sample: []byte(`{"s":1}`), History: []byte(`{"cpu":[1]}`)}}, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	key := event.StatsKey("h1", "a")
	if diff := cmp.Diff(map[string]string{"sample": `{"s":1}`, "history": `{"cpu":[1]}`}, rdb.HGetAll(ctx, key).Val()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
	if ttl := rdb.PTTL(ctx, key).Val(); ttl <= 0 || ttl > 3*time.Second {
		t.Errorf("stats ttl: %v", ttl)
	}
	if err := c.WriteMonitorMetrics(ctx, map[string]string{"rounds_total": "3", "sampler": "api"}); err != nil {
		t.Fatal(err)
	}
	if got := rdb.HGet(ctx, store.KeyMonitorMetrics, "sampler").Val(); got != "api" {
		t.Errorf("sampler: got %q", got)
	}
}
