package respond_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hemostat/hemostat/pkg/agent"
	"github.com/hemostat/hemostat/pkg/audit"
	"github.com/hemostat/hemostat/pkg/bus"
	"github.com/hemostat/hemostat/pkg/conn"
	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/respond"
	"github.com/hemostat/hemostat/pkg/respond/respondtest"
	"github.com/hemostat/hemostat/pkg/store"
	"github.com/hemostat/hemostat/pkg/testenv"
)

// TestSentinelFailoverMidStream: a real master, a replica and three redis-sentinel processes. Requests
// for 40 containers are published through the bus, one every 40 ms, to a responder running as an agent
// (heartbeats) through the sentinels; a consumer of remediation_complete stands in for the alert agent.
// The master is killed (-9) once a quarter of the containers were restarted. Required: every request is
// handled (none lost), every container restarted exactly once (none twice for one request), the audit
// chain verifies on the promoted replica, and the responder, its heartbeat and the completion consumer
// carry on by themselves.
func TestSentinelFailoverMidStream(t *testing.T) {
	const n = 40
	set := testenv.StartSentinelSet(t, "hemostat-failover", "pw")
	c, err := conn.Open(conn.Options{URL: "redis://127.0.0.1:1/0", Password: "pw", Sentinels: set.Addrs(), MasterName: set.Name, PoolSize: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st := store.New(c)
	var logs testenv.SyncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	// Timings scaled down together: a request a responder left mid-report is deferred until its lease and
	// report claim expire (LeaseTTL, 2 x LeaseTTL), and must not run out of deliveries meanwhile, as the
	// defaults (30s x 5 deliveries against 15s and 30s) ensure.
	b := bus.New(c, bus.Options{Block: 50 * time.Millisecond, ClaimIdle: time.Second, MaxDeliveries: 30, Logger: logger})

	var cs []docker.TargetState
	for i := range n {
		cs = append(cs, web(fmt.Sprintf("web-%02d", i), nil))
	}
	fake := respondtest.NewFake(cs...)
	rec := &respondtest.Recorder{Inner: fake}
	cfg := fastConfig(respond.Config{MaxConcurrent: n, MaxUnhealthy: 2 * n, LeaseTTL: 2 * time.Second})
	r := respond.New(cfg, rec, respondStores(st), st.Audit, b, respond.Options{Instance: "r1", Logger: logger})

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	// The responder, as `hemostat respond` runs it: until ctx is cancelled.
	wg.Go(func() {
		_ = agent.Run(ctx, agent.Options{Kind: "respond", Instance: "r1", Interval: 200 * time.Millisecond, Logger: logger},
			st.Agents, func(ctx context.Context) error { return r.Run(ctx, b) })
	})
	// The alert agent's part: every remediation_complete, by request; it runs until ctx is cancelled.
	var mu sync.Mutex
	completed := map[string]int{}
	wg.Go(func() {
		_ = b.Consume(ctx, bus.Group{Name: "test-alert", Consumer: "a1", Streams: []string{event.StreamRemediationComplete}},
			func(_ context.Context, m bus.Message) error {
				mu.Lock()
				completed[m.Envelope.CausationID]++
				mu.Unlock()
				return nil
			})
	})

	// The analyzer's part: publish each request, retrying the same envelope (the same event id, which the
	// responder's done key makes idempotent) until Redis accepts it.
	published := make([]event.Envelope, n)
	wg.Go(func() {
		tick := time.NewTicker(40 * time.Millisecond)
		defer tick.Stop()
		for i := range n {
			env := request(t, cs[i].Name, event.ActionRestart)
			published[i] = env
			for {
				pctx, pcancel := context.WithTimeout(ctx, time.Second)
				_, err := b.Publish(pctx, requests, env)
				pcancel()
				if err == nil || ctx.Err() != nil {
					break
				}
				select {
				case <-ctx.Done():
				case <-tick.C:
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})

	testenv.Eventually(t, 30*time.Second, "a quarter of the containers restarted", func() bool { return rec.Count("restart") >= n/4 })
	if info, err := c.ServerInfo(ctx, "replication"); err == nil {
		t.Logf("before the kill: master_repl_offset %s, %s", info["master_repl_offset"], info["slave0"])
	}
	set.Master.Stop() // kill -9, mid-stream
	killedAt, restartsBefore := time.Now(), rec.Count("restart")
	t.Logf("master killed after %d restarts", restartsBefore)

	restarted := func() map[string]int {
		out := map[string]int{}
		for _, w := range rec.Writes() {
			if w.Op == "restart" {
				out[w.Ref]++
			}
		}
		return out
	}
	// Requests acted on after the kill were reported to the new master: their outcomes cannot be lost.
	// Those reported before it may be missing there: the writes the old master acknowledged but had not
	// yet replicated (docs/architecture.md, section 9).
	afterKill := func() map[string]bool {
		ids := map[string]bool{}
		for _, w := range rec.Writes() {
			if w.Op == "restart" && w.At.After(killedAt) {
				ids[w.Ref] = true
			}
		}
		return ids
	}
	byContainer := map[string]event.Envelope{}
	outcomesAfterKill := func() bool {
		mu.Lock()
		defer mu.Unlock()
		for i, env := range published {
			if env.ID != "" && afterKill()[cs[i].ID] && completed[env.ID] == 0 {
				return false
			}
		}
		return true
	}
	all := testenv.Poll(60*time.Second, func() bool { return len(restarted()) == n && outcomesAfterKill() })
	if !all {
		pending, _ := b.Pending(ctx, requests, respond.Group(host))
		t.Fatalf("after 60s: %d of %d containers restarted, %d pending; stats %+v\nlog:\n%s",
			len(restarted()), n, pending, r.Stats(), tail(logs.String(), 60))
	}
	t.Logf("all %d handled %s after the kill; %d restarts after it", n, time.Since(killedAt).Round(time.Millisecond), len(afterKill()))

	// None lost, none twice.
	got := restarted()
	for i, ct := range cs {
		byContainer[ct.ID] = published[i]
		if got[ct.ID] != 1 {
			t.Errorf("%s restarted %d times, want 1", ct.Name, got[ct.ID])
		}
	}

	// The audit trail, now on the promoted replica: one entry per request acted on after the kill, at
	// most one for the others, and the chain verifies.
	trail := audit.NewTrail(st.Audit)
	per := map[string]int{}
	entries := map[string][]string{} // request id -> its entries' decisions, for the failure message
	for _, ct := range cs {
		recs, err := trail.Query(ctx, audit.Filter{Target: event.Target(host, ct.Name)})
		if err != nil {
			t.Fatal(err)
		}
		for _, rc := range recs {
			per[rc.CausationID]++
			entries[rc.CausationID] = append(entries[rc.CausationID], fmt.Sprintf("#%d %s/%s %s", rc.Seq, rc.Decision, rc.Result, rc.Details))
		}
	}
	lostAudit, lostOutcomes := 0, 0
	mu.Lock()
	for id, env := range byContainer {
		switch {
		case afterKill()[id] && (per[env.ID] != 1 || completed[env.ID] == 0):
			t.Errorf("request %s, acted on after the kill: %d audit entries %v, %d outcomes; want 1 and 1+", env.ID, per[env.ID], entries[env.ID], completed[env.ID])
		case per[env.ID] > 1:
			t.Errorf("request %s has %d audit entries: %v", env.ID, per[env.ID], entries[env.ID])
		}
		if per[env.ID] == 0 {
			lostAudit++
		}
		if completed[env.ID] == 0 {
			lostOutcomes++
		}
	}
	mu.Unlock()
	t.Logf("lost in the failover's window (acknowledged by the old master, not replicated): %d audit entries, %d outcome events", lostAudit, lostOutcomes)
	rep, err := trail.Verify(ctx)
	if err != nil || rep.Break != nil || rep.Entries < int64(len(afterKill())) {
		t.Errorf("audit verify after the failover: %v, %+v", err, rep)
	}

	// Every agent carried on by itself: the responder's heartbeat is on the new master, written after the
	// kill, and the bus said it lost and found Redis again.
	testenv.Eventually(t, 5*time.Second, "the responder's heartbeat on the new master", func() bool {
		agents, _, err := st.Agents.List(ctx)
		if err != nil {
			return false
		}
		for _, a := range agents {
			if a.Kind == "respond" && a.Instance == "r1" && a.LastHeartbeat.After(killedAt) {
				return true
			}
		}
		return false
	})
	if info, err := c.ServerInfo(ctx, "server"); err != nil || info["tcp_port"] == fmt.Sprint(set.Master.Port) {
		t.Errorf("still on the old master? %v %v", info["tcp_port"], err)
	}
	if s := logs.String(); !strings.Contains(s, "redis lost") || !strings.Contains(s, "redis back") {
		t.Errorf("the consumers did not log losing and finding Redis:\n%s", tail(s, 40))
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		t.Fatal("cancelled early")
	}
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	return strings.Join(l[max(0, len(l)-lines):], "\n")
}
