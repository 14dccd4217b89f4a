// Package agents owns the agents' heartbeats in Redis: one hash per agent instance (schema.Agent) that
// expires unless renewed, so the live agents are the keys that exist.
package agents

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/conn"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

// Store reads and writes heartbeats.
type Store struct{ rdb *redis.Client }

// New returns the heartbeat store over a connection.
func New(c *conn.Conn) *Store { return &Store{rdb: c.Client()} }

// scanCount is the SCAN page size of List.
const scanCount = 200

// Heartbeat records that an agent instance is alive at now; the key expires after ttl.
func (s *Store) Heartbeat(ctx context.Context, a schema.Agent, now time.Time, ttl time.Duration) error {
	a.LastHeartbeat = now
	key := schema.AgentKey(a.Kind, a.Instance)
	pipe := s.rdb.TxPipeline()
	pipe.HSet(ctx, key, a.Encode())
	pipe.PExpire(ctx, key, ttl)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("heartbeat %s: %w", key, err)
	}
	return nil
}

// Remove deletes an agent's heartbeat, at a graceful stop.
func (s *Store) Remove(ctx context.Context, kind, instance string) error {
	return s.rdb.Del(ctx, schema.AgentKey(kind, instance)).Err()
}

// List returns the live agents (those whose heartbeat has not expired). A heartbeat that does not decode
// is returned as far as it does, and its error joined into problems.
func (s *Store) List(ctx context.Context) (out []schema.Agent, problems []error, err error) {
	var keys []string
	iter := s.rdb.Scan(ctx, 0, schema.AgentKeyPattern, scanCount).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return nil, nil, fmt.Errorf("list agents: %w", err)
	}
	if len(keys) == 0 {
		return nil, nil, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(keys))
	for i, k := range keys {
		cmds[i] = pipe.HGetAll(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, nil, fmt.Errorf("list agents: %w", err)
	}
	for i, k := range keys {
		m := cmds[i].Val()
		if len(m) == 0 {
			continue // expired between the scan and the read
		}
		a, derr := schema.DecodeAgent(k, m)
		if derr != nil {
			problems = append(problems, fmt.Errorf("%s: %w", k, derr))
		}
		out = append(out, a)
	}
	return out, problems, nil
}
