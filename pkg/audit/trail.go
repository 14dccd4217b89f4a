package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/store/auditlog"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

// Store is the Redis access the trail needs; *auditlog.Store implements it.
type Store interface {
	ReadHead(ctx context.Context) (schema.AuditHead, error)
	Append(ctx context.Context, prev schema.AuditHead, seq int64, items []auditlog.Item) ([]string, schema.AuditHead, error)
	Range(ctx context.Context, start, end string, count int64) ([]auditlog.Record, error)
	RevRange(ctx context.Context, end, start string, count int64) ([]auditlog.Record, error)
	IndexRevRange(ctx context.Context, target, end, start string, count int64) ([]auditlog.Record, error)
	Follow(ctx context.Context, after string, block time.Duration) ([]auditlog.Record, error)
	ReadAnchor(ctx context.Context) (schema.AuditAnchor, error)
	Trim(ctx context.Context, r auditlog.Retention, now time.Time) (int64, error)
}

// Trail appends to and reads the hash-chained audit trail. It is safe for concurrent use, and any number
// of processes may append at once: each append is a compare-and-set on the chain's head.
//
// Appends of concurrent callers are committed together (group commit): while one run of entries is being
// written, the entries that arrive queue, and the caller whose entry is first in the queue then chains and
// writes them all in one step. Alone, an entry goes out at once.
type Trail struct {
	st Store

	qmu   sync.Mutex
	queue []*appendReq
	busy  bool // a caller is committing; the others wait for it

	// owned by the committing caller
	head schema.AuditHead
	know bool
}

// appendReq is a caller's entries waiting for their commit. done receives once: the outcome, or lead
// (commit the queue yourself).
type appendReq struct {
	es   []Entry
	done chan appendRes
}

type appendRes struct {
	recs []Record
	err  error
	lead bool
}

// maxRun caps how many entries one commit writes (a caller's entries are never split).
const maxRun = 256

// NewTrail returns a trail over the store.
func NewTrail(st Store) *Trail { return &Trail{st: st} }

// Record is one stored entry with its stream id.
type Record struct {
	StreamID string `json:"stream_id"`
	Entry
}

// Append chains the entry to the trail's head and appends it. ID and Time are filled in when empty; Seq,
// PrevHash and Hash are always set. It returns the entry as stored. The entry may share its write with
// those of concurrent callers; it waits for that write even after ctx ends (the write is bounded).
func (t *Trail) Append(ctx context.Context, e Entry) (Record, error) {
	recs, err := t.AppendMany(ctx, []Entry{e})
	if err != nil {
		return Record{}, err
	}
	return recs[0], nil
}

// AppendMany appends entries in order, contiguously, in one write (shared with concurrent callers').
func (t *Trail) AppendMany(ctx context.Context, es []Entry) ([]Record, error) {
	if len(es) == 0 {
		return nil, nil
	}
	own := make([]Entry, len(es))
	for i, e := range es {
		if e.ID == "" {
			e.ID = event.NewID()
		}
		if e.Time.IsZero() {
			e.Time = time.Now()
		}
		e.Time = e.Time.UTC()
		own[i] = e
	}
	req := &appendReq{es: own, done: make(chan appendRes, 1)}
	t.qmu.Lock()
	t.queue = append(t.queue, req)
	if t.busy {
		t.qmu.Unlock()
		if res := <-req.done; !res.lead {
			return res.recs, res.err
		}
		t.qmu.Lock() // leadership handed over: req is first in the queue
	}
	t.busy = true
	n, entries := 0, 0
	for n < len(t.queue) && (n == 0 || entries+len(t.queue[n].es) <= maxRun) {
		entries += len(t.queue[n].es)
		n++
	}
	run := make([]*appendReq, n)
	copy(run, t.queue)
	t.queue = append(t.queue[:0], t.queue[n:]...)
	t.qmu.Unlock()

	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	recs, err := t.commit(wctx, run, entries)
	cancel()
	var mine appendRes
	for _, r := range run {
		res := appendRes{err: err}
		if err == nil {
			res.recs, recs = recs[:len(r.es):len(r.es)], recs[len(r.es):]
		}
		if r == req {
			mine = res
			continue
		}
		r.done <- res
	}

	t.qmu.Lock()
	if len(t.queue) > 0 {
		t.queue[0].done <- appendRes{lead: true}
	} else {
		t.busy = false
	}
	t.qmu.Unlock()
	return mine.recs, mine.err
}

// commit chains a run of callers' entries to the head and writes them in one step, chaining again to a
// head that another process moved meanwhile. An entry whose request (Entry.Once) is earlier in the same
// run is not written again: its record is that one's. An entry whose request was audited already is not
// written either: its record has the stored entry's stream id, and the entry itself unchained (no Seq,
// PrevHash or Hash: it has no place in the chain).
func (t *Trail) commit(ctx context.Context, run []*appendReq, n int) ([]Record, error) {
	items := make([]auditlog.Item, 0, n)
	recs := make([]Record, 0, n)
	pos := make([]int, 0, n) // the run position of each item
	kept := map[int]Record{} // run position: the record of its request audited before
	for try := range 200 {
		if try >= 3 { // heavy contention: step aside for a moment
			time.Sleep(time.Duration(rand.IntN(1000*min(try, 20))) * time.Microsecond)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("append audit: %w", ctx.Err())
		}
		if !t.know {
			h, err := t.st.ReadHead(ctx)
			if err != nil {
				return nil, err
			}
			t.head, t.know = h, true
		}
		items, recs, pos = items[:0], recs[:0], pos[:0]
		prev := t.head.Hash
		at := 0
		first := map[string]int{} // request: the run position of its first entry
		same := map[int]int{}     // run position: the earlier one of the same request, whose record it gets
		for _, r := range run {
			for _, e := range r.es {
				at++
				if e.Once != "" {
					if p, ok := first[e.Once]; ok {
						same[at-1] = p
						continue
					}
					first[e.Once] = at - 1
				}
				if _, ok := kept[at-1]; ok {
					continue
				}
				e.Seq = t.head.Seq + 1 + int64(len(items))
				e.PrevHash = prev
				e.Hash = e.ComputeHash()
				prev = e.Hash
				raw, err := json.Marshal(e)
				if err != nil {
					return nil, fmt.Errorf("encode audit entry: %w", err)
				}
				items = append(items, auditlog.Item{Target: event.Target(e.Host, e.Container), JSON: raw, Hash: e.Hash, Request: e.Once})
				recs = append(recs, Record{Entry: e})
				pos = append(pos, at-1)
			}
		}
		var ids []string
		if len(items) > 0 {
			var head schema.AuditHead
			var err error
			ids, head, err = t.st.Append(ctx, t.head, t.head.Seq+1, items)
			var dup *auditlog.DuplicateError
			switch {
			case errors.Is(err, auditlog.ErrConflict):
				t.head = head // another writer came first: chain to its entry
				continue
			case errors.As(err, &dup):
				for i, id := range dup.Audited {
					e := recs[i].Entry
					e.Seq, e.PrevHash, e.Hash = 0, "", ""
					kept[pos[i]] = Record{StreamID: id, Entry: e}
				}
				continue
			case err != nil:
				t.know = false
				return nil, err
			}
			t.head = head
		}
		out := make([]Record, 0, at)
		for i, k := 0, 0; i < at; i++ {
			if p, ok := same[i]; ok {
				out = append(out, out[p])
				continue
			}
			if r, ok := kept[i]; ok {
				out = append(out, r)
				continue
			}
			recs[k].StreamID = ids[k]
			out = append(out, recs[k])
			k++
		}
		return out, nil
	}
	return nil, fmt.Errorf("append audit: head kept moving")
}

// Filter selects entries. Zero fields select everything.
type Filter struct {
	Target   string    // "host/name": read through the container's index
	Since    time.Time // entries at or after
	Action   string
	Result   string
	Incident string // "host/name/class"
	Limit    int    // newest N (default 100; negative: no limit)
}

func (f Filter) match(e Entry) bool {
	return (f.Action == "" || e.Action == f.Action) && (f.Result == "" || e.Result == f.Result) &&
		(f.Incident == "" || e.Incident == f.Incident) && (f.Since.IsZero() || !e.Time.Before(f.Since))
}

func startID(since time.Time) string {
	if since.IsZero() {
		return "-"
	}
	return strconv.FormatInt(since.UnixMilli(), 10) + "-0"
}

// Query returns the newest entries that match, oldest first. A container query reads only its index.
func (t *Trail) Query(ctx context.Context, f Filter) ([]Record, error) {
	limit := f.Limit
	if limit == 0 {
		limit = 100
	}
	const chunk = 500
	var out []Record
	end := "+"
	start := startID(f.Since)
	for {
		var recs []auditlog.Record
		var err error
		if f.Target != "" {
			recs, err = t.st.IndexRevRange(ctx, f.Target, end, start, chunk)
		} else {
			recs, err = t.st.RevRange(ctx, end, start, chunk)
		}
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			var e Entry
			if r.JSON == nil || json.Unmarshal(r.JSON, &e) != nil || !f.match(e) {
				continue
			}
			out = append(out, Record{StreamID: r.ID, Entry: e})
			if limit > 0 && len(out) >= limit {
				break
			}
		}
		if len(recs) < chunk || (limit > 0 && len(out) >= limit) {
			break
		}
		end = "(" + recs[len(recs)-1].ID
		if f.Target != "" {
			end = "(" + recs[len(recs)-1].IndexID // the index pages by its own ids
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// Head returns the newest entry's position as the chain's head records it.
func (t *Trail) Head(ctx context.Context) (schema.AuditHead, error) { return t.st.ReadHead(ctx) }

// Follow calls fn for every entry (matching f) appended after the stream id after ("" for entries appended
// after the call; "0" for all) until ctx is done.
func (t *Trail) Follow(ctx context.Context, f Filter, after string, fn func(Record) error) error {
	last := after
	if last == "" {
		last = "$"
	}
	for ctx.Err() == nil {
		recs, err := t.st.Follow(ctx, last, time.Second)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		for _, r := range recs {
			last = r.ID
			var e Entry
			if json.Unmarshal(r.JSON, &e) != nil || !f.match(e) {
				continue
			}
			if f.Target != "" && event.Target(e.Host, e.Container) != f.Target {
				continue
			}
			if err := fn(Record{StreamID: r.ID, Entry: e}); err != nil {
				return err
			}
		}
	}
	return nil
}

// Break is the first place the chain does not hold: an entry edited, missing or unreadable.
type Break struct {
	StreamID string // the entry where the break shows
	Seq      int64
	Kind     string // edited, missing, malformed
	Detail   string
}

// Error names the entry where the chain breaks and why.
func (b *Break) Error() string {
	return fmt.Sprintf("audit chain broken at entry %s (seq %d): %s: %s", b.StreamID, b.Seq, b.Kind, b.Detail)
}

// Kinds of chain breaks.
const (
	BreakEdited    = "edited"
	BreakMissing   = "missing"
	BreakMalformed = "malformed"
)

// Verifier checks a chain entry by entry, oldest first. Its zero value starts a chain at seq 1; Anchor
// starts it where a trim left it.
type Verifier struct {
	n      int64
	prev   Record
	anchor schema.AuditAnchor
	first  int64 // seq of the first entry checked
}

// Anchor makes the chain start where a trim left it: the first entry must follow the anchor's seq and
// chain to its hash. A chain that was never trimmed has the zero anchor.
func (v *Verifier) Anchor(a schema.AuditAnchor) { v.anchor = a }

// First is the seq of the first entry checked.
func (v *Verifier) First() int64 { return v.first }

func (v *Verifier) lastSeq() int64 {
	if v.n == 0 {
		return v.anchor.Seq
	}
	return v.prev.Seq
}

// Count is how many entries were checked.
func (v *Verifier) Count() int64 { return v.n }

// Next checks one stored entry against its own hash and its predecessor.
func (v *Verifier) Next(r auditlog.Record) *Break {
	var e Entry
	if err := json.Unmarshal(r.JSON, &e); err != nil {
		return &Break{StreamID: r.ID, Kind: BreakMalformed, Detail: err.Error()}
	}
	if got := e.ComputeHash(); got != e.Hash {
		return &Break{StreamID: r.ID, Seq: e.Seq, Kind: BreakEdited,
			Detail: fmt.Sprintf("its content does not match its hash (%s %s %s at %s)", e.Container, e.Action, e.Result, e.Time.Format(time.RFC3339))}
	}
	prevSeq, prevHash := v.anchor.Seq, v.anchor.Hash
	if v.n > 0 {
		prevSeq, prevHash = v.prev.Seq, v.prev.Hash
	}
	switch {
	case e.Seq > prevSeq+1:
		return &Break{StreamID: r.ID, Seq: e.Seq, Kind: BreakMissing,
			Detail: fmt.Sprintf("%s missing before it", seqSpan(prevSeq+1, e.Seq-1))}
	case e.Seq != prevSeq+1:
		return &Break{StreamID: r.ID, Seq: e.Seq, Kind: BreakEdited,
			Detail: fmt.Sprintf("seq %d follows seq %d", e.Seq, prevSeq)}
	case e.PrevHash != prevHash:
		if v.n == 0 && v.anchor.Seq == 0 {
			return &Break{StreamID: r.ID, Seq: e.Seq, Kind: BreakEdited, Detail: "the first entry chains to a previous hash"}
		}
		if v.n == 0 {
			return &Break{StreamID: r.ID, Seq: e.Seq, Kind: BreakEdited,
				Detail: fmt.Sprintf("the first entry does not chain to the trim's anchor (seq %d hash %.12s)", v.anchor.Seq, v.anchor.Hash)}
		}
		return &Break{StreamID: v.prev.StreamID, Seq: prevSeq, Kind: BreakEdited,
			Detail: fmt.Sprintf("entry %s (seq %d) chains to a different hash: this entry was changed and rehashed", r.ID, e.Seq)}
	}
	if v.n == 0 {
		v.first = e.Seq
	}
	v.n++
	v.prev = Record{StreamID: r.ID, Entry: e}
	return nil
}

// End checks that the chain ends where the head says it does (no entries cut off the tail).
func (v *Verifier) End(head schema.AuditHead) *Break {
	lastSeq, lastHash := v.anchor.Seq, v.anchor.Hash
	if v.n > 0 {
		lastSeq, lastHash = v.prev.Seq, v.prev.Hash
	}
	if head.Seq == lastSeq && head.Hash == lastHash {
		return nil
	}
	if head.Seq > lastSeq {
		where := "the trail is empty"
		if v.n > 0 {
			where = "after entry " + v.prev.StreamID
		}
		return &Break{StreamID: head.ID, Seq: head.Seq, Kind: BreakMissing,
			Detail: fmt.Sprintf("%s missing %s (the head records seq %d)", seqSpan(lastSeq+1, head.Seq), where, head.Seq)}
	}
	return &Break{StreamID: v.prev.StreamID, Seq: lastSeq, Kind: BreakEdited,
		Detail: fmt.Sprintf("the head records seq %d hash %.12s, the last entry has hash %.12s", head.Seq, head.Hash, lastHash)}
}

func seqSpan(from, to int64) string {
	if from == to {
		return fmt.Sprintf("entry seq %d is", from)
	}
	return fmt.Sprintf("entries seq %d..%d are", from, to)
}

// VerifyReport summarises a verification.
type VerifyReport struct {
	Entries int64
	First   int64              // seq of the first entry checked
	Anchor  schema.AuditAnchor // where a trimmed chain starts; zero when it was never trimmed
	Head    schema.AuditHead
	Break   *Break // nil when the chain is intact
}

// Verify recomputes the whole chain, oldest first, and stops at the first break. Entries appended while it
// runs are checked too: the head is read again at the end and the tail followed until they agree.
func (t *Trail) Verify(ctx context.Context) (VerifyReport, error) {
	var v Verifier
	anchor, err := t.st.ReadAnchor(ctx)
	if err != nil {
		return VerifyReport{}, err
	}
	v.Anchor(anchor)
	start := "-"
	var head schema.AuditHead
	for round := 0; ; round++ {
		for {
			recs, err := t.st.Range(ctx, start, "+", 1000)
			if err != nil {
				return VerifyReport{}, err
			}
			for _, r := range recs {
				if b := v.Next(r); b != nil {
					return VerifyReport{Entries: v.Count(), First: v.First(), Anchor: anchor, Head: head, Break: b}, nil
				}
				start = "(" + r.ID
			}
			if len(recs) < 1000 {
				break
			}
		}
		h, err := t.st.ReadHead(ctx)
		if err != nil {
			return VerifyReport{}, err
		}
		head = h
		if head.Seq <= v.lastSeq() || round >= 3 {
			break // caught up with the head, or it keeps moving: judge against the last head read
		}
	}
	return VerifyReport{Entries: v.Count(), First: v.First(), Anchor: anchor, Head: head, Break: v.End(head)}, nil
}

// Trim removes the oldest entries the retention does not keep and anchors the chain at the first entry
// kept (see auditlog.Store.Trim); Verify then starts there and says so.
func (t *Trail) Trim(ctx context.Context, r auditlog.Retention, now time.Time) (int64, error) {
	return t.st.Trim(ctx, r, now)
}
