package incidents_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/conn"
	"github.com/hemostat/hemostat/pkg/store"
	"github.com/hemostat/hemostat/pkg/store/incidents"
	"github.com/hemostat/hemostat/pkg/store/schema"
	"github.com/hemostat/hemostat/pkg/store/storetest"
	"github.com/hemostat/hemostat/pkg/testenv"
)

var t0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// get reads an incident that must exist and decode.
func get(t *testing.T, st *store.Store, key string) schema.Incident {
	t.Helper()
	in, found, err := st.Incidents.Get(context.Background(), key)
	if err != nil || !found {
		t.Fatalf("get %s: found %v, %v", key, found, err)
	}
	return in
}

// open opens an incident of host/name/class at t0, failing since then.
func open(t *testing.T, st *store.Store, key string) schema.Detection {
	t.Helper()
	parts := strings.Split(key, "/")
	d := schema.Detection{Class: parts[2], Host: parts[0], Container: parts[1], ContainerID: "id-" + parts[1],
		Severity: "critical", AlertID: "a1", OpenedAt: t0, LastAlertAt: t0}
	if err := st.Incidents.Open(context.Background(), key, d); err != nil {
		t.Fatalf("open %s: %v", key, err)
	}
	return d
}

// score returns the member's score in a sorted set, and whether it is there.
func score(t *testing.T, rdb *redis.Client, key, member string) (int64, bool) {
	t.Helper()
	s, err := rdb.ZScore(context.Background(), key, member).Result()
	if err == redis.Nil {
		return 0, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return int64(s), true
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		const key, other = "h1/web/crashed", "h2/web/crashed"
		d := open(t, st, key)
		open(t, st, other)
		if err := st.Incidents.Realert(ctx, key, "a2", t0.Add(time.Hour)); err != nil {
			t.Fatalf("realert: %v", err)
		}
		got, err := st.Incidents.OpenIncidents(ctx, "h1")
		if err != nil {
			t.Fatal(err)
		}
		want := schema.Incident{Key: key, Detection: d}
		want.State, want.AlertID, want.LastAlertAt = schema.StateOpen, "a2", t0.Add(time.Hour)
		want.Condition, want.ConditionSince = schema.ConditionFailing, t0
		if diff := cmp.Diff([]schema.Incident{want}, got); diff != "" {
			t.Errorf("open incidents of h1 (-want +got):\n%s", diff)
		}
		if s, ok := score(t, rdb, schema.KeyIncidentsOpen, key); !ok || s != t0.UnixMilli() {
			t.Errorf("open set score = %d %v, want the opening in ms", s, ok)
		}
		if s, ok := score(t, rdb, schema.FailingKey("h1"), key); !ok || s != t0.UnixMilli() {
			t.Errorf("failing set score = %d %v, want failing since the opening", s, ok)
		}
		if ttl := rdb.PTTL(ctx, schema.IncidentKey(key)).Val(); ttl != -1 {
			t.Errorf("open incident ttl = %s, want none", ttl)
		}

		closed := t0.Add(2 * time.Hour)
		if err := st.Incidents.Close(ctx, key, closed, "recovered"); err != nil {
			t.Fatalf("close: %v", err)
		}
		in := get(t, st, key)
		if in.State != schema.StateClosed || !in.ClosedAt.Equal(closed) || in.CloseReason != "recovered" ||
			in.Condition != schema.ConditionClear || !in.ConditionSince.Equal(closed) || in.AlertID != "a2" {
			t.Errorf("closed incident = %+v", in.Detection)
		}
		if ttl := rdb.PTTL(ctx, schema.IncidentKey(key)).Val(); ttl <= schema.IncidentClosedTTL-time.Hour || ttl > schema.IncidentClosedTTL {
			t.Errorf("closed incident ttl = %s, want %s", ttl, schema.IncidentClosedTTL)
		}
		if got, err := st.Incidents.OpenIncidents(ctx, "h1"); err != nil || len(got) != 0 {
			t.Errorf("open incidents of h1 after the close = %+v %v", got, err)
		}

		// Reopening starts afresh: no expiry, nothing of the previous opening.
		if err := st.Incidents.RecordDecision(ctx, key, schema.Analysis{Action: "restart", RootCause: "bug"}); err != nil {
			t.Fatal(err)
		}
		open(t, st, key)
		if ttl := rdb.PTTL(ctx, schema.IncidentKey(key)).Val(); ttl != -1 {
			t.Errorf("reopened incident ttl = %s, want none", ttl)
		}
		in = get(t, st, key)
		if in.Action != "" || in.RootCause != "" || in.CloseReason != "" || !in.ClosedAt.IsZero() || in.State != schema.StateOpen || in.AlertID != "a1" {
			t.Errorf("reopened incident keeps the previous opening: %+v", in)
		}
		all, err := st.Incidents.OpenIncidents(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, in := range all {
			keys = append(keys, in.Key)
		}
		if diff := cmp.Diff([]string{key, other}, keys); diff != "" {
			t.Errorf("open incidents of all hosts (-want +got):\n%s", diff)
		}
		if n, err := st.Incidents.CountOpen(ctx); n != 2 || err != nil {
			t.Errorf("count open = %d %v, want 2", n, err)
		}
	})
}

// TestOpenClear: an incident opened with its condition already clear is not failing.
func TestOpenClear(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		const key = "h/web/unhealthy"
		d := schema.Detection{Class: "unhealthy", Host: "h", Container: "web", OpenedAt: t0,
			Condition: schema.ConditionClear, ConditionSince: t0.Add(-time.Minute)}
		if err := st.Incidents.Open(ctx, key, d); err != nil {
			t.Fatal(err)
		}
		if _, ok := score(t, rdb, schema.FailingKey("h"), key); ok {
			t.Errorf("a clear incident is in the failing set")
		}
		if in := get(t, st, key); in.Condition != schema.ConditionClear || !in.ConditionSince.Equal(t0.Add(-time.Minute)) {
			t.Errorf("condition = %s since %s", in.Condition, in.ConditionSince)
		}
	})
}

func TestCloseTakesItOutOfEverything(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		const key, other = "h/web/crashed", "h/db/crashed"
		for _, k := range []string{key, other} {
			open(t, st, k)
			if ok, err := st.Incidents.Schedule(ctx, k, t0.Add(time.Minute), "verify"); !ok || err != nil {
				t.Fatalf("schedule %s: %v %v", k, ok, err)
			}
		}
		if err := st.Incidents.Close(ctx, key, t0.Add(time.Hour), "recovered"); err != nil {
			t.Fatal(err)
		}
		for _, set := range []string{schema.KeyIncidentsOpen, schema.FailingKey("h"), schema.FollowupsKey("h")} {
			if _, ok := score(t, rdb, set, key); ok {
				t.Errorf("the closed incident is still in %s", set)
			}
			if _, ok := score(t, rdb, set, other); !ok {
				t.Errorf("closing %s took %s out of %s", key, other, set)
			}
		}
		if in := get(t, st, key); !in.NextAt.IsZero() || in.NextReason != "" {
			t.Errorf("closed incident still says when and why hemostat looks again: %s %q", in.NextAt, in.NextReason)
		}
		if in := get(t, st, other); !in.NextAt.Equal(t0.Add(time.Minute)) || in.NextReason != "verify" {
			t.Errorf("other incident's follow-up = %s %q", in.NextAt, in.NextReason)
		}
	})
}

func TestSetCondition(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		const key = "h/web/crashed"
		open(t, st, key)
		type state struct {
			Condition    string
			Since        time.Time
			Relapses     int
			RelapsedAt   time.Time
			RelapseAfter time.Duration
			Failing      bool
			FailingMS    int64
		}
		read := func() state {
			in := get(t, st, key)
			ms, failing := score(t, rdb, schema.FailingKey("h"), key)
			return state{in.Condition, in.ConditionSince, in.Relapses, in.RelapsedAt, in.RelapseAfter, failing, ms}
		}
		t1, t2, t3 := t0.Add(time.Minute), t0.Add(2*time.Minute), t0.Add(3*time.Minute)
		steps := []struct {
			name   string
			change incidents.Change
			want   state
		}{
			{"clears", incidents.Change{Condition: schema.ConditionClear, Since: t1},
				state{Condition: schema.ConditionClear, Since: t1}},
			{"relapses", incidents.Change{Condition: schema.ConditionFailing, Since: t2, Relapse: true, Relapses: 1, RelapseAfter: 90 * time.Second},
				state{schema.ConditionFailing, t2, 1, t2, 90 * time.Second, true, t2.UnixMilli()}},
			{"clears again, the relapse kept", incidents.Change{Condition: schema.ConditionClear, Since: t3, Relapses: 7},
				state{schema.ConditionClear, t3, 1, t2, 90 * time.Second, false, 0}},
			{"fails again without a relapse", incidents.Change{Condition: schema.ConditionFailing, Since: t3.Add(time.Second)},
				state{schema.ConditionFailing, t3.Add(time.Second), 1, t2, 90 * time.Second, true, t3.Add(time.Second).UnixMilli()}},
		}
		for _, s := range steps {
			if err := st.Incidents.SetCondition(ctx, key, s.change); err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
			if diff := cmp.Diff(s.want, read()); diff != "" {
				t.Errorf("%s (-want +got):\n%s", s.name, diff)
			}
		}
		// Only the relapse made the follow-up due, when it relapsed.
		if ms, ok := score(t, rdb, schema.FollowupsKey("h"), key); !ok || ms != t2.UnixMilli() {
			t.Errorf("follow-up = %d %v, want due at the relapse", ms, ok)
		}
		failing, err := st.Incidents.Failing(ctx, "h")
		if err != nil || len(failing) != 1 || failing[0] != key {
			t.Errorf("failing = %v %v, want [%s]", failing, err, key)
		}
		if err := st.Incidents.Cleared(ctx, key); err != nil {
			t.Fatal(err)
		}
		if failing, err := st.Incidents.Failing(ctx, "h"); err != nil || len(failing) != 0 {
			t.Errorf("failing after Cleared = %v %v", failing, err)
		}
	})
}

// TestRelapseFollowupNeverLater: a relapse makes the follow-up due now, unless one is due earlier already
// (ZADD LT).
func TestRelapseFollowupNeverLater(t *testing.T) {
	t.Parallel()
	relapse := t0.Add(10 * time.Minute)
	tests := []struct {
		name     string
		existing time.Time // zero: no follow-up scheduled
		want     time.Time
	}{
		{"none scheduled", time.Time{}, relapse},
		{"a later one is brought forward", relapse.Add(time.Hour), relapse},
		{"an earlier one is kept", relapse.Add(-time.Minute), relapse.Add(-time.Minute)},
		{"one due at the same time", relapse, relapse},
	}
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		for i, tt := range tests {
			key := "h/web" + strconv.Itoa(i) + "/crashed"
			open(t, st, key)
			if !tt.existing.IsZero() {
				if ok, err := st.Incidents.Schedule(ctx, key, tt.existing, "backoff"); !ok || err != nil {
					t.Fatalf("%s: schedule: %v %v", tt.name, ok, err)
				}
			}
			if err := st.Incidents.SetCondition(ctx, key, incidents.Change{Condition: schema.ConditionFailing, Since: relapse, Relapse: true, Relapses: 1}); err != nil {
				t.Fatal(err)
			}
			if ms, ok := score(t, rdb, schema.FollowupsKey("h"), key); !ok || ms != tt.want.UnixMilli() {
				t.Errorf("%s: follow-up due at %s (%v), want %s", tt.name, time.UnixMilli(ms).UTC(), ok, tt.want)
			}
		}
	})
}

// TestListOpen is the dashboard's read of the open incidents: oldest first, both spellings of a member
// (the incident key and its hash key), a member whose hash is gone, a hash that does not fully decode.
func TestListOpen(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		if got, problems, err := st.Incidents.ListOpen(ctx, -1); got != nil || problems != nil || err != nil {
			t.Errorf("list of nothing = %v %v %v", got, problems, err)
		}
		rdb.HSet(ctx, schema.IncidentKey("a/web/crashed"), schema.FieldState, schema.StateOpen, schema.FieldClass, "crashed",
			schema.FieldOpenedAt, schema.FormatTime(t0.Add(2*time.Second)))
		rdb.HSet(ctx, schema.IncidentKey("a/db/unhealthy"), schema.FieldState, schema.StateOpen, schema.FieldRelapses, "many")
		rdb.ZAdd(ctx, schema.KeyIncidentsOpen,
			redis.Z{Score: float64(t0.Add(2 * time.Second).UnixMilli()), Member: "a/web/crashed"},
			redis.Z{Score: float64(t0.Add(time.Second).UnixMilli()), Member: schema.IncidentKey("a/db/unhealthy")},
			redis.Z{Score: float64(t0.Add(3 * time.Second).UnixMilli()), Member: "a/gone/crashed"})

		got, problems, err := st.Incidents.ListOpen(ctx, -1)
		if err != nil {
			t.Fatal(err)
		}
		at := func(d time.Duration) time.Time { return t0.Add(d) }
		want := []schema.Incident{
			{Key: "a/db/unhealthy", Detection: schema.Detection{State: schema.StateOpen, OpenedAt: at(time.Second), LastAlertAt: at(time.Second)}},
			{Key: "a/web/crashed", Detection: schema.Detection{State: schema.StateOpen, Class: "crashed", OpenedAt: at(2 * time.Second), LastAlertAt: at(2 * time.Second)}},
			{Key: "a/gone/crashed", Detection: schema.Detection{OpenedAt: at(3 * time.Second), LastAlertAt: at(3 * time.Second)}},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("list open (-want +got):\n%s", diff)
		}
		if len(problems) != 1 || !strings.Contains(problems[0].Error(), "a/db/unhealthy") || !strings.Contains(problems[0].Error(), schema.FieldRelapses) {
			t.Errorf("problems = %v, want one naming a/db/unhealthy and %s", problems, schema.FieldRelapses)
		}
		for _, tt := range []struct {
			limit int64
			want  int
		}{{-1, 3}, {2, 2}, {1, 1}, {0, 0}, {10, 3}} {
			got, _, err := st.Incidents.ListOpen(ctx, tt.limit)
			if err != nil || len(got) != tt.want {
				t.Errorf("list open limit %d: %d incidents, %v; want %d", tt.limit, len(got), err, tt.want)
			}
		}
		// The monitor resumes only what it can: incidents with a hash that says open.
		resumed, err := st.Incidents.OpenIncidents(ctx, "a")
		if err != nil || len(resumed) != 2 {
			t.Errorf("open incidents of a = %d, %v; want the 2 with a hash", len(resumed), err)
		}
	})
}

func TestGetMissing(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		in, found, err := st.Incidents.Get(context.Background(), "h/none/crashed")
		if found || err != nil || in.Key != "h/none/crashed" {
			t.Errorf("get of nothing = %+v %v %v", in, found, err)
		}
	})
}

func TestKeyParts(t *testing.T) {
	t.Parallel()
	tests := []struct{ key, host, container string }{
		{"h/web/crashed", "h", "web"},
		{"node-1.lan/db-2/oom_killed", "node-1.lan", "db-2"},
		{"h/web", "h", "web"},
		{"h", "h", ""},
	}
	for _, tt := range tests {
		if got := incidents.HostOf(tt.key); got != tt.host {
			t.Errorf("HostOf(%q) = %q, want %q", tt.key, got, tt.host)
		}
		if got := incidents.ContainerOf(tt.key); got != tt.container {
			t.Errorf("ContainerOf(%q) = %q, want %q", tt.key, got, tt.container)
		}
	}
}

func TestUnavailable(t *testing.T) {
	t.Parallel()
	conn.QuietDriverLogs(nil) // the driver's dial failures, which it prints on stderr otherwise
	st, err := store.Open(conn.Options{URL: "redis://127.0.0.1:" + strconv.Itoa(testenv.FreePort(t)) + "/0"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, _, err := st.Incidents.ListOpen(ctx, 10); !conn.IsUnavailable(err) {
		t.Errorf("list open without a server: %v, want an unavailable error", err)
	}
}

// hashReads records the incident hashes read with HGETALL (its note is a storetest.OnCommand hook).
type hashReads struct {
	mu   sync.Mutex
	keys []string
}

func (h *hashReads) note(cmd redis.Cmder) {
	if strings.EqualFold(cmd.Name(), "hgetall") {
		h.mu.Lock()
		h.keys = append(h.keys, fmt.Sprint(cmd.Args()[1]))
		h.mu.Unlock()
	}
}

// TestOpenIncidentsReadsOnlyTheHost: a host's open incidents are what the list of every host's, filtered
// by host, was (a host whose name starts with another's included, oldest first), and only that host's
// incident hashes are read.
func TestOpenIncidentsReadsOnlyTheHost(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		for i, key := range []string{"h1/web/crashed", "h10/web/crashed", "h2/db/oom_killed", "h1/db/unhealthy", "h1x/a/crashed"} {
			d := schema.Detection{Class: key[strings.LastIndexByte(key, '/')+1:], Host: incidents.HostOf(key), Container: incidents.ContainerOf(key),
				Severity: "high", AlertID: fmt.Sprintf("a%d", i), OpenedAt: t0.Add(time.Duration(i) * time.Minute)}
			d.LastAlertAt = d.OpenedAt
			if err := st.Incidents.Open(ctx, key, d); err != nil {
				t.Fatal(err)
			}
		}
		all, _, err := st.Incidents.ListOpen(ctx, -1)
		if err != nil {
			t.Fatal(err)
		}
		for _, host := range []string{"h1", "h10", "h2", "none"} {
			var want []schema.Incident
			var wantRead []string
			for _, in := range all {
				if incidents.HostOf(in.Key) == host {
					want = append(want, in)
					wantRead = append(wantRead, schema.IncidentKey(in.Key))
				}
			}
			reads := &hashReads{}
			c := st.Conn.Client()
			c.AddHook(storetest.OnCommand(reads.note))
			got, err := st.Incidents.OpenIncidents(ctx, host)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("open incidents of %s (-want +got):\n%s", host, diff)
			}
			reads.mu.Lock()
			if diff := cmp.Diff(wantRead, reads.keys, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("hashes read for %s (-want +got):\n%s", host, diff)
			}
			reads.mu.Unlock()
		}
	})
}
