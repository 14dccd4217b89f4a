package incidents_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/bus"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/store"
	"github.com/hemostat/hemostat/pkg/store/incidents"
	"github.com/hemostat/hemostat/pkg/store/schema"
	"github.com/hemostat/hemostat/pkg/store/storetest"
)

// aboutAnalysisTTL reports whether ttl is the lifetime of a hash the analyzer created.
func aboutAnalysisTTL(ttl time.Duration) bool {
	return ttl > schema.AnalysisTTL-time.Hour && ttl <= schema.AnalysisTTL
}

func TestBeginAnalysisCountsOOMKills(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		const key = "h/web/oom_killed"
		open(t, st, key)
		kill := func(id string, at time.Duration) int {
			t.Helper()
			in, found, n, err := st.Incidents.BeginAnalysis(ctx, key, &incidents.OOMKill{Target: "h/web", AlertID: id, At: t0.Add(at), Window: time.Hour})
			if err != nil || !found || in.State != schema.StateOpen || in.Key != key {
				t.Fatalf("begin analysis: %+v %v %v", in.Detection, found, err)
			}
			return n
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
		if ttl, err := rdb.PTTL(ctx, schema.OOMKey("h/web")).Result(); err != nil || ttl <= time.Hour || ttl > 2*time.Hour {
			t.Errorf("oom set ttl = %s, %v; want twice the window", ttl, err)
		}
		// Without an OOM kill only the incident is read; no window is kept for another container.
		in, found, n, err := st.Incidents.BeginAnalysis(ctx, key, nil)
		if err != nil || !found || n != 0 || in.Class != "oom_killed" {
			t.Errorf("begin analysis without a kill = %+v %v %d %v", in.Detection, found, n, err)
		}
		// A kill of an incident the monitor has not written yet is still counted.
		in, found, n, err = st.Incidents.BeginAnalysis(ctx, "h/db/oom_killed", &incidents.OOMKill{Target: "h/db", AlertID: "b1", At: t0})
		if err != nil || found || n != 0 || in.Key != "h/db/oom_killed" {
			t.Errorf("begin analysis of an unknown incident = %+v %v %d %v", in, found, n, err)
		}
		if ttl := rdb.PTTL(ctx, schema.OOMKey("h/db")).Val(); ttl <= time.Hour || ttl > 2*time.Hour {
			t.Errorf("oom set ttl with the default window = %s, want two hours", ttl)
		}
	})
}

// TestRecordKeepsTheMonitorsLifetime: the analyzer's writes leave the lifetime of an incident the monitor
// opened alone, expire a hash they create, and a later decision keeps what the LLM wrote.
func TestRecordKeepsTheMonitorsLifetime(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		const key = "h/web/memory_leak"
		open(t, st, key)
		decision := schema.Analysis{Action: "restart", Confidence: 0.9, Method: "rules", Reason: "memory above 95%",
			DecidedAt: t0.Add(time.Second), DecisionAlertID: "a1", DecisionEventID: "e1"}
		if err := st.Incidents.RecordDecision(ctx, key, decision); err != nil {
			t.Fatal(err)
		}
		if ttl := rdb.PTTL(ctx, schema.IncidentKey(key)).Val(); ttl != -1 {
			t.Errorf("an open incident got a ttl of %s", ttl)
		}
		if diff := cmp.Diff(decision, get(t, st, key).Analysis); diff != "" {
			t.Errorf("decision (-want +got):\n%s", diff)
		}

		llm := schema.LLMResult{Verdict: `{"action":"restart"}`, Method: "claude", DoneAt: t0.Add(time.Minute), OpenedAt: schema.FormatTime(t0)}
		if err := st.Incidents.RecordLLM(ctx, key, llm, "leak in the cache", []string{"rss grows", "no gc"}); err != nil {
			t.Fatal(err)
		}
		// A later decision without a root cause or evidence keeps the LLM's.
		decision.Action, decision.Method, decision.DecisionEventID = "none", "claude", "e2"
		if err := st.Incidents.RecordDecision(ctx, key, decision); err != nil {
			t.Fatal(err)
		}
		want := decision
		want.RootCause, want.Evidence, want.LLM = "leak in the cache", []string{"rss grows", "no gc"}, llm
		if diff := cmp.Diff(want, get(t, st, key).Analysis); diff != "" {
			t.Errorf("decision after the LLM (-want +got):\n%s", diff)
		}
		// A failed call records its error and leaves the verdict's root cause alone.
		failed := schema.LLMResult{Error: "timeout", Method: "claude", DoneAt: t0.Add(2 * time.Minute), OpenedAt: schema.FormatTime(t0)}
		if err := st.Incidents.RecordLLM(ctx, key, failed, "ignored", []string{"ignored"}); err != nil {
			t.Fatal(err)
		}
		want.LLM.Error, want.LLM.DoneAt = "timeout", failed.DoneAt
		if diff := cmp.Diff(want, get(t, st, key).Analysis); diff != "" {
			t.Errorf("after a failed call (-want +got):\n%s", diff)
		}
		if ttl := rdb.PTTL(ctx, schema.IncidentKey(key)).Val(); ttl != -1 {
			t.Errorf("an open incident got a ttl of %s", ttl)
		}

		// The analyzer created these (the monitor's write is late or lost): they expire.
		if err := st.Incidents.RecordDecision(ctx, "h/db/crashed", schema.Analysis{Action: "none"}); err != nil {
			t.Fatal(err)
		}
		if err := st.Incidents.RecordLLM(ctx, "h/api/crashed", llm, "x", nil); err != nil {
			t.Fatal(err)
		}
		for _, orphan := range []string{"h/db/crashed", "h/api/crashed"} {
			if ttl := rdb.PTTL(ctx, schema.IncidentKey(orphan)).Val(); !aboutAnalysisTTL(ttl) {
				t.Errorf("orphan %s ttl = %s, want %s", orphan, ttl, schema.AnalysisTTL)
			}
		}
		// A closed incident keeps the close's lifetime.
		if err := st.Incidents.Close(ctx, key, t0.Add(time.Hour), "recovered"); err != nil {
			t.Fatal(err)
		}
		if err := rdb.PExpire(ctx, schema.IncidentKey(key), time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
		if err := st.Incidents.RecordDecision(ctx, key, decision); err != nil {
			t.Fatal(err)
		}
		if ttl := rdb.PTTL(ctx, schema.IncidentKey(key)).Val(); ttl <= 0 || ttl > time.Hour {
			t.Errorf("closed incident ttl after a decision = %s, want the hour it had", ttl)
		}
	})
}

// TestRecordDecisionsOp: the batch form rides the pipeline that publishes the analyzer's answer (one round
// trip), with RecordDecision's lifetime rules.
func TestRecordDecisionsOp(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		const web, db, api = "h/web/crashed", "h/db/crashed", "h/api/crashed"
		open(t, st, web)
		b := bus.New(st.Conn, bus.Options{})
		env, err := event.New("analyze", "h", api, "x", &event.FalseAlarm{Container: "api", Confidence: 0.3})
		if err != nil {
			t.Fatal(err)
		}
		ds := []incidents.Decision{
			{Incident: web, Analysis: schema.Analysis{Action: "restart", Confidence: 0.9, Method: "rules", Evidence: []string{"exit 137"}}},
			{Incident: db, Analysis: schema.Analysis{Action: "none", Confidence: 0.5}},
			{Incident: api, Analysis: schema.Analysis{FalseAlarm: true, Confidence: 0.3, DecisionEventID: env.ID}},
		}
		if err := b.PublishWith(ctx, event.StreamFalseAlarm, env, st.Incidents.RecordDecisionsOp(ds)); err != nil {
			t.Fatal(err)
		}
		if n := rdb.XLen(ctx, event.StreamFalseAlarm).Val(); n != 1 {
			t.Errorf("false_alarm stream has %d entries, want 1", n)
		}
		for _, d := range ds {
			if diff := cmp.Diff(d.Analysis, get(t, st, d.Incident).Analysis); diff != "" {
				t.Errorf("%s (-want +got):\n%s", d.Incident, diff)
			}
		}
		if in := get(t, st, web); in.State != schema.StateOpen || in.Container != "web" {
			t.Errorf("the batch changed the monitor's section: %+v", in.Detection)
		}
		if ttl := rdb.PTTL(ctx, schema.IncidentKey(web)).Val(); ttl != -1 {
			t.Errorf("an open incident got a ttl of %s", ttl)
		}
		for _, orphan := range []string{db, api} {
			if ttl := rdb.PTTL(ctx, schema.IncidentKey(orphan)).Val(); !aboutAnalysisTTL(ttl) {
				t.Errorf("orphan %s ttl = %s, want %s", orphan, ttl, schema.AnalysisTTL)
			}
		}
		// No decisions: only the publish.
		if err := b.PublishWith(ctx, event.StreamFalseAlarm, env, st.Incidents.RecordDecisionsOp(nil)); err != nil {
			t.Fatal(err)
		}
		if n := rdb.XLen(ctx, event.StreamFalseAlarm).Val(); n != 2 {
			t.Errorf("false_alarm stream has %d entries, want 2", n)
		}
	})
}

func TestClaimLLMOncePerOpening(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		const key = "h/web/memory_leak"
		open(t, st, key)
		const stale = 30 * time.Second
		now := time.Now()
		steps := []struct {
			name   string
			opened string
			at     time.Duration
			finish bool // record the call's end after the claim
			want   bool
		}{
			{"first claim", "T1", 0, false, true},
			{"while the call runs", "T1", time.Second, false, false},
			{"the holder died", "T1", stale + time.Second, true, true},
			{"after the call finished", "T1", time.Hour, false, false},
			{"a new opening", "T2", time.Hour, false, true},
			{"the new opening's call runs", "T2", time.Hour + time.Second, false, false},
		}
		for _, s := range steps {
			ok, err := st.Incidents.ClaimLLM(ctx, key, s.opened, now.Add(s.at), stale)
			if err != nil {
				t.Fatal(err)
			}
			if ok != s.want {
				t.Errorf("%s: claim = %v, want %v", s.name, ok, s.want)
			}
			if s.finish {
				l := schema.LLMResult{Verdict: "{}", Method: "m", DoneAt: now.Add(s.at), OpenedAt: s.opened}
				if err := st.Incidents.RecordLLM(ctx, key, l, "", nil); err != nil {
					t.Fatal(err)
				}
			}
		}
		in := get(t, st, key)
		if in.LLM.OpenedAt != "T2" || in.LLM.Started != now.Add(time.Hour).UnixMilli() || !in.LLM.DoneAt.IsZero() {
			t.Errorf("llm claim fields = %+v, want T2's running claim", in.LLM)
		}
		if ttl := rdb.PTTL(ctx, schema.IncidentKey(key)).Val(); ttl != -1 {
			t.Errorf("an open incident got a ttl of %s", ttl)
		}
		// A claim for an incident the monitor has not written yet creates a hash that expires.
		if ok, err := st.Incidents.ClaimLLM(ctx, "h/db/crashed", "", now, stale); !ok || err != nil {
			t.Fatalf("claim of an unknown incident: %v %v", ok, err)
		}
		if ok, _ := st.Incidents.ClaimLLM(ctx, "h/db/crashed", "", now.Add(time.Second), stale); ok {
			t.Errorf("second claim of an unknown incident granted")
		}
		if ttl := rdb.PTTL(ctx, schema.IncidentKey("h/db/crashed")).Val(); !aboutAnalysisTTL(ttl) {
			t.Errorf("claimed orphan ttl = %s, want %s", ttl, schema.AnalysisTTL)
		}
	})
}
