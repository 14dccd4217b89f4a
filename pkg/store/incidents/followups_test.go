package incidents_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/store"
	"github.com/hemostat/hemostat/pkg/store/incidents"
	"github.com/hemostat/hemostat/pkg/store/schema"
	"github.com/hemostat/hemostat/pkg/store/storetest"
)

func TestSchedule(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		const key, closed, unknown = "h/web/crashed", "h/db/crashed", "h/none/crashed"
		open(t, st, key)
		open(t, st, closed)
		if ok, err := st.Incidents.Schedule(ctx, closed, t0.Add(time.Minute), "verify"); !ok || err != nil {
			t.Fatalf("schedule %s: %v %v", closed, ok, err)
		}
		if err := st.Incidents.Close(ctx, closed, t0, "recovered"); err != nil {
			t.Fatal(err)
		}
		// A stale follow-up of an incident that closed meanwhile is dropped, not renewed.
		if err := rdb.ZAdd(ctx, schema.FollowupsKey("h"), redis.Z{Score: 1, Member: closed}).Err(); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{closed, unknown} {
			if ok, err := st.Incidents.Schedule(ctx, k, t0.Add(time.Minute), "verify"); ok || err != nil {
				t.Errorf("schedule of %s, not open: %v %v, want false", k, ok, err)
			}
			if _, ok := score(t, rdb, schema.FollowupsKey("h"), k); ok {
				t.Errorf("%s, not open, is scheduled", k)
			}
		}
		if n := rdb.Exists(ctx, schema.IncidentKey(unknown)).Val(); n != 0 {
			t.Errorf("scheduling an unknown incident created its hash")
		}
		if in := get(t, st, closed); !in.NextAt.IsZero() || in.NextReason != "" {
			t.Errorf("closed incident says it will be looked at: %s %q", in.NextAt, in.NextReason)
		}

		// Each schedule replaces the one before, later or earlier.
		for _, s := range []struct {
			at     time.Time
			reason string
		}{{t0.Add(time.Minute), "verify"}, {t0.Add(time.Hour), "backoff"}, {t0.Add(30 * time.Second), "relapse"}} {
			if ok, err := st.Incidents.Schedule(ctx, key, s.at, s.reason); !ok || err != nil {
				t.Fatalf("schedule at %s: %v %v", s.at, ok, err)
			}
			if ms, ok := score(t, rdb, schema.FollowupsKey("h"), key); !ok || ms != s.at.UnixMilli() {
				t.Errorf("follow-up due at %d (%v), want %s", ms, ok, s.at)
			}
			if in := get(t, st, key); !in.NextAt.Equal(s.at) || in.NextReason != s.reason {
				t.Errorf("incident says next at %s for %q, want %s for %q", in.NextAt, in.NextReason, s.at, s.reason)
			}
		}
		next, err := st.Incidents.NextDue(ctx, "h")
		if err != nil || !next.Equal(t0.Add(30*time.Second)) {
			t.Errorf("next due = %s %v, want %s", next, err, t0.Add(30*time.Second))
		}
		if next, err := st.Incidents.NextDue(ctx, "other"); err != nil || !next.IsZero() {
			t.Errorf("next due of a host without follow-ups = %s %v, want zero", next, err)
		}
	})
}

func TestTakeDue(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		due := map[string]time.Time{
			"h/a/crashed":  t0,
			"h/b/crashed":  t0.Add(time.Minute),
			"h/c/crashed":  t0.Add(time.Hour),
			"h2/a/crashed": t0,
		}
		for k, at := range due {
			open(t, st, k)
			if ok, err := st.Incidents.Schedule(ctx, k, at, "verify"); !ok || err != nil {
				t.Fatalf("schedule %s: %v %v", k, ok, err)
			}
		}
		now, hold := t0.Add(2*time.Minute), 30*time.Second
		take := func(at time.Time, n int) []incidents.Due {
			t.Helper()
			got, err := st.Incidents.TakeDue(ctx, "h", at, hold, n)
			if err != nil {
				t.Fatal(err)
			}
			return got
		}
		steps := []struct {
			name string
			at   time.Time
			n    int
			want []incidents.Due
		}{
			{"the oldest only", now, 1, []incidents.Due{{"h/a/crashed", t0}}},
			{"the other due one", now, 10, []incidents.Due{{"h/b/crashed", t0.Add(time.Minute)}}},
			{"a second taker, within the hold", now, 10, []incidents.Due{}},
			{"just before the hold passes", now.Add(hold - time.Millisecond), 10, []incidents.Due{}},
			{"the hold passed: both again", now.Add(hold), 10, []incidents.Due{{"h/a/crashed", now.Add(hold)}, {"h/b/crashed", now.Add(hold)}}},
		}
		for _, s := range steps {
			if diff := cmp.Diff(s.want, take(s.at, s.n)); diff != "" {
				t.Errorf("%s (-want +got):\n%s", s.name, diff)
			}
		}
		// Taken follow-ups are pushed back by the hold; the others are untouched.
		want := map[string]int64{
			"h/a/crashed": now.Add(2 * hold).UnixMilli(),
			"h/b/crashed": now.Add(2 * hold).UnixMilli(),
			"h/c/crashed": t0.Add(time.Hour).UnixMilli(),
		}
		got := map[string]int64{}
		for k := range want {
			got[k], _ = score(t, rdb, schema.FollowupsKey("h"), k)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("schedule after the takes (-want +got):\n%s", diff)
		}
		if ms, ok := score(t, rdb, schema.FollowupsKey("h2"), "h2/a/crashed"); !ok || ms != t0.UnixMilli() {
			t.Errorf("another host's follow-up was touched: %d %v", ms, ok)
		}
		if got, err := st.Incidents.TakeDue(ctx, "none", now, hold, 10); err != nil || len(got) != 0 {
			t.Errorf("take of a host without follow-ups = %v %v", got, err)
		}
		next, err := st.Incidents.NextDue(ctx, "h")
		if err != nil || !next.Equal(now.Add(2*hold)) {
			t.Errorf("next due = %s %v, want %s", next, err, now.Add(2*hold))
		}
	})
}

func TestCancel(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		const key, unknown = "h/web/crashed", "h/none/crashed"
		open(t, st, key)
		if ok, err := st.Incidents.Schedule(ctx, key, t0.Add(time.Minute), "verify"); !ok || err != nil {
			t.Fatalf("schedule: %v %v", ok, err)
		}
		if err := st.Incidents.Cancel(ctx, key); err != nil {
			t.Fatal(err)
		}
		if _, ok := score(t, rdb, schema.FollowupsKey("h"), key); ok {
			t.Errorf("a cancelled follow-up is still scheduled")
		}
		if in := get(t, st, key); !in.NextAt.IsZero() || in.NextReason != "" || in.State != schema.StateOpen {
			t.Errorf("cancelled incident = next %s %q, state %s", in.NextAt, in.NextReason, in.State)
		}
		// A follow-up left without its incident (the hash expired) is removed without making an orphan hash.
		if err := rdb.ZAdd(ctx, schema.FollowupsKey("h"), redis.Z{Score: 1, Member: unknown}).Err(); err != nil {
			t.Fatal(err)
		}
		if err := st.Incidents.Cancel(ctx, unknown); err != nil {
			t.Fatal(err)
		}
		if _, ok := score(t, rdb, schema.FollowupsKey("h"), unknown); ok {
			t.Errorf("the orphan follow-up is still scheduled")
		}
		if n := rdb.Exists(ctx, schema.IncidentKey(unknown)).Val(); n != 0 {
			t.Errorf("cancel created an orphan hash")
		}
	})
}

// TestAdvance records outcomes and schedules follow-ups: attempts counted, verification errors kept, the
// breaker's give-up set and cleared, each request's outcome recorded once, a follow-up only for an open
// incident, nothing for a missing one.
func TestAdvance(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		const key, missing = "h/web/crashed", "h/none/crashed"
		open(t, st, key)
		// A follow-up whose incident is gone (its hash expired) is dropped, and no hash is made for it.
		if err := rdb.ZAdd(ctx, schema.FollowupsKey("h"), redis.Z{Score: 1, Member: missing}).Err(); err != nil {
			t.Fatal(err)
		}
		at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
		const e1 = `still "down" / 503 ✗`
		type want struct {
			progress incidents.Progress
			section  schema.Progress
			due      int64 // the follow-up's score, 0 for none
		}
		steps := []struct {
			name  string
			step  incidents.Step
			close bool // close the incident before the step
			want  want
		}{
			{"a failed attempt", incidents.Step{Incident: key, Next: at(5), Reason: "verify",
				Outcome: incidents.Outcome{EventID: "r1", Attempt: true, At: at(1), Status: "failure", Details: "exit 1", Error: e1}}, false,
				want{incidents.Progress{Found: true, Open: true, Attempts: 1, OpenedAt: t0, Errors: []string{e1}},
					schema.Progress{Attempts: 1, LastAttemptAt: at(1), LastOutcome: "failure", LastDetails: "exit 1", Errors: []string{e1},
						NextAt: at(5), NextReason: "verify", LastEventID: "r1"}, at(5).UnixMilli()}},
			{"the same request again: only the schedule", incidents.Step{Incident: key, Next: at(6), Reason: "verify",
				Outcome: incidents.Outcome{EventID: "r1", Attempt: true, At: at(2), Status: "failure", Error: "again"}}, false,
				want{incidents.Progress{Found: true, Open: true, Attempts: 1, OpenedAt: t0, Errors: []string{e1}},
					schema.Progress{Attempts: 1, LastAttemptAt: at(1), LastOutcome: "failure", LastDetails: "exit 1", Errors: []string{e1},
						NextAt: at(6), NextReason: "verify", LastEventID: "r1"}, at(6).UnixMilli()}},
			{"a denial by an open breaker", incidents.Step{Incident: key, Next: at(60), Reason: "circuit_open",
				Outcome: incidents.Outcome{EventID: "r2", At: at(3), Status: "denied", Details: "breaker", BreakerUntil: at(60)}}, false,
				want{incidents.Progress{Found: true, Open: true, Attempts: 1, OpenedAt: t0, Errors: []string{e1}},
					schema.Progress{Attempts: 1, LastAttemptAt: at(1), LastOutcome: "denied", LastDetails: "breaker", Errors: []string{e1},
						NextAt: at(60), NextReason: "circuit_open", BreakerUntil: at(60), LastEventID: "r2"}, at(60).UnixMilli()}},
			{"the attempt that gives up: no follow-up", incidents.Step{Incident: key,
				Outcome: incidents.Outcome{EventID: "r3", Attempt: true, At: at(4), Status: "failure", Error: "e2", GaveUp: true, BreakerUntil: at(90)}}, false,
				want{incidents.Progress{Found: true, Open: true, Attempts: 2, OpenedAt: t0, Errors: []string{e1, "e2"}},
					schema.Progress{Attempts: 2, LastAttemptAt: at(4), LastOutcome: "failure", Errors: []string{e1, "e2"},
						GaveUpAt: at(4), BreakerUntil: at(90), LastEventID: "r3"}, 0}},
			{"resumed after the cool-off", incidents.Step{Incident: key, Next: at(95), Reason: "verify",
				Outcome: incidents.Outcome{EventID: "r4", Attempt: true, At: at(91), Status: "success", Resumed: true}}, false,
				want{incidents.Progress{Found: true, Open: true, Attempts: 3, OpenedAt: t0, Errors: []string{e1, "e2"}},
					schema.Progress{Attempts: 3, LastAttemptAt: at(91), LastOutcome: "success", Errors: []string{e1, "e2"},
						NextAt: at(95), NextReason: "verify", LastEventID: "r4"}, at(95).UnixMilli()}},
			{"after the close: recorded, not scheduled", incidents.Step{Incident: key, Next: at(100), Reason: "verify",
				Outcome: incidents.Outcome{EventID: "r5", At: at(99), Status: "skipped"}}, true,
				want{incidents.Progress{Found: true, Attempts: 3, OpenedAt: t0, Errors: []string{e1, "e2"}},
					schema.Progress{Attempts: 3, LastAttemptAt: at(91), LastOutcome: "skipped", Errors: []string{e1, "e2"},
						LastEventID: "r5"}, 0}},
		}
		for _, s := range steps {
			if s.close {
				if err := st.Incidents.Close(ctx, key, at(98), "recovered"); err != nil {
					t.Fatal(err)
				}
			}
			// Each step rides with one for the missing incident, which must change nothing.
			ps, err := st.Incidents.Advance(ctx, []incidents.Step{s.step, {Incident: missing, Next: at(1), Reason: "verify",
				Outcome: incidents.Outcome{EventID: "x", Attempt: true, At: at(1), Status: "failure", Error: "x"}}})
			if err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
			if diff := cmp.Diff([]incidents.Progress{s.want.progress, {}}, ps); diff != "" {
				t.Errorf("%s: progress (-want +got):\n%s", s.name, diff)
			}
			if diff := cmp.Diff(s.want.section, get(t, st, key).Progress); diff != "" {
				t.Errorf("%s: incident (-want +got):\n%s", s.name, diff)
			}
			due, _ := score(t, rdb, schema.FollowupsKey("h"), key)
			if due != s.want.due {
				t.Errorf("%s: follow-up due at %d, want %d", s.name, due, s.want.due)
			}
			if _, ok := score(t, rdb, schema.FollowupsKey("h"), missing); ok {
				t.Errorf("%s: the missing incident is scheduled", s.name)
			}
			if n := rdb.Exists(ctx, schema.IncidentKey(missing)).Val(); n != 0 {
				t.Errorf("%s: a step created the missing incident's hash", s.name)
			}
		}
		if in := get(t, st, key); in.Container != "web" || in.CloseReason != "recovered" {
			t.Errorf("steps changed the monitor's section: %+v", in.Detection)
		}
		if ps, err := st.Incidents.Advance(ctx, nil); ps != nil || err != nil {
			t.Errorf("advance of nothing = %v %v", ps, err)
		}
	})
}

// TestAdvanceAfterScriptFlush: a batch survives a flushed script cache (NOSCRIPT: load, run again).
func TestAdvanceAfterScriptFlush(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		keys := []string{"h/a/crashed", "h/b/crashed"}
		var steps []incidents.Step
		for i, k := range keys {
			open(t, st, k)
			steps = append(steps, incidents.Step{Incident: k, Next: t0.Add(time.Minute), Reason: "verify",
				Outcome: incidents.Outcome{EventID: fmt.Sprint("r", i), Attempt: true, At: t0, Status: "success"}})
		}
		if err := rdb.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		ps, err := st.Incidents.Advance(ctx, steps)
		if err != nil {
			t.Fatal(err)
		}
		want := []incidents.Progress{{Found: true, Open: true, Attempts: 1, OpenedAt: t0}, {Found: true, Open: true, Attempts: 1, OpenedAt: t0}}
		if diff := cmp.Diff(want, ps); diff != "" {
			t.Errorf("progress (-want +got):\n%s", diff)
		}
		for _, k := range keys {
			if in := get(t, st, k); in.Attempts != 1 || !in.NextAt.Equal(t0.Add(time.Minute)) {
				t.Errorf("%s: attempts %d, next %s", k, in.Attempts, in.NextAt)
			}
		}
	})
}

func TestAdvanceCapsErrors(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		const key = "h/web/crashed"
		open(t, st, key)
		advance := func(id, e string) incidents.Progress {
			t.Helper()
			ps, err := st.Incidents.Advance(ctx, []incidents.Step{{Incident: key, Outcome: incidents.Outcome{EventID: id, At: t0, Status: "failure", Error: e}}})
			if err != nil {
				t.Fatal(err)
			}
			return ps[0]
		}
		var all []string
		var last incidents.Progress
		for i := range schema.MaxErrors + 3 {
			e := fmt.Sprintf("verification %d failed", i)
			all = append(all, e)
			last = advance(fmt.Sprint("r", i), e)
		}
		if diff := cmp.Diff(all[3:], last.Errors); diff != "" {
			t.Errorf("errors returned, the newest %d kept (-want +got):\n%s", schema.MaxErrors, diff)
		}
		in := get(t, st, key)
		if diff := cmp.Diff(all[3:], in.Errors); diff != "" {
			t.Errorf("errors stored, the newest %d kept (-want +got):\n%s", schema.MaxErrors, diff)
		}
		if in.Attempts != 0 {
			t.Errorf("outcomes without an attempt counted %d", in.Attempts)
		}
		// An errors field that is not JSON starts the list afresh rather than failing the outcome.
		if err := rdb.HSet(ctx, schema.IncidentKey(key), schema.FieldErrors, "garbage").Err(); err != nil {
			t.Fatal(err)
		}
		advance("fresh", "fresh")
		if got := get(t, st, key).Errors; !cmp.Equal(got, []string{"fresh"}) {
			t.Errorf("errors after a bad field = %q, want [fresh]", got)
		}
	})
}

// scriptCounter counts the scripts run, EVALSHA and EVAL (its count is a storetest.OnCommand hook).
type scriptCounter struct{ n atomic.Int64 }

func (c *scriptCounter) count(cmd redis.Cmder) {
	if n := strings.ToLower(cmd.Name()); n == "evalsha" || n == "eval" {
		c.n.Add(1)
	}
}

// TestTakeDueNothingDueRunsNoScript: a poll that finds nothing due (no schedule, or only later follow-ups)
// returns the empty answer it always did without running the take script; one that finds a follow-up due,
// to the millisecond, runs it and takes it.
func TestTakeDueNothingDueRunsNoScript(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		hook := &scriptCounter{}
		rdb.AddHook(storetest.OnCommand(hook.count))
		hold := 30 * time.Second
		if got, err := st.Incidents.TakeDue(ctx, "h", t0, hold, 4); err != nil || got == nil || len(got) != 0 {
			t.Errorf("take of an empty schedule = %#v %v, want an empty list", got, err)
		}
		open(t, st, "h/a/crashed")
		if ok, err := st.Incidents.Schedule(ctx, "h/a/crashed", t0.Add(time.Minute), "verify"); !ok || err != nil {
			t.Fatalf("schedule: %v %v", ok, err)
		}
		before := hook.n.Load()
		if got, err := st.Incidents.TakeDue(ctx, "h", t0.Add(time.Minute-time.Millisecond), hold, 4); err != nil || len(got) != 0 {
			t.Errorf("take a millisecond early = %v %v, want nothing", got, err)
		}
		if n := hook.n.Load() - before; n != 0 {
			t.Errorf("polls with nothing due ran %d scripts, want none", n)
		}
		got, err := st.Incidents.TakeDue(ctx, "h", t0.Add(time.Minute), hold, 4)
		if diff := cmp.Diff([]incidents.Due{{Incident: "h/a/crashed", At: t0.Add(time.Minute)}}, got); err != nil || diff != "" {
			t.Errorf("take when due (-want +got): %v\n%s", err, diff)
		}
		if hook.n.Load() == before {
			t.Error("the take of a due follow-up ran no script")
		}
	})
}
