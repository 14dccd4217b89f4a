package bus_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/bus"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/sign"
	"github.com/hemostat/hemostat/pkg/store/schema"
	"github.com/hemostat/hemostat/pkg/testenv"
)

const (
	secretOld = "old-secret-old-secret-old-secret-old-secret!"
	secretNew = "new-secret-new-secret-new-secret-new-secret!"
)

func keys(t testing.TB, s string) *sign.Keyring {
	t.Helper()
	kr, err := sign.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// TestUnauthenticatedEntriesAreDeadLetteredUnread: with keys, a consumer hands its handler only entries a
// key of its keyring signed on this stream; the others go to the dead letter stream with their reason,
// counted by stream, group and reason, and the handler never sees them.
func TestUnauthenticatedEntriesAreDeadLetteredUnread(t *testing.T) {
	url := testenv.RequireRedis(t)
	kr := keys(t, "k1:"+secretOld)
	b, st := newBus(t, url, bus.Options{Block: 50 * time.Millisecond, Keys: kr})
	ctx := context.Background()
	rdb := st.Conn.Client()
	rec := newRecorder()
	consume(t, b, group("a"), rec.handle)

	good := alert(1)
	if _, err := b.Publish(ctx, stream, good); err != nil {
		t.Fatal(err)
	}
	// The same bytes hemostat would write, without the MAC, with a forged one, and under an unknown key.
	forged := func(i int, mac string) string {
		env := alert(i)
		raw, err := env.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		vals := []any{event.Field, raw}
		if mac != "" {
			vals = append(vals, sign.Field, mac)
		}
		if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: vals}).Err(); err != nil {
			t.Fatal(err)
		}
		return env.ID
	}
	goodRaw, _ := good.Marshal()
	guessed := keys(t, "k1:"+secretNew)
	ids := []string{
		forged(2, ""),
		forged(3, guessed.Sign(stream, goodRaw)), // a MAC made with another secret, and for other bytes
		forged(4, keys(t, "k9:"+secretOld).Sign(stream, goodRaw)),
		forged(5, kr.Sign(event.StreamFalseAlarm, goodRaw)), // a real MAC, of other bytes
	}
	eventually(t, 10*time.Second, "four dead letters", func() bool { n, _ := b.Len(ctx, event.StreamDeadLetter); return n == 4 })
	eventually(t, 5*time.Second, "the signed entry handled", func() bool { return rec.times(good.ID) == 1 })
	for _, id := range ids {
		if rec.times(id) != 0 {
			t.Errorf("the handler saw unauthenticated event %s", id)
		}
	}
	dl, err := b.DeadLetters(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := len(dl) - 1; i >= 0; i-- {
		got = append(got, dl[i].Rejected)
		if !strings.Contains(dl[i].Reason, dl[i].Rejected) || dl[i].Stream != stream || dl[i].Group != "analyze" {
			t.Errorf("dead letter %+v", dl[i])
		}
	}
	want := []string{sign.ReasonUnsigned, sign.ReasonBadMAC, sign.ReasonUnknownKey, sign.ReasonBadMAC}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("dead letters' reasons = %v, want %v", got, want)
	}
	counts, probs, err := b.Rejections(ctx)
	if err != nil || len(probs) > 0 {
		t.Fatal(err, probs)
	}
	wantCounts := map[schema.BusRejection]int64{
		{Stream: stream, Group: "analyze", Reason: sign.ReasonUnsigned}:   1,
		{Stream: stream, Group: "analyze", Reason: sign.ReasonBadMAC}:     2,
		{Stream: stream, Group: "analyze", Reason: sign.ReasonUnknownKey}: 1,
	}
	if len(counts) != len(wantCounts) {
		t.Errorf("rejections = %v, want %v", counts, wantCounts)
	}
	for k, v := range wantCounts {
		if counts[k] != v {
			t.Errorf("rejections[%v] = %d, want %d", k, counts[k], v)
		}
	}
	if n := b.Stats().Rejected.Load(); n != 4 {
		t.Errorf("rejected = %d, want 4", n)
	}
	if p, _ := b.Pending(ctx, stream, "analyze"); p != 0 {
		t.Errorf("%d entries still pending: refused entries are acked", p)
	}
}

// TestEveryPublishPathSigns: Publish, PublishRaw, PublishBatch, PublishWith and PublishManyWith all write
// the MAC, and a bus without keys writes none.
func TestEveryPublishPathSigns(t *testing.T) {
	url := testenv.RequireRedis(t)
	kr := keys(t, "k1:"+secretOld)
	b, _ := newBus(t, url, bus.Options{Keys: kr})
	plain, _ := newBus(t, url, bus.Options{})
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := b.Publish(ctx, stream, alert(1))
	must(err)
	raw, _ := alert(2).Marshal()
	_, err = b.PublishRaw(ctx, stream, raw)
	must(err)
	must(b.PublishBatch(ctx, stream, []event.Envelope{alert(3), alert(4)}))
	must(b.PublishWith(ctx, stream, alert(5)))
	must(b.PublishManyWith(ctx, []bus.Outgoing{{Stream: stream, Env: alert(6)}}))
	_, err = plain.Publish(ctx, stream, alert(7))
	must(err)
	entries, err := b.Range(ctx, stream, "-", "+", 100)
	must(err)
	if len(entries) != 7 {
		t.Fatalf("%d entries, want 7", len(entries))
	}
	for i, e := range entries[:6] {
		if err := kr.Verify(stream, e.Raw, e.Extra[sign.Field]); err != nil {
			t.Errorf("entry %d: %v", i+1, err)
		}
	}
	if mac, ok := entries[6].Extra[sign.Field]; ok {
		t.Errorf("a bus without keys wrote a MAC %q", mac)
	}
}

// TestRotationOldKeyVerifiesWhileNewSigns: during a rotation the agents hold both keys; one not yet
// switched signs with the old key, one switched signs with the new, and a consumer of either kind accepts
// both. After the rotation an entry of the old key is refused.
func TestRotationOldKeyVerifiesWhileNewSigns(t *testing.T) {
	url := testenv.RequireRedis(t)
	ctx := context.Background()
	notYet, _ := newBus(t, url, bus.Options{Keys: keys(t, "old:"+secretOld+",new:"+secretNew)})
	switched, _ := newBus(t, url, bus.Options{Block: 50 * time.Millisecond, Keys: keys(t, "new:"+secretNew+",old:"+secretOld)})
	after, _ := newBus(t, url, bus.Options{Block: 50 * time.Millisecond, Keys: keys(t, "new:"+secretNew)})
	rec := newRecorder()
	consume(t, switched, group("a"), rec.handle)
	byOld, byNew := alert(1), alert(2)
	if _, err := notYet.Publish(ctx, stream, byOld); err != nil {
		t.Fatal(err)
	}
	if _, err := switched.Publish(ctx, stream, byNew); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "both entries handled", func() bool { return rec.times(byOld.ID) == 1 && rec.times(byNew.ID) == 1 })
	entries, _ := notYet.Range(ctx, stream, "-", "+", 10)
	if !strings.HasPrefix(entries[0].Extra[sign.Field], "old:") || !strings.HasPrefix(entries[1].Extra[sign.Field], "new:") {
		t.Errorf("MACs %q and %q, want one by each key", entries[0].Extra[sign.Field], entries[1].Extra[sign.Field])
	}
	// After the rotation: a consumer that holds only the new key refuses what the old one signed.
	rec2 := newRecorder()
	consume(t, after, bus.Group{Name: "late", Consumer: "b", Streams: []string{stream}}, rec2.handle)
	eventually(t, 10*time.Second, "the new key's entry handled", func() bool { return rec2.times(byNew.ID) == 1 })
	eventually(t, 5*time.Second, "the old key's entry refused", func() bool {
		dl, _ := after.DeadLetters(ctx, 10)
		return len(dl) == 1 && dl[0].Rejected == sign.ReasonUnknownKey && dl[0].Group == "late"
	})
	if rec2.times(byOld.ID) != 0 {
		t.Error("after the rotation the old key's entry was handled")
	}
}

// TestHandlerRejectDeadLettersAndCounts: a handler's Reject sends the entry to the dead letter stream with
// its reason and counts it; the entry is acked, not retried.
func TestHandlerRejectDeadLettersAndCounts(t *testing.T) {
	url := testenv.RequireRedis(t)
	b, _ := newBus(t, url, bus.Options{Block: 50 * time.Millisecond, RetryDelay: 10 * time.Millisecond})
	ctx := context.Background()
	rec := newRecorder()
	stale := alert(1)
	rec.fail = func(m bus.Message) error {
		if m.Envelope.ID == stale.ID {
			return bus.Reject("stale", "sent %s ago", time.Hour)
		}
		return nil
	}
	consume(t, b, group("a"), rec.handle)
	if _, err := b.Publish(ctx, stream, stale); err != nil {
		t.Fatal(err)
	}
	fresh := alert(2)
	if _, err := b.Publish(ctx, stream, fresh); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "both handled", func() bool { return rec.times(fresh.ID) == 1 && rec.times(stale.ID) == 1 })
	eventually(t, 5*time.Second, "one dead letter", func() bool {
		dl, _ := b.DeadLetters(ctx, 10)
		return len(dl) == 1 && dl[0].Rejected == "stale" && dl[0].Reason == "stale: sent 1h0m0s ago"
	})
	counts, _, err := b.Rejections(ctx)
	if err != nil || counts[schema.BusRejection{Stream: stream, Group: "analyze", Reason: "stale"}] != 1 {
		t.Errorf("rejections = %v, %v", counts, err)
	}
	if p, _ := b.Pending(ctx, stream, "analyze"); p != 0 {
		t.Errorf("%d pending, want 0", p)
	}
	if rec.times(stale.ID) != 1 {
		t.Errorf("the refused entry was handled %d times, want once (never retried)", rec.times(stale.ID))
	}
	var re *bus.RejectError
	if !errors.As(bus.Reject("x", "y"), &re) {
		t.Error("Reject does not return a *RejectError")
	}
}
