package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/event"
)

// The audit trail: the hemostat:audit stream (field "entry"), its head hash hemostat:audit:head (hash, seq
// and stream id of the newest entry, so a truncated tail is detected too) and one index stream per container,
// hemostat:audit:idx:{host/name}, whose entries (field "id") point at audit stream ids.

const (
	auditField   = "entry"
	auditHeadKey = "hemostat:audit:head"
)

// AuditIndexKey is the per-container index of audit stream ids.
func AuditIndexKey(target string) string { return "hemostat:audit:idx:{" + target + "}" }

// auditAppendScript appends a run of entries if the chain's head is still the one the first of them was
// chained to: one script for the entries of many concurrent writers.
//
// KEYS[1] audit stream, KEYS[2] head hash, KEYS[3..] the containers' index streams
// ARGV[1] expected head hash ("" for the first entry), ARGV[2] expected seq of the first new entry,
// then per entry: JSON, hash, position of its index key in KEYS
// returns {1, stream ids...} or {0, head hash, head seq} when another append came first.
var auditAppendScript = redis.NewScript(`
local head = redis.call('HMGET', KEYS[2], 'hash', 'seq')
local h = head[1] or ''
local seq = tonumber(head[2] or '0') or 0
local first = tonumber(ARGV[2])
if h ~= ARGV[1] or seq + 1 ~= first then return {0, h, tostring(seq)} end
local out = {1}
local id, hash
local n = (#ARGV - 2) / 3
for i = 0, n - 1 do
  local a = 3 + 3 * i
  id = redis.call('XADD', KEYS[1], '*', 'entry', ARGV[a])
  hash = ARGV[a + 1]
  redis.call('XADD', KEYS[tonumber(ARGV[a + 2])], '*', 'id', id)
  out[#out + 1] = id
end
redis.call('HSET', KEYS[2], 'hash', hash, 'seq', tostring(first + n - 1), 'id', id)
return out
`)

// ErrAuditConflict means another writer appended first: chain to the returned head and try again.
var ErrAuditConflict = errors.New("audit head moved")

// AuditHead is the newest entry of the chain as the head key records it.
type AuditHead struct {
	Hash string
	Seq  int64
	ID   string
}

// AuditReadHead returns the chain's head (zero when the trail is empty).
func (c *Client) AuditReadHead(ctx context.Context) (AuditHead, error) {
	v, err := c.rdb.HMGet(ctx, auditHeadKey, "hash", "seq", "id").Result()
	if err != nil {
		return AuditHead{}, fmt.Errorf("read audit head: %w", err)
	}
	var h AuditHead
	h.Hash, _ = v[0].(string)
	if s, ok := v[1].(string); ok {
		fmt.Sscan(s, &h.Seq)
	}
	h.ID, _ = v[2].(string)
	return h, nil
}

// AuditItem is one entry to append: its container ("host/name", for the index), JSON and hash.
type AuditItem struct {
	Target string
	JSON   []byte
	Hash   string
}

// AuditAppend appends entries (JSON) chained to prev, the first at position seq and the others after it, each
// indexed under its container, in one atomic step. It returns their stream ids and the new head. When
// another writer appended first it returns ErrAuditConflict and the current head, and appends nothing.
func (c *Client) AuditAppend(ctx context.Context, prev AuditHead, seq int64, items []AuditItem) ([]string, AuditHead, error) {
	if len(items) == 0 {
		return nil, prev, nil
	}
	keys := []string{event.StreamAudit, auditHeadKey}
	pos := map[string]int{}
	args := make([]any, 0, 2+3*len(items))
	args = append(args, prev.Hash, seq)
	for _, it := range items {
		k, ok := pos[it.Target]
		if !ok {
			keys = append(keys, AuditIndexKey(it.Target))
			k = len(keys)
			pos[it.Target] = k
		}
		args = append(args, it.JSON, it.Hash, k)
	}
	res, err := auditAppendScript.Run(ctx, c.rdb, keys, args...).Slice()
	if err != nil {
		return nil, AuditHead{}, fmt.Errorf("append audit: %w", err)
	}
	if n, _ := res[0].(int64); n == 1 && len(res) == len(items)+1 {
		ids := make([]string, len(items))
		for i := range ids {
			ids[i], _ = res[i+1].(string)
		}
		last := items[len(items)-1]
		return ids, AuditHead{Hash: last.Hash, Seq: seq + int64(len(items)) - 1, ID: ids[len(ids)-1]}, nil
	}
	var h AuditHead
	if len(res) >= 3 {
		h.Hash, _ = res[1].(string)
		if s, ok := res[2].(string); ok {
			fmt.Sscan(s, &h.Seq)
		}
	}
	return nil, h, ErrAuditConflict
}

// AuditRecord is one stored audit entry: its stream id and JSON.
type AuditRecord struct {
	ID      string
	JSON    []byte
	IndexID string // the id of the index entry it was read through, for paging a container's index
}

func auditRecords(msgs []redis.XMessage) []AuditRecord {
	out := make([]AuditRecord, 0, len(msgs))
	for _, m := range msgs {
		raw, _ := m.Values[auditField].(string)
		out = append(out, AuditRecord{ID: m.ID, JSON: []byte(raw)})
	}
	return out
}

// AuditRange returns up to count entries with ids in [start, end] ("-" and "+" for open ends), oldest first.
func (c *Client) AuditRange(ctx context.Context, start, end string, count int64) ([]AuditRecord, error) {
	msgs, err := c.rdb.XRangeN(ctx, event.StreamAudit, start, end, count).Result()
	if err != nil {
		return nil, fmt.Errorf("read audit: %w", err)
	}
	return auditRecords(msgs), nil
}

// AuditRevRange returns up to count entries with ids in [start, end], newest first.
func (c *Client) AuditRevRange(ctx context.Context, end, start string, count int64) ([]AuditRecord, error) {
	msgs, err := c.rdb.XRevRangeN(ctx, event.StreamAudit, end, start, count).Result()
	if err != nil {
		return nil, fmt.Errorf("read audit: %w", err)
	}
	return auditRecords(msgs), nil
}

// AuditIndexRevRange returns up to count of one container's entries with ids in [start, end], newest first,
// reading its index and then only the entries it points at.
func (c *Client) AuditIndexRevRange(ctx context.Context, target, end, start string, count int64) ([]AuditRecord, error) {
	idx, err := c.rdb.XRevRangeN(ctx, AuditIndexKey(target), end, start, count).Result()
	if err != nil {
		return nil, fmt.Errorf("read audit index: %w", err)
	}
	if len(idx) == 0 {
		return nil, nil
	}
	pipe := c.rdb.Pipeline()
	cmds := make([]*redis.XMessageSliceCmd, 0, len(idx))
	for _, m := range idx {
		id, _ := m.Values["id"].(string)
		cmds = append(cmds, pipe.XRangeN(ctx, event.StreamAudit, id, id, 1))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read audit: %w", err)
	}
	var out []AuditRecord
	for i, cmd := range cmds {
		for _, r := range auditRecords(cmd.Val()) { // an entry deleted from the trail is simply absent here
			r.IndexID = idx[i].ID
			out = append(out, r)
		}
	}
	if len(out) == 0 || out[len(out)-1].IndexID != idx[len(idx)-1].ID {
		// Keep paging possible when the oldest pointed-at entry is gone: a placeholder without JSON.
		out = append(out, AuditRecord{IndexID: idx[len(idx)-1].ID})
	}
	return out, nil
}

// AuditFollow blocks up to block for entries after the id (use "$" for only new ones), oldest first.
func (c *Client) AuditFollow(ctx context.Context, after string, block time.Duration) ([]AuditRecord, error) {
	res, err := c.rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{event.StreamAudit, after}, Count: 500, Block: block}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("follow audit: %w", err)
	}
	var out []AuditRecord
	for _, s := range res {
		out = append(out, auditRecords(s.Messages)...)
	}
	return out, nil
}
