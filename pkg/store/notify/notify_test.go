package notify_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/store"
	"github.com/hemostat/hemostat/pkg/store/schema"
	"github.com/hemostat/hemostat/pkg/store/storetest"
)

const inc = "h1/web/crashed"

func TestClaimCountsRepeatsAndReleases(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		steps := []struct {
			state   string
			release []string
			want    int64
		}{
			{"remediated", []string{"recovered"}, 1},
			{"remediated", []string{"recovered"}, 2},
			{"remediated", []string{"recovered"}, 3},
			{"opened", []string{"recovered"}, 1},                  // another state of the same incident: first
			{"recovered", []string{"remediated", "opened"}, 1},    // first: forgets the other states
			{"remediated", []string{"recovered"}, 1},              // a new occurrence: first again
			{"recovered", []string{"remediated", "opened"}, 1},    // released by the remediation above
			{"recovered", []string{"remediated", "opened"}, 2},    // a repeat forgets nothing
			{"remediated", []string{"recovered"}, 1},              // the recovery's first claim forgot it
			{"opened", nil, 1},                                    // and this one
			{"opened", []string{"never", "claimed", "states"}, 2}, // releases of a repeat are not done
		}
		for i, s := range steps {
			n, err := st.Notify.Claim(ctx, inc, s.state, time.Hour, s.release...)
			if err != nil {
				t.Fatal(err)
			}
			if n != s.want {
				t.Errorf("claim %d (%s, releasing %v) = %d, want %d", i, s.state, s.release, n, s.want)
			}
		}
		if ttl := rdb.PTTL(ctx, schema.NotifyDedupKey(inc, "remediated")).Val(); ttl <= 0 || ttl > time.Hour {
			t.Errorf("claim ttl = %s, want within the hour", ttl)
		}
		if n, _ := st.Notify.Claim(ctx, "h2/web/crashed", "recovered", time.Hour); n != 1 {
			t.Errorf("another incident's claim = %d, want 1", n)
		}
		if err := st.Notify.Release(ctx, inc, "opened", "never"); err != nil {
			t.Fatal(err)
		}
		if err := st.Notify.Release(ctx, inc); err != nil {
			t.Errorf("release of no states: %v", err)
		}
		if n, _ := st.Notify.Claim(ctx, inc, "opened", time.Hour); n != 1 {
			t.Errorf("claim of opened after its release = %d, want 1", n)
		}
		if n, _ := st.Notify.Claim(ctx, inc, "remediated", time.Hour); n != 2 {
			t.Errorf("claim of the unreleased remediated = %d, want 2", n)
		}
	})
}

// TestClaimWindowStartsAtTheFirst: repeats do not extend the deduplication window.
func TestClaimWindowStartsAtTheFirst(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		if _, err := st.Notify.Claim(ctx, inc, "opened", time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Notify.Claim(ctx, inc, "opened", time.Hour); err != nil {
			t.Fatal(err)
		}
		if ttl := rdb.PTTL(ctx, schema.NotifyDedupKey(inc, "opened")).Val(); ttl <= 0 || ttl > time.Minute {
			t.Errorf("claim ttl after a repeat = %s, want the first claim's minute", ttl)
		}
	})
}

func TestRecordEventOncePerID(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		rec, err := event.New("monitor", "h1", inc, "", &event.ContainerRecovered{ContainerName: "web", Class: "crashed"})
		if err != nil {
			t.Fatal(err)
		}
		fa, err := event.New("analyze", "h1", inc, "", &event.FalseAlarm{Container: "web", Confidence: 0.4})
		if err != nil {
			t.Fatal(err)
		}
		var news []bool
		for _, env := range []event.Envelope{rec, rec, fa} {
			n, err := st.Notify.RecordEvent(ctx, env)
			if err != nil {
				t.Fatal(err)
			}
			news = append(news, n)
		}
		if diff := cmp.Diff([]bool{true, false, true}, news); diff != "" {
			t.Errorf("new (-want +got):\n%s", diff)
		}
		for key, want := range map[string]int64{schema.KeyEventsAll: 2, schema.EventsKey(event.TypeContainerRecovered): 1, schema.EventsKey(event.TypeFalseAlarm): 1} {
			if n := rdb.LLen(ctx, key).Val(); n != want {
				t.Errorf("%s has %d entries, want %d", key, n, want)
			}
		}
		if ttl := rdb.PTTL(ctx, schema.AlertSeenKey(rec.ID)).Val(); ttl <= time.Hour {
			t.Errorf("seen marker ttl = %s, want about a day", ttl)
		}
		evs, err := st.Notify.Events(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range evs {
			env, err := event.Decode(e.Event)
			if err != nil {
				t.Fatalf("stored event does not decode: %v", err)
			}
			if ts, err := time.Parse(time.RFC3339Nano, e.Timestamp); err != nil || !ts.Equal(env.Timestamp) {
				t.Errorf("stored timestamp %q, want the envelope's %s", e.Timestamp, env.Timestamp)
			}
			got = append(got, e.EventType+" "+env.ID)
		}
		if diff := cmp.Diff([]string{event.TypeFalseAlarm + " " + fa.ID, event.TypeContainerRecovered + " " + rec.ID}, got); diff != "" {
			t.Errorf("events newest first (-want +got):\n%s", diff)
		}
	})
}

func TestEventsSkipsWhatDoesNotDecode(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		if evs, err := st.Notify.Events(ctx, 10); err != nil || len(evs) != 0 {
			t.Errorf("events of nothing = %v %v", evs, err)
		}
		rdb.RPush(ctx, schema.KeyEventsAll, `{"timestamp":"t","event_type":"x","event":{"id":"1"}}`, "not json", `{"event_type":"no event"}`,
			`{"timestamp":"t","event_type":"y","event":{"id":"2"}}`)
		evs, err := st.Notify.Events(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range evs {
			got = append(got, e.EventType)
		}
		if diff := cmp.Diff([]string{"x", "y"}, got); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
		if evs, _ := st.Notify.Events(ctx, 1); len(evs) != 1 || evs[0].EventType != "x" {
			t.Errorf("newest event = %+v, want x", evs)
		}
	})
}

// filler returns n list items, for filling a capped list to its cap in one command.
func filler(n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = `{"old":true}`
	}
	return out
}

func TestListsAreCapped(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		// Each list one short of its cap: three more items push out two.
		caps := map[string]int{schema.KeyNotifyFailed: schema.NotifyFailedCap, schema.KeyEventsAll: schema.EventsCap,
			schema.EventsKey(event.TypeContainerRecovered): schema.EventsCap}
		for key, n := range caps {
			if err := rdb.RPush(ctx, key, filler(n-1)...).Err(); err != nil {
				t.Fatal(err)
			}
		}
		failure := func(i int) schema.NotifyFailure {
			return schema.NotifyFailure{Time: time.Unix(int64(i), 0).UTC(), Sink: "slack", Incident: inc, State: "opened",
				EventID: fmt.Sprint(i), Attempts: 3, Error: "503"}
		}
		for i := range 3 {
			if err := st.Notify.RecordFailure(ctx, failure(i)); err != nil {
				t.Fatal(err)
			}
		}
		if n := rdb.LLen(ctx, schema.KeyNotifyFailed).Val(); n != schema.NotifyFailedCap {
			t.Errorf("failure list holds %d, want %d", n, schema.NotifyFailedCap)
		}
		rdb.LPush(ctx, schema.KeyNotifyFailed, "not json")
		got, err := st.Notify.Failures(ctx, 3)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]schema.NotifyFailure{failure(2), failure(1)}, got); diff != "" {
			t.Errorf("newest failures, the bad one skipped (-want +got):\n%s", diff)
		}

		for i := range 3 {
			env, err := event.New("monitor", "h1", inc, "", &event.ContainerRecovered{ContainerName: fmt.Sprint(i)})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.Notify.RecordEvent(ctx, env); err != nil {
				t.Fatal(err)
			}
		}
		for _, key := range []string{schema.KeyEventsAll, schema.EventsKey(event.TypeContainerRecovered)} {
			if n := rdb.LLen(ctx, key).Val(); n != schema.EventsCap {
				t.Errorf("%s holds %d, want %d", key, n, schema.EventsCap)
			}
		}
		if evs, err := st.Notify.Events(ctx, 4); err != nil || len(evs) != 3 {
			t.Errorf("newest events = %d, %v; want the 3 recorded (the filler has no event)", len(evs), err)
		}
	})
}

func TestThread(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		if ch, ts, err := st.Notify.Thread(ctx, inc); err != nil || ch != "" || ts != "" {
			t.Fatalf("thread of nothing = %q %q %v", ch, ts, err)
		}
		if err := st.Notify.SetThread(ctx, inc, "C1", "1700000000.000100"); err != nil {
			t.Fatal(err)
		}
		ch, ts, err := st.Notify.Thread(ctx, inc)
		if err != nil || ch != "C1" || ts != "1700000000.000100" {
			t.Errorf("thread = %q %q %v", ch, ts, err)
		}
		if ttl := rdb.PTTL(ctx, schema.NotifyThreadKey(inc)).Val(); ttl <= 6*24*time.Hour {
			t.Errorf("thread ttl = %s, want a week", ttl)
		}
		if _, ts, _ := st.Notify.Thread(ctx, "h1/db/crashed"); ts != "" {
			t.Errorf("another incident's thread = %q", ts)
		}
		if err := st.Notify.ClearThread(ctx, inc); err != nil {
			t.Fatal(err)
		}
		if ch, ts, _ := st.Notify.Thread(ctx, inc); ch != "" || ts != "" {
			t.Errorf("thread after clear = %q %q", ch, ts)
		}
		if err := st.Notify.ClearThread(ctx, inc); err != nil {
			t.Errorf("clearing a cleared thread: %v", err)
		}
	})
}

func TestCounters(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		if got, problems, err := st.Notify.Counters(ctx); len(got) != 0 || problems != nil || err != nil {
			t.Errorf("counters of nothing = %v %v %v", got, problems, err)
		}
		sent := schema.NotifyCounter{Counter: schema.CounterSent, Label: "slack"}
		dedup := schema.NotifyCounter{Counter: schema.CounterDeduplicated, Label: "opened"}
		suppressed := schema.NotifyCounter{Counter: schema.CounterSuppressed, Label: ""}
		for _, c := range []struct {
			c schema.NotifyCounter
			n int64
		}{{sent, 2}, {dedup, 1}, {sent, 3}, {suppressed, 1}} {
			if err := st.Notify.Count(ctx, c.c, c.n); err != nil {
				t.Fatal(err)
			}
		}
		rdb.HSet(ctx, schema.KeyNotifyMetrics, "nolabel", "1", "failed:webhook", "12abc", "retried:webhook", "1.5")
		got, problems, err := st.Notify.Counters(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(map[schema.NotifyCounter]int64{sent: 5, dedup: 1, suppressed: 1}, got); diff != "" {
			t.Errorf("counters (-want +got):\n%s", diff)
		}
		var bad []string
		for _, p := range problems {
			for _, f := range []string{"nolabel", "failed:webhook", "retried:webhook"} {
				if strings.Contains(p.Error(), `"`+f+`"`) || strings.Contains(p.Error(), " "+f+":") {
					bad = append(bad, f)
				}
			}
		}
		if len(problems) != 3 || len(bad) != 3 {
			t.Errorf("problems = %v, want one for each of nolabel, failed:webhook, retried:webhook", problems)
		}
	})
}
