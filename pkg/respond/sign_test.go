package respond_test

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hemostat/hemostat/pkg/audit"
	"github.com/hemostat/hemostat/pkg/bus"
	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/respond"
	"github.com/hemostat/hemostat/pkg/sign"
	"github.com/hemostat/hemostat/pkg/store/schema"
	"github.com/hemostat/hemostat/pkg/testenv"
)

// The responder under --signing-key: requests written to Redis by anyone but hemostat are never acted on.

const testSigningKey = "k1:0123456789abcdef0123456789abcdef-test"

// signedBus is a bus that signs and verifies with the test key, over the harness's Redis.
func signedBus(t testing.TB, h *harness) *bus.Bus {
	t.Helper()
	kr, err := sign.Parse(testSigningKey)
	if err != nil {
		t.Fatal(err)
	}
	return bus.New(h.st.Conn, bus.Options{Block: 50 * time.Millisecond, Keys: kr})
}

// runSigned runs a responder that consumes through b until the test ends.
func runSigned(t *testing.T, h *harness, b *bus.Bus) *respond.Responder {
	t.Helper()
	r := respond.New(h.cfg, h.rec, respondStores(h.st), h.st.Audit, b, respond.Options{Instance: "r1", Workers: 1, Now: h.clk.Now})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = r.Run(ctx, b) }) // exits when ctx is cancelled
	t.Cleanup(func() { cancel(); wg.Wait() })
	return r
}

// redisCLI runs redis-cli against the harness's database, as an attacker with access to Redis would.
func redisCLI(t *testing.T, h *harness, args ...string) string {
	t.Helper()
	path, err := exec.LookPath("redis-cli")
	if err != nil {
		if testenv.InCI() {
			t.Fatalf("redis-cli: %v", err)
		}
		t.Skipf("redis-cli: %v", err)
	}
	o := h.st.Conn.Client().Options()
	out, err := exec.Command(path, append([]string{"-u", fmt.Sprintf("redis://%s/%d", o.Addr, o.DB)}, args...)...).CombinedOutput()
	if err != nil || strings.HasPrefix(string(out), "ERR") {
		t.Fatalf("redis-cli %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// forge XADDs a remediation request with redis-cli: the bytes hemostat would write, without a MAC, or with
// the given one.
func forge(t *testing.T, h *harness, env event.Envelope, mac string) {
	t.Helper()
	raw, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"XADD", requests, "*", event.Field, string(raw)}
	if mac != "" {
		args = append(args, sign.Field, mac)
	}
	redisCLI(t, h, args...)
}

// forgeries XADDs four forged requests for each named container (restart and stop, each unsigned and with
// a made-up MAC) and returns how many.
func forgeries(t *testing.T, h *harness, names ...string) int {
	t.Helper()
	n := 0
	for _, name := range names {
		for _, action := range []string{event.ActionRestart, event.ActionStop} {
			forge(t, h, request(t, name, action), "")
			forge(t, h, request(t, name, action), "k1:"+strings.Repeat("A", 43))
			n += 2
		}
	}
	return n
}

// refused waits until n requests are dead-lettered, and checks they were refused as unauthenticated and
// counted; it returns the dead letters.
func refused(t *testing.T, h *harness, n int) []bus.DeadLetter {
	t.Helper()
	ctx := context.Background()
	eventually(t, 20*time.Second, func() bool { l, _ := h.bus.Len(ctx, event.StreamDeadLetter); return l >= int64(n) })
	dl, err := h.bus.DeadLetters(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(dl) != n {
		t.Fatalf("%d dead letters, want %d", len(dl), n)
	}
	for _, d := range dl {
		if d.Rejected != sign.ReasonUnsigned && d.Rejected != sign.ReasonBadMAC {
			t.Errorf("dead letter %q: rejected %q, want unsigned or bad_mac", d.Reason, d.Rejected)
		}
		if d.Stream != requests || d.Group != respond.Group(host) {
			t.Errorf("dead letter of %s in group %s", d.Stream, d.Group)
		}
	}
	counts, _, err := h.bus.Rejections(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := counts[schema.BusRejection{Stream: requests, Group: respond.Group(host), Reason: sign.ReasonUnsigned}] +
		counts[schema.BusRejection{Stream: requests, Group: respond.Group(host), Reason: sign.ReasonBadMAC}]
	if got != int64(n) {
		t.Errorf("hemostat:metrics:bus_rejected counts %d refusals (%v), want %d", got, counts, n)
	}
	return dl
}

// nothingDone checks the responder left no trace of a decision: no remediation_complete, no audit entry.
func nothingDone(t *testing.T, h *harness) {
	t.Helper()
	if cs := h.completes(); len(cs) != 0 {
		t.Errorf("%d remediation_complete published for forged requests: %+v", len(cs), cs)
	}
	recs, err := audit.NewTrail(h.st.Audit).Query(context.Background(), audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 0 {
		t.Errorf("%d audit entries for forged requests: %+v", len(recs), recs)
	}
}

// TestForgedRequestIsNeverExecuted: with a signing key, remediation_needed entries XADDed with redis-cli
// for an unprotected container, unsigned or with a made-up MAC, are dead-lettered and counted, and nothing
// is done: for a container the engine has (web-1) and for one it does not (ghost). A signed request for
// the same container is then executed, so the responder was able to act all along.
func TestForgedRequestIsNeverExecuted(t *testing.T) {
	t.Parallel()
	h := newHarness(t, respond.Config{}, web("web-1", nil))
	b := signedBus(t, h)
	r := runSigned(t, h, b)
	n := forgeries(t, h, "web-1", "ghost")
	refused(t, h, n)
	for _, op := range []string{"restart", "stop", "start", "exec"} {
		if c := h.rec.Count(op); c != 0 {
			t.Errorf("%d %s calls on the engine for forged requests", c, op)
		}
	}
	nothingDone(t, h)
	if got := r.Stats().Handled.Load(); got != 0 {
		t.Errorf("the responder decided %d forged requests", got)
	}

	if _, err := b.Publish(context.Background(), requests, request(t, "web-1", event.ActionRestart)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() bool { return len(h.completes()) == 1 })
	if c := h.rec.Count("restart"); c != 1 {
		t.Errorf("the signed request made %d restarts, want 1", c)
	}
}

// TestForgedRequestLeavesARealContainerRunning is the same attack against a real container on the engine:
// it keeps running, never restarted nor stopped.
func TestForgedRequestLeavesARealContainerRunning(t *testing.T) {
	t.Parallel()
	e := newEngine(t, respond.Config{})
	id, name := testenv.RunContainer(t, e.dk, docker.CreateOptions{Name: "app", Cmd: []string{"-health-addr", ":8080"}})
	before := e.waitFor(t, id, func(s docker.TargetState) bool { return s.Running })
	b := signedBus(t, e.harness)
	runSigned(t, e.harness, b)
	n := forgeries(t, e.harness, name)
	refused(t, e.harness, n)
	if c := e.rec.Count("restart") + e.rec.Count("stop"); c != 0 {
		t.Errorf("%d engine calls for forged requests", c)
	}
	after := e.state(t, id)
	if !after.Running || !after.StartedAt.Equal(before.StartedAt) {
		t.Errorf("after the forged requests: running %v, started %s (was %s)", after.Running, after.StartedAt, before.StartedAt)
	}
	nothingDone(t, e.harness)
}

// TestReplayedRequestsAreRefused: a validly signed request older than --max-request-age is refused
// (stale); one already handled, written again as a new entry with its MAC, is refused (replayed). Both are
// dead-lettered and counted, and the engine is touched once, by the original request.
func TestReplayedRequestsAreRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t, respond.Config{MaxRequestAge: 10 * time.Minute, MaxActionsPerHour: 100}, web("web-1", nil))
	b := signedBus(t, h)
	r := runSigned(t, h, b)
	ctx := context.Background()

	old := request(t, "web-1", event.ActionRestart)
	old.Timestamp = h.clk.Now().Add(-11 * time.Minute)
	if _, err := b.Publish(ctx, requests, old); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() bool { l, _ := h.bus.Len(ctx, event.StreamDeadLetter); return l == 1 })

	orig := request(t, "web-1", event.ActionRestart)
	orig.Timestamp = h.clk.Now()
	if _, err := b.Publish(ctx, requests, orig); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() bool { return len(h.completes()) == 1 })
	// The attacker copies the handled entry, MAC and all, into a new entry.
	entries, err := h.bus.Range(ctx, requests, "-", "+", 10)
	if err != nil || len(entries) != 2 {
		t.Fatalf("entries: %d, %v", len(entries), err)
	}
	copied := entries[1]
	redisCLI(t, h, "XADD", requests, "*", event.Field, string(copied.Raw), sign.Field, copied.Extra[sign.Field])
	eventually(t, 10*time.Second, func() bool { l, _ := h.bus.Len(ctx, event.StreamDeadLetter); return l == 2 })

	dl, err := h.bus.DeadLetters(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if dl[1].Rejected != respond.RejectStale || !strings.Contains(dl[1].Reason, "longer than --max-request-age 10m0s") {
		t.Errorf("the old request's dead letter: %s %q", dl[1].Rejected, dl[1].Reason)
	}
	if dl[0].Rejected != respond.RejectReplayed || !strings.Contains(dl[0].Reason, orig.ID) {
		t.Errorf("the copy's dead letter: %s %q", dl[0].Rejected, dl[0].Reason)
	}
	if c := h.rec.Count("restart"); c != 1 {
		t.Errorf("%d restarts, want 1 (the original request's)", c)
	}
	if n := len(h.completes()); n != 1 {
		t.Errorf("%d remediation_complete, want 1", n)
	}
	counts, _, err := h.bus.Rejections(ctx)
	if err != nil {
		t.Fatal(err)
	}
	g := respond.Group(host)
	if counts[schema.BusRejection{Stream: requests, Group: g, Reason: respond.RejectStale}] != 1 ||
		counts[schema.BusRejection{Stream: requests, Group: g, Reason: respond.RejectReplayed}] != 1 {
		t.Errorf("rejections = %v", counts)
	}
	if got := r.Stats().Refused.Load(); got != 2 {
		t.Errorf("refused = %d, want 2", got)
	}
}
