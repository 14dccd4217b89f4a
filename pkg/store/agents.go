package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hemostat/hemostat/pkg/event"
)

// Heartbeat records that an agent instance is alive; the key expires after ttl.
func (c *Client) Heartbeat(ctx context.Context, kind, instance string, fields map[string]string, ttl time.Duration) error {
	key := event.AgentKey(kind, instance)
	vals := make([]any, 0, 2*len(fields)+2)
	for k, v := range fields {
		vals = append(vals, k, v)
	}
	vals = append(vals, "last_heartbeat", time.Now().UTC().Format(time.RFC3339Nano))
	pipe := c.rdb.TxPipeline()
	pipe.HSet(ctx, key, vals...)
	pipe.PExpire(ctx, key, ttl)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("heartbeat %s: %w", key, err)
	}
	return nil
}

// RemoveHeartbeat deletes an agent's heartbeat, at a graceful stop.
func (c *Client) RemoveHeartbeat(ctx context.Context, kind, instance string) error {
	return c.rdb.Del(ctx, event.AgentKey(kind, instance)).Err()
}

// AgentInfo is one live agent instance.
type AgentInfo struct {
	Kind     string
	Instance string
	Fields   map[string]string
}

// Agents lists the live agents (those whose heartbeat has not expired).
func (c *Client) Agents(ctx context.Context) ([]AgentInfo, error) {
	var out []AgentInfo
	iter := c.rdb.Scan(ctx, 0, event.AgentKeyPattern, 200).Iterator()
	for iter.Next(ctx) {
		key := iter.Val()
		rest := strings.TrimPrefix(key, "hemostat:agents:")
		kind, inst, _ := strings.Cut(rest, ":")
		f, err := c.rdb.HGetAll(ctx, key).Result()
		if err != nil {
			return nil, err
		}
		if len(f) == 0 {
			continue
		}
		out = append(out, AgentInfo{Kind: kind, Instance: inst, Fields: f})
	}
	return out, iter.Err()
}
