package respond_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hemostat/hemostat/pkg/audit"
	"github.com/hemostat/hemostat/pkg/bus"
	"github.com/hemostat/hemostat/pkg/conn"
	"github.com/hemostat/hemostat/pkg/container"
	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/respond"
	"github.com/hemostat/hemostat/pkg/store"
)

// batchFleet is a host where every step of the decision sequence has a container to stop at.
func batchFleet() []docker.TargetState {
	return []docker.TargetState{
		web("web-1", nil), // acted on before the batch: the batch's request meets the backoff
		web("web-2", nil), // fresh: acts (the one-request path, behind the batch)
		web("dry-1", map[string]string{container.LabelMode: container.ModeSuggest}),
		web("prot-1", map[string]string{container.LabelProtected: "true"}),
		web("esc-1", nil),
	}
}

// batchRequests are the requests of one read: every kind of decision, a second request for a container
// already in the read, and a request of another host.
func batchRequests(t *testing.T) []bus.Message {
	envs := []event.Envelope{
		request(t, "web-1", event.ActionRestart),
		request(t, "web-2", event.ActionRestart),
		request(t, "dry-1", event.ActionRestart),
		request(t, "prot-1", event.ActionRestart),
		request(t, "esc-1", event.ActionNone),
		request(t, "gone-1", event.ActionRestart),
		request(t, "dry-1", event.ActionRestart), // the shadow ledger's backoff, after the first one
		request(t, "web-1", event.ActionStop),    // the backoff counts every action on the container
	}
	other := request(t, "web-1", event.ActionRestart)
	other.Host = "node-b"
	envs = append(envs, other)
	ms := make([]bus.Message, len(envs))
	for i, env := range envs {
		ms[i] = bus.Message{Stream: requests, ID: fmt.Sprintf("%d-0", i+1), Envelope: env, Deliveries: 1}
	}
	return ms
}

// verdicts are what the requests came to, as the outcome stream tells it: "container action status code",
// sorted (the batch path reports the requests it decides before those of the one-request path).
func verdicts(h *harness) []string {
	var out []string
	for _, c := range h.completes() {
		code, _, _ := strings.Cut(c.Result.Details, ":")
		if c.Result.Status == event.StatusSuccess {
			code = "" // the verification's details carry timings
		}
		out = append(out, strings.Join([]string{c.Container, c.Action, c.Result.Status, code}, " "))
	}
	slices.Sort(out)
	return out
}

// TestBatchPathDecidesLikeTheOneRequestPath runs the same requests through ProcessBatch on one host and
// one at a time through Process on another, from the same state, and compares every outcome, the engine
// calls and the audit trail.
func TestBatchPathDecidesLikeTheOneRequestPath(t *testing.T) {
	t.Parallel()
	one := newHarness(t, respond.Config{}, batchFleet()...)
	many := newHarness(t, respond.Config{}, batchFleet()...)
	r1, rn := one.responder("one"), many.responder("many")
	ctx := context.Background()
	for _, h := range []*harness{one, many} { // the earlier action on web-1
		h.process(h.responder("before"), request(t, "web-1", event.ActionRestart))
		h.clk.Add(5 * time.Second)
	}
	ms := batchRequests(t)
	for _, m := range ms {
		if _, err := r1.Process(ctx, m.Envelope); err != nil {
			t.Fatalf("one-request path: %s: %v", m.Envelope.ID, err)
		}
	}
	errs := rn.ProcessBatch(ctx, ms)
	for i, err := range errs {
		if err != nil {
			t.Errorf("batch path: request %d: %v", i+1, err)
		}
	}

	got := verdicts(many)
	if diff := cmp.Diff(verdicts(one), got); diff != "" {
		t.Errorf("batch path against one-request path (-one +batch):\n%s", diff)
	}
	want := []string{ // the earlier action, then this host's 8 requests
		"dry-1 restart denied cooldown", "dry-1 restart dry_run dry run", "esc-1 none escalated no automatic action",
		"gone-1 restart skipped gone", "prot-1 restart denied protected", "web-1 restart denied cooldown",
		"web-1 restart success ", "web-1 stop denied cooldown", "web-2 restart success ",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
	// The batch path reports what needs no engine first, in one go; the action on web-2 and the second
	// requests for web-1 and dry-1 follow on the one-request path.
	var order []string
	for _, c := range many.completes()[1:] {
		order = append(order, c.Container+" "+c.Action)
	}
	first := slices.Sorted(slices.Values(order[:5]))
	if !slices.Equal(first, []string{"dry-1 restart", "esc-1 none", "gone-1 restart", "prot-1 restart", "web-1 restart"}) {
		t.Errorf("first five outcomes %v: not the batch path's", first)
	}
	if a, b := one.rec.Count("restart"), many.rec.Count("restart"); a != 2 || b != 2 {
		t.Errorf("restarts: %d one at a time, %d by batch, want 2 each (the earlier one and web-2)", a, b)
	}
	if s := rn.Stats(); s.Ignored.Load() != 1 || s.Handled.Load() != 8 {
		t.Errorf("batch stats: ignored %d, handled %d; want 1 and 8", s.Ignored.Load(), s.Handled.Load())
	}
	rep, err := audit.NewTrail(many.st.Audit).Verify(ctx)
	if err != nil || rep.Break != nil || rep.Entries != 9 {
		t.Errorf("audit trail: %d entries, break %v, err %v; want 9, whole", rep.Entries, rep.Break, err)
	}
}

// TestBatchRedeliveryRepeatsNothing delivers a handled read again: every request is acked as already
// handled, and nothing is acted, audited or published twice.
func TestBatchRedeliveryRepeatsNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, respond.Config{}, batchFleet()...)
	r := h.responder("r1")
	ctx := context.Background()
	ms := batchRequests(t)
	for i, err := range r.ProcessBatch(ctx, ms) {
		if err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
	}
	published, restarts := len(h.completes()), h.rec.Count("restart")
	head, err := h.st.Audit.ReadHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, err := range r.ProcessBatch(ctx, ms) {
		if err != nil {
			t.Errorf("redelivered request %d: %v", i+1, err)
		}
	}
	again, err := h.st.Audit.ReadHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(h.completes()); n != published {
		t.Errorf("redelivery published %d more outcomes", n-published)
	}
	if n := h.rec.Count("restart"); n != restarts {
		t.Errorf("redelivery restarted %d more times", n-restarts)
	}
	if again.Seq != head.Seq {
		t.Errorf("redelivery audited %d more entries", again.Seq-head.Seq)
	}
	if d := r.Stats().Duplicate.Load(); d != 8 {
		t.Errorf("duplicates counted %d, want 8", d)
	}
}

// TestBatchWithRedisAwayLeavesEveryRequestPending: without Redis no decision is taken and every request of
// this host stays pending (bus.ErrSkipAck), none fails or is dropped.
func TestBatchWithRedisAwayLeavesEveryRequestPending(t *testing.T) {
	t.Parallel()
	st, err := store.Open(conn.Options{URL: "redis://127.0.0.1:1/0"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	h := newHarness(t, respond.Config{}, batchFleet()...)
	r := respond.New(h.cfg, h.rec, respondStores(st), st.Audit, bus.New(st.Conn, bus.Options{}), respond.Options{Instance: "away", Now: h.clk.Now})
	ms := batchRequests(t)
	errs := r.ProcessBatch(context.Background(), ms)
	for i, err := range errs {
		if ms[i].Envelope.Host != host {
			if err != nil {
				t.Errorf("another host's request %d: %v, want acked", i+1, err)
			}
			continue
		}
		if !errors.Is(err, bus.ErrSkipAck) {
			t.Errorf("request %d: %v, want it left pending", i+1, err)
		}
	}
	if n := h.rec.Count("restart"); n != 0 {
		t.Errorf("%d restarts without Redis", n)
	}
}

// TestStormThroughTwoResponders runs a storm through two responders of one host as the agent runs them
// (Run: consumers reading whole batches): 300 requests over 30 containers, of which 20 may be restarted,
// 5 are protected and 5 are gone. Every request gets exactly one outcome, each restartable container is
// restarted exactly once (its repeats meet the backoff), nothing stays pending, and the audit chain holds
// every decision.
func TestStormThroughTwoResponders(t *testing.T) {
	t.Parallel()
	var fleet []docker.TargetState
	for i := range 25 {
		var labels map[string]string
		if i >= 20 {
			labels = map[string]string{container.LabelProtected: "true"}
		}
		fleet = append(fleet, web(fmt.Sprintf("svc-%02d", i), labels))
	}
	// No blast-radius hold (a hold pages once and audits the rest): every request gets its own outcome.
	h := newHarness(t, respond.Config{MaxConcurrent: 1 << 20, MaxUnhealthy: 1 << 20}, fleet...)
	b := bus.New(h.st.Conn, bus.Options{Block: 20 * time.Millisecond, Batch: 16, RetryDelay: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, name := range []string{"r1", "r2"} {
		r := respond.New(h.cfg, h.rec, respondStores(h.st), h.st.Audit, b, respond.Options{Instance: name, Workers: 2, Now: h.clk.Now})
		wg.Go(func() { _ = r.Run(ctx, b) }) // exits when ctx is cancelled
	}
	defer func() { cancel(); wg.Wait() }()
	envs := make([]event.Envelope, 300)
	for i := range envs {
		envs[i] = request(t, fmt.Sprintf("svc-%02d", i%30), event.ActionRestart) // svc-25..29 do not exist
	}
	if err := b.PublishBatch(ctx, requests, envs); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() bool {
		p, err := b.Pending(ctx, requests, respond.Group(host))
		return err == nil && p == 0 && len(h.completes()) >= len(envs)
	})
	seen := map[string]int{}
	statuses := map[string]int{} // "status code"
	entries, err := b.Range(ctx, event.StreamRemediationComplete, "-", "+", 10000)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		env, err := event.Decode(e.Raw)
		if err != nil {
			t.Fatal(err)
		}
		seen[env.CausationID]++
		p, _ := event.DecodeData[event.RemediationComplete](env)
		code, _, _ := strings.Cut(p.Result.Details, ":")
		if p.Result.Status == event.StatusSuccess {
			code = ""
		}
		statuses[p.Result.Status+" "+code]++
	}
	for _, env := range envs {
		if seen[env.ID] != 1 {
			t.Errorf("request %s has %d outcomes, want 1", env.ID, seen[env.ID])
		}
	}
	if got := h.rec.Count("restart"); got != 20 {
		t.Errorf("restarts = %d, want 20 (one per restartable container)", got)
	}
	// A repeat meets the backoff, or the lease while the restart is still being verified.
	repeats := statuses["denied cooldown"] + statuses["skipped busy"]
	delete(statuses, "denied cooldown")
	delete(statuses, "skipped busy")
	want := map[string]int{"success ": 20, "denied protected": 50, "skipped gone": 50}
	if diff := cmp.Diff(want, statuses); diff != "" || repeats != 180 {
		t.Errorf("outcomes by status and code (-want +got):\n%s\nrepeats denied or skipped: %d, want 180", diff, repeats)
	}
	if n, _ := b.Len(ctx, event.StreamDeadLetter); n != 0 {
		t.Errorf("%d requests dead-lettered", n)
	}
	rep, err := audit.NewTrail(h.st.Audit).Verify(ctx)
	if err != nil || rep.Break != nil || rep.Entries != int64(len(envs)) {
		t.Errorf("audit: %d entries, break %v, err %v; want %d, whole", rep.Entries, rep.Break, err, len(envs))
	}
}
