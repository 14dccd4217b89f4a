package respond_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/respond"
	"github.com/hemostat/hemostat/pkg/respond/respondtest"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

// loopRig is a responder on the in-memory store and the fake engine, inside a synctest bubble: every
// timing is the real default, in virtual time.
type loopRig struct {
	mem  *respondtest.MemStore
	fake *respondtest.Fake
	rec  *respondtest.Recorder
	r    *respond.Responder
	t0   time.Time
	key  string
}

func newLoopRig(t *testing.T, cfg respond.Config, c docker.TargetState) *loopRig {
	t.Helper()
	mem := respondtest.NewMemStore()
	fake := respondtest.NewFake(c)
	rec := &respondtest.Recorder{Inner: fake}
	cfg.Host = host
	g := &loopRig{mem: mem, fake: fake, rec: rec, t0: time.Now(), key: event.IncidentKey(host, c.Name, event.ClassUnhealthy)}
	g.r = respond.New(cfg, rec, respond.Stores{Ledger: mem.Ledger(), Incidents: mem, Hosts: mem}, mem, mem, respond.Options{Instance: "r1"})
	mem.SetHost(schema.HostStatus{Host: host, Watched: 10})
	mem.OpenIncident(schema.Incident{Key: g.key, Detection: schema.Detection{Class: event.ClassUnhealthy, Host: host,
		Container: c.Name, ContainerID: c.ID, OpenedAt: g.t0, ConditionSince: g.t0},
		Analysis: schema.Analysis{Action: event.ActionRestart, Confidence: 0.85, Method: "rules", Reason: "healthcheck failing"}})
	return g
}

// request is the analyzer's first answer to the incident's alert.
func (g *loopRig) request(t *testing.T, c docker.TargetState) event.Envelope {
	t.Helper()
	env, err := event.New("analyze", host, g.key, "alert-1", &event.RemediationNeeded{Container: c.Name, ContainerID: c.ID,
		Action: event.ActionRestart, Reason: "healthcheck failing", Confidence: 0.85, AnalysisMethod: "rules", Class: event.ClassUnhealthy})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// restarts are the offsets of the restarts from t0, rounded to the second.
func (g *loopRig) restarts() []time.Duration {
	var out []time.Duration
	for _, c := range g.rec.Writes() {
		if c.Op == "restart" {
			out = append(out, c.At.Sub(g.t0).Round(time.Second))
		}
	}
	return out
}

// outcomes are the remediation_complete events published, as "status" or "gave_up" at their offset.
func (g *loopRig) outcomes(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, env := range g.mem.Published() {
		p, err := event.DecodeData[event.RemediationComplete](env)
		if err != nil {
			t.Fatal(err)
		}
		s := p.Result.Status
		if p.GaveUp {
			s = "gave_up"
		}
		out = append(out, s+"@"+env.Timestamp.Sub(g.t0).Round(time.Second).String())
	}
	return out
}

// TestLoopAtDefaultTimings: a container that never recovers, with the default policy (backoff 30 s
// doubling, 3 actions an hour, 1 h cool-off). The analyzer asks once; the loop does the rest: restarts
// at 0, 30 s and 1m30s, gives up at 3m30s (the 4th action would break the limit), says so once, does
// nothing during the cool-off, and resumes after it while the container still fails.
func TestLoopAtDefaultTimings(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := docker.TargetState{ID: "0123456789abcdef0123", Name: "web-1"}
		g := newLoopRig(t, respond.Config{}, c)
		g.fake.Break(c.ID, true) // every restart leaves it exited: verification fails at once
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); g.r.RunFollowUps(ctx) }()

		if _, err := g.r.Process(ctx, g.request(t, c)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(65 * time.Minute) // the first hour, and the cool-off's end
		synctest.Wait()
		want := []time.Duration{0, 30 * time.Second, 90 * time.Second, 3*time.Minute + 30*time.Second + time.Hour}
		if diff := cmp.Diff(want, g.restarts()); diff != "" {
			t.Errorf("restarts (-want +got):\n%s", diff)
		}
		wantOut := []string{"failed@0s", "failed@30s", "failed@1m30s", "gave_up@3m30s", "failed@1h3m30s"}
		if diff := cmp.Diff(wantOut, g.outcomes(t)); diff != "" {
			t.Errorf("outcomes (-want +got):\n%s", diff)
		}
		in := g.mem.Incident(g.key)
		if in.Attempts != 4 || len(in.Errors) != 4 {
			t.Errorf("incident progress: attempts %d, errors %v", in.Attempts, in.Errors)
		}
		// Resumed after the cool-off: the gave-up mark is gone, and the next look is the next backoff step
		// (step 4: 4 minutes).
		if !in.GaveUpAt.IsZero() || in.NextAt.Sub(g.t0).Round(time.Second) != time.Hour+7*time.Minute+30*time.Second {
			t.Errorf("after the cool-off: gave up at %v, next at +%s", in.GaveUpAt, in.NextAt.Sub(g.t0))
		}
		cancel()
		<-done
	})
}

// TestLoopStopsAtTheBreakerUntilReset: after it gave up, nothing happens for the whole cool-off but a
// human's reset, which makes the incident due at once.
func TestLoopStopsAtTheBreakerUntilReset(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := docker.TargetState{ID: "0123456789abcdef0123", Name: "web-1"}
		g := newLoopRig(t, respond.Config{}, c)
		g.fake.Break(c.ID, true)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); g.r.RunFollowUps(ctx) }()
		if _, err := g.r.Process(ctx, g.request(t, c)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(30 * time.Minute)
		synctest.Wait()
		if n := len(g.restarts()); n != 3 {
			t.Fatalf("restarts before the reset: %d, want 3", n)
		}
		if _, err := g.r.Reset(ctx, c.Name, "human:tester"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		// The reset is another process's write: the loop sees it at its next read, within FollowupPoll (1 s).
		got := g.restarts()
		if len(got) != 4 || got[3] < 30*time.Minute || got[3] > 30*time.Minute+time.Second {
			t.Errorf("restarts after the reset at 30m: %v, want a 4th within the poll", got)
		}
		if in := g.mem.Incident(g.key); !in.GaveUpAt.IsZero() {
			t.Errorf("the reset left the incident given up: %+v", in.Progress)
		}
		cancel()
		<-done
	})
}

// TestLoopHeldUntilTheHoldLifts: a request held because the host's only action slot is taken is looked
// at again every HoldRetry, silently, and acted on as soon as the slot frees.
func TestLoopHeldUntilTheHoldLifts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := docker.TargetState{ID: "0123456789abcdef0123", Name: "web-1"}
		g := newLoopRig(t, respond.Config{MaxConcurrent: 1}, c)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); g.r.RunFollowUps(ctx) }()
		keys := schema.RespondKeys(host, "other", false)
		if ok, _ := g.mem.AcquireSlot(ctx, keys, "someone", 1, 20*time.Second, time.Now()); !ok {
			t.Fatal("slot not taken")
		}
		out, err := g.r.Process(ctx, g.request(t, c))
		if err != nil || out.Status != event.StatusHeld || out.Next.Reason == "" {
			t.Fatalf("first request: %v %s, next %+v", err, out.Status, out.Next)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		got := g.restarts()
		// The slot expires at 20 s; the hold is looked at every 5 s: the restart follows within 5 s.
		if len(got) != 1 || got[0] < 20*time.Second || got[0] > 25*time.Second {
			t.Errorf("restarts: %v, want one between 20s and 25s", got)
		}
		if n := len(g.outcomes(t)); n != 2 {
			t.Errorf("outcomes %v: want the hold and the success, the silent re-checks in between unpublished", g.outcomes(t))
		}
		cancel()
		<-done
	})
}
