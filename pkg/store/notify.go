package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/event"
)

// Keys the alert agent owns.
const (
	// KeyNotifyMetrics is the hash of notification counters the exporter reads; fields are
	// "<counter>:<label>", e.g. "sent:slack", "failed:webhook", "deduplicated:remediated", "suppressed:cooldown".
	KeyNotifyMetrics = "hemostat:metrics:notify"
	// KeyNotifyFailed is the capped list of deliveries that failed for good (JSON of NotifyFailure).
	KeyNotifyFailed = "hemostat:notify:failed"
	// EventsCap is how many entries each hemostat:events:* list keeps.
	EventsCap = 1000
	// NotifyFailedCap is how many failures hemostat:notify:failed keeps.
	NotifyFailedCap = 1000
	seenTTL         = 24 * time.Hour
	threadTTL       = 7 * 24 * time.Hour
)

// NotifyDedupKey is the deduplication key of one incident state: the incident plus the state, nothing else.
func NotifyDedupKey(incident, state string) string {
	return "hemostat:notify:dedup:{" + incident + "}:" + state
}

// NotifyThreadKey holds the Slack thread (channel and ts of the first message) of an incident.
func NotifyThreadKey(incident string) string { return "hemostat:notify:thread:{" + incident + "}" }

func notifySeenKey(eventID string) string { return "hemostat:alert:seen:" + eventID }

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

// NotifyClaim records that an incident state is about to be notified. It returns 1 for the first claim
// within ttl, and the number of times the state was seen for a repeat. A first claim also forgets the
// claims of the release states, in the same step.
func (c *Client) NotifyClaim(ctx context.Context, incident, state string, ttl time.Duration, release ...string) (int64, error) {
	keys := make([]string, 0, 1+len(release))
	keys = append(keys, NotifyDedupKey(incident, state))
	for _, r := range release {
		keys = append(keys, NotifyDedupKey(incident, r))
	}
	n, err := claimScript.Run(ctx, c.rdb, keys, ttl.Milliseconds()).Int64()
	if err != nil {
		return 0, fmt.Errorf("claim notification %s %s: %w", incident, state, err)
	}
	return n, nil
}

// NotifyRelease forgets the claims of the given states of an incident, so the next occurrence notifies again.
func (c *Client) NotifyRelease(ctx context.Context, incident string, states ...string) error {
	if len(states) == 0 {
		return nil
	}
	keys := make([]string, len(states))
	for i, s := range states {
		keys[i] = NotifyDedupKey(incident, s)
	}
	if err := c.rdb.Del(ctx, keys...).Err(); err != nil {
		return fmt.Errorf("release notifications %s: %w", incident, err)
	}
	return nil
}

// NotifyCount adds n to a notification counter ("sent:slack", ...) in hemostat:metrics:notify.
func (c *Client) NotifyCount(ctx context.Context, field string, n int64) error {
	if err := c.rdb.HIncrBy(ctx, KeyNotifyMetrics, field, n).Err(); err != nil {
		return fmt.Errorf("count %s: %w", field, err)
	}
	return nil
}

// NotifyCounters returns every notification counter.
func (c *Client) NotifyCounters(ctx context.Context) (map[string]string, error) {
	return c.rdb.HGetAll(ctx, KeyNotifyMetrics).Result()
}

// NotifyFailure is one delivery that failed for good, kept in hemostat:notify:failed.
type NotifyFailure struct {
	Time     time.Time `json:"time"`
	Sink     string    `json:"sink"`
	Incident string    `json:"incident"`
	State    string    `json:"state"`
	EventID  string    `json:"event_id"`
	Attempts int       `json:"attempts"`
	Error    string    `json:"error"` // already redacted by the caller
}

// NotifyRecordFailure appends a failed delivery to the capped failure list.
func (c *Client) NotifyRecordFailure(ctx context.Context, f NotifyFailure) error {
	b, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("record failure: %w", err)
	}
	pipe := c.rdb.TxPipeline()
	pipe.LPush(ctx, KeyNotifyFailed, b)
	pipe.LTrim(ctx, KeyNotifyFailed, 0, NotifyFailedCap-1)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("record failure: %w", err)
	}
	return nil
}

// NotifyFailures returns the newest failed deliveries, newest first.
func (c *Client) NotifyFailures(ctx context.Context, n int64) ([]NotifyFailure, error) {
	raw, err := c.rdb.LRange(ctx, KeyNotifyFailed, 0, n-1).Result()
	if err != nil {
		return nil, fmt.Errorf("read failures: %w", err)
	}
	out := make([]NotifyFailure, 0, len(raw))
	for _, r := range raw {
		var f NotifyFailure
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

// StoredEvent is one entry of the hemostat:events:* lists, as the seed's views read them.
type StoredEvent struct {
	Timestamp string          `json:"timestamp"` // the event's time, RFC3339Nano
	EventType string          `json:"event_type"`
	Event     json.RawMessage `json:"event"` // the envelope
}

// NotifyRecordEvent stores an envelope in hemostat:events:<type> and hemostat:events:all, once per event id.
// It reports whether the event was new.
func (c *Client) NotifyRecordEvent(ctx context.Context, env event.Envelope) (bool, error) {
	raw, err := env.Marshal()
	if err != nil {
		return false, fmt.Errorf("record event %s: %w", env.ID, err)
	}
	b, err := json.Marshal(StoredEvent{Timestamp: env.Timestamp.UTC().Format(time.RFC3339Nano), EventType: env.EventType, Event: raw})
	if err != nil {
		return false, fmt.Errorf("record event %s: %w", env.ID, err)
	}
	keys := []string{notifySeenKey(env.ID), event.EventsKey(env.EventType), event.KeyEventsAll}
	n, err := recordScript.Run(ctx, c.rdb, keys, b, seenTTL.Milliseconds(), EventsCap).Int64()
	if err != nil {
		return false, fmt.Errorf("record event %s: %w", env.ID, err)
	}
	return n == 1, nil
}

// NotifyIncident returns the fields of an incident's hash (hemostat:incident:<incident>), empty when unknown.
func (c *Client) NotifyIncident(ctx context.Context, incident string) (map[string]string, error) {
	m, err := c.rdb.HGetAll(ctx, event.IncidentHashKey(incident)).Result()
	if err != nil {
		return nil, fmt.Errorf("read incident %s: %w", incident, err)
	}
	return m, nil
}

// NotifyThread returns the Slack channel and ts of an incident's thread; empty strings when it has none.
func (c *Client) NotifyThread(ctx context.Context, incident string) (channel, ts string, err error) {
	m, err := c.rdb.HGetAll(ctx, NotifyThreadKey(incident)).Result()
	if err != nil {
		return "", "", fmt.Errorf("read thread %s: %w", incident, err)
	}
	return m["channel"], m["ts"], nil
}

// NotifySetThread remembers the first message of an incident's thread for a week.
func (c *Client) NotifySetThread(ctx context.Context, incident, channel, ts string) error {
	key := NotifyThreadKey(incident)
	pipe := c.rdb.TxPipeline()
	pipe.HSet(ctx, key, "channel", channel, "ts", ts)
	pipe.PExpire(ctx, key, threadTTL)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("store thread %s: %w", incident, err)
	}
	return nil
}

// NotifyClearThread forgets an incident's thread, so its next occurrence starts a new one.
func (c *Client) NotifyClearThread(ctx context.Context, incident string) error {
	if err := c.rdb.Del(ctx, NotifyThreadKey(incident)).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("clear thread %s: %w", incident, err)
	}
	return nil
}
