package store_test

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/store"
	"github.com/hemostat/hemostat/pkg/testenv"
)

func dashClients(t *testing.T) (*store.Client, *redis.Client) {
	t.Helper()
	url := testenv.RequireRedis(t)
	c, err := store.Open(store.Options{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	opt, _ := redis.ParseURL(url)
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	return c, rdb
}

func TestDashState(t *testing.T) {
	c, rdb := dashClients(t)
	ctx := context.Background()

	empty, err := c.DashState(ctx)
	if err != nil {
		t.Fatalf("DashState on an empty database: %v", err)
	}
	if len(empty.Containers)+len(empty.Incidents)+len(empty.Agents) != 0 {
		t.Fatalf("empty database: got %+v", empty)
	}

	rdb.HSet(ctx, event.KeyContainers, "a/web", `{"name":"web"}`, "a/db", `{"name":"db"}`)
	rdb.HSet(ctx, event.StatsKey("a", "web"), "sample", `{"x":1}`, "history", `{"cpu":[1]}`)
	rdb.HSet(ctx, event.LedgerKey("a", "web"), "breaker", "open")
	rdb.HSet(ctx, "hemostat:shadow:{a/db}", "breaker", "closed")
	rdb.HSet(ctx, event.IncidentHashKey("a/web/crashed"), "state", "open", "class", "crashed")
	rdb.HSet(ctx, event.IncidentHashKey("a/db/unhealthy"), "state", "open")
	// Both spellings of the open set's member: the incident id and the hash key.
	rdb.ZAdd(ctx, "hemostat:incidents:open", redis.Z{Score: 200, Member: "a/web/crashed"},
		redis.Z{Score: 100, Member: event.IncidentHashKey("a/db/unhealthy")})
	if err := c.Heartbeat(ctx, "monitor", "a-1", map[string]string{"kind": "monitor"}, time.Minute); err != nil {
		t.Fatal(err)
	}

	got, err := c.DashState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := store.DashState{
		Containers: map[string]string{"a/web": `{"name":"web"}`, "a/db": `{"name":"db"}`},
		Stats:      map[string]map[string]string{"a/web": {"sample": `{"x":1}`, "history": `{"cpu":[1]}`}},
		Ledgers:    map[string]map[string]string{"a/web": {"breaker": "open"}},
		Shadows:    map[string]map[string]string{"a/db": {"breaker": "closed"}},
		Incidents: []store.DashIncident{
			{ID: "a/db/unhealthy", OpenedMS: 100, Fields: map[string]string{"state": "open"}},
			{ID: "a/web/crashed", OpenedMS: 200, Fields: map[string]string{"state": "open", "class": "crashed"}},
		},
	}
	if len(got.Agents) != 1 || got.Agents[0].Kind != "monitor" {
		t.Errorf("agents: got %+v, want one monitor", got.Agents)
	}
	got.Agents = nil
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("DashState (-want +got):\n%s", diff)
	}
}

func TestDashStreams(t *testing.T) {
	c, rdb := dashClients(t)
	ctx := context.Background()
	const stream = "hemostat:test_stream"
	base := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	var ids []string
	for i := range 5 {
		id := rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, ID: "*", Values: []any{"entry", string(rune('a' + i))}}).Val()
		ids = append(ids, id)
	}
	// entries with explicit old times for the since filter
	rdb.XAdd(ctx, &redis.XAddArgs{Stream: "hemostat:old", ID: "1000-0", Values: []any{"event", "old"}})
	rdb.XAdd(ctx, &redis.XAddArgs{Stream: "hemostat:old", ID: strconv.FormatInt(base.UnixMilli(), 10) + "-0", Values: []any{"event", "new"}})

	values := func(es []store.DashEntry) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.Value)
		}
		return out
	}
	tests := []struct {
		name string
		read func() ([]store.DashEntry, error)
		want []string
	}{
		{"after start", func() ([]store.DashEntry, error) { return c.DashStreamAfter(ctx, stream, "entry", "", 10) }, []string{"a", "b", "c", "d", "e"}},
		{"after id", func() ([]store.DashEntry, error) { return c.DashStreamAfter(ctx, stream, "entry", ids[2], 10) }, []string{"d", "e"}},
		{"after count", func() ([]store.DashEntry, error) { return c.DashStreamAfter(ctx, stream, "entry", ids[0], 2) }, []string{"b", "c"}},
		{"tail oldest first", func() ([]store.DashEntry, error) {
			return c.DashStreamTail(ctx, stream, "entry", time.Time{}, 3)
		}, []string{"c", "d", "e"}},
		{"tail since", func() ([]store.DashEntry, error) {
			return c.DashStreamTail(ctx, "hemostat:old", "event", base.Add(-time.Hour), 10)
		}, []string{"new"}},
		{"missing stream", func() ([]store.DashEntry, error) {
			return c.DashStreamTail(ctx, "hemostat:none", "event", time.Time{}, 10)
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es, err := tt.read()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, values(es)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	old, _ := c.DashStreamTail(ctx, "hemostat:old", "event", time.Time{}, 10)
	if got := old[1].Time(); !got.Equal(base) {
		t.Errorf("entry time: got %v, want %v", got, base)
	}
}

func TestDashFollowAndList(t *testing.T) {
	c, rdb := dashClients(t)
	ctx := context.Background()
	got, err := c.DashFollow(ctx, map[string]string{"hemostat:a": "0-0", "hemostat:b": "0-0"}, "event", 50*time.Millisecond)
	if err != nil || len(got) != 0 {
		t.Fatalf("follow with nothing appended: got %v, %v; want nothing, nil", got, err)
	}
	rdb.XAdd(ctx, &redis.XAddArgs{Stream: "hemostat:a", Values: []any{"event", "x"}})
	rdb.XAdd(ctx, &redis.XAddArgs{Stream: "hemostat:b", Values: []any{"event", "y"}})
	got, err = c.DashFollow(ctx, map[string]string{"hemostat:a": "0-0", "hemostat:b": "0-0"}, "event", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var vals []string
	for _, e := range got {
		vals = append(vals, e.Stream+"="+e.Value)
	}
	slices.Sort(vals)
	if diff := cmp.Diff([]string{"hemostat:a=x", "hemostat:b=y"}, vals); diff != "" {
		t.Errorf("follow (-want +got):\n%s", diff)
	}

	for _, v := range []string{"1", "2", "3"} {
		rdb.LPush(ctx, event.KeyEventsAll, v)
	}
	list, err := c.DashEventList(ctx, event.KeyEventsAll, 2)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"3", "2"}, list); diff != "" {
		t.Errorf("event list newest first (-want +got):\n%s", diff)
	}
}

func TestDashUnavailable(t *testing.T) {
	c, err := store.Open(store.Options{URL: "redis://127.0.0.1:" + strconv.Itoa(testenv.FreePort(t)) + "/0"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := c.DashState(ctx); !store.IsUnavailable(err) {
		t.Errorf("DashState without a server: got %v, want an unavailable error", err)
	}
}

func TestDashAuditOf(t *testing.T) {
	c, rdb := dashClients(t)
	ctx := context.Background()
	var ids []string
	for _, v := range []string{"a1", "b1", "a2", "a3"} {
		id := rdb.XAdd(ctx, &redis.XAddArgs{Stream: event.StreamAudit, Values: []any{"entry", v}}).Val()
		ids = append(ids, id)
		target := "h/" + v[:1]
		rdb.XAdd(ctx, &redis.XAddArgs{Stream: store.AuditIndexKey(target), Values: []any{"id", id}})
	}
	// An index pointing at a trimmed entry, and an index kept as a sorted set.
	rdb.XAdd(ctx, &redis.XAddArgs{Stream: store.AuditIndexKey("h/b"), Values: []any{"id", "1-0"}})
	rdb.ZAdd(ctx, store.AuditIndexKey("h/z"), redis.Z{Score: 1, Member: ids[0]}, redis.Z{Score: 2, Member: ids[1]})

	tests := []struct {
		target string
		n      int64
		want   []string
	}{
		{"h/a", 10, []string{"a3", "a2", "a1"}},
		{"h/a", 2, []string{"a3", "a2"}},
		{"h/b", 10, []string{"b1"}},
		{"h/z", 10, []string{"b1", "a1"}},
		{"h/none", 10, nil},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			es, err := c.DashAuditOf(ctx, tt.target, tt.n)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range es {
				got = append(got, e.Value)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
