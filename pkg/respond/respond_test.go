package respond_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/audit"
	"github.com/hemostat/hemostat/pkg/bus"
	"github.com/hemostat/hemostat/pkg/conn"
	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/respond"
	"github.com/hemostat/hemostat/pkg/respond/respondtest"
	"github.com/hemostat/hemostat/pkg/store"
	"github.com/hemostat/hemostat/pkg/store/schema"
	"github.com/hemostat/hemostat/pkg/store/storetest"
	"github.com/hemostat/hemostat/pkg/testenv"
)

const host = "node-a"

// requests is the request stream of host, the one its responders read.
var requests = event.RemediationNeededStream(host)

// clock is the responder's injected time: it runs with the real clock from t, and Add jumps it ahead
// (past a backoff, a breaker's cool-off), so waits the responder measures itself (verification) still end.
type clock struct {
	mu    sync.Mutex
	t     time.Time
	since time.Time // when t was set
}

func newClock(t time.Time) *clock { return &clock{t: t, since: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t.Add(time.Since(c.since))
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t, c.since = c.t.Add(d), time.Now() // each step starts at exactly the time it names
}

// secs rounds a wait the responder computed to whole seconds: the clock runs on while it decides.
func secs(d time.Duration) time.Duration { return d.Round(time.Second) }

func eventually(t testing.TB, timeout time.Duration, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, timeout, "the condition", cond)
}

type harness struct {
	t    testing.TB
	st   *store.Store
	bus  *bus.Bus
	fake *respondtest.Fake
	rec  *respondtest.Recorder
	clk  *clock
	cfg  respond.Config
}

func fastConfig(cfg respond.Config) respond.Config {
	cfg.Host = host
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 5 * time.Millisecond
	}
	if cfg.StableFor == 0 {
		cfg.StableFor = 10 * time.Millisecond
	}
	if cfg.SettleDefault == 0 {
		cfg.SettleDefault = 500 * time.Millisecond
	}
	return cfg
}

func openStore(t testing.TB, url string) *store.Store {
	t.Helper()
	st, err := store.Open(conn.Options{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newHarness(t testing.TB, cfg respond.Config, cs ...docker.TargetState) *harness {
	t.Helper()
	st := openStore(t, testenv.RequireRedis(t))
	fake := respondtest.NewFake(cs...)
	return &harness{t: t, st: st, bus: bus.New(st.Conn, bus.Options{}), fake: fake,
		rec: &respondtest.Recorder{Inner: fake}, clk: newClock(time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)), cfg: fastConfig(cfg)}
}

func (h *harness) responder(instance string) *respond.Responder {
	return respond.New(h.cfg, h.rec, respondStores(h.st), h.st.Audit, h.bus, respond.Options{Instance: instance, Now: h.clk.Now})
}

func web(name string, labels map[string]string) docker.TargetState {
	return docker.TargetState{ID: fmt.Sprintf("%064x", len(name))[:52] + fmt.Sprintf("%012x", hash(name)), Name: name, Labels: labels}
}

func hash(s string) uint64 {
	var h uint64 = 14695981039346656037
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * 1099511628211
	}
	return h
}

func request(t testing.TB, name, action string, mod ...func(*event.RemediationNeeded)) event.Envelope {
	t.Helper()
	p := &event.RemediationNeeded{Container: name, Action: action, Reason: "exit code 1", Confidence: 0.9,
		AnalysisMethod: "rules", Class: event.ClassCrashed}
	for _, m := range mod {
		m(p)
	}
	env, err := event.New("analyze", host, event.IncidentKey(host, name, event.ClassCrashed), "alert-1", p)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func (h *harness) process(r *respond.Responder, env event.Envelope) respond.Outcome {
	h.t.Helper()
	out, err := r.Process(context.Background(), env)
	if err != nil {
		h.t.Fatalf("process %s %s: %v", env.ID, env.EventType, err)
	}
	return out
}

func (h *harness) completes() []event.RemediationComplete {
	h.t.Helper()
	entries, err := h.bus.Range(context.Background(), event.StreamRemediationComplete, "-", "+", 10000)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []event.RemediationComplete
	for _, e := range entries {
		env, err := event.Decode(e.Raw)
		if err != nil {
			h.t.Fatal(err)
		}
		p, err := event.DecodeData[event.RemediationComplete](env)
		if err != nil {
			h.t.Fatal(err)
		}
		out = append(out, *p)
	}
	return out
}

// step is one request of a sequence and what should come of it.
type step struct {
	advance time.Duration
	status  string
	code    string // the denial code that must start result.details
	retry   time.Duration
}

func (h *harness) run(r *respond.Responder, name string, steps []step) []respond.Outcome {
	h.t.Helper()
	var outs []respond.Outcome
	for i, s := range steps {
		h.clk.Add(s.advance)
		out := h.process(r, request(h.t, name, event.ActionRestart))
		outs = append(outs, out)
		if out.Status != s.status {
			h.t.Errorf("request %d: status %q (%s), want %q", i+1, out.Status, out.Details, s.status)
		}
		if s.code != "" && (len(out.Details) < len(s.code) || out.Details[:len(s.code)] != s.code) {
			h.t.Errorf("request %d: details %q, want code %q", i+1, out.Details, s.code)
		}
		if got := secs(out.Decision.RetryAfter); got != s.retry {
			h.t.Errorf("request %d: retry after %s, want %s", i+1, got, s.retry)
		}
	}
	return outs
}

func TestBackoffDoublesAndResetsAfterHealthyPeriod(t *testing.T) {
	t.Parallel()
	h := newHarness(t, respond.Config{MaxActionsPerHour: 100}, web("web-1", nil))
	r := h.responder("r1")
	h.run(r, "web-1", []step{
		{status: event.StatusSuccess},
		{advance: 10 * time.Second, status: event.StatusDenied, code: "cooldown", retry: 20 * time.Second},
		// The successes come a second after the gap ends: the clock runs while a request is handled, so a
		// request handled more slowly than the one before it would otherwise meet the gap's last instant.
		{advance: 21 * time.Second, status: event.StatusSuccess}, // gap was 30s; next gap 1m
		{advance: 59 * time.Second, status: event.StatusDenied, code: "cooldown", retry: time.Second},
		{advance: 2 * time.Second, status: event.StatusSuccess}, // next gap 2m
		{advance: time.Minute, status: event.StatusDenied, code: "cooldown", retry: time.Minute},
		{advance: 10 * time.Minute, status: event.StatusSuccess}, // healthy 11m since the last action: reset
		{advance: 31 * time.Second, status: event.StatusSuccess}, // gap back to 30s
	})
	if got := h.rec.Count("restart"); got != 5 {
		t.Errorf("restarts = %d, want 5", got)
	}
	for _, c := range h.completes() {
		if c.Result.Status == event.StatusDenied && c.RetryAfterMS <= 0 {
			t.Errorf("denied complete without retry_after_ms: %+v", c)
		}
	}
}

func TestBreakerOpensOnceAndStaysOpenUntilCooloffOrReset(t *testing.T) {
	t.Parallel()
	h := newHarness(t, respond.Config{BackoffBase: time.Second, Cooldown: time.Second}, web("web-1", nil))
	r := h.responder("r1")
	h.run(r, "web-1", []step{
		{status: event.StatusSuccess},
		{advance: time.Minute, status: event.StatusSuccess},
		{advance: time.Minute, status: event.StatusSuccess},
		{advance: time.Minute, status: event.StatusEscalated, code: "circuit_open", retry: time.Hour},
		{advance: time.Minute, status: event.StatusDenied, code: "circuit_open", retry: 59 * time.Minute},
		{advance: 30 * time.Minute, status: event.StatusDenied, code: "circuit_open", retry: 29 * time.Minute},
		// A second past the cool-off: the breaker's hour counts from the moment request 4 was decided, and
		// the clock runs while a request is handled, so request 4 handled more slowly than this one would
		// otherwise leave this one inside the hour (CI saw it once).
		{advance: 29*time.Minute + time.Second, status: event.StatusSuccess},
	})
	escalations := 0
	for _, c := range h.completes() {
		if c.Result.Status == event.StatusEscalated {
			escalations++
		}
	}
	if escalations != 1 {
		t.Errorf("escalations published = %d, want 1", escalations)
	}
	// Open it again, then a human reset closes it at once.
	h.run(r, "web-1", []step{
		{advance: time.Minute, status: event.StatusSuccess},
		{advance: time.Minute, status: event.StatusSuccess},
		{advance: time.Minute, status: event.StatusEscalated, code: "circuit_open", retry: time.Hour},
		{advance: time.Minute, status: event.StatusDenied, code: "circuit_open", retry: 59 * time.Minute},
	})
	rec, err := r.Reset(context.Background(), "web-1", "human:tester")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Actor != "human:tester" || rec.Decision != respond.DecisionReset {
		t.Errorf("reset audit entry = %+v", rec.Entry)
	}
	h.run(r, "web-1", []step{{advance: time.Second, status: event.StatusSuccess}})
}

func TestFailedVerificationCountsTowardTheBreaker(t *testing.T) {
	t.Parallel()
	c := web("web-1", nil)
	h := newHarness(t, respond.Config{BackoffBase: time.Second, Cooldown: time.Second, SettleDefault: 50 * time.Millisecond}, c)
	h.fake.Break(c.ID, true)
	r := h.responder("r1")
	outs := h.run(r, "web-1", []step{
		{status: event.StatusFailed},
		{advance: time.Minute, status: event.StatusFailed},
		{advance: time.Minute, status: event.StatusFailed},
		{advance: time.Minute, status: event.StatusEscalated, code: "circuit_open", retry: time.Hour},
	})
	if outs[0].Verified {
		t.Errorf("a failed verification reported verified")
	}
}

func TestBlastRadiusHoldsAndPagesOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t, respond.Config{}, web("web-1", nil), web("web-2", nil))
	rdb := redis.NewClient(mustParse(t, h.st))
	defer rdb.Close()
	ctx := context.Background()
	if err := h.st.Containers.WriteHost(ctx, schema.HostStatus{Host: host, Watched: 6}); err != nil {
		t.Fatal(err)
	}
	for i := range 4 { // 4 of 6 failing now: more than max(3, 50%)
		rdb.ZAdd(ctx, schema.FailingKey(host), redis.Z{Score: 1, Member: event.IncidentKey(host, fmt.Sprintf("c%d", i), event.ClassCrashed)})
	}
	// A second failing incident of the same container counts once; another host's not at all.
	rdb.ZAdd(ctx, schema.FailingKey(host), redis.Z{Score: 1, Member: event.IncidentKey(host, "c0", event.ClassCPUSaturated)})
	rdb.ZAdd(ctx, schema.FailingKey("node-b"), redis.Z{Score: 1, Member: event.IncidentKey("node-b", "x", event.ClassCrashed)})
	r := h.responder("r1")
	a := h.process(r, request(t, "web-1", event.ActionRestart))
	b := h.process(r, request(t, "web-2", event.ActionRestart))
	for _, o := range []respond.Outcome{a, b} {
		if o.Status != event.StatusHeld || o.Decision.Step != respond.StepBlastRadius {
			t.Errorf("outcome %s: %s %s, want held blast_radius", o.Request.Container, o.Status, o.Details)
		}
	}
	if !a.Published || b.Published {
		t.Errorf("published = %v, %v; want only the first hold of the period to page", a.Published, b.Published)
	}
	if n := len(h.rec.Writes()); n != 0 {
		t.Errorf("engine writes during a hold: %d", n)
	}
	recs, err := audit.NewTrail(h.st.Audit).Query(ctx, audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 {
		t.Errorf("audit entries = %d, want both holds audited", len(recs))
	}
	// Back to 3 of 6: actions resume.
	rdb.ZRem(ctx, schema.FailingKey(host), event.IncidentKey(host, "c3", event.ClassCrashed))
	if o := h.process(r, request(t, "web-1", event.ActionRestart)); o.Status != event.StatusSuccess {
		t.Errorf("after the storm: %s %s, want success", o.Status, o.Details)
	}
}

func mustParse(t testing.TB, st *store.Store) *redis.Options {
	o := st.Conn.Client().Options()
	return &redis.Options{Addr: o.Addr, DB: o.DB}
}

func TestHostConcurrencyLimit(t *testing.T) {
	t.Parallel()
	h := newHarness(t, respond.Config{MaxConcurrent: 1}, web("web-1", nil), web("web-2", nil))
	entered := make(chan struct{})
	release := make(chan struct{})
	h.rec.OnWrite = func(c respondtest.Call) {
		if c.Ref == web("web-1", nil).ID {
			close(entered)
			<-release
		}
	}
	r := h.responder("r1")
	var first respond.Outcome
	done := make(chan struct{})
	go func() {
		defer close(done)
		first, _ = r.Process(context.Background(), request(t, "web-1", event.ActionRestart))
	}()
	<-entered
	second := h.process(r, request(t, "web-2", event.ActionRestart))
	close(release)
	<-done
	if first.Status != event.StatusSuccess {
		t.Errorf("first: %s %s, want success", first.Status, first.Details)
	}
	if second.Status != event.StatusHeld || second.Decision.Step != respond.StepBlastRadius {
		t.Errorf("second while the first runs: %s %s, want held blast_radius", second.Status, second.Details)
	}
	// The slot is free again.
	if o := h.process(r, request(t, "web-2", event.ActionRestart)); o.Status != event.StatusSuccess {
		t.Errorf("second after the first: %s %s, want success", o.Status, o.Details)
	}
}

func TestProtectedContainersAreNeverTouched(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		c      docker.TargetState
		config []string
	}{
		{name: "label", c: web("api-1", map[string]string{"hemostat.protected": "true"})},
		{name: "hemostat's own label", c: web("agent-1", map[string]string{"hemostat.self": "true"})},
		{name: "hemostat's own name", c: web("hemostat-respond", nil)},
		{name: "configured list", c: web("db-1", nil), config: []string{"db-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, respond.Config{Protected: tt.config}, tt.c)
			r := h.responder("r1")
			for _, action := range []string{event.ActionRestart, event.ActionStop, event.ActionExec, event.ActionCleanup} {
				o := h.process(r, request(t, tt.c.Name, action))
				if o.Status != event.StatusDenied || o.Decision.Step != respond.StepProtected {
					t.Errorf("%s: %s %s, want denied protected", action, o.Status, o.Details)
				}
			}
			if w := h.rec.Writes(); len(w) != 0 {
				t.Errorf("engine writes on a protected container: %+v", w)
			}
		})
	}
}

func TestActionsOutsideTheAllowedSetAreDenied(t *testing.T) {
	t.Parallel()
	c := web("web-1", map[string]string{"hemostat.actions": "restart,exec", "hemostat.exec": `[["/app","-probe","http://127.0.0.1:1/"]]`})
	h := newHarness(t, respond.Config{}, c)
	h.fake.ExecResult = docker.ExecResult{Output: "password=hunter2 ok ghp_0123456789abcdefghijABCDEFGHIJ0123456789"}
	r := h.responder("r1")
	tests := []struct {
		action  string
		command []string
		want    string
	}{
		{event.ActionStop, nil, event.StatusDenied},
		{event.ActionCleanup, nil, event.StatusDenied},
		{event.ActionScale, nil, event.StatusDenied},
		{event.ActionExec, []string{"/bin/sh", "-c", "reboot"}, event.StatusDenied},
		{event.ActionExec, []string{"/app", "-probe", "http://127.0.0.1:1/"}, event.StatusSuccess},
	}
	for _, tt := range tests {
		o := h.process(r, request(t, c.Name, tt.action, func(p *event.RemediationNeeded) { p.Command = tt.command }))
		if o.Status != tt.want {
			t.Errorf("%s %v: %s %s, want %s", tt.action, tt.command, o.Status, o.Details, tt.want)
		}
		if o.Status == event.StatusSuccess && (contains(o.Details, "hunter2") || contains(o.Details, "ghp_") || !contains(o.Details, "exit 0")) {
			t.Errorf("exec details not redacted or missing the exit code: %q", o.Details)
		}
	}
	var execs [][]string
	for _, w := range h.rec.Writes() {
		execs = append(execs, w.Args)
	}
	if diff := cmp.Diff([][]string{{"/app", "-probe", "http://127.0.0.1:1/"}}, execs); diff != "" {
		t.Errorf("engine writes (-want +got):\n%s", diff)
	}
}

func contains(s, sub string) bool {
	return len(sub) == 0 || (len(s) >= len(sub) && (s[:len(sub)] == sub || contains(s[1:], sub)))
}

func TestOtherHostsRequestsAreIgnored(t *testing.T) {
	t.Parallel()
	h := newHarness(t, respond.Config{}, web("web-1", nil))
	env := request(t, "web-1", event.ActionRestart)
	env.Host = "node-b"
	o := h.process(h.responder("r1"), env)
	if !o.Ignored || len(h.rec.Calls()) != 0 || len(h.completes()) != 0 {
		t.Errorf("another host's request: ignored=%v calls=%d completes=%d", o.Ignored, len(h.rec.Calls()), len(h.completes()))
	}
}

func TestThreeRespondersPerformOneRestart(t *testing.T) {
	t.Parallel()
	h := newHarness(t, respond.Config{}, web("web-1", nil))
	env := request(t, "web-1", event.ActionRestart)
	rs := []*respond.Responder{h.responder("r1"), h.responder("r2"), h.responder("r3")}
	var wg sync.WaitGroup
	for _, r := range rs {
		wg.Go(func() { processUntilAcked(t, r, env, 5*time.Millisecond) })
	}
	wg.Wait()
	if got := h.rec.Count("restart"); got != 1 {
		t.Errorf("restarts = %d, want 1", got)
	}
	if got := len(h.completes()); got != 1 {
		t.Errorf("completes = %d, want 1", got)
	}
}

func TestKilledBetweenActionAndAckDoesNotActAgain(t *testing.T) {
	t.Parallel()
	h := newHarness(t, respond.Config{LeaseTTL: 300 * time.Millisecond}, web("web-1", nil))
	env := request(t, "web-1", event.ActionRestart)
	crash := true
	h.rec.AfterWrite = func(respondtest.Call) {
		if crash {
			crash = false
			panic("killed")
		}
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the first responder did not die")
			}
		}()
		h.responder("r1").Process(context.Background(), env)
	}()
	if got := len(h.completes()); got != 0 {
		t.Fatalf("completes after the crash = %d, want 0", got)
	}
	r2 := h.responder("r2")
	out := redeliver(t, r2, env, 5*time.Second)
	if !out.Resumed || out.Status != event.StatusSuccess || !out.Verified {
		t.Errorf("redelivery: resumed=%v %s verified=%v (%s)", out.Resumed, out.Status, out.Verified, out.Details)
	}
	if got := h.rec.Count("restart"); got != 1 {
		t.Errorf("restarts = %d, want 1", got)
	}
	// And a third delivery is a duplicate.
	if o := h.process(r2, env); !o.Duplicate {
		t.Errorf("third delivery not recognised as handled: %+v", o)
	}
}

// TestKilledBeforeTheRestartReachedTheEngineRestartsOnResume: a responder that dies after recording the
// action in the ledger and before its restart reached the engine leaves a running container that was
// never restarted; the redelivery restarts it, once, instead of waiting for a restart that never comes.
func TestKilledBeforeTheRestartReachedTheEngineRestartsOnResume(t *testing.T) {
	t.Parallel()
	t.Run("running", func(t *testing.T) { killedBeforeTheRestartReachedTheEngine(t, false) })
	// A crashed container, the restart's usual target, is not running before the restart either: that
	// is no sign that the restart reached the engine.
	t.Run("exited", func(t *testing.T) { killedBeforeTheRestartReachedTheEngine(t, true) })
}

func killedBeforeTheRestartReachedTheEngine(t *testing.T, exited bool) {
	t.Parallel()
	c := web("web-1", nil)
	h := newHarness(t, respond.Config{LeaseTTL: 300 * time.Millisecond})
	c.StartedAt = h.clk.Now().Add(-time.Hour)
	if exited {
		c.Status, c.Running, c.ExitCode = "exited", false, 1
	}
	h.fake.Add(c)
	env := request(t, "web-1", event.ActionRestart)
	crash := true
	h.rec.OnWrite = func(c respondtest.Call) {
		if crash && c.Op == "restart" {
			crash = false
			panic("killed") // before the call reaches the engine
		}
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the first responder did not die")
			}
		}()
		h.responder("r1").Process(context.Background(), env)
	}()
	h.clk.Add(time.Minute) // the lease expired, and any restart the engine was carrying out would show by now
	r2 := h.responder("r2")
	out := redeliver(t, r2, env, 5*time.Second)
	if !out.Resumed || out.Status != event.StatusSuccess || !out.Verified || !strings.Contains(out.Details, "restarted now") {
		t.Errorf("redelivery: resumed=%v %s verified=%v (%s)", out.Resumed, out.Status, out.Verified, out.Details)
	}
	st, err := h.fake.ContainerState(context.Background(), c.ID)
	if err != nil || st.RestartCount != 1 {
		t.Errorf("restarts that reached the engine = %d (%v), want 1", st.RestartCount, err)
	}
}

// TestRedeliveryAfterALostDoneMarkAuditsOnce: a Redis failover can lose the done mark written after the
// audit entry (asynchronous replication); the redelivered request is reported again but audited once.
func TestRedeliveryAfterALostDoneMarkAuditsOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t, respond.Config{}, web("web-1", nil))
	ctx := context.Background()
	env := request(t, "web-1", event.ActionRestart)
	r := h.responder("r1")
	first := h.process(r, env)
	if err := h.st.Conn.Client().Del(ctx, schema.DoneKey(env.ID)).Err(); err != nil {
		t.Fatal(err)
	}
	again := h.process(h.responder("r2"), env)
	if again.Duplicate || again.Audit != first.Audit {
		t.Errorf("redelivery: duplicate=%v audit %s, want reported again with the first's entry %s", again.Duplicate, again.Audit, first.Audit)
	}
	recs, err := audit.NewTrail(h.st.Audit).Query(ctx, audit.Filter{Target: event.Target(host, "web-1")})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 {
		t.Errorf("audit entries = %d, want 1", len(recs))
	}
	if n := h.rec.Count("restart"); n != 1 {
		t.Errorf("restarts = %d, want 1", n)
	}
	if o := h.process(r, env); !o.Duplicate {
		t.Errorf("third delivery not recognised as handled: %+v", o)
	}
}

func TestRedisDownDoesNothing(t *testing.T) {
	t.Parallel()
	srv := testenv.StartRedis(t)
	st := openStore(t, srv.URL())
	fake := respondtest.NewFake(web("web-1", nil))
	rec := &respondtest.Recorder{Inner: fake}
	r := respond.New(fastConfig(respond.Config{}), rec, respondStores(st), st.Audit, bus.New(st.Conn, bus.Options{}), respond.Options{})
	srv.Stop()
	env := request(t, "web-1", event.ActionRestart)
	_, err := r.Process(context.Background(), env)
	if !errors.Is(err, bus.ErrSkipAck) {
		t.Errorf("Process with Redis down: %v, want an error wrapping bus.ErrSkipAck", err)
	}
	if w := rec.Writes(); len(w) != 0 {
		t.Errorf("engine writes with Redis down: %+v", w)
	}
	srv.Start()
	eventually(t, 5*time.Second, func() bool { return st.Conn.Ping(context.Background()) == nil })
	o, err := r.Process(context.Background(), env)
	if err != nil || o.Status != event.StatusSuccess {
		t.Errorf("after Redis came back: %v %s", err, o.Status)
	}
}

func TestDryRunMakesNoWritesAndPredictsTheRealRun(t *testing.T) {
	t.Parallel()
	cfg := respond.Config{BackoffBase: 30 * time.Second}
	real := newHarness(t, cfg, web("web-1", nil))
	cfg.DryRun = true
	dry := newHarness(t, cfg, web("web-1", nil))
	label := newHarness(t, respond.Config{}, web("web-1", map[string]string{"hemostat.mode": "suggest"}))
	rr, dr, lr := real.responder("real"), dry.responder("dry"), label.responder("label")
	advances := []time.Duration{0, 10 * time.Second, 25 * time.Second, 40 * time.Second, 2 * time.Minute, time.Minute, 30 * time.Minute, time.Minute, time.Minute, time.Minute, time.Minute}
	for i, adv := range advances {
		real.clk.Add(adv)
		dry.clk.Add(adv)
		label.clk.Add(adv)
		env := request(t, "web-1", event.ActionRestart)
		a, b, c := real.process(rr, env), dry.process(dr, env), label.process(lr, env)
		want := a.Status
		if want == event.StatusSuccess {
			want = event.StatusDryRun
		}
		// The waits agree to within a second: each harness's clock also runs while the ones before it
		// handle the request (the real run verifies its restart), by a different amount each step.
		if b.Status != want || c.Status != want || (a.Decision.RetryAfter-b.Decision.RetryAfter).Abs() >= time.Second {
			t.Errorf("request %d: real %s (%s, retry %s), dry-run %s (%s, retry %s), suggest %s (%s)", i+1, a.Status, a.Details,
				a.Decision.RetryAfter, b.Status, b.Details, b.Decision.RetryAfter, c.Status, c.Details)
		}
		if !b.DryRun || !c.DryRun {
			t.Errorf("request %d: dry_run flag not set", i+1)
		}
	}
	for name, h := range map[string]*harness{"--dry-run": dry, "mode suggest": label} {
		if w := h.rec.Writes(); len(w) != 0 {
			t.Errorf("%s made engine writes: %+v", name, w)
		}
		l, found, err := h.st.Ledger.Get(context.Background(), schema.RespondKeys(host, "web-1", false).Ledger)
		if err != nil {
			t.Fatal(err)
		}
		if found {
			t.Errorf("%s wrote the real ledger: %+v", name, l)
		}
	}
	if real.rec.Count("restart") == 0 {
		t.Errorf("the real run never restarted: the comparison proves nothing")
	}
}

func TestAuditTrailRecordsEveryDecisionAndVerifies(t *testing.T) {
	t.Parallel()
	h := newHarness(t, respond.Config{}, web("web-1", nil), web("web-2", map[string]string{"hemostat.protected": "true"}))
	r := h.responder("r1")
	h.process(r, request(t, "web-1", event.ActionRestart))
	h.process(r, request(t, "web-1", event.ActionRestart)) // cooldown
	h.process(r, request(t, "web-2", event.ActionRestart)) // protected
	h.process(r, request(t, "gone-1", event.ActionRestart))
	h.process(r, request(t, "web-1", event.ActionNone, func(p *event.RemediationNeeded) {
		p.ProposedAction, p.AnalysisMethod, p.Reason = event.ActionStop, "llm:openai:m", "LLM proposed stop: a human decides"
	}))
	ctx := context.Background()
	trail := audit.NewTrail(h.st.Audit)
	recs, err := trail.Query(ctx, audit.Filter{Target: event.Target(host, "web-1")})
	if err != nil {
		t.Fatal(err)
	}
	var got [][2]string
	for _, r := range recs {
		got = append(got, [2]string{r.Decision, r.Result})
	}
	want := [][2]string{{"executed", "success"}, {"denied", "denied"}, {"escalated", "escalated"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("web-1 audit (-want +got):\n%s", diff)
	}
	// The model's refused proposal is kept with the escalation, for the human who decides.
	if esc := recs[len(recs)-1]; esc.ProposedAction != "stop" || esc.Actor != "llm:openai:m" || esc.Reason != "LLM proposed stop: a human decides" {
		t.Errorf("escalation audited as %+v, want the proposal stop by the llm", esc)
	}
	rep, err := trail.Verify(ctx)
	if err != nil || rep.Break != nil || rep.Entries != 5 {
		t.Errorf("verify: %v, %+v", err, rep)
	}
}

// A request for node-b travels on node-b's stream and is never delivered to node-a's responder: node-a's
// group does not even exist on node-b's stream, node-a ignores nothing (it is given nothing of node-b's),
// and each request is carried out on its own host's engine only.
func TestRunReadsOnlyItsHostsStream(t *testing.T) {
	t.Parallel()
	h := newHarness(t, respond.Config{}, web("web-1", nil))
	b := bus.New(h.st.Conn, bus.Options{Block: 50 * time.Millisecond})
	r := h.responder("r1")
	ocfg := h.cfg
	ocfg.Host = "node-b"
	otherEngine := &respondtest.Recorder{Inner: respondtest.NewFake(web("web-1", nil))}
	other := respond.New(ocfg, otherEngine, respondStores(h.st), h.st.Audit, b, respond.Options{Instance: "b1"})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = r.Run(ctx, b) })     // exits when ctx is cancelled
	wg.Go(func() { _ = other.Run(ctx, b) }) // node-b's responder, its own group on its own stream
	defer func() { cancel(); wg.Wait() }()
	mine := request(t, "web-1", event.ActionRestart)
	theirs := request(t, "web-1", event.ActionRestart)
	theirs.Host = "node-b"
	for _, env := range []event.Envelope{mine, theirs} {
		stream, err := event.StreamFor(env.EventType, env.Host)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Publish(ctx, stream, env); err != nil {
			t.Fatal(err)
		}
	}
	theirStream := event.RemediationNeededStream("node-b")
	eventually(t, 5*time.Second, func() bool {
		pa, _ := b.Pending(ctx, requests, respond.Group(host))
		pb, _ := b.Pending(ctx, theirStream, respond.Group("node-b"))
		return len(h.completes()) == 2 && pa == 0 && pb == 0
	})
	if got := r.Stats().Ignored.Load() + other.Stats().Ignored.Load(); got != 0 {
		t.Errorf("the responders were given %d requests of another host", got)
	}
	if got := h.rec.Count("restart"); got != 1 {
		t.Errorf("node-a's engine restarted %d times, want 1 (its own request)", got)
	}
	if got := otherEngine.Count("restart"); got != 1 {
		t.Errorf("node-b's engine restarted %d times, want 1 (its own request)", got)
	}
	for stream, want := range map[string]string{requests: respond.Group(host), theirStream: respond.Group("node-b")} {
		gs, err := b.Groups(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		if len(gs) != 1 || gs[0].Name != want {
			t.Errorf("groups on %s = %+v, want only %s", stream, gs, want)
		}
	}
	hosts, err := b.RequestHosts(ctx)
	if err != nil || !slices.Contains(hosts, host) || !slices.Contains(hosts, "node-b") {
		t.Errorf("request hosts = %v, %v; want both hosts registered", hosts, err)
	}
}

// After the upgrade, a responder drains once what its group left on the legacy stream every host read:
// its host's requests are carried out, another host's are acked unread, and another host's group there is
// left alone.
func TestRunDrainsTheLegacyStreamOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t, respond.Config{}, web("web-1", nil))
	b := bus.New(h.st.Conn, bus.Options{Block: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	rdb := h.st.Conn.Client()
	for _, g := range []string{respond.Group(host), respond.Group("node-b")} { // as the groups were before
		if err := rdb.XGroupCreateMkStream(ctx, event.StreamRemediationNeeded, g, "0").Err(); err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
			t.Fatal(err)
		}
	}
	mine := request(t, "web-1", event.ActionRestart)
	theirs := request(t, "web-1", event.ActionRestart)
	theirs.Host = "node-b"
	for _, env := range []event.Envelope{mine, theirs} {
		if _, err := b.Publish(ctx, event.StreamRemediationNeeded, env); err != nil {
			t.Fatal(err)
		}
	}
	r := h.responder("r1")
	var wg sync.WaitGroup
	wg.Go(func() { _ = r.Run(ctx, b) }) // exits when ctx is cancelled
	defer func() { cancel(); wg.Wait() }()
	lagOf := func(g string) (pending, lag int64) {
		gs, _ := b.Groups(ctx, event.StreamRemediationNeeded)
		for _, x := range gs {
			if x.Name == g {
				return x.Pending, x.Lag
			}
		}
		return -1, -1
	}
	eventually(t, 5*time.Second, func() bool {
		p, l := lagOf(respond.Group(host))
		return len(h.completes()) == 1 && p == 0 && l == 0
	})
	if got := h.rec.Count("restart"); got != 1 {
		t.Errorf("restarts = %d, want 1 (node-a's legacy request)", got)
	}
	if got := r.Stats().Ignored.Load(); got != 1 {
		t.Errorf("ignored %d legacy requests, want 1 (node-b's)", got)
	}
	entries, err := b.Range(ctx, event.StreamRemediationComplete, "-", "+", 10)
	if err != nil || len(entries) != 1 {
		t.Fatalf("remediation_complete: %d entries, %v", len(entries), err)
	}
	if env, err := event.Decode(entries[0].Raw); err != nil || env.CausationID != mine.ID || env.Host != host {
		t.Errorf("completed %+v (%v), want node-a's request %s", env, err, mine.ID)
	}
	if p, l := lagOf(respond.Group("node-b")); p != 0 || l != 2 {
		t.Errorf("node-b's legacy group: pending %d, lag %d; want both requests still unread by it", p, l)
	}
}

// An idle responder's consumers share their polling: one blocking read per bus Block and one read of the
// follow-up schedule per FollowupPoll (before: a read per consumer per Block and two schedule reads).
func TestIdleResponderRoundTrips(t *testing.T) {
	t.Parallel()
	st := openStore(t, testenv.RequireRedis(t))
	var mu sync.Mutex
	counts := map[string]int{}
	st.Conn.Client().AddHook(storetest.OnCommand(func(c redis.Cmder) {
		mu.Lock()
		counts[c.Name()]++
		mu.Unlock()
	}))
	snapshot := func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(counts)
	}
	b := bus.New(st.Conn, bus.Options{Block: time.Second})
	r := respond.New(fastConfig(respond.Config{FollowupPoll: time.Second}), respondtest.NewFake(), respondStores(st), st.Audit, b,
		respond.Options{Instance: "idle", Workers: 4})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = r.Run(ctx, b) }) // exits when ctx is cancelled
	defer func() { cancel(); wg.Wait() }()
	// Started: the legacy drain's read, the first blocking read and the next went out, so every consumer
	// has run its start (its own pending entries, the first reclaim, its connection).
	eventually(t, 5*time.Second, func() bool { return snapshot()["xreadgroup"] >= 3 })
	before := snapshot()
	const window = 4 * time.Second
	time.Sleep(window) // the measurement's window, not a synchronisation
	after := snapshot()
	total := 0
	per := map[string]int{}
	for name, n := range after {
		if d := n - before[name]; d > 0 {
			per[name] = d
			total += d
		}
	}
	t.Logf("idle responder, %s: %d commands %v", window, total, per)
	// 4 s: 4 blocking reads and 4 schedule reads, give or take one at each edge, and at most one reclaim.
	const maxPerSecond = 2.75
	if limit := int(maxPerSecond * window.Seconds()); total > limit {
		t.Errorf("idle responder sent %d commands in %s (%v), want at most %d (%.2f a second)", total, window, per, limit, maxPerSecond)
	}
	if per["xreadgroup"] > 5 || per["xreadgroup"] < 3 {
		t.Errorf("blocking reads in %s = %d, want about one a second (%v)", window, per["xreadgroup"], per)
	}
}

func TestComposeReplacementIsFollowedAndStrangersAreNot(t *testing.T) {
	t.Parallel()
	compose := map[string]string{"com.docker.compose.project": "shop", "com.docker.compose.service": "web"}
	tests := []struct {
		name   string
		now    docker.TargetState
		status string
	}{
		{"recreated by compose under a new id", docker.TargetState{ID: "new0000000000000000000000000000000000000000000000000000000000000", Name: "shop-web-1", Labels: compose}, event.StatusSuccess},
		{"another container took the name", docker.TargetState{ID: "new0000000000000000000000000000000000000000000000000000000000000", Name: "shop-web-1"}, event.StatusSkipped},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, respond.Config{}, tt.now)
			o := h.process(h.responder("r1"), request(t, "shop-web-1", event.ActionRestart, func(p *event.RemediationNeeded) {
				p.ContainerID = "old0000000000000000000000000000000000000000000000000000000000000"
			}))
			if o.Status != tt.status {
				t.Errorf("status %s (%s), want %s", o.Status, o.Details, tt.status)
			}
			if tt.status == event.StatusSkipped && len(h.rec.Writes()) != 0 {
				t.Errorf("a stranger was touched")
			}
		})
	}
}

func TestLabelsTuneTheBreaker(t *testing.T) {
	t.Parallel()
	h := newHarness(t, respond.Config{BackoffBase: time.Second, Cooldown: time.Second},
		web("web-1", map[string]string{respond.LabelMaxActionsPerHour: "1", respond.LabelBreakerCooloff: "10m"}))
	r := h.responder("r1")
	h.run(r, "web-1", []step{
		{status: event.StatusSuccess},
		{advance: time.Minute, status: event.StatusEscalated, code: "circuit_open", retry: 10 * time.Minute},
		{advance: 10*time.Minute + time.Second, status: event.StatusSuccess}, // a second past the cooloff: the clock runs while a request is handled
	})
}

func TestLongActionKeepsItsRequestFromBeingReclaimed(t *testing.T) {
	t.Parallel()
	// The restart outlasts two claim-idle periods (a reclaim each, then the dead letter) several times over;
	// the lease renewals, every LeaseTTL/3, have a claim-idle period of 6 of them to land in.
	h := newHarness(t, respond.Config{LeaseTTL: 300 * time.Millisecond}, web("web-1", nil))
	b := bus.New(h.st.Conn, bus.Options{Block: 20 * time.Millisecond, Batch: 1, ClaimIdle: 600 * time.Millisecond,
		MaxDeliveries: 2, RetryDelay: 50 * time.Millisecond})
	h.rec.OnWrite = func(respondtest.Call) { time.Sleep(3 * time.Second) } // a slow restart
	r1 := respond.New(h.cfg, h.rec, respondStores(h.st), h.st.Audit, b, respond.Options{Instance: "r1", Workers: 2, Now: h.clk.Now})
	r2 := respond.New(h.cfg, h.rec, respondStores(h.st), h.st.Audit, b, respond.Options{Instance: "r2", Workers: 2, Now: h.clk.Now})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = r1.Run(ctx, b) }) // exits when ctx is cancelled
	wg.Go(func() { _ = r2.Run(ctx, b) })
	defer func() { cancel(); wg.Wait() }()
	if _, err := b.Publish(ctx, requests, request(t, "web-1", event.ActionRestart)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() bool {
		p, _ := b.Pending(ctx, requests, respond.Group(host))
		return len(h.completes()) == 1 && p == 0
	})
	if n, _ := b.Len(ctx, event.StreamDeadLetter); n != 0 {
		t.Errorf("the request was dead-lettered while it was being acted on")
	}
	if got := h.rec.Count("restart"); got != 1 {
		t.Errorf("restarts = %d, want 1", got)
	}
}

// redeliver offers env to r again until r stops deferring it (bus.ErrSkipAck), as the bus would, and
// returns the outcome.
func redeliver(t testing.TB, r *respond.Responder, env event.Envelope, timeout time.Duration) respond.Outcome {
	t.Helper()
	var out respond.Outcome
	eventually(t, timeout, func() bool {
		var err error
		out, err = r.Process(context.Background(), env)
		if err != nil && !errors.Is(err, bus.ErrSkipAck) {
			t.Fatalf("redelivery: %v", err)
		}
		return err == nil
	})
	return out
}

// processUntilAcked keeps offering the request to r until it is acked, retrying after pause while r
// defers it (bus.ErrSkipAck), as a consumer would.
func processUntilAcked(t *testing.T, r *respond.Responder, env event.Envelope, pause time.Duration) {
	for {
		_, err := r.Process(context.Background(), env)
		if err == nil {
			return
		}
		if !errors.Is(err, bus.ErrSkipAck) {
			t.Errorf("process: %v", err)
			return
		}
		time.Sleep(pause)
	}
}

// respondStores is the responder's view of a store.
func respondStores(st *store.Store) respond.Stores {
	return respond.Stores{Ledger: st.Ledger, Incidents: st.Incidents, Hosts: st.Containers}
}
