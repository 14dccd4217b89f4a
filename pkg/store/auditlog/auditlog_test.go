package auditlog_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/store"
	"github.com/hemostat/hemostat/pkg/store/auditlog"
	"github.com/hemostat/hemostat/pkg/store/schema"
	"github.com/hemostat/hemostat/pkg/store/storetest"
)

// jsons returns the records' JSON as strings ("" for a placeholder).
func jsons(rs []auditlog.Record) []string {
	var out []string
	for _, r := range rs {
		out = append(out, string(r.JSON))
	}
	return out
}

func TestAppendChainsOrConflicts(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		if h, err := st.Audit.ReadHead(ctx); err != nil || h != (schema.AuditHead{}) {
			t.Errorf("head of an empty trail = %+v %v", h, err)
		}
		if ids, head, err := st.Audit.Append(ctx, schema.AuditHead{}, 1, nil); ids != nil || head != (schema.AuditHead{}) || err != nil {
			t.Errorf("append of nothing = %v %+v %v", ids, head, err)
		}
		ids, head, err := st.Audit.Append(ctx, schema.AuditHead{}, 1, []auditlog.Item{{Target: "node-a/web-1", JSON: []byte(`{"seq":1}`), Hash: "h1"}})
		if err != nil || len(ids) != 1 || head != (schema.AuditHead{Hash: "h1", Seq: 1, ID: ids[0]}) {
			t.Fatalf("first append: %q %+v %v", ids, head, err)
		}
		first := ids[0]
		// A writer that chained to the empty trail, or to the right hash at the wrong position, comes second.
		for _, stale := range []struct {
			prev schema.AuditHead
			seq  int64
		}{{schema.AuditHead{}, 1}, {head, 1}, {head, 3}} {
			_, cur, err := st.Audit.Append(ctx, stale.prev, stale.seq, []auditlog.Item{{Target: "node-a/web-1", JSON: []byte(`{}`), Hash: "hx"}})
			if !errors.Is(err, auditlog.ErrConflict) || cur.Hash != "h1" || cur.Seq != 1 {
				t.Errorf("append chained to %+v at %d: %+v %v, want the current head and ErrConflict", stale.prev, stale.seq, cur, err)
			}
		}
		// A run of entries of two containers in one step: each indexed under its own container.
		ids, head, err = st.Audit.Append(ctx, head, 2, []auditlog.Item{
			{Target: "node-a/web-2", JSON: []byte(`{"seq":2}`), Hash: "h2a"},
			{Target: "node-a/web-3", JSON: []byte(`{"seq":3}`), Hash: "h3"},
			{Target: "node-a/web-2", JSON: []byte(`{"seq":4}`), Hash: "h4"},
		})
		if err != nil || len(ids) != 3 || head != (schema.AuditHead{Hash: "h4", Seq: 4, ID: ids[2]}) {
			t.Fatalf("run append: %q %+v %v", ids, head, err)
		}
		if h, err := st.Audit.ReadHead(ctx); err != nil || h != head {
			t.Errorf("stored head = %+v %v, want %+v", h, err, head)
		}
		if n := rdb.XLen(ctx, schema.KeyAudit).Val(); n != 4 {
			t.Errorf("trail length = %d, want 4: a conflicting append wrote", n)
		}
		tests := []struct {
			target string
			want   []string
		}{
			{"node-a/web-1", []string{first}},
			{"node-a/web-2", []string{ids[2], ids[0]}},
			{"node-a/web-3", []string{ids[1]}},
			{"node-a/none", nil},
		}
		for _, tt := range tests {
			recs, err := st.Audit.IndexRevRange(ctx, tt.target, "+", "-", 10)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range recs {
				got = append(got, r.ID)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("index of %s (-want +got):\n%s", tt.target, diff)
			}
		}
	})
}

func TestRangeAndFollow(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		var items []auditlog.Item
		for _, s := range []string{"a", "b", "c", "d"} {
			items = append(items, auditlog.Item{Target: "h/web", JSON: []byte(`"` + s + `"`), Hash: s})
		}
		ids, _, err := st.Audit.Append(ctx, schema.AuditHead{}, 1, items)
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name string
			read func() ([]auditlog.Record, error)
			want []string
		}{
			{"all", func() ([]auditlog.Record, error) { return st.Audit.Range(ctx, "-", "+", 10) }, []string{`"a"`, `"b"`, `"c"`, `"d"`}},
			{"from the second, two", func() ([]auditlog.Record, error) { return st.Audit.Range(ctx, ids[1], "+", 2) }, []string{`"b"`, `"c"`}},
			{"newest first", func() ([]auditlog.Record, error) { return st.Audit.RevRange(ctx, "+", "-", 3) }, []string{`"d"`, `"c"`, `"b"`}},
			{"newest up to the second", func() ([]auditlog.Record, error) { return st.Audit.RevRange(ctx, ids[1], "-", 10) }, []string{`"b"`, `"a"`}},
			{"follow after the second", func() ([]auditlog.Record, error) { return st.Audit.Follow(ctx, ids[1], time.Second) }, []string{`"c"`, `"d"`}},
			{"follow after the last", func() ([]auditlog.Record, error) { return st.Audit.Follow(ctx, ids[3], 10*time.Millisecond) }, nil},
		}
		for _, tt := range tests {
			got, err := tt.read()
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			if diff := cmp.Diff(tt.want, jsons(got)); diff != "" {
				t.Errorf("%s (-want +got):\n%s", tt.name, diff)
			}
		}
	})
}

// TestIndexRevRangeOfATrimmedTrail: index entries whose audit entry is gone read nothing, and when the
// oldest one read is gone a placeholder keeps its index id, so paging goes on.
func TestIndexRevRangeOfATrimmedTrail(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		var head schema.AuditHead
		for i, tgt := range []string{"h/a", "h/b", "h/a", "h/a"} {
			_, h, err := st.Audit.Append(ctx, head, int64(i+1), []auditlog.Item{{Target: tgt, JSON: []byte(`"` + tgt + `"`), Hash: tgt}})
			if err != nil {
				t.Fatal(err)
			}
			head = h
		}
		// The trail's oldest entry (h/a's first) is trimmed; h/b's index also points at a trimmed id.
		if err := rdb.XTrimMaxLen(ctx, schema.KeyAudit, 3).Err(); err != nil {
			t.Fatal(err)
		}
		if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: schema.AuditIndexKey("h/b"), Values: []any{schema.AuditIndexField, "1-0"}}).Err(); err != nil {
			t.Fatal(err)
		}
		idxA, err := rdb.XRange(ctx, schema.AuditIndexKey("h/a"), "-", "+").Result()
		if err != nil || len(idxA) != 3 {
			t.Fatalf("index of h/a: %v %v", idxA, err)
		}
		tests := []struct {
			target string
			count  int64
			want   []string
			last   string // the index id of the last record
		}{
			{"h/a", 10, []string{`"h/a"`, `"h/a"`, ""}, idxA[0].ID},
			{"h/a", 2, []string{`"h/a"`, `"h/a"`}, idxA[1].ID},
			{"h/b", 10, []string{`"h/b"`}, ""},
		}
		for _, tt := range tests {
			recs, err := st.Audit.IndexRevRange(ctx, tt.target, "+", "-", tt.count)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, jsons(recs)); diff != "" {
				t.Errorf("%s, %d (-want +got):\n%s", tt.target, tt.count, diff)
			}
			if tt.last != "" && (len(recs) == 0 || recs[len(recs)-1].IndexID != tt.last) {
				t.Errorf("%s, %d: last record %+v, want index id %s", tt.target, tt.count, recs, tt.last)
			}
		}
	})
}

// TestTrimAnchorsOnBothBackends: the trim script (cjson, XTRIM MINID) behaves the same on redis-server and
// miniredis: the oldest entries go, the anchor names the last removed, the newest entry always stays.
func TestTrimAnchorsOnBothBackends(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		head := schema.AuditHead{}
		for i := 1; i <= 5; i++ {
			hash := "h" + string(rune('0'+i))
			js := `{"seq":` + string(rune('0'+i)) + `,"prev_hash":"` + head.Hash + `","hash":"` + hash + `"}`
			_, h, err := st.Audit.Append(ctx, head, int64(i), []auditlog.Item{{Target: "h/web", JSON: []byte(js), Hash: hash}})
			if err != nil {
				t.Fatal(err)
			}
			head = h
		}
		n, err := st.Audit.Trim(ctx, auditlog.Retention{MaxEntries: 2}, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
		if err != nil || n != 3 {
			t.Fatalf("Trim = %d, %v; want 3", n, err)
		}
		a, err := st.Audit.ReadAnchor(ctx)
		if err != nil || a.Seq != 3 || a.Hash != "h3" || a.ID == "" || a.TrimmedAt.IsZero() {
			t.Errorf("anchor = %+v, %v", a, err)
		}
		if l := rdb.XLen(ctx, schema.KeyAudit).Val(); l != 2 {
			t.Errorf("entries kept: %d", l)
		}
		if l := rdb.XLen(ctx, schema.AuditIndexKey("h/web")).Val(); l != 2 {
			t.Errorf("index entries kept: %d", l)
		}
		if n, err := st.Audit.Trim(ctx, auditlog.Retention{MaxAge: time.Hour}, time.Now().Add(24*time.Hour)); err != nil || n != 1 {
			t.Errorf("age trim = %d, %v; want 1 (the newest stays)", n, err)
		}
	})
}

// TestAppendAuditsARequestOnce: an entry that names a request already audited is refused with the stored
// entry's id, and nothing of its run is written; the request key expires with AuditRequestTTL.
func TestAppendAuditsARequestOnce(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		ids, head, err := st.Audit.Append(ctx, schema.AuditHead{}, 1, []auditlog.Item{
			{Target: "node-a/web-1", JSON: []byte(`{"seq":1}`), Hash: "h1", Request: "req-1"},
			{Target: "node-a/web-2", JSON: []byte(`{"seq":2}`), Hash: "h2"},
		})
		if err != nil || len(ids) != 2 {
			t.Fatalf("first append: %q %v", ids, err)
		}
		if v := rdb.Get(ctx, schema.AuditRequestKey("req-1")).Val(); v != ids[0] {
			t.Errorf("request key = %q, want the entry's id %s", v, ids[0])
		}
		if ttl := rdb.PTTL(ctx, schema.AuditRequestKey("req-1")).Val(); ttl <= 0 || ttl > schema.AuditRequestTTL {
			t.Errorf("request key TTL = %v, want up to %v", ttl, schema.AuditRequestTTL)
		}
		_, _, err = st.Audit.Append(ctx, head, 3, []auditlog.Item{
			{Target: "node-a/web-3", JSON: []byte(`{"seq":3}`), Hash: "h3", Request: "req-3"},
			{Target: "node-a/web-1", JSON: []byte(`{"seq":4}`), Hash: "h4", Request: "req-1"},
		})
		var dup *auditlog.DuplicateError
		if !errors.As(err, &dup) {
			t.Fatalf("append of an audited request: %v, want a DuplicateError", err)
		}
		want := map[int]string{1: ids[0]}
		if diff := cmp.Diff(want, dup.Audited); diff != "" {
			t.Errorf("audited (-want +got):\n%s", diff)
		}
		if n := rdb.XLen(ctx, schema.KeyAudit).Val(); n != 2 {
			t.Errorf("trail length = %d, want 2: the refused run wrote", n)
		}
		if rdb.Exists(ctx, schema.AuditRequestKey("req-3")).Val() != 0 {
			t.Error("the refused run's other request was marked audited")
		}
		// Without the audited one, the rest goes in.
		if _, _, err := st.Audit.Append(ctx, head, 3, []auditlog.Item{{Target: "node-a/web-3", JSON: []byte(`{"seq":3}`), Hash: "h3", Request: "req-3"}}); err != nil {
			t.Errorf("append of the rest: %v", err)
		}
		// An audited entry trimmed since is still reported, by its id.
		rdb.XDel(ctx, schema.KeyAudit, ids[0])
		_, _, err = st.Audit.Append(ctx, schema.AuditHead{}, 1, []auditlog.Item{{Target: "node-a/web-1", JSON: []byte(`{}`), Hash: "hx", Request: "req-1"}})
		if !errors.As(err, &dup) || dup.Audited[0] != ids[0] {
			t.Errorf("append of a request whose entry was trimmed: %v %+v", err, dup)
		}
	})
}
