// Package notify owns the alert agent's state in Redis: the deduplication counter of each incident state,
// each incident's Slack thread, the notification counters the exporter reads, the deliveries that failed
// for good, and the capped lists of recent events (hemostat:events:*) the seed's views read.
package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/conn"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

// Lifetimes of the alert agent's keys.
const (
	seenTTL   = 24 * time.Hour     // an event stored once per id within this
	threadTTL = 7 * 24 * time.Hour // an incident's Slack thread
)

// Store reads and writes the alert agent's state.
type Store struct{ rdb *redis.Client }

// New returns the store over a connection.
func New(c *conn.Conn) *Store { return &Store{rdb: c.Client()} }

// claimScript sets the key with a TTL if it is absent (returns 1: first) and then deletes the other keys
// given (claims of states that a new occurrence starts afresh); else it counts a repeat and returns the
// count. INCR keeps the TTL, so the window starts at the first notification. All keys share the incident's
// hash tag.
var claimScript = redis.NewScript(`
if redis.call('SET', KEYS[1], 1, 'NX', 'PX', ARGV[1]) then
  if #KEYS > 1 then redis.call('DEL', unpack(KEYS, 2)) end
  return 1
end
return redis.call('INCR', KEYS[1])
`)

// Claim records that an incident state is about to be notified. It returns 1 for the first claim
// within ttl, and the number of times the state was seen for a repeat. A first claim also forgets the
// claims of the release states, in the same step.
func (s *Store) Claim(ctx context.Context, incident, state string, ttl time.Duration, release ...string) (int64, error) {
	keys := make([]string, 0, 1+len(release))
	keys = append(keys, schema.NotifyDedupKey(incident, state))
	for _, r := range release {
		keys = append(keys, schema.NotifyDedupKey(incident, r))
	}
	n, err := claimScript.Run(ctx, s.rdb, keys, ttl.Milliseconds()).Int64()
	if err != nil {
		return 0, fmt.Errorf("claim notification %s %s: %w", incident, state, err)
	}
	return n, nil
}

// Release forgets the claims of the given states of an incident, so the next occurrence notifies again.
func (s *Store) Release(ctx context.Context, incident string, states ...string) error {
	if len(states) == 0 {
		return nil
	}
	keys := make([]string, len(states))
	for i, st := range states {
		keys[i] = schema.NotifyDedupKey(incident, st)
	}
	if err := s.rdb.Del(ctx, keys...).Err(); err != nil {
		return fmt.Errorf("release notifications %s: %w", incident, err)
	}
	return nil
}

// Count adds n to a notification counter.
func (s *Store) Count(ctx context.Context, c schema.NotifyCounter, n int64) error {
	if err := s.rdb.HIncrBy(ctx, schema.KeyNotifyMetrics, c.Field(), n).Err(); err != nil {
		return fmt.Errorf("count %s: %w", c.Field(), err)
	}
	return nil
}

// Counters returns every notification counter with its value. A field that is not a counter, or a value
// that is not a number, is reported in problems.
func (s *Store) Counters(ctx context.Context) (map[schema.NotifyCounter]int64, []error, error) {
	m, err := s.rdb.HGetAll(ctx, schema.KeyNotifyMetrics).Result()
	if err != nil {
		return nil, nil, fmt.Errorf("read notification counters: %w", err)
	}
	out := make(map[schema.NotifyCounter]int64, len(m))
	var problems []error
	for f, v := range m {
		c, err := schema.ParseNotifyCounter(f)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64) // not fmt.Sscan, which reads "12abc" as 12
		if err != nil {
			problems = append(problems, fmt.Errorf("notification counter %s: %w", f, err))
			continue
		}
		out[c] = n
	}
	return out, problems, nil
}

// RecordFailure appends a failed delivery to the capped failure list.
func (s *Store) RecordFailure(ctx context.Context, f schema.NotifyFailure) error {
	b, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("record failure: %w", err)
	}
	pipe := s.rdb.TxPipeline()
	pipe.LPush(ctx, schema.KeyNotifyFailed, b)
	pipe.LTrim(ctx, schema.KeyNotifyFailed, 0, schema.NotifyFailedCap-1)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("record failure: %w", err)
	}
	return nil
}

// Failures returns the newest failed deliveries, newest first.
func (s *Store) Failures(ctx context.Context, n int64) ([]schema.NotifyFailure, error) {
	raw, err := s.rdb.LRange(ctx, schema.KeyNotifyFailed, 0, n-1).Result()
	if err != nil {
		return nil, fmt.Errorf("read failures: %w", err)
	}
	out := make([]schema.NotifyFailure, 0, len(raw))
	for _, r := range raw {
		var f schema.NotifyFailure
		if json.Unmarshal([]byte(r), &f) == nil {
			out = append(out, f)
		}
	}
	return out, nil
}

// recordScript stores an event once (keyed by its id) in its type's list and in the "all" list, both capped.
var recordScript = redis.NewScript(`
if not redis.call('SET', KEYS[1], 1, 'NX', 'PX', ARGV[2]) then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
redis.call('LPUSH', KEYS[3], ARGV[1])
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[3]) - 1)
return 1
`)

// RecordEvent stores an envelope in hemostat:events:<type> and hemostat:events:all, once per event id.
// It reports whether the event was new.
func (s *Store) RecordEvent(ctx context.Context, env event.Envelope) (bool, error) {
	raw, err := env.Marshal()
	if err != nil {
		return false, fmt.Errorf("record event %s: %w", env.ID, err)
	}
	b, err := json.Marshal(schema.StoredEvent{Timestamp: env.Timestamp.UTC().Format(time.RFC3339Nano), EventType: env.EventType, Event: raw})
	if err != nil {
		return false, fmt.Errorf("record event %s: %w", env.ID, err)
	}
	keys := []string{schema.AlertSeenKey(env.ID), schema.EventsKey(env.EventType), schema.KeyEventsAll}
	n, err := recordScript.Run(ctx, s.rdb, keys, b, seenTTL.Milliseconds(), schema.EventsCap).Int64()
	if err != nil {
		return false, fmt.Errorf("record event %s: %w", env.ID, err)
	}
	return n == 1, nil
}

// Thread returns the Slack channel and ts of an incident's thread; empty strings when it has none.
func (s *Store) Thread(ctx context.Context, incident string) (channel, ts string, err error) {
	m, err := s.rdb.HGetAll(ctx, schema.NotifyThreadKey(incident)).Result()
	if err != nil {
		return "", "", fmt.Errorf("read thread %s: %w", incident, err)
	}
	t := schema.DecodeThread(m)
	return t.Channel, t.TS, nil
}

// SetThread remembers the first message of an incident's thread for a week.
func (s *Store) SetThread(ctx context.Context, incident, channel, ts string) error {
	key := schema.NotifyThreadKey(incident)
	pipe := s.rdb.TxPipeline()
	pipe.HSet(ctx, key, schema.Thread{Channel: channel, TS: ts}.Encode())
	pipe.PExpire(ctx, key, threadTTL)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("store thread %s: %w", incident, err)
	}
	return nil
}

// ClearThread forgets an incident's thread, so its next occurrence starts a new one.
func (s *Store) ClearThread(ctx context.Context, incident string) error {
	if err := s.rdb.Del(ctx, schema.NotifyThreadKey(incident)).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("clear thread %s: %w", incident, err)
	}
	return nil
}

// Events returns the newest n events of every type (schema.KeyEventsAll), newest first; items that do not
// decode are left out.
func (s *Store) Events(ctx context.Context, n int64) ([]schema.StoredEvent, error) {
	raw, err := s.rdb.LRange(ctx, schema.KeyEventsAll, 0, n-1).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read %s: %w", schema.KeyEventsAll, err)
	}
	out := make([]schema.StoredEvent, 0, len(raw))
	for _, r := range raw {
		var e schema.StoredEvent
		if json.Unmarshal([]byte(r), &e) == nil && len(e.Event) > 0 {
			out = append(out, e)
		}
	}
	return out, nil
}
