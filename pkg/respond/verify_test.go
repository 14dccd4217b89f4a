package respond_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/respond"
	"github.com/hemostat/hemostat/pkg/respond/respondtest"
)

// lateVerdict is an engine whose healthcheck has no verdict ("starting") when the settle window ends: its
// first inspect after a start jumps the responder's clock by jump (past the window), and its third gives
// the verdict, when there is one.
type lateVerdict struct {
	*respondtest.Fake
	clk     *clock
	jump    time.Duration
	verdict string

	mu    sync.Mutex
	polls int
}

func (v *lateVerdict) ContainerState(ctx context.Context, ref string) (docker.TargetState, error) {
	st, err := v.Fake.ContainerState(ctx, ref)
	if err != nil || st.Health != "starting" {
		return st, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.polls++
	switch {
	case v.polls == 1:
		v.clk.Add(v.jump)
	case v.polls == 3 && v.verdict != "":
		v.Fake.SetHealth(ref, v.verdict)
	}
	return st, nil
}

func TestVerificationWaitsForAPendingHealthVerdict(t *testing.T) {
	t.Parallel()
	hc := &docker.Healthcheck{Test: []string{"CMD", "true"}, Interval: 20 * time.Millisecond, Timeout: 20 * time.Millisecond, Retries: 1}
	window := respond.SettleWindow(respond.Config{SettleMax: time.Minute}, hc) // 60 ms
	for _, tc := range []struct {
		name     string
		jump     time.Duration // how far past the start the clock is at the first inspect
		verdict  string
		status   string
		verified bool
		details  string
	}{
		{"healthy after the window", time.Minute, "healthy", event.StatusSuccess, true, "restarted; running and healthy"},
		{"unhealthy after the window", time.Minute, "unhealthy", event.StatusFailed, false, "running, health unhealthy"},
		// Past SettleMax (3m by default) a pending verdict is a failure, named as such.
		{"still starting at SettleMax", 4 * time.Minute, "", event.StatusFailed, false, "within 4m0s: running, health starting"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := web("web-1", nil)
			c.HealthConfig = hc
			h := newHarness(t, respond.Config{}, c)
			h.fake.StartHealth(c.ID, "starting")
			rt := &lateVerdict{Fake: h.fake, clk: h.clk, jump: tc.jump, verdict: tc.verdict}
			r := respond.New(h.cfg, rt, respondStores(h.st), h.st.Audit, h.bus, respond.Options{Instance: "r1", Now: h.clk.Now})
			out := h.process(r, request(t, "web-1", event.ActionRestart))
			if out.Status != tc.status || out.Verified != tc.verified {
				t.Errorf("status %s, verified %v (%s); want %s, verified %v (window %s)", out.Status, out.Verified, out.Details,
					tc.status, tc.verified, window)
			}
			if !strings.Contains(out.Details, tc.details) {
				t.Errorf("details %q, want %q", out.Details, tc.details)
			}
		})
	}
}
