package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/audit"
	"github.com/hemostat/hemostat/pkg/conn"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/store"
	"github.com/hemostat/hemostat/pkg/store/auditlog"
	"github.com/hemostat/hemostat/pkg/store/schema"
	"github.com/hemostat/hemostat/pkg/testenv"
	"strconv"
)

func setup(t *testing.T) (*audit.Trail, *store.Store, *redis.Client) {
	t.Helper()
	url := testenv.RequireRedis(t)
	st, err := store.Open(conn.Options{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	o, _ := redis.ParseURL(url)
	rdb := redis.NewClient(o)
	t.Cleanup(func() { rdb.Close() })
	return audit.NewTrail(st.Audit), st, rdb
}

var t0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

func entry(i int, container, action, result string) audit.Entry {
	return audit.Entry{Time: t0.Add(time.Duration(i) * time.Minute), Host: "node-a", Container: container, Action: action,
		Decision: "executed", Result: result, Reason: fmt.Sprintf("reason %d", i), Actor: "rules", Confidence: 0.9, DurationMS: 12.5}
}

func fill(t *testing.T, tr *audit.Trail, n int) []audit.Record {
	t.Helper()
	var out []audit.Record
	for i := range n {
		c := []string{"web-1", "web-2", "db-1"}[i%3]
		res := []string{"success", "denied"}[i%2]
		r, err := tr.Append(context.Background(), entry(i, c, "restart", res))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func TestChainLinksEveryEntry(t *testing.T) {
	t.Parallel()
	tr, _, _ := setup(t)
	recs := fill(t, tr, 5)
	for i, r := range recs {
		if r.Seq != int64(i+1) || r.Hash != r.ComputeHash() {
			t.Errorf("entry %d: seq %d, hash ok %v", i, r.Seq, r.Hash == r.ComputeHash())
		}
		if i > 0 && r.PrevHash != recs[i-1].Hash {
			t.Errorf("entry %d does not chain to %d", i, i-1)
		}
	}
	if recs[0].PrevHash != "" {
		t.Errorf("first entry chains to %q", recs[0].PrevHash)
	}
}

func TestConcurrentWritersKeepOneChain(t *testing.T) {
	t.Parallel()
	_, st, _ := setup(t)
	var wg sync.WaitGroup
	for w := range 4 {
		tr := audit.NewTrail(st.Audit) // one trail per writer, as separate responders would have
		wg.Go(func() {
			for i := range 10 {
				if _, err := tr.Append(context.Background(), entry(i, fmt.Sprintf("c%d", w), "restart", "success")); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	rep, err := audit.NewTrail(st.Audit).Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Break != nil || rep.Entries != 40 {
		t.Errorf("verify: %d entries, break %v", rep.Entries, rep.Break)
	}
}

// TestGroupCommitKeepsEveryCallersEntries runs many concurrent callers on each of three trails (three
// processes): single appends and runs of three share writes, and still every caller gets back its own
// entries, stored under the stream ids returned, a run contiguous, and the chain verifies whole.
func TestGroupCommitKeepsEveryCallersEntries(t *testing.T) {
	t.Parallel()
	_, st, _ := setup(t)
	ctx := context.Background()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		recs []audit.Record
	)
	for p := range 3 {
		tr := audit.NewTrail(st.Audit)
		for g := range 8 {
			wg.Go(func() {
				for i := range 10 {
					c := fmt.Sprintf("p%d-g%d", p, g)
					var got []audit.Record
					if i%2 == 0 {
						r, err := tr.Append(ctx, entry(i, c, "restart", "success"))
						if err != nil {
							t.Error(err)
							return
						}
						got = []audit.Record{r}
					} else {
						es := []audit.Entry{entry(i, c, "restart", "denied"), entry(i, c, "stop", "denied"), entry(i, c, "scale", "denied")}
						rs, err := tr.AppendMany(ctx, es)
						if err != nil {
							t.Error(err)
							return
						}
						if len(rs) != 3 || rs[1].Seq != rs[0].Seq+1 || rs[2].Seq != rs[1].Seq+1 || rs[1].PrevHash != rs[0].Hash {
							t.Errorf("run of 3 not contiguous: %+v", rs)
						}
						got = rs
					}
					for _, r := range got {
						if r.Container != c {
							t.Errorf("caller %s got an entry of %s", c, r.Container)
						}
					}
					mu.Lock()
					recs = append(recs, got...)
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	rep, err := audit.NewTrail(st.Audit).Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := 3 * 8 * (5 + 5*3); rep.Break != nil || rep.Entries != int64(want) || len(recs) != want {
		t.Fatalf("verify: %d entries (want %d, returned %d), break %v", rep.Entries, want, len(recs), rep.Break)
	}
	for _, r := range recs {
		stored, err := st.Audit.Range(ctx, r.StreamID, r.StreamID, 1)
		if err != nil || len(stored) != 1 {
			t.Fatalf("entry %s: %v", r.StreamID, err)
		}
		var e audit.Entry
		if err := json.Unmarshal(stored[0].JSON, &e); err != nil || e.Hash != r.Hash || e.Seq != r.Seq || e.Container != r.Container {
			t.Errorf("stream id %s holds seq %d of %s, the caller was told seq %d of %s", r.StreamID, e.Seq, e.Container, r.Seq, r.Container)
		}
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		tamper func(t *testing.T, rdb *redis.Client, recs []audit.Record)
		want   string // kind, "" for intact
		at     int    // index of the entry that must be named
	}{
		{name: "intact"},
		{name: "edited in place of the last entry", at: 5, want: audit.BreakEdited,
			tamper: func(t *testing.T, rdb *redis.Client, recs []audit.Record) {
				last := recs[5]
				e := last.Entry
				e.Result = "success" // rewrite history, keep the old hash
				b, _ := json.Marshal(e)
				rdb.XDel(context.Background(), event.StreamAudit, last.StreamID)
				ms, seq, _ := strings.Cut(last.StreamID, "-")
				var n int
				fmt.Sscan(seq, &n)
				id := fmt.Sprintf("%s-%d", ms, n+1)
				if err := rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: event.StreamAudit, ID: id, Values: []any{"entry", b}}).Err(); err != nil {
					t.Fatal(err)
				}
				recs[5].StreamID = id
			}},
		{name: "edited and rehashed", at: 2, want: audit.BreakEdited,
			tamper: func(t *testing.T, rdb *redis.Client, recs []audit.Record) {
				// Delete entries 2..5 and append them again with entry 2 changed and rehashed: entry 3 no longer chains.
				for _, r := range recs[2:] {
					rdb.XDel(context.Background(), event.StreamAudit, r.StreamID)
				}
				for i, r := range recs[2:] {
					e := r.Entry
					if i == 0 {
						e.Result = "failed"
						e.Hash = e.ComputeHash()
					}
					b, _ := json.Marshal(e)
					id, err := rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: event.StreamAudit, Values: []any{"entry", b}}).Result()
					if err != nil {
						t.Fatal(err)
					}
					recs[2+i].StreamID = id
				}
			}},
		{name: "deleted in the middle", at: 3, want: audit.BreakMissing,
			tamper: func(t *testing.T, rdb *redis.Client, recs []audit.Record) {
				rdb.XDel(context.Background(), event.StreamAudit, recs[2].StreamID)
			}},
		{name: "deleted at the tail", at: 5, want: audit.BreakMissing,
			tamper: func(t *testing.T, rdb *redis.Client, recs []audit.Record) {
				rdb.XDel(context.Background(), event.StreamAudit, recs[5].StreamID)
			}},
		{name: "deleted at the head", at: 1, want: audit.BreakMissing,
			tamper: func(t *testing.T, rdb *redis.Client, recs []audit.Record) {
				rdb.XDel(context.Background(), event.StreamAudit, recs[0].StreamID)
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tr, _, rdb := setup(t)
			recs := fill(t, tr, 6)
			if tt.tamper != nil {
				tt.tamper(t, rdb, recs)
			}
			rep, err := audit.NewTrail(storeOf(t, rdb).Audit).Verify(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == "" {
				if rep.Break != nil || rep.Entries != 6 {
					t.Errorf("intact trail: %d entries, break %v", rep.Entries, rep.Break)
				}
				return
			}
			if rep.Break == nil {
				t.Fatalf("tampering not detected")
			}
			if rep.Break.Kind != tt.want || rep.Break.StreamID != recs[tt.at].StreamID {
				t.Errorf("break %v; want %s at %s (seq %d)", rep.Break, tt.want, recs[tt.at].StreamID, tt.at+1)
			}
		})
	}
}

func storeOf(t *testing.T, rdb *redis.Client) *store.Store {
	o := rdb.Options()
	st, err := store.Open(conn.Options{URL: fmt.Sprintf("redis://%s/%d", o.Addr, o.DB)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestQuery(t *testing.T) {
	t.Parallel()
	tr, _, _ := setup(t)
	fill(t, tr, 12) // web-1 at 0,3,6,9; results alternate success/denied
	seqs := func(recs []audit.Record) []int64 {
		var out []int64
		for _, r := range recs {
			out = append(out, r.Seq)
		}
		return out
	}
	tests := []struct {
		name string
		f    audit.Filter
		want []int64
	}{
		{"all", audit.Filter{}, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}},
		{"newest 3, oldest first", audit.Filter{Limit: 3}, []int64{10, 11, 12}},
		{"one container through its index", audit.Filter{Target: "node-a/web-1"}, []int64{1, 4, 7, 10}},
		{"container and result", audit.Filter{Target: "node-a/web-1", Result: "denied"}, []int64{4, 10}},
		{"action", audit.Filter{Action: "stop"}, nil},
		{"since", audit.Filter{Since: t0.Add(10 * time.Minute)}, []int64{11, 12}},
		{"unknown container", audit.Filter{Target: "node-a/nope"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, err := tr.Query(context.Background(), tt.f)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, seqs(recs)); diff != "" {
				t.Errorf("seqs (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFollow(t *testing.T) {
	t.Parallel()
	tr, _, _ := setup(t)
	fill(t, tr, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan audit.Record, 10)
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = tr.Follow(ctx, audit.Filter{Target: "node-a/db-1"}, "", func(r audit.Record) error { got <- r; return nil })
	})
	// Follow starts at the end: append until one new db-1 entry arrives.
	deadline := time.After(5 * time.Second)
	i := 100
	for done := false; !done; {
		if _, err := tr.Append(ctx, entry(i, "db-1", "restart", "success")); err != nil {
			t.Fatal(err)
		}
		i++
		select {
		case r := <-got:
			if r.Container != "db-1" {
				t.Errorf("followed %s", r.Container)
			}
			done = true
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatal("nothing followed")
		}
	}
	cancel()
	wg.Wait()
}

func TestTableFitsTheWidth(t *testing.T) {
	long := entry(1, "a-very-long-container-name-indeed", "restart", "denied")
	long.Reason = strings.Repeat("the reason is long ", 20)
	long.RetryAfterMS = 20000
	recs := []audit.Record{{StreamID: "1-0", Entry: long}, {StreamID: "2-0", Entry: entry(2, "web-1", "restart", "success")}}
	for _, width := range []int{60, 80, 120, 200} {
		var b bytes.Buffer
		if err := audit.Write(&b, audit.FormatTable, recs, width); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
		if len(lines) != 3 {
			t.Errorf("width %d: %d lines, want header and 2 rows", width, len(lines))
		}
		for _, l := range lines {
			if n := utf8.RuneCountInString(l); n > width {
				t.Errorf("width %d: line of %d runes: %q", width, n, l)
			}
		}
	}
}

func TestJSONIsStable(t *testing.T) {
	rec := audit.Record{StreamID: "1-0", Entry: entry(1, "web-1", "restart", "success")}
	var b bytes.Buffer
	if err := audit.Write(&b, audit.FormatJSONL, []audit.Record{rec}, 0); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"stream_id", "id", "time", "host", "container", "action", "decision", "result", "actor",
		"confidence", "duration_ms", "verified", "dry_run", "prev_hash", "hash"} {
		if _, ok := m[k]; !ok {
			t.Errorf("jsonl entry lacks %q: %s", k, b.String())
		}
	}
	b.Reset()
	if err := audit.Write(&b, audit.FormatJSON, nil, 0); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(b.String()); got != "[]" {
		t.Errorf("empty json = %q, want []", got)
	}
}

// TestTrimAnchorsTheChain: the retention removes the oldest entries and anchors the chain at the first one
// kept, so verify passes and says where the chain starts; the per-container index follows the trim; and
// removing entries by hand (without an anchor) is still a break.
func TestTrimAnchorsTheChain(t *testing.T) {
	tr, st, rdb := setup(t)
	ctx := context.Background()
	for i := range 10 {
		if _, err := tr.Append(ctx, audit.Entry{Host: "h", Container: "web-" + strconv.Itoa(i%2), Action: "restart",
			Decision: "executed", Result: "success"}); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := tr.Trim(ctx, auditlog.Retention{MaxEntries: 4}, time.Now())
	if err != nil || removed != 6 {
		t.Fatalf("Trim = %d, %v; want 6 removed", removed, err)
	}
	rep, err := tr.Verify(ctx)
	if err != nil || rep.Break != nil || rep.Entries != 4 || rep.First != 7 || rep.Anchor.Seq != 6 {
		t.Fatalf("after the trim: %+v, %v", rep, err)
	}
	if again, _ := tr.Trim(ctx, auditlog.Retention{MaxEntries: 4}, time.Now()); again != 0 {
		t.Errorf("a second trim removed %d", again)
	}
	idx := rdb.XLen(ctx, schema.AuditIndexKey("h/web-0")).Val() + rdb.XLen(ctx, schema.AuditIndexKey("h/web-1")).Val()
	if idx != 4 {
		t.Errorf("index entries after the trim: %d, want 4", idx)
	}
	// An age limit trims to the first entry newer than it, and always keeps the newest.
	if n, err := tr.Trim(ctx, auditlog.Retention{MaxAge: time.Nanosecond}, time.Now().Add(time.Hour)); err != nil || n != 3 {
		t.Errorf("age trim = %d, %v; want 3 (the newest kept)", n, err)
	}
	if rep, _ := tr.Verify(ctx); rep.Break != nil || rep.Entries != 1 || rep.First != 10 {
		t.Errorf("after the age trim: %+v", rep)
	}
	// A deletion by hand, with no anchor for it, breaks the chain.
	recs, _ := st.Audit.Range(ctx, "-", "+", 10)
	if _, err := tr.Append(ctx, audit.Entry{Host: "h", Container: "web-0", Action: "restart", Decision: "executed", Result: "success"}); err != nil {
		t.Fatal(err)
	}
	rdb.XDel(ctx, schema.KeyAudit, recs[0].ID)
	if rep, _ := tr.Verify(ctx); rep.Break == nil || rep.Break.Kind != audit.BreakMissing && rep.Break.Kind != audit.BreakEdited {
		t.Errorf("an entry deleted by hand: %+v", rep)
	}
}

// Hostile text in an entry (a container name or reason with escape sequences, bidi overrides, invalid
// UTF-8, newlines) prints as visible escapes on one line of the table, and verbatim, escaped, in JSON.
func TestTableNeutralisesHostileText(t *testing.T) {
	e := entry(1, "web\x1b[2J\x1b]0;owned\x07", "restart", "failed")
	e.Reason = "line1\nline2 \u202eexe\xff \u009b31m"
	e.Details = "$(rm -rf /); `id`"
	recs := []audit.Record{{StreamID: "1-0", Entry: e}}
	var b bytes.Buffer
	if err := audit.Write(&b, audit.FormatTable, recs, 200); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, bad := range []string{"\x1b", "\x07", "\u202e", "\xff", "\u009b"} {
		if strings.Contains(out, bad) {
			t.Errorf("table emits %q:\n%s", bad, out)
		}
	}
	for _, want := range []string{`web\x1b[2J\x1b]0;…`, `line1 line2 \u202eexe\xff \u009b31m`, "$(rm -rf /); `id`"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(strings.TrimRight(out, "\n"), "\n"); n != 1 {
		t.Errorf("table has %d line breaks, want header and one row:\n%s", n, out)
	}
	b.Reset()
	if err := audit.Write(&b, audit.FormatJSONL, recs, 200); err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(b.String(), "\x1b\x07") || !strings.Contains(b.String(), `\u001b[2J`) {
		t.Errorf("jsonl does not escape the control characters: %s", b.String())
	}
}

// TestAppendAuditsARequestOnce: an entry for a request audited already (a redelivery after a lost
// acknowledgement) is not appended again; the caller gets the stored entry's id with its own entry
// unchained, and the others of the same group commit are appended and chained as if it were not there.
func TestAppendAuditsARequestOnce(t *testing.T) {
	t.Parallel()
	tr, st, rdb := setup(t)
	ctx := context.Background()
	e := entry(0, "web-1", "restart", "success")
	e.Once = "req-1"
	first, err := tr.Append(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	again := entry(1, "web-1", "restart", "success") // what a redelivery would report
	again.Once = "req-1"
	other := entry(2, "web-2", "restart", "failed")
	other.Once = "req-2"
	recs, err := audit.NewTrail(st.Audit).AppendMany(ctx, []audit.Entry{entry(3, "db-1", "stop", "success"), again, other})
	if err != nil {
		t.Fatal(err)
	}
	if recs[1].StreamID != first.StreamID || recs[1].Seq != 0 || recs[1].PrevHash != "" || recs[1].Hash != "" ||
		recs[1].Reason != again.Reason || recs[1].Once != "req-1" {
		t.Errorf("the audited request's record = %+v, want the stored id %s and the redelivery's entry unchained", recs[1], first.StreamID)
	}
	if recs[0].Seq != 2 || recs[2].Seq != 3 || recs[2].PrevHash != recs[0].Hash {
		t.Errorf("the others: seq %d and %d, chained %v", recs[0].Seq, recs[2].Seq, recs[2].PrevHash == recs[0].Hash)
	}
	if n := rdb.XLen(ctx, schema.KeyAudit).Val(); n != 3 {
		t.Errorf("trail length = %d, want 3", n)
	}
	rep, err := tr.Verify(ctx)
	if err != nil || rep.Break != nil || rep.Entries != 3 {
		t.Errorf("verify: %+v %v", rep, err)
	}
	// Alone, a second report of the request appends nothing and returns the first.
	r, err := tr.Append(ctx, again)
	if err != nil || r.StreamID != first.StreamID {
		t.Errorf("second report = %+v %v, want the first's record", r, err)
	}
	// Two reports of a new request in one group commit: one is appended, both get its record.
	twice := entry(4, "web-3", "restart", "success")
	twice.Once = "req-3"
	recs, err = tr.AppendMany(ctx, []audit.Entry{twice, entry(5, "db-2", "stop", "success"), twice})
	if err != nil {
		t.Fatal(err)
	}
	if recs[0].StreamID == "" || recs[2].StreamID != recs[0].StreamID || recs[2].Hash != recs[0].Hash {
		t.Errorf("one request twice in a run: %+v and %+v, want one record", recs[0], recs[2])
	}
	if n := rdb.XLen(ctx, schema.KeyAudit).Val(); n != 5 {
		t.Errorf("trail length = %d, want 5", n)
	}
	if rep, err := tr.Verify(ctx); err != nil || rep.Break != nil || rep.Entries != 5 {
		t.Errorf("verify: %+v %v", rep, err)
	}
}
