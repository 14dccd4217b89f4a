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

// auditAppendScript appends an entry if the chain's head is still the one the entry was chained to.
//
// KEYS[1] audit stream, KEYS[2] head hash, KEYS[3] container index stream
// ARGV[1] expected head hash ("" for the first entry), ARGV[2] expected seq of the new entry,
// ARGV[3] entry JSON, ARGV[4] entry hash
// returns {1, stream id} or {0, head hash, head seq} when another append came first.
var auditAppendScript = redis.NewScript(`
local head = redis.call('HMGET', KEYS[2], 'hash', 'seq')
local h = head[1] or ''
local seq = tonumber(head[2] or '0') or 0
if h ~= ARGV[1] or seq + 1 ~= tonumber(ARGV[2]) then return {0, h, tostring(seq)} end
local id = redis.call('XADD', KEYS[1], '*', 'entry', ARGV[3])
redis.call('HSET', KEYS[2], 'hash', ARGV[4], 'seq', ARGV[2], 'id', id)
redis.call('XADD', KEYS[3], '*', 'id', id)
return {1, id}
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

// AuditAppend appends one entry (JSON) chained to prev, at position seq, indexed under target. When another
// writer appended first it returns ErrAuditConflict and the current head.
func (c *Client) AuditAppend(ctx context.Context, target string, prev AuditHead, seq int64, entry []byte, hash string) (string, AuditHead, error) {
	res, err := auditAppendScript.Run(ctx, c.rdb, []string{event.StreamAudit, auditHeadKey, AuditIndexKey(target)},
		prev.Hash, seq, entry, hash).Slice()
	if err != nil {
		return "", AuditHead{}, fmt.Errorf("append audit: %w", err)
	}
	if n, _ := res[0].(int64); n == 1 {
		id, _ := res[1].(string)
		return id, AuditHead{Hash: hash, Seq: seq, ID: id}, nil
	}
	var h AuditHead
	h.Hash, _ = res[1].(string)
	if s, ok := res[2].(string); ok {
		fmt.Sscan(s, &h.Seq)
	}
	return "", h, ErrAuditConflict
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
