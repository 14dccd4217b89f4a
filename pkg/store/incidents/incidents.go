// Package incidents owns the incidents in Redis: each incident's hash (schema.Incident, written in three
// sections by the monitor, the analyzer and the responder), the set of open incidents, each host's set of
// incidents failing now (the blast radius counts it), each host's schedule of follow-ups (when hemostat
// looks at an incident again), and each container's recent OOM kills. Closing an incident takes it out of
// all of them in one step.
package incidents

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/conn"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

// Store reads and writes incidents.
type Store struct{ rdb *redis.Client }

// New returns the store over a connection.
func New(c *conn.Conn) *Store { return &Store{rdb: c.Client()} }

// HostOf returns the host part of an incident key host/name/class.
func HostOf(incident string) string {
	h, _, _ := strings.Cut(incident, "/")
	return h
}

// ContainerOf returns the container name of an incident key host/name/class.
func ContainerOf(incident string) string {
	_, rest, _ := strings.Cut(incident, "/")
	if i := strings.LastIndexByte(rest, '/'); i >= 0 {
		return rest[:i]
	}
	return rest
}

// Open starts a fresh hash for an opened incident (a previous opening of the same key, closed, is replaced
// with its analysis), adds it to the open set and to its host's failing set, in one transaction. It is
// called before the alert is published, so writing the same opening again is harmless.
func (s *Store) Open(ctx context.Context, key string, d schema.Detection) error {
	d.State = schema.StateOpen
	if d.Condition == "" {
		d.Condition, d.ConditionSince = schema.ConditionFailing, d.OpenedAt
	}
	hk := schema.IncidentKey(key)
	pipe := s.rdb.TxPipeline()
	pipe.Del(ctx, hk)
	pipe.HSet(ctx, hk, d.Encode())
	pipe.ZAdd(ctx, schema.KeyIncidentsOpen, redis.Z{Score: float64(d.OpenedAt.UnixMilli()), Member: key})
	if d.Condition == schema.ConditionFailing {
		pipe.ZAdd(ctx, schema.FailingKey(d.Host), redis.Z{Score: float64(d.ConditionSince.UnixMilli()), Member: key})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("open incident %s: %w", key, err)
	}
	return nil
}

// Realert records a repeated alert of an open incident.
func (s *Store) Realert(ctx context.Context, key, alertID string, at time.Time) error {
	f := schema.Only(schema.Detection{AlertID: alertID, LastAlertAt: at}.Encode(), schema.FieldAlertID, schema.FieldLastAlertAt)
	if err := s.rdb.HSet(ctx, schema.IncidentKey(key), f).Err(); err != nil {
		return fmt.Errorf("realert incident %s: %w", key, err)
	}
	return nil
}

// Change is a change of an open incident's condition the monitor saw.
type Change struct {
	Condition string    // schema.ConditionFailing or schema.ConditionClear
	Since     time.Time // when it changed
	// Relapse is set when the condition came back after it had cleared or after an action: the relapse
	// count goes up and the incident's follow-up is made due now, so the responder looks at it at once
	// (and waits out the backoff if it must).
	Relapse      bool
	Relapses     int
	RelapseAfter time.Duration
}

// SetCondition records a change of an open incident's condition, and moves the incident in or out of its
// host's failing set, in one transaction.
func (s *Store) SetCondition(ctx context.Context, key string, c Change) error {
	d := schema.Detection{Condition: c.Condition, ConditionSince: c.Since, Relapses: c.Relapses, RelapsedAt: c.Since,
		RelapseAfter: c.RelapseAfter}
	names := []string{schema.FieldCondition, schema.FieldConditionSince}
	if c.Relapse {
		names = append(names, schema.FieldRelapses, schema.FieldRelapsedAt, schema.FieldRelapseAfterMS)
	}
	host := HostOf(key)
	pipe := s.rdb.TxPipeline()
	pipe.HSet(ctx, schema.IncidentKey(key), schema.Only(d.Encode(), names...))
	if c.Condition == schema.ConditionFailing {
		pipe.ZAdd(ctx, schema.FailingKey(host), redis.Z{Score: float64(c.Since.UnixMilli()), Member: key})
	} else {
		pipe.ZRem(ctx, schema.FailingKey(host), key)
	}
	if c.Relapse {
		pipe.ZAddLT(ctx, schema.FollowupsKey(host), redis.Z{Score: float64(c.Since.UnixMilli()), Member: key})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("incident %s %s: %w", key, c.Condition, err)
	}
	return nil
}

// Close marks an incident closed, expires its hash after schema.IncidentClosedTTL, and takes it out of
// the open set, its host's failing set and its host's follow-ups, in one transaction.
func (s *Store) Close(ctx context.Context, key string, at time.Time, reason string) error {
	hk := schema.IncidentKey(key)
	host := HostOf(key)
	f := schema.Only(schema.Detection{State: schema.StateClosed, ClosedAt: at, CloseReason: reason,
		Condition: schema.ConditionClear, ConditionSince: at}.Encode(),
		schema.FieldState, schema.FieldClosedAt, schema.FieldCloseReason, schema.FieldCondition, schema.FieldConditionSince)
	f[schema.FieldNextAt], f[schema.FieldNextReason] = "", ""
	pipe := s.rdb.TxPipeline()
	pipe.HSet(ctx, hk, f)
	pipe.Expire(ctx, hk, schema.IncidentClosedTTL)
	pipe.ZRem(ctx, schema.KeyIncidentsOpen, key)
	pipe.ZRem(ctx, schema.FailingKey(host), key)
	pipe.ZRem(ctx, schema.FollowupsKey(host), key)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("close incident %s: %w", key, err)
	}
	return nil
}

// Get reads one incident; found is false when its hash does not exist. A hash that does not fully decode
// is returned as far as it does, with the error.
func (s *Store) Get(ctx context.Context, key string) (in schema.Incident, found bool, err error) {
	m, err := s.rdb.HGetAll(ctx, schema.IncidentKey(key)).Result()
	if err != nil {
		return schema.Incident{Key: key}, false, fmt.Errorf("read incident %s: %w", key, err)
	}
	if len(m) == 0 {
		return schema.Incident{Key: key}, false, nil
	}
	in, err = schema.DecodeIncident(key, m)
	if err != nil {
		err = fmt.Errorf("incident %s: %w", key, err)
	}
	return in, true, err
}

// OpenIncidents returns the open incidents of one host (all hosts when host is empty), oldest first, so a
// restarted monitor resumes them instead of alerting again. Only the host's own incident hashes are read:
// every monitor calls it at each reconcile, and reading every host's (as ListOpen does) made the fleet's
// cost grow with the square of its size (issue 17).
func (s *Store) OpenIncidents(ctx context.Context, host string) ([]schema.Incident, error) {
	var keep func(key string) bool
	if host != "" {
		keep = func(key string) bool { return HostOf(key) == host }
	}
	all, _, err := s.listOpen(ctx, -1, keep)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, in := range all {
		if in.State == schema.StateOpen && (host == "" || HostOf(in.Key) == host) {
			out = append(out, in)
		}
	}
	return out, nil
}

// ListOpen returns up to limit open incidents (all when limit < 0), oldest first, in two round trips.
// Incidents whose hash does not decode are returned as far as they do and reported in problems; a member
// whose hash is gone is returned with its key and opening time only.
func (s *Store) ListOpen(ctx context.Context, limit int64) ([]schema.Incident, []error, error) {
	return s.listOpen(ctx, limit, nil)
}

// listOpen is ListOpen of the members keep keeps (all when keep is nil); limit counts members before keep.
func (s *Store) listOpen(ctx context.Context, limit int64, keep func(key string) bool) ([]schema.Incident, []error, error) {
	if limit == 0 {
		return nil, nil, nil // ZRANGE 0 -1 would be all of them
	}
	stop := int64(-1)
	if limit >= 0 {
		stop = limit - 1
	}
	members, err := s.rdb.ZRangeWithScores(ctx, schema.KeyIncidentsOpen, 0, stop).Result()
	if err != nil {
		return nil, nil, fmt.Errorf("open incidents: %w", err)
	}
	if len(members) == 0 {
		return nil, nil, nil
	}
	if keep != nil {
		kept := members[:0]
		for _, z := range members {
			if m, _ := z.Member.(string); keep(schema.IncidentOf(m)) {
				kept = append(kept, z)
			}
		}
		if members = kept; len(members) == 0 {
			return nil, nil, nil
		}
	}
	keys := make([]string, len(members))
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(members))
	for i, z := range members {
		m, _ := z.Member.(string)
		keys[i] = schema.IncidentOf(m)
		cmds[i] = pipe.HGetAll(ctx, schema.IncidentKey(keys[i]))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, nil, fmt.Errorf("open incidents: %w", err)
	}
	out := make([]schema.Incident, 0, len(members))
	var problems []error
	for i, key := range keys {
		in, err := schema.DecodeIncident(key, cmds[i].Val())
		if err != nil {
			problems = append(problems, fmt.Errorf("incident %s: %w", key, err))
		}
		if in.OpenedAt.IsZero() {
			in.OpenedAt = time.UnixMilli(int64(members[i].Score)).UTC()
			if in.LastAlertAt.IsZero() {
				in.LastAlertAt = in.OpenedAt
			}
		}
		out = append(out, in)
	}
	return out, problems, nil
}

// Failing returns the incidents of a host whose condition holds now.
func (s *Store) Failing(ctx context.Context, host string) ([]string, error) {
	keys, err := s.rdb.ZRange(ctx, schema.FailingKey(host), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("failing incidents of %s: %w", host, err)
	}
	return keys, nil
}

// Cleared takes an incident out of its host's failing set: the responder verified its container.
func (s *Store) Cleared(ctx context.Context, key string) error {
	if err := s.rdb.ZRem(ctx, schema.FailingKey(HostOf(key)), key).Err(); err != nil {
		return fmt.Errorf("clear incident %s: %w", key, err)
	}
	return nil
}

// isMissing reports whether err is only go-redis's "no value".
func isMissing(err error) bool { return errors.Is(err, redis.Nil) }

// CountOpen returns how many incidents are open.
func (s *Store) CountOpen(ctx context.Context) (int64, error) {
	n, err := s.rdb.ZCard(ctx, schema.KeyIncidentsOpen).Result()
	if err != nil {
		return 0, fmt.Errorf("count open incidents: %w", err)
	}
	return n, nil
}

// OpenKeys returns the keys (host/name/class) of the open incidents, oldest first.
func (s *Store) OpenKeys(ctx context.Context) ([]string, error) {
	keys, err := s.rdb.ZRange(ctx, schema.KeyIncidentsOpen, 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("open incidents: %w", err)
	}
	for i, k := range keys {
		keys[i] = schema.IncidentOf(k)
	}
	return keys, nil
}
