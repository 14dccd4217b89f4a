package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/event"
)

// Keys the dashboard reads that pkg/event does not name (ARCHITECTURE section 3 and the shared contracts).
const (
	dashKeyIncidentsOpen = "hemostat:incidents:open"
	dashIncidentPrefix   = "hemostat:incident:"
)

// Per-container keys by "host/name" (the hash tag), as event.StatsKey, event.LedgerKey and the shadow ledger
// of RespondKeys name them.
func dashStatsKey(target string) string  { return "hemostat:stats:{" + target + "}" }
func dashLedgerKey(target string) string { return "hemostat:ledger:{" + target + "}" }
func dashShadowKey(target string) string { return "hemostat:shadow:{" + target + "}" }

// DashState is one read of the state the dashboard shows, left undecoded: the dashboard decodes it and
// tolerates bad values one by one.
type DashState struct {
	Containers map[string]string            // "host/name" -> container.Summary JSON
	Stats      map[string]map[string]string // "host/name" -> stats hash ("sample", "history")
	Ledgers    map[string]map[string]string // "host/name" -> ledger hash (empty when respond never acted)
	Shadows    map[string]map[string]string // "host/name" -> shadow ledger hash
	Incidents  []DashIncident               // open incidents, oldest first
	Agents     []AgentInfo                  // live agent heartbeats
}

// DashIncident is one open incident: its id (host/name/class), when it opened, and its hash.
type DashIncident struct {
	ID       string
	OpenedMS int64
	Fields   map[string]string
}

// DashMaxIncidents caps how many open incidents one read fetches.
const DashMaxIncidents = 500

// DashState reads containers, their latest samples, ledgers and shadow ledgers, the open incidents and the
// live agents, in three round trips whatever the number of containers.
func (c *Client) DashState(ctx context.Context) (DashState, error) {
	st := DashState{
		Stats:   map[string]map[string]string{},
		Ledgers: map[string]map[string]string{},
		Shadows: map[string]map[string]string{},
	}
	pipe := c.rdb.Pipeline()
	containers := pipe.HGetAll(ctx, event.KeyContainers)
	open := pipe.ZRangeWithScores(ctx, dashKeyIncidentsOpen, 0, DashMaxIncidents-1)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return st, fmt.Errorf("read containers: %w", err)
	}
	st.Containers = containers.Val()

	pipe = c.rdb.Pipeline()
	type hget struct {
		target string
		stats  *redis.MapStringStringCmd
		ledger *redis.MapStringStringCmd
		shadow *redis.MapStringStringCmd
	}
	reads := make([]hget, 0, len(st.Containers))
	for target := range st.Containers {
		reads = append(reads, hget{
			target: target,
			stats:  pipe.HGetAll(ctx, dashStatsKey(target)),
			ledger: pipe.HGetAll(ctx, dashLedgerKey(target)),
			shadow: pipe.HGetAll(ctx, dashShadowKey(target)),
		})
	}
	members := open.Val()
	incs := make([]*redis.MapStringStringCmd, len(members))
	for i, z := range members {
		id, _ := z.Member.(string)
		incs[i] = pipe.HGetAll(ctx, dashIncidentKey(id))
	}
	if len(reads)+len(incs) > 0 {
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return st, fmt.Errorf("read container state: %w", err)
		}
	}
	for _, r := range reads {
		if v := r.stats.Val(); len(v) > 0 {
			st.Stats[r.target] = v
		}
		if v := r.ledger.Val(); len(v) > 0 {
			st.Ledgers[r.target] = v
		}
		if v := r.shadow.Val(); len(v) > 0 {
			st.Shadows[r.target] = v
		}
	}
	for i, z := range members {
		id, _ := z.Member.(string)
		st.Incidents = append(st.Incidents, DashIncident{
			ID:       strings.TrimPrefix(id, dashIncidentPrefix),
			OpenedMS: int64(z.Score),
			Fields:   incs[i].Val(),
		})
	}

	agents, err := c.Agents(ctx)
	if err != nil {
		return st, fmt.Errorf("read agents: %w", err)
	}
	st.Agents = agents
	return st, nil
}

// dashIncidentKey accepts a member of the open set written either as the incident id or as its hash key.
func dashIncidentKey(member string) string {
	if strings.HasPrefix(member, dashIncidentPrefix) {
		return member
	}
	return event.IncidentHashKey(member)
}

// DashEntry is one stream entry as the dashboard reads it: its stream, id, the value of its main field, and
// any other fields (a dead letter's reason, stream, entry_id, ...).
type DashEntry struct {
	Stream string
	ID     string
	Value  string
	Extra  map[string]string
}

// Time is the entry's append time, from its id.
func (e DashEntry) Time() time.Time {
	ms, _, _ := strings.Cut(e.ID, "-")
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(n).UTC()
}

func dashEntries(stream, field string, msgs []redis.XMessage) []DashEntry {
	out := make([]DashEntry, len(msgs))
	for i, m := range msgs {
		v, _ := m.Values[field].(string)
		out[i] = DashEntry{Stream: stream, ID: m.ID, Value: v}
		for k, x := range m.Values {
			if s, ok := x.(string); ok && k != field {
				if out[i].Extra == nil {
					out[i].Extra = map[string]string{}
				}
				out[i].Extra[k] = s
			}
		}
	}
	return out
}

// DashStreamAfter returns up to count entries of stream appended after the id after ("" for the start),
// oldest first, each with the value of field.
func (c *Client) DashStreamAfter(ctx context.Context, stream, field, after string, count int64) ([]DashEntry, error) {
	start := "-"
	if after != "" {
		start = "(" + after
	}
	msgs, err := c.rdb.XRangeN(ctx, stream, start, "+", count).Result()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", stream, err)
	}
	return dashEntries(stream, field, msgs), nil
}

// DashStreamTail returns the newest count entries of stream appended at or after since (zero: any time),
// oldest first, each with the value of field.
func (c *Client) DashStreamTail(ctx context.Context, stream, field string, since time.Time, count int64) ([]DashEntry, error) {
	end := "-"
	if !since.IsZero() {
		end = strconv.FormatInt(since.UnixMilli(), 10)
	}
	msgs, err := c.rdb.XRevRangeN(ctx, stream, "+", end, count).Result()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", stream, err)
	}
	out := dashEntries(stream, field, msgs)
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// DashFollow blocks up to block for entries appended to the streams after the given ids ("$" for new only),
// each with the value of field. It returns no entries and no error when nothing arrived in time.
func (c *Client) DashFollow(ctx context.Context, after map[string]string, field string, block time.Duration) ([]DashEntry, error) {
	res, err := ReadAfter(ctx, c.rdb, after, block)
	if err != nil {
		return nil, err
	}
	var out []DashEntry
	for _, s := range res {
		out = append(out, dashEntries(s.Stream, field, s.Messages)...)
	}
	return out, nil
}

// ReadAfter reads up to 500 entries appended to the streams after the given ids ("$" for new only),
// blocking up to block; nothing arrived in time is no entries and no error. pkg/bus's Follow uses it too.
func ReadAfter(ctx context.Context, rdb *redis.Client, after map[string]string, block time.Duration) ([]redis.XStream, error) {
	args := make([]string, 0, 2*len(after))
	for s := range after {
		args = append(args, s)
	}
	for _, s := range args[:len(after)] {
		args = append(args, after[s])
	}
	res, err := rdb.XRead(ctx, &redis.XReadArgs{Streams: args, Count: 500, Block: block}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("follow streams: %w", err)
	}
	return res, nil
}

// DashFollower returns a new client to the same server for one long blocking reader (DashFollow). Closing
// it interrupts a blocking read at once, which cancelling the read's context does not; the caller closes it.
func (c *Client) DashFollower() *Client {
	o := *c.rdb.Options()
	o.PoolSize = 1
	o.MinIdleConns = 0
	return &Client{rdb: redis.NewClient(&o), addr: c.addr}
}

// DashAuditOf returns up to n of the newest audit entries of one container ("host/name"), newest first,
// through its index hemostat:audit:idx:{host/name} (a stream of audit ids in field "id", or a sorted set of
// them), so one container's decisions are found without scanning the trail. Two round trips.
func (c *Client) DashAuditOf(ctx context.Context, target string, n int64) ([]DashEntry, error) {
	idx := AuditIndexKey(target)
	var ids []string
	msgs, err := c.rdb.XRevRangeN(ctx, idx, "+", "-", n).Result()
	switch {
	case err != nil && strings.HasPrefix(err.Error(), "WRONGTYPE"):
		ids, err = c.rdb.ZRevRange(ctx, idx, 0, n-1).Result()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", idx, err)
		}
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", idx, err)
	default:
		for _, m := range msgs {
			if id, ok := m.Values["id"].(string); ok {
				ids = append(ids, id)
			}
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	pipe := c.rdb.Pipeline()
	cmds := make([]*redis.XMessageSliceCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.XRangeN(ctx, event.StreamAudit, id, id, 1)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read %s: %w", event.StreamAudit, err)
	}
	out := make([]DashEntry, 0, len(ids))
	for _, cmd := range cmds {
		out = append(out, dashEntries(event.StreamAudit, "entry", cmd.Val())...) // trimmed ids read nothing
	}
	return out, nil
}

// DashEventList returns the newest n items of a capped event list (hemostat:events:all or one type's),
// newest first.
func (c *Client) DashEventList(ctx context.Context, key string, n int64) ([]string, error) {
	v, err := c.rdb.LRange(ctx, key, 0, n-1).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return v, nil
}

// QuietDriverLogs sends the Redis driver's own log lines (dial failures while Redis is down, which it
// otherwise prints on stderr) to logger at debug level, or drops them when logger is nil. The driver's
// logger is process-wide: only a command that owns the terminal (dash) calls this, once, at start.
func QuietDriverLogs(logger *slog.Logger) {
	redis.SetLogger(driverLogger{logger})
}

type driverLogger struct{ l *slog.Logger }

// Printf implements the driver's logging interface.
func (d driverLogger) Printf(ctx context.Context, format string, v ...any) {
	if d.l != nil {
		d.l.DebugContext(ctx, "redis driver", "line", fmt.Sprintf(format, v...))
	}
}
