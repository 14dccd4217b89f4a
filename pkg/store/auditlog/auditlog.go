// Package auditlog owns the audit trail's storage: the schema.KeyAudit stream (one entry per decision,
// field schema.AuditField), its head hash schema.KeyAuditHead (hash, seq and stream id of the newest entry,
// so a truncated tail is detected too) and one index stream per container, schema.AuditIndexKey, whose
// entries point at audit stream ids. pkg/audit chains, verifies and formats the entries.
package auditlog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/conn"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

// Store appends to and reads the trail.
type Store struct{ rdb *redis.Client }

// New returns the store over a connection.
func New(c *conn.Conn) *Store { return &Store{rdb: c.Client()} }

// auditAppendScript appends a run of entries if the chain's head is still the one the first of them was
// chained to: one script for the entries of many concurrent writers. An entry that names a request is
// appended only if no entry of that request was (its schema.AuditRequestKey, written in the same step).
//
// KEYS[1] audit stream, KEYS[2] head hash, KEYS[3..] the containers' index streams and the requests' keys
// ARGV[1] expected head hash ("" for the first entry), ARGV[2] expected seq of the first new entry,
// ARGV[3] the request keys' TTL in ms, then per entry: JSON, hash, position of its index key in KEYS,
// position of its request key in KEYS (0: none)
// returns {1, stream ids...}, {0, head hash, head seq} when another append came first, or
// {2, entry position, stream id, ...} for the entries whose requests were audited already, and then
// appends nothing. (It reads no entry back: respond's ACL user may run no XRANGE.)
var appendScript = redis.NewScript(`
local n = (#ARGV - 3) / 4
local dup = {2}
for i = 0, n - 1 do
  local k = tonumber(ARGV[7 + 4 * i])
  if k > 0 then
    local id = redis.call('GET', KEYS[k])
    if id then
      dup[#dup + 1] = i + 1
      dup[#dup + 1] = id
    end
  end
end
if #dup > 1 then return dup end
local head = redis.call('HMGET', KEYS[2], '` + schema.FieldHeadHash + `', '` + schema.FieldHeadSeq + `')
local h = head[1] or ''
local seq = tonumber(head[2] or '0') or 0
local first = tonumber(ARGV[2])
if h ~= ARGV[1] or seq + 1 ~= first then return {0, h, tostring(seq)} end
local out = {1}
local id, hash
for i = 0, n - 1 do
  local a = 4 + 4 * i
  id = redis.call('XADD', KEYS[1], '*', '` + schema.AuditField + `', ARGV[a])
  hash = ARGV[a + 1]
  redis.call('XADD', KEYS[tonumber(ARGV[a + 2])], '*', '` + schema.AuditIndexField + `', id)
  local k = tonumber(ARGV[a + 3])
  if k > 0 then redis.call('SET', KEYS[k], id, 'PX', ARGV[3]) end
  out[#out + 1] = id
end
redis.call('HSET', KEYS[2], '` + schema.FieldHeadHash + `', hash, '` + schema.FieldHeadSeq + `', tostring(first + n - 1), '` + schema.FieldHeadID + `', id)
return out
`)

// ErrConflict means another writer appended first: chain to the returned head and try again.
var ErrConflict = errors.New("audit head moved")

// DuplicateError means some entries' requests were audited already, and nothing was appended: Audited
// holds, by the entry's position in the run, the stream id of the entry that was. Leave those out and
// append the rest.
type DuplicateError struct{ Audited map[int]string }

func (e *DuplicateError) Error() string {
	return fmt.Sprintf("audit: %d of the entries' requests were audited already", len(e.Audited))
}

// ReadHead returns the chain's head (zero when the trail is empty).
func (s *Store) ReadHead(ctx context.Context) (schema.AuditHead, error) {
	m, err := s.rdb.HGetAll(ctx, schema.KeyAuditHead).Result()
	if err != nil {
		return schema.AuditHead{}, fmt.Errorf("read audit head: %w", err)
	}
	h, err := schema.DecodeAuditHead(m)
	if err != nil {
		return h, fmt.Errorf("audit head: %w", err)
	}
	return h, nil
}

// Item is one entry to append: its container ("host/name", for the index), JSON and hash, and the request
// event it reports (optional: at most one entry is appended per request).
type Item struct {
	Target  string
	JSON    []byte
	Hash    string
	Request string
}

// Append appends entries (JSON) chained to prev, the first at position seq and the others after it, each
// indexed under its container, in one atomic step. It returns their stream ids and the new head. When
// another writer appended first it returns ErrConflict and the current head, and appends nothing; when an
// item's request was audited already it returns a *DuplicateError, and appends nothing.
func (s *Store) Append(ctx context.Context, prev schema.AuditHead, seq int64, items []Item) ([]string, schema.AuditHead, error) {
	if len(items) == 0 {
		return nil, prev, nil
	}
	keys := []string{schema.KeyAudit, schema.KeyAuditHead}
	pos := map[string]int{}
	args := make([]any, 0, 3+4*len(items))
	args = append(args, prev.Hash, seq, schema.AuditRequestTTL.Milliseconds())
	for _, it := range items {
		k, ok := pos[it.Target]
		if !ok {
			keys = append(keys, schema.AuditIndexKey(it.Target))
			k = len(keys)
			pos[it.Target] = k
		}
		rk := 0
		if it.Request != "" {
			keys = append(keys, schema.AuditRequestKey(it.Request))
			rk = len(keys)
		}
		args = append(args, it.JSON, it.Hash, k, rk)
	}
	res, err := appendScript.Run(ctx, s.rdb, keys, args...).Slice()
	if err != nil {
		return nil, schema.AuditHead{}, fmt.Errorf("append audit: %w", err)
	}
	if n, _ := res[0].(int64); n == 2 {
		dup := &DuplicateError{Audited: map[int]string{}}
		for i := 1; i+1 < len(res); i += 2 {
			at, _ := res[i].(int64)
			dup.Audited[int(at)-1], _ = res[i+1].(string)
		}
		return nil, prev, dup
	}
	if n, _ := res[0].(int64); n == 1 && len(res) == len(items)+1 {
		ids := make([]string, len(items))
		for i := range ids {
			ids[i], _ = res[i+1].(string)
		}
		last := items[len(items)-1]
		return ids, schema.AuditHead{Hash: last.Hash, Seq: seq + int64(len(items)) - 1, ID: ids[len(ids)-1]}, nil
	}
	var h schema.AuditHead
	if len(res) >= 3 {
		h.Hash, _ = res[1].(string)
		if s, ok := res[2].(string); ok {
			fmt.Sscan(s, &h.Seq)
		}
	}
	return nil, h, ErrConflict
}

// Record is one stored audit entry: its stream id and JSON.
type Record struct {
	ID      string
	JSON    []byte
	IndexID string // the id of the index entry it was read through, for paging a container's index
}

func records(msgs []redis.XMessage) []Record {
	out := make([]Record, 0, len(msgs))
	for _, m := range msgs {
		raw, _ := m.Values[schema.AuditField].(string)
		out = append(out, Record{ID: m.ID, JSON: []byte(raw)})
	}
	return out
}

// Range returns up to count entries with ids in [start, end] ("-" and "+" for open ends), oldest first.
func (s *Store) Range(ctx context.Context, start, end string, count int64) ([]Record, error) {
	msgs, err := s.rdb.XRangeN(ctx, schema.KeyAudit, start, end, count).Result()
	if err != nil {
		return nil, fmt.Errorf("read audit: %w", err)
	}
	return records(msgs), nil
}

// RevRange returns up to count entries with ids in [start, end], newest first.
func (s *Store) RevRange(ctx context.Context, end, start string, count int64) ([]Record, error) {
	msgs, err := s.rdb.XRevRangeN(ctx, schema.KeyAudit, end, start, count).Result()
	if err != nil {
		return nil, fmt.Errorf("read audit: %w", err)
	}
	return records(msgs), nil
}

// IndexRevRange returns up to count of one container's entries with ids in [start, end], newest first,
// reading its index and then only the entries it points at.
func (s *Store) IndexRevRange(ctx context.Context, target, end, start string, count int64) ([]Record, error) {
	idx, err := s.rdb.XRevRangeN(ctx, schema.AuditIndexKey(target), end, start, count).Result()
	if err != nil {
		return nil, fmt.Errorf("read audit index: %w", err)
	}
	if len(idx) == 0 {
		return nil, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.XMessageSliceCmd, 0, len(idx))
	for _, m := range idx {
		id, _ := m.Values[schema.AuditIndexField].(string)
		cmds = append(cmds, pipe.XRangeN(ctx, schema.KeyAudit, id, id, 1))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read audit: %w", err)
	}
	var out []Record
	for i, cmd := range cmds {
		for _, r := range records(cmd.Val()) { // an entry deleted from the trail is simply absent here
			r.IndexID = idx[i].ID
			out = append(out, r)
		}
	}
	if len(out) == 0 || out[len(out)-1].IndexID != idx[len(idx)-1].ID {
		// Keep paging possible when the oldest pointed-at entry is gone: a placeholder without JSON.
		out = append(out, Record{IndexID: idx[len(idx)-1].ID})
	}
	return out, nil
}

// Follow blocks up to block for entries after the id (use "$" for only new ones), oldest first.
func (s *Store) Follow(ctx context.Context, after string, block time.Duration) ([]Record, error) {
	res, err := s.rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{schema.KeyAudit, after}, Count: 500, Block: block}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("follow audit: %w", err)
	}
	var out []Record
	for _, st := range res {
		out = append(out, records(st.Messages)...)
	}
	return out, nil
}

// trimScript removes the oldest entries of the trail and anchors the chain at the first entry kept, in
// one step, so `audit verify` tells a trimmed start from entries cut out. The first entry kept is the
// first with an id at or after ARGV[2] (mode "minid"), or the one that leaves ARGV[2] entries (mode
// "maxlen"); the newest entry is always kept, so the head stays anchored.
// KEYS[1] audit stream, KEYS[2] anchor hash; ARGV[1] mode, ARGV[2] min id or max entries, ARGV[3] trimmed_at.
// Returns {removed, first kept id}.
var trimScript = redis.NewScript(`
local first
if ARGV[1] == 'maxlen' then
  local excess = redis.call('XLEN', KEYS[1]) - tonumber(ARGV[2])
  if excess <= 0 then return {0, ''} end
  local r = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', excess + 1)
  first = r[#r]
else
  local r = redis.call('XRANGE', KEYS[1], ARGV[2], '+', 'COUNT', 1)
  if #r == 0 then r = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1) end
  if #r == 0 then return {0, ''} end
  first = r[1]
end
local oldest = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
if #oldest == 0 or oldest[1][1] == first[1] then return {0, ''} end
local entry
for i = 1, #first[2], 2 do
  if first[2][i] == '` + schema.AuditField + `' then entry = cjson.decode(first[2][i + 1]) end
end
if not entry or not entry['seq'] then return redis.error_reply('the first entry kept has no seq: not trimming') end
local before = redis.call('XLEN', KEYS[1])
redis.call('XTRIM', KEYS[1], 'MINID', first[1])
redis.call('HSET', KEYS[2], '` + schema.FieldAnchorSeq + `', tostring(tonumber(entry['seq']) - 1),
  '` + schema.FieldAnchorHash + `', entry['prev_hash'] or '', '` + schema.FieldAnchorID + `', first[1],
  '` + schema.FieldAnchorTrimmedAt + `', ARGV[3])
return {before - redis.call('XLEN', KEYS[1]), first[1]}
`)

// Retention is how much of the trail to keep: entries newer than MaxAge, and at most MaxEntries; zero
// fields keep everything.
type Retention struct {
	MaxAge     time.Duration
	MaxEntries int64
}

// Trim removes what the retention does not keep, anchors the chain at the first entry kept, and trims
// the per-container indexes to the same point. It returns how many entries it removed.
func (s *Store) Trim(ctx context.Context, r Retention, now time.Time) (int64, error) {
	var removed int64
	first := ""
	run := func(mode string, arg any) error {
		res, err := trimScript.Run(ctx, s.rdb, []string{schema.KeyAudit, schema.KeyAuditAnchor}, mode, arg,
			schema.FormatTime(now)).Slice()
		if err != nil {
			return fmt.Errorf("trim audit: %w", err)
		}
		if n, _ := res[0].(int64); n > 0 {
			removed += n
			first, _ = res[1].(string)
		}
		return nil
	}
	if r.MaxAge > 0 {
		if err := run("minid", strconv.FormatInt(now.Add(-r.MaxAge).UnixMilli(), 10)); err != nil {
			return removed, err
		}
	}
	if r.MaxEntries > 0 {
		if err := run("maxlen", r.MaxEntries); err != nil {
			return removed, err
		}
	}
	if first == "" {
		return removed, nil
	}
	// The indexes point at trimmed ids from before the first entry kept: cut each before its first entry
	// that points at a kept one (an index entry's own id is its own stream's, not the trail's).
	iter := s.rdb.Scan(ctx, 0, schema.AuditIndexPattern, scanCount).Iterator()
	for iter.Next(ctx) {
		if err := s.trimIndex(ctx, iter.Val(), first); err != nil {
			return removed, err
		}
	}
	if err := iter.Err(); err != nil {
		return removed, fmt.Errorf("trim audit indexes: %w", err)
	}
	return removed, nil
}

// trimIndex removes an index's entries that point before the trail's id first.
func (s *Store) trimIndex(ctx context.Context, key, first string) error {
	start := "-"
	for {
		msgs, err := s.rdb.XRangeN(ctx, key, start, "+", scanCount).Result()
		if err != nil {
			return fmt.Errorf("trim %s: %w", key, err)
		}
		for _, m := range msgs {
			if id, _ := m.Values[schema.AuditIndexField].(string); !idBefore(id, first) {
				return s.rdb.XTrimMinID(ctx, key, m.ID).Err()
			}
		}
		if len(msgs) < scanCount {
			break
		}
		start = "(" + msgs[len(msgs)-1].ID
	}
	return s.rdb.Del(ctx, key).Err() // every entry points at a trimmed one
}

// idBefore reports whether stream id a sorts before b.
func idBefore(a, b string) bool {
	ams, aseq := splitID(a)
	bms, bseq := splitID(b)
	return ams < bms || ams == bms && aseq < bseq
}

func splitID(id string) (uint64, uint64) {
	ms, seq, _ := strings.Cut(id, "-")
	m, _ := strconv.ParseUint(ms, 10, 64)
	q, _ := strconv.ParseUint(seq, 10, 64)
	return m, q
}

// scanCount is the SCAN page size of the index trim.
const scanCount = 500

// ReadAnchor returns where a trimmed chain starts (zero when it was never trimmed).
func (s *Store) ReadAnchor(ctx context.Context) (schema.AuditAnchor, error) {
	m, err := s.rdb.HGetAll(ctx, schema.KeyAuditAnchor).Result()
	if err != nil {
		return schema.AuditAnchor{}, fmt.Errorf("read audit anchor: %w", err)
	}
	a, err := schema.DecodeAuditAnchor(m)
	if err != nil {
		return a, fmt.Errorf("audit anchor: %w", err)
	}
	return a, nil
}

// HostsOf returns the hosts (sorted) that have audit entries for a container of this name: the hosts of
// its per-container indexes.
func (s *Store) HostsOf(ctx context.Context, name string) ([]string, error) {
	pattern := schema.AuditIndexKey("*/" + schema.GlobEscape(name))
	var hosts []string
	iter := s.rdb.Scan(ctx, 0, pattern, scanCount).Iterator()
	for iter.Next(ctx) {
		target := strings.TrimSuffix(strings.TrimPrefix(iter.Val(), strings.TrimSuffix(schema.AuditIndexKey(""), "}")), "}")
		if host, n, ok := strings.Cut(target, "/"); ok && n == name && !slices.Contains(hosts, host) {
			hosts = append(hosts, host)
		}
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("scan audit indexes of %s: %w", name, err)
	}
	slices.Sort(hosts)
	return hosts, nil
}
