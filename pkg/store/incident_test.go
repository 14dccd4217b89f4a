package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/bus"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/store"
)

func TestBeginAnalysisCountsOOMKills(t *testing.T) {
	scriptBackends(t, func(t *testing.T, st *store.Client, rdb *redis.Client) {
		ctx := context.Background()
		t0 := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
		kill := func(id string, at time.Duration) int {
			t.Helper()
			s, err := st.BeginAnalysis(ctx, "h/web/oom_killed", &store.OOMKill{Host: "h", Name: "web", AlertID: id, At: t0.Add(at), Window: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			return s.OOMRepeats
		}
		steps := []struct {
			id   string
			at   time.Duration
			want int
		}{
			{"a1", 0, 0},
			{"a1", 0, 0}, // redelivery: same answer
			{"a2", 30 * time.Minute, 1},
			{"a3", 60 * time.Minute, 2}, // the window's edge counts
			{"a4", 150 * time.Minute, 0},
			{"a5", 160 * time.Minute, 1},
			{"a4", 150 * time.Minute, 0}, // a redelivery counts only the kills before it
		}
		for _, s := range steps {
			if got := kill(s.id, s.at); got != s.want {
				t.Errorf("kill %s at +%s: %d repeats, want %d", s.id, s.at, got, s.want)
			}
		}
		ttl, err := rdb.PTTL(ctx, store.OOMKey("h", "web")).Result()
		if err != nil || ttl <= 0 || ttl > 2*time.Hour {
			t.Errorf("oom set ttl = %s, %v; want within 2h", ttl, err)
		}
		// No OOM: only the hash is read.
		if err := rdb.HSet(ctx, event.IncidentHashKey("h/web/crashed"), "state", "open").Err(); err != nil {
			t.Fatal(err)
		}
		s, err := st.BeginAnalysis(ctx, "h/web/crashed", nil)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(store.AnalysisState{Incident: map[string]string{"state": "open"}}, s); diff != "" {
			t.Errorf("BeginAnalysis() mismatch (-want +got):\n%s", diff)
		}
	})
}

func TestRecordAnalysisKeepsTheMonitorsLifetime(t *testing.T) {
	scriptBackends(t, func(t *testing.T, st *store.Client, rdb *redis.Client) {
		ctx := context.Background()
		open := event.IncidentHashKey("h/web/crashed")
		if err := rdb.HSet(ctx, open, "state", "open").Err(); err != nil {
			t.Fatal(err)
		}
		if err := st.RecordAnalysis(ctx, "h/web/crashed", map[string]string{"action": "restart", "confidence": "0.9"}); err != nil {
			t.Fatal(err)
		}
		if ttl := rdb.PTTL(ctx, open).Val(); ttl != -1 {
			t.Errorf("an open incident got a ttl of %s", ttl)
		}
		if got := rdb.HGetAll(ctx, open).Val(); got["state"] != "open" || got["action"] != "restart" || got["confidence"] != "0.9" {
			t.Errorf("hash = %v", got)
		}
		// The analyzer created it (the monitor's write is late or lost): it expires.
		orphan := event.IncidentHashKey("h/db/crashed")
		if err := st.RecordAnalysis(ctx, "h/db/crashed", map[string]string{"action": "none"}); err != nil {
			t.Fatal(err)
		}
		if ttl := rdb.PTTL(ctx, orphan).Val(); ttl < 6*24*time.Hour {
			t.Errorf("orphan incident ttl = %s, want about 7 days", ttl)
		}
		// The pipelined form publishes and records in one round trip.
		b := bus.New(st, bus.Options{})
		env, _ := event.New("analyze", "h", "h/api/crashed", "x", &event.FalseAlarm{Container: "api", Confidence: 0.3})
		if err := b.PublishWith(ctx, event.StreamFalseAlarm, env, store.RecordAnalysesOp([]store.AnalysisRecord{{Incident: "h/api/crashed", Fields: map[string]string{"false_alarm": "true"}}})); err != nil {
			t.Fatal(err)
		}
		if n := rdb.XLen(ctx, event.StreamFalseAlarm).Val(); n != 1 {
			t.Errorf("false_alarm stream has %d entries", n)
		}
		if v := rdb.HGet(ctx, event.IncidentHashKey("h/api/crashed"), "false_alarm").Val(); v != "true" {
			t.Errorf("recorded false_alarm = %q", v)
		}
	})
}

func TestClaimLLMOncePerOpening(t *testing.T) {
	scriptBackends(t, func(t *testing.T, st *store.Client, rdb *redis.Client) {
		ctx := context.Background()
		key := "h/web/memory_leak"
		now := time.Now()
		claim := func(opened string, at time.Time) bool {
			t.Helper()
			ok, err := st.ClaimLLM(ctx, key, opened, at, 30*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		if !claim("T1", now) {
			t.Fatal("first claim refused")
		}
		if claim("T1", now.Add(time.Second)) {
			t.Error("second claim while the call runs was granted")
		}
		if !claim("T1", now.Add(31*time.Second)) {
			t.Error("a stale claim (holder died) was not taken over")
		}
		if err := st.RecordAnalysis(ctx, key, map[string]string{"llm_done_at": "x"}); err != nil {
			t.Fatal(err)
		}
		if claim("T1", now.Add(time.Hour)) {
			t.Error("claim granted after the incident's call finished")
		}
		if !claim("T2", now.Add(time.Hour)) {
			t.Error("a new opening of the incident was refused its call")
		}
		if claim("T2", now.Add(time.Hour+time.Second)) {
			t.Error("second claim for the new opening was granted")
		}
	})
}

func TestAnalysisContext(t *testing.T) {
	scriptBackends(t, func(t *testing.T, st *store.Client, rdb *redis.Client) {
		ctx := context.Background()
		empty, err := st.AnalysisContext(ctx, "h", "web")
		if err != nil || empty.Sample != nil || empty.History != nil || len(empty.Ledger) != 0 {
			t.Errorf("AnalysisContext() of an unknown container = %+v, %v", empty, err)
		}
		rdb.HSet(ctx, event.StatsKey("h", "web"), "sample", `{"source":"cgroup"}`, "history", `{"cpu":[1,2]}`)
		rdb.HSet(ctx, event.LedgerKey("h", "web"), "last_action", "restart")
		got, err := st.AnalysisContext(ctx, "h", "web")
		if err != nil {
			t.Fatal(err)
		}
		if string(got.Sample) != `{"source":"cgroup"}` || string(got.History) != `{"cpu":[1,2]}` || got.Ledger["last_action"] != "restart" {
			t.Errorf("AnalysisContext() = %+v", got)
		}
	})
}

func TestRecordAnalysesBatchKeepsTheMonitorsLifetime(t *testing.T) {
	scriptBackends(t, func(t *testing.T, st *store.Client, rdb *redis.Client) {
		ctx := context.Background()
		open := event.IncidentHashKey("h/web/crashed")
		if err := rdb.HSet(ctx, open, "state", "open").Err(); err != nil {
			t.Fatal(err)
		}
		b := bus.New(st, bus.Options{})
		env, _ := event.New("analyze", "h", "h/api/crashed", "x", &event.FalseAlarm{Container: "api", Confidence: 0.3})
		op := store.RecordAnalysesOp([]store.AnalysisRecord{
			{Incident: "h/web/crashed", Fields: map[string]string{"action": "restart", "confidence": "0.9"}},
			{Incident: "h/db/crashed", Fields: map[string]string{"action": "none"}},
			{Incident: "h/empty/crashed"},
			{Incident: "h/api/crashed", Fields: map[string]string{"false_alarm": "true"}},
		})
		if err := b.PublishWith(ctx, event.StreamFalseAlarm, env, op); err != nil {
			t.Fatal(err)
		}
		if ttl := rdb.PTTL(ctx, open).Val(); ttl != -1 {
			t.Errorf("an open incident got a ttl of %s", ttl)
		}
		if got := rdb.HGetAll(ctx, open).Val(); got["state"] != "open" || got["action"] != "restart" || got["confidence"] != "0.9" {
			t.Errorf("open hash = %v", got)
		}
		for _, orphan := range []string{"h/db/crashed", "h/api/crashed"} {
			if ttl := rdb.PTTL(ctx, event.IncidentHashKey(orphan)).Val(); ttl < 6*24*time.Hour {
				t.Errorf("orphan %s ttl = %s, want about 7 days", orphan, ttl)
			}
		}
		if got := rdb.HGet(ctx, event.IncidentHashKey("h/api/crashed"), "false_alarm").Val(); got != "true" {
			t.Errorf("last record of the batch = %q", got)
		}
		if n := rdb.Exists(ctx, event.IncidentHashKey("h/empty/crashed")).Val(); n != 0 {
			t.Errorf("a record without fields created its hash")
		}
	})
}
