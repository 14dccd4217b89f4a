package analyze

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/bus"
	"github.com/hemostat/hemostat/pkg/conn"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/store"
	"github.com/hemostat/hemostat/pkg/store/containers"
	"github.com/hemostat/hemostat/pkg/store/ledger"
	"github.com/hemostat/hemostat/pkg/store/schema"
	"github.com/hemostat/hemostat/pkg/testenv"
)

// The Redis stores are the analyzer's in production.
var (
	_ StatsStore   = (*containers.Store)(nil)
	_ LedgerReader = (*ledger.Store)(nil)
)

type env struct {
	st  *store.Store
	b   *bus.Bus
	rdb *redis.Client
}

func newEnv(t testing.TB) env {
	t.Helper()
	url := testenv.RequireRedis(t)
	st, err := store.Open(conn.Options{URL: url, PoolSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	b := bus.New(st.Conn, bus.Options{Block: 50 * time.Millisecond, RetryDelay: 20 * time.Millisecond, StopGrace: time.Second})
	return env{st: st, b: b, rdb: st.Conn.Client()}
}

// storesOf is the analyzer's view of a store.
func storesOf(st *store.Store) Stores {
	return Stores{Incidents: st.Incidents, Stats: st.Containers, Ledger: st.Ledger}
}

// redisRig is the analyzer's world on redis-server: the store packages and the bus.
type redisRig struct{ e env }

func newRedisRig(t testing.TB) rig { return redisRig{newEnv(t)} }

func (r redisRig) stores() Stores { return storesOf(r.e.st) }
func (r redisRig) bus() Bus       { return r.e.b }

func (r redisRig) outputs(t testing.TB, stream string) []event.Envelope {
	return outputs(t, r.e, stream)
}

func (r redisRig) incident(t testing.TB, key string) map[string]string { return incident(t, r.e, key) }

func (r redisRig) write(t testing.TB, key string, fields map[string]string) {
	t.Helper()
	if err := r.e.rdb.HSet(context.Background(), schema.IncidentKey(key), fields).Err(); err != nil {
		t.Fatal(err)
	}
}

func (r redisRig) setStats(t testing.TB, target string, s schema.Stats) {
	t.Helper()
	f, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.e.rdb.HSet(context.Background(), schema.StatsKey(target), f).Err(); err != nil {
		t.Fatal(err)
	}
}

// TestScenariosOnRedis runs the logic tests on redis-server: the stores' scripts and the bus decide and
// record as the in-memory fake does.
func TestScenariosOnRedis(t *testing.T) {
	testenv.RequireRedis(t)
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) { sc.run(t, newRedisRig) })
	}
}

// outputs reads every envelope on a stream, oldest first.
func outputs(t testing.TB, e env, stream string) []event.Envelope {
	t.Helper()
	entries, err := e.b.Range(context.Background(), stream, "-", "+", 10000)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]event.Envelope, 0, len(entries))
	for _, en := range entries {
		ev, err := event.Decode(en.Raw)
		if err != nil {
			t.Fatalf("decode %s: %v", en.ID, err)
		}
		out = append(out, ev)
	}
	return out
}

func incident(t testing.TB, e env, key string) map[string]string {
	t.Helper()
	m, err := e.rdb.HGetAll(context.Background(), schema.IncidentKey(key)).Result()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestAgentAnswersAlerts runs the agent as it runs in production, Run on the bus over redis-server: alerts
// published on the stream are answered, and entries the bus cannot decode are dead-lettered.
func TestAgentAnswersAlerts(t *testing.T) {
	e := newEnv(t)
	a := New(Options{Consumer: "t1"}, storesOf(e.st), e.b)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v", err)
		}
	})

	when := time.Date(2026, 11, 28, 10, 30, 45, 123000, time.UTC)
	al := alertOf("crashed", func(a *event.ContainerUnhealthy) { a.ExitCode = 137; a.EventTime = when })
	in := alertEnvelope(t, "node-a", al)
	if _, err := e.b.Publish(ctx, event.StreamHealthAlert, in); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() bool { return len(outputs(t, e, requestsA)) == 1 })
	out := outputs(t, e, requestsA)[0]
	checkRestartAnswer(t, in, out, when)
	h := incident(t, e, "node-a/web-1/crashed")
	if h["action"] != "restart" || h["analysis_method"] != "rules" || h["decision_alert_id"] != in.ID || h["decided_at"] == "" || h["confidence"] != "0.9" {
		t.Errorf("incident hash = %v", h)
	}

	// Bad input goes to the dead letter stream and the agent carries on.
	if _, err := e.b.PublishRaw(ctx, event.StreamHealthAlert, []byte(`{"id":"x","event_type":"container_unhealthy"`)); err != nil {
		t.Fatal(err)
	}
	bad := alertEnvelope(t, "node-a", alertOf("crashed", func(a *event.ContainerUnhealthy) { a.ContainerName = "" }))
	if _, err := e.b.Publish(ctx, event.StreamHealthAlert, bad); err != nil {
		t.Fatal(err)
	}
	wrongType := alertEnvelope(t, "node-a", alertOf("crashed", func(a *event.ContainerUnhealthy) { a.Class = "haunted" }))
	if _, err := e.b.Publish(ctx, event.StreamHealthAlert, wrongType); err != nil {
		t.Fatal(err)
	}
	hostless := alertEnvelope(t, "", alertOf("crashed"))
	if _, err := e.b.Publish(ctx, event.StreamHealthAlert, hostless); err != nil {
		t.Fatal(err)
	}
	clean := alertEnvelope(t, "node-b", alertOf("crashed", func(a *event.ContainerUnhealthy) { a.ExitCode = 0 }))
	if _, err := e.b.Publish(ctx, event.StreamHealthAlert, clean); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() bool { return len(outputs(t, e, event.StreamFalseAlarm)) == 1 })
	fa, err := event.DecodeData[event.FalseAlarm](outputs(t, e, event.StreamFalseAlarm)[0])
	if err != nil {
		t.Fatal(err)
	}
	if fa.Container != "web-1" || fa.AnalysisMethod != "rules" || fa.Confidence != 0.3 || !strings.Contains(fa.Reason, "code 0") {
		t.Errorf("false_alarm = %+v", fa)
	}
	// The hostless alert reaches the analyzer, which refuses it; the bus dead-letters it after the read.
	var dls []bus.DeadLetter
	testenv.Eventually(t, 5*time.Second, "4 dead letters", func() bool {
		var err error
		dls, err = e.b.DeadLetters(ctx, 10)
		return err == nil && len(dls) >= 4
	})
	var reasons []string
	rejected := 0
	for _, d := range dls {
		reasons = append(reasons, d.Reason)
		if d.Rejected == RejectNoHost {
			rejected++
			if got, err := event.Decode(d.Raw); err != nil || got.ID != hostless.ID || !strings.Contains(d.Reason, "no host") {
				t.Errorf("dead letter %s refused as %s = %s (%v), reason %q; want the hostless alert %s", d.ID, RejectNoHost, got.ID, err, d.Reason, hostless.ID)
			}
		}
	}
	if len(dls) != 4 || rejected != 1 {
		t.Fatalf("dead letters = %q, %d refused as %s; want 4, 1", reasons, rejected, RejectNoHost)
	}
	all := strings.Join(reasons, "\n")
	for _, want := range []string{"container_name", "class", "JSON", "no host"} {
		if !strings.Contains(all, want) {
			t.Errorf("dead letter reasons %q lack %q", reasons, want)
		}
	}
	if got := len(outputs(t, e, requestsA)); got != 1 {
		t.Errorf("remediation_needed has %d entries, want 1", got)
	}
	if got := len(outputs(t, e, event.RemediationNeededStream(""))); got != 0 {
		t.Errorf("the hostless request stream has %d entries, want 0", got)
	}
}

// TestHandleBatchWithRedisAwayAcksNothing: when the answers cannot be written, every alert of the read
// gets an error (the bus retries it) and nothing is counted as decided.
func TestHandleBatchWithRedisAwayAcksNothing(t *testing.T) {
	st, err := store.Open(conn.Options{URL: "redis://127.0.0.1:1/0"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a := New(Options{}, storesOf(st), bus.New(st.Conn, bus.Options{}))
	defer a.Close()
	ms := []bus.Message{
		message(alertEnvelope(t, "node-a", alertOf("crashed"))),
		message(alertEnvelope(t, "node-a", alertOf("oom_killed", func(a *event.ContainerUnhealthy) { a.ContainerName = "mem-1" }))),
	}
	for i, err := range a.HandleBatch(context.Background(), ms) {
		if err == nil {
			t.Errorf("alert %d acked without its answer written", i)
		}
	}
	if n := a.Stats().Alerts.Load(); n != 0 {
		t.Errorf("%d alerts counted as decided", n)
	}
}
