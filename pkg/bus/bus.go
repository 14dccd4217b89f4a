// Package bus owns hemostat's Redis Streams transport: publishing with a pub/sub mirror, consumer groups,
// acknowledgement, reclaiming stale entries, and the dead letter stream.
package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/conn"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/sign"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

// Options tune the bus. Zero values take the defaults.
type Options struct {
	MaxLen int64 // approximate cap of each stream (XADD MAXLEN ~), default 100000
	// RequestMaxLen is the approximate cap of each host's request stream (event.RemediationNeededStream),
	// default 10000: there is one per host, so MaxLen each would let the fleet's requests hold hosts ×
	// MaxLen entries.
	RequestMaxLen int64
	DeadLetterLen int64         // approximate cap of the dead letter stream, default 10000
	ClaimIdle     time.Duration // reclaim entries pending longer than this, default 30s
	MaxDeliveries int64         // dead-letter an entry delivered more than this, default 5
	Batch         int64         // entries per XREADGROUP, default 100
	Block         time.Duration // XREADGROUP BLOCK, default 1s; also bounds the stop latency
	RetryDelay    time.Duration // first wait before a failed entry is retried, default 500ms
	Concurrency   int           // handlers run at once within a batch, default 1
	StopGrace     time.Duration // how long in-flight handlers may run after the stop, default 10s
	// Keys sign every envelope published and verify every entry consumed, before it is decoded: an entry
	// that does not verify is dead-lettered unread. nil publishes unsigned entries and reads every entry.
	Keys   *sign.Keyring
	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.MaxLen <= 0 {
		o.MaxLen = 100000
	}
	if o.RequestMaxLen <= 0 {
		o.RequestMaxLen = min(o.MaxLen, 10000)
	}
	if o.DeadLetterLen <= 0 {
		o.DeadLetterLen = 10000
	}
	if o.ClaimIdle <= 0 {
		o.ClaimIdle = 30 * time.Second
	}
	if o.MaxDeliveries <= 0 {
		o.MaxDeliveries = 5
	}
	if o.Batch <= 0 {
		o.Batch = 100
	}
	if o.Block <= 0 {
		o.Block = time.Second
	}
	if o.RetryDelay <= 0 {
		o.RetryDelay = 500 * time.Millisecond
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 1
	}
	if o.StopGrace <= 0 {
		o.StopGrace = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Bus publishes and consumes envelopes on Redis Streams.
type Bus struct {
	rdb   *redis.Client
	o     Options
	stats Stats
}

// Stats counts what the bus has done since it was created.
type Stats struct {
	Published    atomic.Int64
	Handled      atomic.Int64
	Failed       atomic.Int64
	DeadLettered atomic.Int64
	Malformed    atomic.Int64
	Rejected     atomic.Int64 // unauthenticated entries, and those a handler refused (Reject)
	Reclaimed    atomic.Int64
}

// New returns a bus over a Redis connection.
func New(c *conn.Conn, o Options) *Bus {
	o.defaults()
	return &Bus{rdb: c.Client(), o: o}
}

// Stats returns the bus's counters.
func (b *Bus) Stats() *Stats { return &b.stats }

// Options returns the options in force, defaults filled in.
func (b *Bus) Options() Options { return b.o }

// Publish appends the envelope to its stream and mirrors it on the pub/sub channel of the same name,
// in one round trip. It returns the stream entry id.
func (b *Bus) Publish(ctx context.Context, stream string, env event.Envelope) (string, error) {
	raw, err := env.Marshal()
	if err != nil {
		return "", fmt.Errorf("publish %s: %w", stream, err)
	}
	return b.PublishRaw(ctx, stream, raw)
}

// PublishRaw appends already-encoded bytes; used for replay and for tests of malformed input.
func (b *Bus) PublishRaw(ctx context.Context, stream string, raw []byte) (string, error) {
	pipe := b.rdb.Pipeline()
	add := b.add(ctx, pipe, stream, raw)
	if _, err := pipe.Exec(ctx); err != nil {
		return "", fmt.Errorf("publish %s: %w", stream, err)
	}
	b.stats.Published.Add(1)
	return add.Val(), nil
}

// PublishBatch appends many envelopes to one stream in one round trip.
func (b *Bus) PublishBatch(ctx context.Context, stream string, envs []event.Envelope) error {
	pipe := b.rdb.Pipeline()
	for _, env := range envs {
		raw, err := env.Marshal()
		if err != nil {
			return fmt.Errorf("publish %s: %w", stream, err)
		}
		b.add(ctx, pipe, stream, raw)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("publish %s: %w", stream, err)
	}
	b.stats.Published.Add(int64(len(envs)))
	return nil
}

// add queues the XADD of raw to stream and its pub/sub mirror; for a host's request stream, also the host
// in the registry of request streams (schema.KeyRequestHosts), so that readers of every host's requests
// find the stream.
func (b *Bus) add(ctx context.Context, pipe redis.Pipeliner, stream string, raw []byte) *redis.StringCmd {
	maxLen := b.o.MaxLen
	host, request := event.RemediationNeededHost(stream)
	if request {
		maxLen = b.o.RequestMaxLen
	}
	add := pipe.XAdd(ctx, &redis.XAddArgs{Stream: stream, MaxLen: maxLen, Approx: true, Values: b.values(stream, raw)})
	pipe.Publish(ctx, stream, raw)
	if request {
		pipe.SAdd(ctx, schema.KeyRequestHosts, host)
	}
	return add
}

// RequestHosts returns the hosts that have a request stream, sorted.
func (b *Bus) RequestHosts(ctx context.Context) ([]string, error) {
	hosts, err := b.rdb.SMembers(ctx, schema.KeyRequestHosts).Result()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", schema.KeyRequestHosts, err)
	}
	slices.Sort(hosts)
	return hosts, nil
}

// RequestStreams returns the hosts' request streams, sorted (one SMEMBERS).
func (b *Bus) RequestStreams(ctx context.Context) ([]string, error) {
	hosts, err := b.RequestHosts(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(hosts))
	for _, h := range hosts {
		if h != "" {
			out = append(out, event.RemediationNeededStream(h))
		}
	}
	return out, nil
}

// WorkStreams returns every work stream in flow order, the hosts' request streams included (one SMEMBERS).
func (b *Bus) WorkStreams(ctx context.Context) ([]string, error) {
	hosts, err := b.RequestHosts(ctx)
	if err != nil {
		return nil, err
	}
	return event.WorkStreamsWith(hosts), nil
}

// values are the fields of a stream entry carrying raw: the envelope, and its MAC when the bus signs.
func (b *Bus) values(stream string, raw []byte) []any {
	if b.o.Keys == nil {
		return []any{event.Field, raw}
	}
	return []any{event.Field, raw, sign.Field, b.o.Keys.Sign(stream, raw)}
}

// Entry is one raw stream entry, for views that read streams without a group.
type Entry struct {
	Stream string
	ID     string
	Raw    []byte            // the envelope (field event.Field)
	Extra  map[string]string // the entry's other fields: a dead letter's reason, stream, entry_id, ...
}

// Time is the entry's append time, from its id.
func (e Entry) Time() time.Time { return IDTime(e.ID) }

// IDTime returns the millisecond time encoded in a stream entry id.
func IDTime(id string) time.Time {
	for i := 0; i < len(id); i++ {
		if id[i] == '-' {
			id = id[:i]
			break
		}
	}
	ms, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

func toEntry(stream string, m redis.XMessage) Entry {
	raw, _ := m.Values[event.Field].(string)
	e := Entry{Stream: stream, ID: m.ID, Raw: []byte(raw)}
	for k, v := range m.Values {
		if s, ok := v.(string); ok && k != event.Field {
			if e.Extra == nil {
				e.Extra = map[string]string{}
			}
			e.Extra[k] = s
		}
	}
	return e
}

// Range returns up to count entries of a stream between start and end ids ("-" and "+" for all), oldest first.
func (b *Bus) Range(ctx context.Context, stream, start, end string, count int64) ([]Entry, error) {
	msgs, err := b.rdb.XRangeN(ctx, stream, start, end, count).Result()
	if err != nil {
		return nil, err
	}
	out := make([]Entry, len(msgs))
	for i, m := range msgs {
		out[i] = toEntry(stream, m)
	}
	return out, nil
}

// RevRange returns up to count entries, newest first.
func (b *Bus) RevRange(ctx context.Context, stream, end, start string, count int64) ([]Entry, error) {
	msgs, err := b.rdb.XRevRangeN(ctx, stream, end, start, count).Result()
	if err != nil {
		return nil, err
	}
	out := make([]Entry, len(msgs))
	for i, m := range msgs {
		out[i] = toEntry(stream, m)
	}
	return out, nil
}

// Follow reads entries appended after the given ids (one per stream, "$" for new only), blocking up to block.
// It returns nil entries when nothing arrived.
func (b *Bus) Follow(ctx context.Context, streams map[string]string, block time.Duration) ([]Entry, error) {
	args := make([]string, 0, 2*len(streams))
	for s := range streams {
		args = append(args, s)
	}
	for _, s := range args[:len(streams)] {
		args = append(args, streams[s])
	}
	res, err := b.rdb.XRead(ctx, &redis.XReadArgs{Streams: args, Count: followCount, Block: block}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("follow streams: %w", err)
	}
	var out []Entry
	for _, s := range res {
		for _, m := range s.Messages {
			out = append(out, toEntry(s.Stream, m))
		}
	}
	return out, nil
}

// followCount caps the entries one Follow returns.
const followCount = 500

// Follower returns a bus over a new one-connection pool to the same server, for one long blocking reader
// (Follow). Closing it interrupts a blocking read at once, which cancelling the read's context does not;
// the caller closes it.
func (b *Bus) Follower() *Bus {
	o := *b.rdb.Options()
	o.PoolSize = 1
	o.MinIdleConns = 0
	return &Bus{rdb: redis.NewClient(&o), o: b.o}
}

// Close closes the bus's connections; only a Follower's own.
func (b *Bus) Close() error { return b.rdb.Close() }

// Len returns the number of entries in a stream.
func (b *Bus) Len(ctx context.Context, stream string) (int64, error) {
	return b.rdb.XLen(ctx, stream).Result()
}

// Pending returns how many entries of a stream are delivered to a group but not acknowledged.
func (b *Bus) Pending(ctx context.Context, stream, group string) (int64, error) {
	p, err := b.rdb.XPending(ctx, stream, group).Result()
	if err != nil {
		if isNoGroup(err) {
			return 0, nil
		}
		return 0, err
	}
	return p.Count, nil
}

// Lag returns how many entries of a stream a group has not read yet (Redis 7 and later; -1 when unknown).
func (b *Bus) Lag(ctx context.Context, stream, group string) (int64, error) {
	groups, err := b.rdb.XInfoGroups(ctx, stream).Result()
	if err != nil {
		return -1, err
	}
	for _, g := range groups {
		if g.Name == group {
			return g.Lag, nil
		}
	}
	return -1, nil
}

// GroupInfo is one consumer group of a stream.
type GroupInfo struct {
	Name    string
	Pending int64 // delivered, not acknowledged
	Lag     int64 // not delivered yet; -1 when Redis cannot tell
}

// Groups returns the consumer groups of a stream; a stream that does not exist has none.
func (b *Bus) Groups(ctx context.Context, stream string) ([]GroupInfo, error) {
	gs, err := b.rdb.XInfoGroups(ctx, stream).Result()
	if err != nil {
		if strings.Contains(err.Error(), "no such key") || errors.Is(err, redis.Nil) {
			return nil, nil
		}
		return nil, fmt.Errorf("groups of %s: %w", stream, err)
	}
	out := make([]GroupInfo, len(gs))
	for i, g := range gs {
		out[i] = GroupInfo{Name: g.Name, Pending: g.Pending, Lag: g.Lag}
	}
	return out, nil
}
