// Package containers owns what the monitors write about containers and hosts: the container table (one
// hash per host, schema.ContainersKey, one summary per host/name, the hosts listed in schema.KeyHosts),
// each container's latest sample (schema.Stats), and each host's monitor figures (schema.HostStatus).
package containers

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/conn"
	"github.com/hemostat/hemostat/pkg/container"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

// Store reads and writes the container table, the samples and the host figures.
//
// Each host's part of the table is a hash of its own (schema.ContainersKey), which only the host's
// monitor writes, so that a write never reads or scans what other hosts wrote (issue 17: the table was one
// hash shared by every host, and each host's first write scanned it, a cost quadratic in the fleet when
// it starts together). The store remembers what it last wrote of each host's hash, so that a monitor's
// write of a table that did not change sends nothing, and one that did sends only the summaries that
// changed and deletes only the ones gone. A write is whole (the hash replaced atomically) at the store's
// first write of a host, every refreshEvery and after a failed write, so a table lost by Redis (a restart
// without persistence, a failover) is whole again within that period.
type Store struct {
	rdb *redis.Client
	now func() time.Time // the clock of the refresh; tests set it

	mu      sync.Mutex
	written map[string]*hostTable // host -> its hash as last written by this store
}

// hostTable is one host's hash as this store last wrote it.
type hostTable struct {
	fields map[string]string // host/name -> encoded summary; nil after a failed write
	full   time.Time         // when it was last written whole; zero: the next write is whole
	legacy bool              // the host's fields may still be in schema.KeyContainersLegacy
}

// refreshEvery is how often a host's hash is written whole even when nothing changed.
const refreshEvery = time.Minute

// scanCount is the HSCAN page size of the removal of a host's fields from the legacy table.
const scanCount = 1000

// New returns the store over a connection.
func New(c *conn.Conn) *Store {
	return &Store{rdb: c.Client(), now: time.Now, written: map[string]*hostTable{}}
}

// WriteContainers replaces one host's part of the container table, its hash: the summaries given are
// set, the host's other containers are deleted, in one round trip that reads nothing first. The store's
// first write of a host, one every refreshEvery and the one after a failed write replace the hash whole
// and atomically (MULTI, DEL, HSET, SADD of the host to schema.KeyHosts, EXEC; a host with no containers
// is a DEL); the others send only what changed since the previous write, and nothing at all when nothing
// did.
//
// Upgrade: a deployment of an earlier version has the table in one hash shared by every host
// (schema.KeyContainersLegacy). The store's first write of a host asks whether that hash exists, in the
// same round trip as the write; when it does, the host's fields are removed from it (HSCAN MATCH host/*,
// HDEL). That scan of the shared hash is the old cost of a first write, paid only while the legacy hash
// exists: once every host's monitor is upgraded it is empty, so gone, and a first write scans nothing.
// A failed removal is tried again at the next write, and returned as an error.
func (s *Store) WriteContainers(ctx context.Context, host string, sums []container.Summary) error {
	enc := make(map[string]string, len(sums))
	order := make([]string, 0, len(sums))
	for _, sum := range sums {
		b, err := schema.EncodeContainer(sum)
		if err != nil {
			return fmt.Errorf("write container %s: %w", sum.Target(), err)
		}
		if _, dup := enc[sum.Target()]; !dup {
			order = append(order, sum.Target())
		}
		enc[sum.Target()] = string(b)
	}
	s.mu.Lock()
	prev := s.written[host]
	s.mu.Unlock()
	now := s.now()
	full := prev == nil || prev.full.IsZero() || now.Sub(prev.full) >= refreshEvery
	legacy := prev == nil || prev.legacy // the legacy table may hold the host's fields
	key := schema.ContainersKey(host)
	vals := make([]any, 0, 2*len(order))
	for _, t := range order {
		if full || prev.fields[t] != enc[t] {
			vals = append(vals, t, enc[t])
		}
	}
	var stale []string
	if !full {
		for f := range prev.fields {
			if _, keep := enc[f]; !keep {
				stale = append(stale, f)
			}
		}
		sort.Strings(stale)
	}
	var exists *redis.IntCmd
	if full || len(stale) > 0 || len(vals) > 0 || legacy {
		var pipe redis.Pipeliner
		if full && len(vals) > 0 {
			pipe = s.rdb.TxPipeline() // readers see the host's hash before or after, never in between
		} else {
			pipe = s.rdb.Pipeline()
		}
		if full {
			pipe.Del(ctx, key)
		}
		if len(stale) > 0 {
			pipe.HDel(ctx, key, stale...)
		}
		if len(vals) > 0 {
			pipe.HSet(ctx, key, vals...)
			pipe.SAdd(ctx, schema.KeyHosts, host) // so a reader finds the host whose containers exist
		}
		if legacy {
			exists = pipe.Exists(ctx, schema.KeyContainersLegacy)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			// What reached Redis is unknown: the next write replaces the hash whole.
			s.mu.Lock()
			s.written[host] = &hostTable{legacy: legacy}
			s.mu.Unlock()
			return fmt.Errorf("write containers: %w", err)
		}
	}
	next := &hostTable{fields: enc, full: now}
	if !full {
		next.full = prev.full
	}
	var err error
	if exists != nil && exists.Val() > 0 {
		if err = s.dropLegacy(ctx, host); err != nil {
			next.legacy = true
		}
	}
	s.mu.Lock()
	s.written[host] = next
	s.mu.Unlock()
	return err
}

// dropLegacy removes the host's fields from the legacy table (schema.KeyContainersLegacy).
func (s *Store) dropLegacy(ctx context.Context, host string) error {
	var fields []string
	iter := s.rdb.HScan(ctx, schema.KeyContainersLegacy, 0, schema.GlobEscape(host)+"/*", scanCount).Iterator()
	for i := 0; iter.Next(ctx); i++ {
		if i%2 == 0 { // field, value, field, value...
			fields = append(fields, iter.Val())
		}
	}
	if err := iter.Err(); err != nil {
		return fmt.Errorf("remove %s from the legacy container table: %w", host, err)
	}
	for len(fields) > 0 {
		n := min(len(fields), scanCount)
		if err := s.rdb.HDel(ctx, schema.KeyContainersLegacy, fields[:n]...).Err(); err != nil {
			return fmt.Errorf("remove %s from the legacy container table: %w", host, err)
		}
		fields = fields[n:]
	}
	return nil
}

// StatsEntry is one container's latest sample and history.
type StatsEntry struct {
	Target string // host/name
	Stats  schema.Stats
}

// WriteStats writes the latest samples in one round trip; each key expires after ttl.
func (s *Store) WriteStats(ctx context.Context, entries []StatsEntry, ttl time.Duration) error {
	if len(entries) == 0 {
		return nil
	}
	pipe := s.rdb.Pipeline()
	for _, e := range entries {
		f, err := e.Stats.Encode()
		if err != nil {
			return fmt.Errorf("write stats of %s: %w", e.Target, err)
		}
		key := schema.StatsKey(e.Target)
		pipe.HSet(ctx, key, f)
		pipe.PExpire(ctx, key, ttl)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("write stats: %w", err)
	}
	return nil
}

// WriteHost writes a host's monitor figures and lists the host among the known ones.
func (s *Store) WriteHost(ctx context.Context, h schema.HostStatus) error {
	pipe := s.rdb.Pipeline()
	pipe.HSet(ctx, schema.HostKey(h.Host), h.Encode())
	pipe.SAdd(ctx, schema.KeyHosts, h.Host)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("write host %s: %w", h.Host, err)
	}
	return nil
}

// All returns the container table by host/name: every host's hash of schema.KeyHosts, in one round trip
// after the set. A summary that does not decode is left out and reported in problems.
func (s *Store) All(ctx context.Context) (map[string]container.Summary, []error, error) {
	hosts, cmds, err := hostHashes(ctx, s.rdb, func(p redis.Pipeliner, key string) *redis.MapStringStringCmd {
		return p.HGetAll(ctx, key)
	})
	if err != nil {
		return nil, nil, err
	}
	out := map[string]container.Summary{}
	var problems []error
	for i, c := range cmds {
		for target, v := range c.Val() {
			sum, err := schema.DecodeContainer([]byte(v))
			if err != nil {
				problems = append(problems, fmt.Errorf("%s %s: %w", schema.ContainersKey(hosts[i]), target, err))
				continue
			}
			if sum.Host == "" || sum.Name == "" {
				sum.Host, sum.Name, _ = strings.Cut(target, "/")
			}
			out[target] = sum
		}
	}
	return out, problems, nil
}

// Targets returns the host/name of every known container, sorted, for completion.
func (s *Store) Targets(ctx context.Context) ([]string, error) {
	_, cmds, err := hostHashes(ctx, s.rdb, func(p redis.Pipeliner, key string) *redis.StringSliceCmd {
		return p.HKeys(ctx, key)
	})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, c := range cmds {
		out = append(out, c.Val()...)
	}
	sort.Strings(out)
	return out, nil
}

// hostHashes reads every host's hash of the container table with read, pipelined after the SMEMBERS of
// the hosts: the hosts, and read's command of each.
func hostHashes[C redis.Cmder](ctx context.Context, rdb *redis.Client,
	read func(redis.Pipeliner, string) C) ([]string, []C, error) {
	hosts, err := rdb.SMembers(ctx, schema.KeyHosts).Result()
	if err != nil {
		return nil, nil, fmt.Errorf("read containers: %w", err)
	}
	if len(hosts) == 0 {
		return nil, nil, nil
	}
	pipe := rdb.Pipeline()
	cmds := make([]C, len(hosts))
	for i, h := range hosts {
		cmds[i] = read(pipe, schema.ContainersKey(h))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, nil, fmt.Errorf("read containers: %w", err)
	}
	return hosts, cmds, nil
}

// Stats returns the latest samples of the given containers (host/name) that have one, in one round trip.
// A sample that does not decode is reported in problems (with what did decode kept).
func (s *Store) Stats(ctx context.Context, targets []string) (map[string]schema.Stats, []error, error) {
	out := make(map[string]schema.Stats, len(targets))
	if len(targets) == 0 {
		return out, nil, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(targets))
	for i, t := range targets {
		cmds[i] = pipe.HGetAll(ctx, schema.StatsKey(t))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, nil, fmt.Errorf("read stats: %w", err)
	}
	var problems []error
	for i, t := range targets {
		m := cmds[i].Val()
		if len(m) == 0 {
			continue
		}
		st, err := schema.DecodeStats(m)
		if err != nil {
			problems = append(problems, fmt.Errorf("stats %s: %w", t, err))
		}
		out[t] = st
	}
	return out, problems, nil
}

// Hosts returns the figures of every host whose monitor wrote them.
func (s *Store) Hosts(ctx context.Context) ([]schema.HostStatus, []error, error) {
	hosts, err := s.rdb.SMembers(ctx, schema.KeyHosts).Result()
	if err != nil {
		return nil, nil, fmt.Errorf("read hosts: %w", err)
	}
	if len(hosts) == 0 {
		return nil, nil, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(hosts))
	for i, h := range hosts {
		cmds[i] = pipe.HGetAll(ctx, schema.HostKey(h))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, nil, fmt.Errorf("read hosts: %w", err)
	}
	var out []schema.HostStatus
	var problems []error
	for i, h := range hosts {
		m := cmds[i].Val()
		if len(m) == 0 {
			continue
		}
		st, err := schema.DecodeHostStatus(m)
		if err != nil {
			problems = append(problems, fmt.Errorf("host %s: %w", h, err))
		}
		if st.Host == "" {
			st.Host = h
		}
		out = append(out, st)
	}
	return out, problems, nil
}

// Host returns one host's figures; found is false when its monitor never wrote them.
func (s *Store) Host(ctx context.Context, host string) (schema.HostStatus, bool, error) {
	m, err := s.rdb.HGetAll(ctx, schema.HostKey(host)).Result()
	if err != nil {
		return schema.HostStatus{}, false, fmt.Errorf("read host %s: %w", host, err)
	}
	h, err := schema.DecodeHostStatus(m)
	if err != nil {
		err = fmt.Errorf("host %s: %w", host, err)
	}
	return h, len(m) > 0, err
}

// Has reports whether a monitor watches the container (host/name): whether it is in its host's hash.
func (s *Store) Has(ctx context.Context, target string) (bool, error) {
	host, _, ok := strings.Cut(target, "/")
	if !ok {
		return false, nil
	}
	ok, err := s.rdb.HExists(ctx, schema.ContainersKey(host), target).Result()
	if err != nil {
		return false, fmt.Errorf("container %s: %w", target, err)
	}
	return ok, nil
}
