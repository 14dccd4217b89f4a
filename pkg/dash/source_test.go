package dash

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/audit"
	"github.com/hemostat/hemostat/pkg/bus"
	"github.com/hemostat/hemostat/pkg/conn"
	"github.com/hemostat/hemostat/pkg/embedded"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/store"
	"github.com/hemostat/hemostat/pkg/store/schema"
	"github.com/hemostat/hemostat/pkg/testenv"
)

// eventually polls cond until it holds or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, cond func() bool) bool {
	return testenv.Poll(timeout, cond)
}

func openSource(t *testing.T, url string) *RedisSource {
	t.Helper()
	c, err := store.Open(conn.Options{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s := NewRedisSource(redisSources(c))
	s.block = 100 * time.Millisecond
	s.retryMax = 100 * time.Millisecond
	return s
}

func rawClient(t *testing.T, url string) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// TestRedisSourceSnapshot seeds Redis as the agents would and checks the source reads back exactly the
// snapshot the fixture describes.
func TestRedisSourceSnapshot(t *testing.T) {
	url := testenv.RequireRedis(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	f := newFixture(now)
	src := openSource(t, url)

	empty, err := src.Snapshot(context.Background())
	if err != nil {
		t.Fatalf("empty database: %v", err)
	}
	if len(empty.Containers)+len(empty.Incidents)+len(empty.Audit)+empty.FalseAlarms != 0 {
		t.Fatalf("empty database: got %+v", empty)
	}

	f.seed(t, url)
	got, err := src.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := f.snapshot()
	opts := cmp.Options{cmpopts.IgnoreFields(Snapshot{}, "Time"), cmpopts.EquateEmpty()}
	if diff := cmp.Diff(want, got, opts); diff != "" {
		t.Errorf("snapshot (-want +got):\n%s", diff)
	}
	if len(got.Problems) != 0 {
		t.Errorf("problems: %v", got.Problems)
	}

	// Incremental: a new audit entry and a new false alarm show up at the next refresh, nothing twice.
	rdb := rawClient(t, url)
	e := audit.Entry{ID: "new", Time: now, Host: "node-a", Container: "api-1", Action: "restart", Decision: "executed", Result: "failed"}
	rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: event.StreamAudit, Values: []any{"entry", mustJSON(e)}})
	rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: event.StreamFalseAlarm, Values: []any{"event", "{}"}})
	rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: event.StreamAudit, Values: []any{"entry", "not json"}})
	got, err = src.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Audit) != len(f.audit)+1 || got.Audit[0].ID != "new" {
		t.Errorf("after one more entry: %d entries, newest %q; want %d, newest \"new\"", len(got.Audit), got.Audit[0].ID, len(f.audit)+1)
	}
	if got.FalseAlarms != 2 {
		t.Errorf("false alarms: got %d, want 2", got.FalseAlarms)
	}
	if len(got.Problems) != 1 {
		t.Errorf("a malformed audit entry is reported once: got problems %v", got.Problems)
	}

	// The stream was rebuilt (flushed): the source starts over instead of waiting for ids it has passed.
	rdb.Del(context.Background(), event.StreamAudit)
	rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: event.StreamAudit, ID: "5-0", Values: []any{"entry", mustJSON(e)}})
	got, err = src.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Audit) != 1 {
		t.Errorf("after the stream was rebuilt: %d entries, want 1", len(got.Audit))
	}
}

// TestRedisSourceHealing: the incidents' progress and the responder's published policy read back as the
// fixture describes them.
func TestRedisSourceHealing(t *testing.T) {
	url := testenv.RequireRedis(t)
	f := newHealingFixture(time.Now().UTC().Truncate(time.Millisecond))
	f.seed(t, url)
	got, err := openSource(t, url).Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	opts := cmp.Options{cmpopts.IgnoreFields(Snapshot{}, "Time"), cmpopts.EquateEmpty()}
	if diff := cmp.Diff(f.snapshot(), got, opts); diff != "" {
		t.Errorf("snapshot (-want +got):\n%s", diff)
	}
	if len(got.Problems) != 0 {
		t.Errorf("problems: %v", got.Problems)
	}
	var policies int
	for _, a := range got.Agents {
		if a.Policy != nil {
			policies++
			if a.Kind != agentRespond || a.Policy.MaxActionsPerHour != 3 || a.Policy.Host != "node-a" {
				t.Errorf("policy of %s %s: %+v", a.Kind, a.Instance, *a.Policy)
			}
		}
	}
	if policies != 1 {
		t.Errorf("%d policies read, want the responder's", policies)
	}
}

// TestUnreadablePolicyIsAProblem: a heartbeat whose policy does not decode is still listed, without a
// policy, and reported.
func TestUnreadablePolicyIsAProblem(t *testing.T) {
	url := "redis://" + miniredis.RunT(t).Addr() + "/0"
	rdb := rawClient(t, url)
	rdb.HSet(context.Background(), schema.AgentKey(agentRespond, "r1"), schema.FieldKind, agentRespond, schema.FieldInstance, "r1",
		schema.FieldAgentHost, "node-a", schema.FieldPolicy, "{not json")
	s, err := openSource(t, url).Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Agents) != 1 || s.Agents[0].Policy != nil || len(s.Problems) != 1 || !strings.Contains(s.Problems[0], "respond policy") {
		t.Errorf("agents %+v, problems %v", s.Agents, s.Problems)
	}
}

// batches collects what Follow sends.
type batches struct {
	mu  sync.Mutex
	all []EventBatch
}

func (b *batches) run(ctx context.Context, src Source) func() {
	ch := make(chan EventBatch)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = src.Follow(ctx, ch); close(done) }()
	go func() { // exits when Follow has returned
		defer wg.Done()
		for {
			select {
			case x := <-ch:
				b.mu.Lock()
				b.all = append(b.all, x)
				b.mu.Unlock()
			case <-done:
				return
			}
		}
	}()
	return wg.Wait
}

func (b *batches) events() []Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []Event
	for _, x := range b.all {
		out = append(out, x.Events...)
	}
	return out
}

func (b *batches) errs() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, x := range b.all {
		if x.Err != nil {
			n++
		}
	}
	return n
}

func types(evs []Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Type+" "+e.Container)
	}
	return out
}

func TestRedisSourceFollow(t *testing.T) {
	url := testenv.RequireRedis(t)
	f := newFixture(time.Now().UTC().Truncate(time.Millisecond))
	f.seed(t, url)
	ctx, cancel := context.WithCancel(context.Background())
	var b batches
	wait := b.run(ctx, openSource(t, url))
	defer func() { cancel(); wait() }()

	want := []string{
		"container_unhealthy web-1", "remediation_needed web-1", "remediation_complete web-1",
		"false_alarm api-1", "container_unhealthy worker-1", "container_recovered cache-1",
	}
	if !eventually(t, 5*time.Second, func() bool { return len(b.events()) == len(want) }) {
		t.Fatalf("backfill: got %v", types(b.events()))
	}
	if diff := cmp.Diff(want, types(b.events())); diff != "" {
		t.Errorf("backfill in time order (-want +got):\n%s", diff)
	}
	live, _ := event.New("monitor", "node-a", "node-a/api-1/cpu_saturated", "", &event.ContainerRecovered{ContainerID: "x", ContainerName: "api-1", Class: "cpu_saturated"})
	publish(t, url, live)
	if !eventually(t, 5*time.Second, func() bool { return len(b.events()) == len(want)+1 }) {
		t.Fatalf("live: got %v", types(b.events()))
	}
	last := b.events()[len(want)]
	if last.Type != event.TypeContainerRecovered || last.Container != "api-1" || last.Stream != event.StreamContainerRecovered {
		t.Errorf("live event: got %+v", last)
	}
	if last.Raw != mustJSON(live) {
		t.Errorf("raw: got %s, want the published envelope", last.Raw)
	}

	// A dead letter, written as pkg/bus writes it, shows with its reason.
	rdb := rawClient(t, url)
	rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: event.StreamDeadLetter, Values: []any{
		event.Field, mustJSON(live), "stream", event.StreamHealthAlert, "entry_id", "1-0", "group", "analyze",
		"reason", "handler failed 5 times: boom", "deliveries", 5,
	}})
	if !eventually(t, 5*time.Second, func() bool { return len(b.events()) == len(want)+2 }) {
		t.Fatalf("dead letter: got %v", types(b.events()))
	}
	dl := b.events()[len(want)+1]
	if dl.Type != TypeDeadLetter || dl.Container != "api-1" || !strings.Contains(dl.Raw, `"reason":"handler failed 5 times: boom"`) ||
		!strings.Contains(dl.Raw, `"event":{"id":"`+live.ID) {
		t.Errorf("dead letter: got %+v", dl)
	}
}

// TestRedisSourceFollowListFallback reads hemostat:events:all when the streams hold nothing (trimmed).
func TestRedisSourceFollowListFallback(t *testing.T) {
	url := testenv.RequireRedis(t)
	f := newFixture(time.Now().UTC())
	f.seed(t, url)
	rdb := rawClient(t, url)
	hosts, _ := rdb.SMembers(context.Background(), schema.KeyRequestHosts).Result()
	for _, s := range event.WorkStreamsWith(hosts) {
		rdb.Del(context.Background(), s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var b batches
	wait := b.run(ctx, openSource(t, url))
	defer func() { cancel(); wait() }()
	if !eventually(t, 5*time.Second, func() bool { return len(b.events()) == len(f.events) }) {
		t.Fatalf("fallback: got %v", types(b.events()))
	}
	if got := b.events()[0]; got.Type != event.TypeContainerUnhealthy || got.Container != "web-1" || got.Stream != event.StreamHealthAlert {
		t.Errorf("oldest event from the list: got %+v", got)
	}
}

// TestRedisSourceOutage stops Redis under a following source: it reports the outage, retries, and
// delivers what is published after Redis is back. Snapshot fails meanwhile with an unavailable error.
func TestRedisSourceOutage(t *testing.T) {
	srv := testenv.StartRedis(t)
	src := openSource(t, srv.URL())
	ctx, cancel := context.WithCancel(context.Background())
	var b batches
	wait := b.run(ctx, src)
	defer func() { cancel(); wait() }()
	if !eventually(t, 5*time.Second, func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.all) > 0
	}) {
		t.Fatal("no backfill batch")
	}
	srv.Stop()
	if !eventually(t, 10*time.Second, func() bool { return b.errs() > 0 }) {
		t.Fatal("the outage was not reported")
	}
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	_, err := src.Snapshot(sctx)
	scancel()
	if !conn.IsUnavailable(err) {
		t.Errorf("Snapshot during the outage: got %v, want an unavailable error", err)
	}
	srv.Start()
	ev, _ := event.New("monitor", "h", "h/c/crashed", "", &event.ContainerUnhealthy{ContainerID: "i", ContainerName: "c", Class: "crashed"})
	publish(t, srv.URL(), ev)
	if !eventually(t, 15*time.Second, func() bool { return len(b.events()) > 0 }) {
		t.Fatal("nothing delivered after Redis came back")
	}
	if diff := cmp.Diff([]string{"container_unhealthy c"}, types(b.events())); diff != "" {
		t.Errorf("after the outage (-want +got):\n%s", diff)
	}
}

func TestNewer(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"2-0", "1-0", true}, {"1-0", "2-0", false}, {"1-2", "1-1", true}, {"1-1", "1-1", false}, {"10-0", "9-5", true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s>%s", tt.a, tt.b), func(t *testing.T) {
			if got := newer(tt.a, tt.b); got != tt.want {
				t.Errorf("newer(%s, %s) = %v, want %v", tt.a, tt.b, got, tt.want)
			}
		})
	}
}

// TestRedisSourceFollowStopsPromptly: cancelling stops a follow blocked in XREAD at once, not when the
// block times out.
func TestRedisSourceFollowStopsPromptly(t *testing.T) {
	url := testenv.RequireRedis(t)
	src := openSource(t, url)
	src.block = time.Minute
	ctx, cancel := context.WithCancel(context.Background())
	var b batches
	wait := b.run(ctx, src)
	if !eventually(t, 5*time.Second, func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.all) > 0
	}) {
		t.Fatal("no backfill batch")
	}
	cancel()
	stopped := make(chan struct{})
	go func() { wait(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(2 * time.Second):
		t.Fatal("Follow still blocked 2s after cancel")
	}
}

// TestRedisSourceEmbedded runs the source against the in-process embedded store of `hemostat run`
// (miniredis with a journal), which the dashboard must read unchanged.
func TestRedisSourceEmbedded(t *testing.T) {
	emb, err := embedded.Start(embedded.Options{Kind: embedded.InProcess, Addr: "127.0.0.1:0", DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emb.Close() })
	url := embedded.URL(emb)
	now := time.Now().UTC().Truncate(time.Millisecond)
	f := newFixture(now)
	f.seed(t, url)
	src := openSource(t, url)
	got, err := src.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	opts := cmp.Options{cmpopts.IgnoreFields(Snapshot{}, "Time"), cmpopts.EquateEmpty()}
	if diff := cmp.Diff(f.snapshot(), got, opts); diff != "" {
		t.Errorf("snapshot (-want +got):\n%s", diff)
	}
	// Incremental reads use exclusive ranges.
	rdb := rawClient(t, url)
	rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: event.StreamAudit, Values: []any{"entry", mustJSON(audit.Entry{ID: "new", Time: now})}})
	if got, err = src.Snapshot(context.Background()); err != nil || len(got.Audit) != len(f.audit)+1 {
		t.Errorf("incremental: %d entries, %v; want %d", len(got.Audit), err, len(f.audit)+1)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var b batches
	wait := b.run(ctx, src)
	defer func() { cancel(); wait() }()
	if !eventually(t, 5*time.Second, func() bool { return len(b.events()) == len(f.events) }) {
		t.Fatalf("backfill: got %v", types(b.events()))
	}
	live, _ := event.New("monitor", "node-a", "node-a/api-1/crashed", "", &event.ContainerUnhealthy{ContainerID: "x", ContainerName: "api-1", Class: "crashed"})
	publish(t, url, live)
	if !eventually(t, 5*time.Second, func() bool { return len(b.events()) == len(f.events)+1 }) {
		t.Fatalf("live: got %v", types(b.events()))
	}
}

func TestRedisSourceContainerAudit(t *testing.T) {
	url := testenv.RequireRedis(t)
	f := newFixture(time.Now().UTC().Truncate(time.Millisecond))
	f.seed(t, url)
	src := openSource(t, url)
	got, err := src.ContainerAudit(context.Background(), "node-a", "worker-1", 10)
	if err != nil {
		t.Fatal(err)
	}
	var want []audit.Entry
	for i := len(f.audit) - 1; i >= 0; i-- {
		if f.audit[i].Container == "worker-1" {
			want = append(want, f.audit[i])
		}
	}
	if len(want) != 3 {
		t.Fatalf("fixture: %d worker-1 entries, want 3", len(want))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("worker-1 decisions, newest first (-want +got):\n%s", diff)
	}
}

// redisSources are the dashboard's sources over a store.
func redisSources(st *store.Store) Sources {
	return Sources{Containers: st.Containers, Ledgers: st.Ledger, Incidents: st.Incidents, Agents: st.Agents,
		Audit: st.Audit, Events: st.Notify, Streams: bus.New(st.Conn, bus.Options{})}
}
