package ledger_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/conn"
	"github.com/hemostat/hemostat/pkg/store"
	"github.com/hemostat/hemostat/pkg/store/ledger"
	"github.com/hemostat/hemostat/pkg/store/schema"
	"github.com/hemostat/hemostat/pkg/store/storetest"
	"github.com/hemostat/hemostat/pkg/testenv"
)

func hash(t *testing.T, rdb *redis.Client, key string) map[string]string {
	t.Helper()
	m, err := rdb.HGetAll(context.Background(), key).Result()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestApplyIsACompareAndSet(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		k := schema.RespondKeys("node-a", "web-1", false)
		first := schema.Ledger{LastAction: "restart", ContainerID: "c1"}
		rev, err := st.Ledger.Apply(ctx, k, ledger.Commit{To: first})
		if err != nil || rev != "1" {
			t.Fatalf("first commit: %q %v, want 1", rev, err)
		}
		// A decision taken on the empty ledger is stale now.
		if _, err := st.Ledger.Apply(ctx, k, ledger.Commit{To: schema.Ledger{Breaker: schema.BreakerOpen}}); !errors.Is(err, ledger.ErrConflict) {
			t.Errorf("stale commit: %v, want ErrConflict", err)
		}
		read, found, err := st.Ledger.Get(ctx, k.Ledger)
		if err != nil || !found || read.Rev != "1" {
			t.Fatalf("get: %+v %v %v", read, found, err)
		}
		next := read
		next.BackoffStep, next.ContainerID = 2, ""
		if rev, err := st.Ledger.Apply(ctx, k, ledger.Commit{From: read, To: next}); err != nil || rev != "2" {
			t.Errorf("fresh commit: %q %v, want 2", rev, err)
		}
		// A forced commit ignores the revision and writes only what differs from its From.
		if rev, err := st.Ledger.Apply(ctx, k, ledger.Commit{From: schema.Ledger{Rev: "0"}, To: schema.Ledger{LastResult: "success"}, Force: true}); err != nil || rev != "3" {
			t.Errorf("forced commit: %q %v, want 3", rev, err)
		}
		// Only changed fields were ever written: no defaults, container_id deleted by the second commit.
		want := map[string]string{
			schema.FieldRev: "3", schema.FieldLastAction: "restart", schema.FieldBackoffStep: "2", schema.FieldLastResult: "success",
		}
		if diff := cmp.Diff(want, hash(t, rdb, k.Ledger)); diff != "" {
			t.Errorf("ledger hash (-want +got):\n%s", diff)
		}
		if n := rdb.Exists(ctx, k.Lease).Val(); n != 0 {
			t.Errorf("a commit without a lease op took the lease")
		}
	})
}

// TestManyStepsOneRoundTripEach: the batch forms of read, commit, claim and done give each request what
// the single forms give it, and a commit run survives a flushed script cache (NOSCRIPT: load, retry what
// did not run).
func TestManyStepsOneRoundTripEach(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		a, b, c := schema.RespondKeys("node-a", "a", false), schema.RespondKeys("node-a", "b", false), schema.RespondKeys("node-a", "c", false)
		if _, err := st.Ledger.Apply(ctx, a, ledger.Commit{To: schema.Ledger{LastReason: "x"}}); err != nil {
			t.Fatal(err)
		}
		if err := rdb.Set(ctx, c.Lease, "someone", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		qs := []ledger.Query{{Keys: a, EventID: "e1"}, {Keys: b, EventID: "e2"}, {Keys: c, EventID: "e3"}}
		snaps, err := st.Ledger.ReadMany(ctx, qs, time.Now())
		if err != nil || len(snaps) != 3 {
			t.Fatalf("read many: %d snapshots, %v", len(snaps), err)
		}
		if snaps[0].Ledger.Rev != "1" || snaps[0].Ledger.LastReason != "x" || snaps[1].Ledger.Rev != "" || snaps[2].Lease != "someone" {
			t.Errorf("snapshots = %+v", snaps)
		}
		if l := snaps[2].LeaseLeft; l <= 0 || l > time.Minute {
			t.Errorf("lease left = %s, want within a minute", l)
		}
		if snaps[0].Lease != "" || snaps[0].LeaseLeft != 0 {
			t.Errorf("a free lease reads as %q, %s", snaps[0].Lease, snaps[0].LeaseLeft)
		}

		if err := rdb.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		revs, errs, err := st.Ledger.ApplyMany(ctx, []schema.LedgerKeys{a, b, c, a}, []ledger.Commit{
			{From: snaps[0].Ledger, To: schema.Ledger{LastReason: "y2"}},                          // fresh
			{To: schema.Ledger{LastReason: "y3"}},                                                 // first commit
			{Lease: ledger.LeaseTake, Token: "me", LeaseTTL: time.Minute},                         // lease held
			{From: snaps[0].Ledger, To: schema.Ledger{LastReason: "y4"}, Lease: ledger.LeaseKeep}, // stale after the first
		})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"2", "1", "", ""}, revs); diff != "" {
			t.Errorf("revisions (-want +got):\n%s", diff)
		}
		if errs[0] != nil || errs[1] != nil || !errors.Is(errs[2], ledger.ErrLeaseHeld) || !errors.Is(errs[3], ledger.ErrConflict) {
			t.Errorf("errors = %v, want nil, nil, ErrLeaseHeld, ErrConflict", errs)
		}
		if got := hash(t, rdb, a.Ledger)[schema.FieldLastReason]; got != "y2" {
			t.Errorf("ledger a reason = %q, want y2 from the fresh commit only", got)
		}
		if got := hash(t, rdb, b.Ledger)[schema.FieldLastReason]; got != "y3" {
			t.Errorf("ledger b reason = %q, want y3", got)
		}
		if n := rdb.Exists(ctx, c.Ledger).Val(); n != 0 {
			t.Errorf("a commit refused for the lease wrote the ledger")
		}
		if v := rdb.Get(ctx, c.Lease).Val(); v != "someone" {
			t.Errorf("lease of c = %q, want someone's", v)
		}

		claimed, err := st.Ledger.ClaimReports(ctx, []string{"e1", "e2"}, []string{"t1", "t2"}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]bool{true, true}, claimed); diff != "" {
			t.Errorf("first claims (-want +got):\n%s", diff)
		}
		again, err := st.Ledger.ClaimReports(ctx, []string{"e2", "e3"}, []string{"u", "u"}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]bool{false, true}, again); diff != "" {
			t.Errorf("second claims, e2 taken (-want +got):\n%s", diff)
		}
		if err := st.Ledger.MarkDone(ctx, time.Hour, "e1", "e2"); err != nil {
			t.Fatal(err)
		}
		snaps, err = st.Ledger.ReadMany(ctx, qs, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		type marks struct{ Done, Reporting bool }
		var got []marks
		for _, s := range snaps {
			got = append(got, marks{s.Done, s.Reporting})
		}
		if diff := cmp.Diff([]marks{{true, false}, {true, false}, {false, true}}, got); diff != "" {
			t.Errorf("done marks after MarkDone e1 e2 (-want +got):\n%s", diff)
		}
		for _, id := range []string{"e1", "e2"} {
			if ttl := rdb.PTTL(ctx, schema.DoneKey(id)).Val(); ttl <= 0 || ttl > time.Hour {
				t.Errorf("done key %s ttl = %s, want within an hour", id, ttl)
			}
		}
	})
}

func TestLease(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		k := schema.RespondKeys("node-a", "web-1", false)
		take := func(from schema.Ledger, token string, ttl time.Duration) error {
			_, err := st.Ledger.Apply(ctx, k, ledger.Commit{From: from, To: schema.Ledger{InflightEvent: token},
				Lease: ledger.LeaseTake, Token: token, LeaseTTL: ttl})
			return err
		}
		if err := take(schema.Ledger{}, "a", 0); err != nil {
			t.Fatal(err)
		}
		if ttl := rdb.PTTL(ctx, k.Lease).Val(); ttl <= 0 || ttl > ledger.DefaultLeaseTTL {
			t.Errorf("lease ttl without one given = %s, want within %s", ttl, ledger.DefaultLeaseTTL)
		}
		if err := take(schema.Ledger{Rev: "1"}, "b", time.Minute); !errors.Is(err, ledger.ErrLeaseHeld) {
			t.Errorf("second take: %v, want ErrLeaseHeld", err)
		}
		if f := hash(t, rdb, k.Ledger); f[schema.FieldInflightEvent] != "a" || f[schema.FieldRev] != "1" {
			t.Errorf("a refused take wrote the ledger: %v", f)
		}
		snap, err := st.Ledger.Read(ctx, ledger.Query{Keys: k, EventID: "e1"}, time.Now())
		if err != nil || snap.Lease != "a" || snap.LeaseLeft <= 0 {
			t.Errorf("snapshot lease = %q left %s, %v; want a's", snap.Lease, snap.LeaseLeft, err)
		}
		// Only the holder releases it.
		if _, err := st.Ledger.Apply(ctx, k, ledger.Commit{Force: true, Lease: ledger.LeaseRelease, Token: "b"}); err != nil {
			t.Fatal(err)
		}
		if v := rdb.Get(ctx, k.Lease).Val(); v != "a" {
			t.Errorf("lease after a stranger's release = %q, want a", v)
		}
		if ok, err := st.Ledger.Renew(ctx, k, "a", time.Hour, time.Now()); !ok || err != nil {
			t.Errorf("renew by the holder: %v %v", ok, err)
		}
		if ttl := rdb.PTTL(ctx, k.Lease).Val(); ttl <= ledger.DefaultLeaseTTL {
			t.Errorf("lease ttl after renewing for an hour = %s", ttl)
		}
		if ok, err := st.Ledger.Renew(ctx, k, "b", time.Minute, time.Now()); ok || err != nil {
			t.Errorf("renew by a stranger: %v %v, want false", ok, err)
		}
		if _, err := st.Ledger.Apply(ctx, k, ledger.Commit{Force: true, Lease: ledger.LeaseRelease, Token: "a"}); err != nil {
			t.Fatal(err)
		}
		if n := rdb.Exists(ctx, k.Lease).Val(); n != 0 {
			t.Errorf("lease survived its holder's release")
		}
		if err := take(schema.Ledger{Rev: "3"}, "b", time.Minute); err != nil {
			t.Errorf("take after the release: %v", err)
		}
	})
}

func TestHostSlots(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		k := schema.RespondKeys("node-a", "web-1", false)
		now := time.Now()
		acquire := func(token string, at time.Time) bool {
			t.Helper()
			ok, err := st.Ledger.AcquireSlot(ctx, k, token, 2, time.Minute, at)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		got := []bool{acquire("a", now), acquire("b", now), acquire("c", now), acquire("a", now)}
		if diff := cmp.Diff([]bool{true, true, false, true}, got); diff != "" {
			t.Errorf("acquire a, b, c, a again (-want +got):\n%s", diff)
		}
		if ttl := rdb.PTTL(ctx, k.Active).Val(); ttl <= time.Minute || ttl > 2*time.Minute {
			t.Errorf("running set ttl = %s, want twice the slot's", ttl)
		}
		if err := st.Ledger.ReleaseSlot(ctx, k, "a"); err != nil {
			t.Fatal(err)
		}
		if !acquire("c", now) {
			t.Errorf("a released slot was not given to c")
		}
		if !acquire("d", now.Add(2*time.Minute)) {
			t.Errorf("expired slots were not reclaimed")
		}
		snap, err := st.Ledger.Read(ctx, ledger.Query{Keys: k, EventID: "e1"}, now.Add(2*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if len(snap.Slots) != 1 {
			t.Errorf("active = %d, want 1", len(snap.Slots))
		}
	})
}

// TestRenewKeepsTheSlot: renewing extends the slot and the running set that holds it, so a long action
// keeps its slot after the set's first lifetime (twice the slot's) has passed.
func TestRenewKeepsTheSlot(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		k := schema.RespondKeys("node-a", "web-1", false)
		now := time.Now()
		if _, err := st.Ledger.Apply(ctx, k, ledger.Commit{Lease: ledger.LeaseTake, Token: "a", LeaseTTL: time.Minute}); err != nil {
			t.Fatal(err)
		}
		if ok, err := st.Ledger.AcquireSlot(ctx, k, "a", 1, time.Minute, now); !ok || err != nil {
			t.Fatalf("acquire: %v %v", ok, err)
		}
		later := now.Add(time.Hour)
		if ok, err := st.Ledger.Renew(ctx, k, "a", time.Hour, now); !ok || err != nil {
			t.Fatalf("renew: %v %v", ok, err)
		}
		if score := rdb.ZScore(ctx, k.Active, "a").Val(); int64(score) != later.UnixMilli() {
			t.Errorf("slot expiry = %d, want %d", int64(score), later.UnixMilli())
		}
		if ttl := rdb.PTTL(ctx, k.Active).Val(); ttl < 59*time.Minute {
			t.Errorf("running set ttl after renewing the slot for an hour = %s: the set would vanish with the slot in it", ttl)
		}
		// A stranger's renewal does not touch the holder's slot.
		if ok, _ := st.Ledger.Renew(ctx, k, "b", 2*time.Hour, now); ok {
			t.Errorf("a stranger renewed")
		}
		if n := rdb.ZCard(ctx, k.Active).Val(); n != 1 {
			t.Errorf("running set holds %d slots, want only a's", n)
		}
		if ok, err := st.Ledger.AcquireSlot(ctx, k, "b", 1, time.Minute, now.Add(30*time.Minute)); ok || err != nil {
			t.Errorf("acquire by b while a's renewed slot runs: %v %v, want refused", ok, err)
		}
	})
}

func TestClaimReportAndDone(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		k := schema.RespondKeys("node-a", "web-1", true)
		read := func() ledger.Snapshot {
			t.Helper()
			s, err := st.Ledger.Read(ctx, ledger.Query{Keys: k, EventID: "e1"}, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		if s := read(); s.Done || s.Reporting || len(s.Slots) != 0 || s.Ledger.Breaker != schema.BreakerClosed {
			t.Errorf("snapshot of nothing = %+v", s)
		}
		if ok, err := st.Ledger.ClaimReport(ctx, "e1", "tok", time.Minute); !ok || err != nil {
			t.Fatalf("first claim: %v %v", ok, err)
		}
		if ok, err := st.Ledger.ClaimReport(ctx, "e1", "tok2", time.Minute); ok || err != nil {
			t.Errorf("second claim: %v %v, want refused", ok, err)
		}
		if v := rdb.Get(ctx, schema.DoneKey("e1")).Val(); v != schema.DoneReporting+"tok" {
			t.Errorf("done key while reporting = %q", v)
		}
		if s := read(); !s.Reporting || s.Done {
			t.Errorf("while reporting: %+v", s)
		}
		if err := st.Ledger.MarkDone(ctx, time.Hour, "e1"); err != nil {
			t.Fatal(err)
		}
		if s := read(); !s.Done || s.Reporting {
			t.Errorf("after done: %+v", s)
		}
		if ttl := rdb.PTTL(ctx, schema.DoneKey("e1")).Val(); ttl <= time.Minute || ttl > time.Hour {
			t.Errorf("done key ttl = %s, want the hour of MarkDone", ttl)
		}
		if ok, _ := st.Ledger.ClaimReport(ctx, "e1", "tok3", time.Minute); ok {
			t.Errorf("a handled request was claimed again")
		}
	})
}

func TestHoldOnce(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		web, shadow := schema.RespondKeys("node-a", "web-1", false), schema.RespondKeys("node-a", "web-2", true)
		var got []bool
		for _, k := range []schema.LedgerKeys{web, web, schema.RespondKeys("node-a", "db", false), shadow} {
			ok, err := st.Ledger.HoldOnce(ctx, k, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, ok)
		}
		// One page per host and period; the shadow marker is apart.
		if diff := cmp.Diff([]bool{true, false, false, true}, got); diff != "" {
			t.Errorf("holds (-want +got):\n%s", diff)
		}
		if ttl := rdb.PTTL(ctx, web.Hold).Val(); ttl <= 0 || ttl > time.Hour {
			t.Errorf("hold marker ttl = %s", ttl)
		}
	})
}

func TestGetAndGetMany(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		web := schema.RespondKeys("a", "web", false)
		db := schema.RespondKeys("a", "db", true)
		if _, err := st.Ledger.Apply(ctx, web, ledger.Commit{To: schema.Ledger{Breaker: schema.BreakerOpen, Attempts: []int64{1, 2}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Ledger.Apply(ctx, db, ledger.Commit{To: schema.Ledger{LastAction: "restart"}}); err != nil {
			t.Fatal(err)
		}
		bad := schema.LedgerKey("a/bad")
		if err := rdb.HSet(ctx, bad, schema.FieldBackoffStep, "two", schema.FieldLastAction, "stop").Err(); err != nil {
			t.Fatal(err)
		}

		l, found, err := st.Ledger.Get(ctx, web.Ledger)
		want := schema.Ledger{Rev: "1", Breaker: schema.BreakerOpen, Attempts: []int64{1, 2}}
		if err != nil || !found {
			t.Fatalf("get: %v %v", found, err)
		}
		if diff := cmp.Diff(want, l); diff != "" {
			t.Errorf("get (-want +got):\n%s", diff)
		}
		if l, found, err := st.Ledger.Get(ctx, schema.LedgerKey("a/none")); found || err != nil || l.Breaker != schema.BreakerClosed {
			t.Errorf("get of nothing = %+v %v %v, want a closed zero ledger, not found", l, found, err)
		}
		if l, found, err := st.Ledger.Get(ctx, bad); !found || err == nil || !strings.Contains(err.Error(), schema.FieldBackoffStep) || l.LastAction != "stop" {
			t.Errorf("get of a bad ledger = %+v %v %v, want the rest and an error naming %s", l, found, err, schema.FieldBackoffStep)
		}

		// The dashboard's read: real and shadow ledgers by key, missing ones left out.
		got, problems, err := st.Ledger.GetMany(ctx, []string{web.Ledger, db.Ledger, schema.LedgerKey("a/db"), bad})
		if err != nil {
			t.Fatal(err)
		}
		wantMany := map[string]schema.Ledger{
			web.Ledger: want,
			db.Ledger:  {Rev: "1", Breaker: schema.BreakerClosed, LastAction: "restart"},
			bad:        {Breaker: schema.BreakerClosed, LastAction: "stop"},
		}
		if diff := cmp.Diff(wantMany, got); diff != "" {
			t.Errorf("get many (-want +got):\n%s", diff)
		}
		if len(problems) != 1 || !strings.Contains(problems[0].Error(), bad) || !strings.Contains(problems[0].Error(), schema.FieldBackoffStep) {
			t.Errorf("problems = %v, want one naming %s and %s", problems, bad, schema.FieldBackoffStep)
		}
		if got, problems, err := st.Ledger.GetMany(ctx, nil); len(got) != 0 || problems != nil || err != nil {
			t.Errorf("get many of nothing = %v %v %v", got, problems, err)
		}
	})
}

func TestReadReportsADecodeError(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		k := schema.RespondKeys("a", "web", false)
		if err := rdb.HSet(ctx, k.Ledger, schema.FieldRev, "4", schema.FieldNextAllowedMS, "soon", schema.FieldBreaker, schema.BreakerOpen).Err(); err != nil {
			t.Fatal(err)
		}
		s, err := st.Ledger.Read(ctx, ledger.Query{Keys: k, EventID: "e"}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if s.DecodeError == nil || !strings.Contains(s.DecodeError.Error(), schema.FieldNextAllowedMS) {
			t.Errorf("decode error = %v, want one naming %s", s.DecodeError, schema.FieldNextAllowedMS)
		}
		if s.Ledger.Rev != "4" || s.Ledger.Breaker != schema.BreakerOpen || s.Ledger.NextAllowedMS != 0 {
			t.Errorf("ledger = %+v, want rev 4, open, no backoff", s.Ledger)
		}
	})
}

// TestUnavailable: without a server, a batch commit says so as a whole (nothing is known of any commit).
func TestUnavailable(t *testing.T) {
	t.Parallel()
	conn.QuietDriverLogs(nil) // the driver's dial failures, which it prints on stderr otherwise
	st, err := store.Open(conn.Options{URL: "redis://127.0.0.1:" + strconv.Itoa(testenv.FreePort(t)) + "/0"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	k := schema.RespondKeys("a", "web", false)
	revs, errs, err := st.Ledger.ApplyMany(ctx, []schema.LedgerKeys{k}, []ledger.Commit{{To: schema.Ledger{LastAction: "x"}}})
	if !conn.IsUnavailable(err) || revs != nil || errs != nil {
		t.Errorf("apply many without a server = %v %v %v, want only an unavailable error", revs, errs, err)
	}
	if _, err := st.Ledger.ReadMany(ctx, []ledger.Query{{Keys: k, EventID: "e"}}, time.Now()); !conn.IsUnavailable(err) {
		t.Errorf("read many without a server: %v, want an unavailable error", err)
	}
}
