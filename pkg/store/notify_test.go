package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/store"
	"github.com/hemostat/hemostat/pkg/testenv"
)

func notifyStore(t *testing.T) *store.Client {
	t.Helper()
	c, err := store.Open(store.Options{URL: testenv.RequireRedis(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestNotifyClaimCountsRepeatsAndReleases(t *testing.T) {
	c := notifyStore(t)
	ctx := context.Background()
	const inc = "h1/web/crashed"
	var got []int64
	claim := func(state string, release ...string) {
		n, err := c.NotifyClaim(ctx, inc, state, time.Hour, release...)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, n)
	}
	claim("remediated", "recovered")
	claim("remediated", "recovered")
	claim("remediated", "recovered")
	claim("opened", "recovered")               // another state of the same incident: first
	claim("recovered", "remediated", "opened") // first: forgets the other states
	claim("remediated", "recovered")           // a new occurrence: first again
	claim("recovered", "remediated", "opened") // released by the remediation above: first again
	if diff := cmp.Diff([]int64{1, 2, 3, 1, 1, 1, 1}, got); diff != "" {
		t.Errorf("claims (-want +got):\n%s", diff)
	}
	if ttl := c.Redis().PTTL(ctx, store.NotifyDedupKey(inc, "recovered")).Val(); ttl <= 0 || ttl > time.Hour {
		t.Errorf("claim TTL = %s", ttl)
	}
	if err := c.NotifyRelease(ctx, inc, "recovered"); err != nil {
		t.Fatal(err)
	}
	if n, _ := c.NotifyClaim(ctx, inc, "recovered", time.Hour); n != 1 {
		t.Errorf("claim after release = %d, want 1", n)
	}
}

func TestNotifyRecordEventOncePerID(t *testing.T) {
	c := notifyStore(t)
	ctx := context.Background()
	env, err := event.New("t", "h1", "h1/web/crashed", "", &event.ContainerRecovered{ContainerName: "web", Class: "crashed"})
	if err != nil {
		t.Fatal(err)
	}
	var news []bool
	for range 2 {
		n, err := c.NotifyRecordEvent(ctx, env)
		if err != nil {
			t.Fatal(err)
		}
		news = append(news, n)
	}
	if diff := cmp.Diff([]bool{true, false}, news); diff != "" {
		t.Errorf("new (-want +got):\n%s", diff)
	}
	for _, key := range []string{event.KeyEventsAll, event.EventsKey(event.TypeContainerRecovered)} {
		if n := c.Redis().LLen(ctx, key).Val(); n != 1 {
			t.Errorf("%s has %d entries, want 1", key, n)
		}
	}
}

func TestNotifyListsAreCapped(t *testing.T) {
	c := notifyStore(t)
	ctx := context.Background()
	for i := range store.NotifyFailedCap + 5 {
		if err := c.NotifyRecordFailure(ctx, store.NotifyFailure{Sink: "slack", EventID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := c.NotifyFailures(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].EventID != fmt.Sprint(store.NotifyFailedCap+4) {
		t.Errorf("newest failures = %+v", got)
	}
	if n := c.Redis().LLen(ctx, store.KeyNotifyFailed).Val(); n != store.NotifyFailedCap {
		t.Errorf("failure list holds %d, want %d", n, store.NotifyFailedCap)
	}
}

func TestNotifyThread(t *testing.T) {
	c := notifyStore(t)
	ctx := context.Background()
	const inc = "h1/web/crashed"
	if ch, ts, err := c.NotifyThread(ctx, inc); err != nil || ch != "" || ts != "" {
		t.Fatalf("empty thread = %q %q %v", ch, ts, err)
	}
	if err := c.NotifySetThread(ctx, inc, "C1", "1700000000.000100"); err != nil {
		t.Fatal(err)
	}
	ch, ts, err := c.NotifyThread(ctx, inc)
	if err != nil || ch != "C1" || ts != "1700000000.000100" {
		t.Errorf("thread = %q %q %v", ch, ts, err)
	}
	if err := c.NotifyClearThread(ctx, inc); err != nil {
		t.Fatal(err)
	}
	if _, ts, _ := c.NotifyThread(ctx, inc); ts != "" {
		t.Errorf("thread after clear = %q", ts)
	}
}

func TestExportReadWithoutStreams(t *testing.T) {
	c := notifyStore(t)
	s, err := c.ExportRead(context.Background(), event.WorkStreams)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Groups) != 0 || len(s.Containers) != 0 || s.DeadLetters != 0 || s.StreamLen[event.StreamHealthAlert] != 0 {
		t.Errorf("empty snapshot = %+v", s)
	}
}
