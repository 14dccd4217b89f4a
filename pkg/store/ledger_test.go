package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/store"
)

func TestLedgerApplyIsACompareAndSet(t *testing.T) {
	t.Parallel()
	scriptBackends(t, func(t *testing.T, st *store.Client, rdb *redis.Client) {
		ctx := context.Background()
		k := store.RespondKeys("node-a", "web-1", false)
		rev, err := st.LedgerApply(ctx, k, store.LedgerCommit{Rev: "", Set: map[string]string{"breaker": "closed", "x": "1"}})
		if err != nil || rev != "1" {
			t.Fatalf("first commit: %q %v", rev, err)
		}
		if _, err := st.LedgerApply(ctx, k, store.LedgerCommit{Rev: "", Set: map[string]string{"breaker": "open"}}); !errors.Is(err, store.ErrLedgerConflict) {
			t.Errorf("stale commit: %v, want ErrLedgerConflict", err)
		}
		if rev, err := st.LedgerApply(ctx, k, store.LedgerCommit{Rev: "1", Set: map[string]string{"backoff_step": "2"}, Del: []string{"x"}}); err != nil || rev != "2" {
			t.Errorf("fresh commit: %q %v", rev, err)
		}
		if rev, err := st.LedgerApply(ctx, k, store.LedgerCommit{Rev: "0", Force: true, Set: map[string]string{"last_result": "success"}}); err != nil || rev != "3" {
			t.Errorf("forced commit: %q %v", rev, err)
		}
		got, err := st.LedgerFields(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"rev": "3", "breaker": "closed", "backoff_step": "2", "last_result": "success"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ledger (-want +got):\n%s", diff)
		}
	})
}

// TestLedgerManyStepsOneRoundTripEach: the batch forms of read, commit, claim and done give each request
// what the single forms give it, and a commit run survives a flushed script cache (NOSCRIPT: load, retry
// what did not run).
func TestLedgerManyStepsOneRoundTripEach(t *testing.T) {
	t.Parallel()
	scriptBackends(t, func(t *testing.T, st *store.Client, rdb *redis.Client) {
		ctx := context.Background()
		a, b, c := store.RespondKeys("node-a", "a", false), store.RespondKeys("node-a", "b", false), store.RespondKeys("node-a", "c", false)
		if _, err := st.LedgerApply(ctx, a, store.LedgerCommit{Set: map[string]string{"x": "1"}}); err != nil {
			t.Fatal(err)
		}
		if err := rdb.Set(ctx, c.Lease, "someone", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		snaps, err := st.LedgerReadMany(ctx, "node-a", []store.LedgerQuery{{Keys: a, EventID: "e1"}, {Keys: b, EventID: "e2"}, {Keys: c, EventID: "e3"}}, time.Now())
		if err != nil || len(snaps) != 3 {
			t.Fatalf("read many: %d snapshots, %v", len(snaps), err)
		}
		if snaps[0].Fields["rev"] != "1" || len(snaps[1].Fields) != 0 || snaps[2].Lease != "someone" {
			t.Errorf("snapshots = %+v", snaps)
		}
		if err := rdb.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		revs, errs, err := st.LedgerApplyMany(ctx, []store.LedgerKeys{a, b, c, a}, []store.LedgerCommit{
			{Rev: "1", Set: map[string]string{"y": "2"}},                          // fresh
			{Rev: "", Set: map[string]string{"y": "3"}},                           // first commit
			{Rev: "", Lease: store.LeaseTake, Token: "me", LeaseTTL: time.Minute}, // lease held
			{Rev: "1", Set: map[string]string{"y": "4"}},                          // stale after the first
		})
		if err != nil {
			t.Fatal(err)
		}
		if revs[0] != "2" || errs[0] != nil || revs[1] != "1" || errs[1] != nil ||
			!errors.Is(errs[2], store.ErrLeaseHeld) || !errors.Is(errs[3], store.ErrLedgerConflict) {
			t.Errorf("apply many: revs %q, errs %v", revs, errs)
		}
		if got, _ := st.LedgerFields(ctx, a); got["y"] != "2" {
			t.Errorf("ledger a = %v, want y=2 from the fresh commit only", got)
		}
		claimed, err := st.LedgerClaimReports(ctx, []string{"e1", "e2"}, []string{"t1", "t2"}, time.Minute)
		if err != nil || !claimed[0] || !claimed[1] {
			t.Fatalf("claims: %v %v", claimed, err)
		}
		if again, _ := st.LedgerClaimReports(ctx, []string{"e2", "e3"}, []string{"u", "u"}, time.Minute); again[0] || !again[1] {
			t.Errorf("second claims = %v, want e2 refused and e3 granted", again)
		}
		if err := st.LedgerMarkDone(ctx, time.Hour, "e1", "e2"); err != nil {
			t.Fatal(err)
		}
		snaps, err = st.LedgerReadMany(ctx, "node-a", []store.LedgerQuery{{Keys: a, EventID: "e1"}, {Keys: b, EventID: "e2"}, {Keys: c, EventID: "e3"}}, time.Now())
		if err != nil || !snaps[0].Done || !snaps[1].Done || snaps[2].Done || !snaps[2].Reporting {
			t.Errorf("after done: %+v %v", snaps, err)
		}
	})
}

func TestLedgerLease(t *testing.T) {
	t.Parallel()
	scriptBackends(t, func(t *testing.T, st *store.Client, rdb *redis.Client) {
		ctx := context.Background()
		k := store.RespondKeys("node-a", "web-1", false)
		take := func(rev, token string) error {
			_, err := st.LedgerApply(ctx, k, store.LedgerCommit{Rev: rev, Lease: store.LeaseTake, Token: token,
				LeaseTTL: time.Minute, Set: map[string]string{"inflight_event": token}})
			return err
		}
		if err := take("", "a"); err != nil {
			t.Fatal(err)
		}
		if err := take("1", "b"); !errors.Is(err, store.ErrLeaseHeld) {
			t.Errorf("second take: %v, want ErrLeaseHeld", err)
		}
		if f, _ := st.LedgerFields(ctx, k); f["inflight_event"] != "a" || f["rev"] != "1" {
			t.Errorf("a failed take wrote the ledger: %v", f)
		}
		if ttl := rdb.PTTL(ctx, k.Lease).Val(); ttl <= 0 || ttl > time.Minute {
			t.Errorf("lease ttl = %s", ttl)
		}
		// Only the holder releases it.
		st.LedgerApply(ctx, k, store.LedgerCommit{Force: true, Lease: store.LeaseRelease, Token: "b"})
		if v := rdb.Get(ctx, k.Lease).Val(); v != "a" {
			t.Errorf("lease after a stranger's release = %q, want a", v)
		}
		if ok, err := st.LedgerRenew(ctx, k, "a", 2*time.Minute, time.Now()); !ok || err != nil {
			t.Errorf("renew by the holder: %v %v", ok, err)
		}
		if ok, _ := st.LedgerRenew(ctx, k, "b", time.Minute, time.Now()); ok {
			t.Errorf("a stranger renewed the lease")
		}
		st.LedgerApply(ctx, k, store.LedgerCommit{Force: true, Lease: store.LeaseRelease, Token: "a"})
		if n := rdb.Exists(ctx, k.Lease).Val(); n != 0 {
			t.Errorf("lease survived its holder's release")
		}
	})
}

func TestLedgerHostSlots(t *testing.T) {
	t.Parallel()
	scriptBackends(t, func(t *testing.T, st *store.Client, rdb *redis.Client) {
		ctx := context.Background()
		k := store.RespondKeys("node-a", "web-1", false)
		now := time.Now()
		acquire := func(token string, at time.Time) bool {
			ok, err := st.LedgerAcquireSlot(ctx, k, token, 2, time.Minute, at)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		got := []bool{acquire("a", now), acquire("b", now), acquire("c", now), acquire("a", now)}
		if diff := cmp.Diff([]bool{true, true, false, true}, got); diff != "" {
			t.Errorf("acquire a, b, c, a again (-want +got):\n%s", diff)
		}
		if err := st.LedgerReleaseSlot(ctx, k, "a"); err != nil {
			t.Fatal(err)
		}
		if !acquire("c", now) {
			t.Errorf("a released slot was not given to c")
		}
		if !acquire("d", now.Add(2*time.Minute)) {
			t.Errorf("expired slots were not reclaimed")
		}
		snap, err := st.LedgerRead(ctx, k, "node-a", "e1", now.Add(2*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if snap.Active != 1 {
			t.Errorf("active = %d, want 1", snap.Active)
		}
	})
}

func TestLedgerReadDoneAndLoad(t *testing.T) {
	t.Parallel()
	scriptBackends(t, func(t *testing.T, st *store.Client, rdb *redis.Client) {
		ctx := context.Background()
		k := store.RespondKeys("node-a", "web-1", true)
		rdb.HSet(ctx, event.KeyContainers,
			"node-a/web-1", `{"name":"web-1","watched":true}`,
			"node-a/web-2", `{"name":"web-2","watched":true}`,
			"node-a/off", `{"name":"off","watched":false}`,
			"node-b/web-1", `{"name":"web-1","watched":true}`)
		for _, m := range []string{"node-a/web-1/crashed", "node-a/web-1/oom_killed", "hemostat:incident:node-a/web-2/unhealthy", "node-b/web-1/crashed"} {
			rdb.ZAdd(ctx, "hemostat:incidents:open", redis.Z{Score: 1, Member: m})
		}
		read := func() store.LedgerSnapshot {
			s, err := st.LedgerRead(ctx, k, "node-a", "e1", time.Now())
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		s := read()
		if s.Unhealthy != 2 || s.Watched != 2 || s.Done || s.Reporting {
			t.Errorf("snapshot = %+v, want 2 unhealthy of 2 watched, not done", s)
		}
		if ok, _ := st.LedgerClaimReport(ctx, "e1", "tok", time.Minute); !ok {
			t.Fatal("first claim refused")
		}
		if ok, _ := st.LedgerClaimReport(ctx, "e1", "tok2", time.Minute); ok {
			t.Error("second claim granted")
		}
		if s := read(); !s.Reporting || s.Done {
			t.Errorf("while reporting: %+v", s)
		}
		if err := st.LedgerMarkDone(ctx, time.Hour, "e1"); err != nil {
			t.Fatal(err)
		}
		if s := read(); !s.Done || s.Reporting {
			t.Errorf("after done: %+v", s)
		}
		if ttl := rdb.TTL(ctx, event.DoneKey("e1")).Val(); ttl <= 0 {
			t.Errorf("done key without a TTL")
		}
	})
}

func TestAuditAppendChainsOrConflicts(t *testing.T) {
	t.Parallel()
	scriptBackends(t, func(t *testing.T, st *store.Client, rdb *redis.Client) {
		ctx := context.Background()
		ids, head, err := st.AuditAppend(ctx, store.AuditHead{}, 1, []store.AuditItem{{Target: "node-a/web-1", JSON: []byte(`{"seq":1}`), Hash: "h1"}})
		if err != nil || len(ids) != 1 || head.Hash != "h1" || head.Seq != 1 || head.ID != ids[0] {
			t.Fatalf("first append: %q %+v %v", ids, head, err)
		}
		id := ids[0]
		_, cur, err := st.AuditAppend(ctx, store.AuditHead{}, 1, []store.AuditItem{{Target: "node-a/web-1", JSON: []byte(`{"seq":1}`), Hash: "hx"}})
		if !errors.Is(err, store.ErrAuditConflict) || cur.Hash != "h1" || cur.Seq != 1 {
			t.Errorf("stale append: %+v %v, want the current head and ErrAuditConflict", cur, err)
		}
		// A run of entries of two containers in one step: each indexed under its own container.
		ids, head, err = st.AuditAppend(ctx, cur, 2, []store.AuditItem{
			{Target: "node-a/web-2", JSON: []byte(`{"seq":2}`), Hash: "h2a"},
			{Target: "node-a/web-3", JSON: []byte(`{"seq":3}`), Hash: "h3"},
			{Target: "node-a/web-2", JSON: []byte(`{"seq":4}`), Hash: "h2"},
		})
		if err != nil || len(ids) != 3 || head.Seq != 4 || head.Hash != "h2" || head.ID != ids[2] {
			t.Fatalf("run append: %q %+v %v", ids, head, err)
		}
		if recs, err := st.AuditIndexRevRange(ctx, "node-a/web-2", "+", "-", 10); err != nil || len(recs) != 2 || recs[0].ID != ids[2] || recs[1].ID != ids[0] {
			t.Errorf("index of web-2 = %+v %v, want %s and %s", recs, err, ids[2], ids[0])
		}
		h, err := st.AuditReadHead(ctx)
		if err != nil || h.Hash != "h2" || h.Seq != 4 || h.ID != ids[2] {
			t.Errorf("head = %+v %v", h, err)
		}
		recs, err := st.AuditIndexRevRange(ctx, "node-a/web-1", "+", "-", 10)
		if err != nil || len(recs) != 1 || recs[0].ID != id {
			t.Errorf("index of web-1 = %+v %v, want just %s", recs, err, id)
		}
		if n := rdb.XLen(ctx, event.StreamAudit).Val(); n != 4 {
			t.Errorf("trail length = %d, want 4", n)
		}
	})
}
