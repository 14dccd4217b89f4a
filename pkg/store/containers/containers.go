// Package containers owns what the monitors write about containers and hosts: the container table
// (schema.KeyContainers, one summary per host/name), each container's latest sample (schema.Stats), and
// each host's monitor figures (schema.HostStatus).
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
// It remembers what it last wrote of each host's part of the table, so that a monitor's write of a table
// that did not change sends nothing, and one that did sends only the summaries that changed and deletes
// only the ones gone (issue 17: the table is shared by every host, and reading all its field names at
// every write made each host's cost grow with the size of the fleet). What it remembers is forgotten after
// a failed write, and written again whole every refreshEvery, so a table lost by Redis (a restart without
// persistence, a failover) is whole again within that period. After a failed write the next one is whole.
type Store struct {
	rdb *redis.Client
	now func() time.Time // the clock of the refresh; tests set it

	mu      sync.Mutex
	written map[string]*hostTable // host -> its part of the table as last written by this store
}

// hostTable is one host's part of the container table as this store last wrote it.
type hostTable struct {
	fields map[string]string // host/name -> encoded summary
	full   time.Time         // when it was last written whole
}

// refreshEvery is how often a host's part of the table is written whole even when nothing changed.
const refreshEvery = time.Minute

// scanCount is the HSCAN page size of the first write of a host's part of the table.
const scanCount = 1000

// New returns the store over a connection.
func New(c *conn.Conn) *Store {
	return &Store{rdb: c.Client(), now: time.Now, written: map[string]*hostTable{}}
}

// WriteContainers replaces one host's part of the container table: the summaries given are set, the
// host's other containers are deleted, in one round trip. The first write of a host by this store finds
// the host's fields in the table with HSCAN; later ones send only what changed since the previous write,
// nothing at all when nothing did, and everything again every refreshEvery and after a failed write.
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
	var present []string // the host's fields in the table now, as far as this store knows
	if prev == nil {
		var err error
		if present, err = s.hostFields(ctx, host); err != nil {
			return err
		}
	} else {
		for f := range prev.fields {
			present = append(present, f)
		}
	}
	var stale []string
	for _, f := range present {
		if _, keep := enc[f]; !keep {
			stale = append(stale, f)
		}
	}
	vals := make([]any, 0, 2*len(order))
	for _, t := range order {
		if full || prev.fields[t] != enc[t] {
			vals = append(vals, t, enc[t])
		}
	}
	if len(stale) > 0 || len(vals) > 0 {
		pipe := s.rdb.Pipeline()
		if len(stale) > 0 {
			pipe.HDel(ctx, schema.KeyContainers, stale...)
		}
		if len(vals) > 0 {
			pipe.HSet(ctx, schema.KeyContainers, vals...)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			// What reached Redis is unknown: remember every field that may be there now, with no value
			// (so none counts as written), and write the host's part whole next time. Scanning the table
			// again instead would add work to a Redis that may be failing from too much of it.
			maybe := &hostTable{fields: make(map[string]string, len(present)+len(enc))}
			for _, f := range present {
				maybe.fields[f] = ""
			}
			for t := range enc {
				maybe.fields[t] = ""
			}
			s.mu.Lock()
			s.written[host] = maybe
			s.mu.Unlock()
			return fmt.Errorf("write containers: %w", err)
		}
	}
	next := &hostTable{fields: enc, full: now}
	if !full {
		next.full = prev.full
	}
	s.mu.Lock()
	s.written[host] = next
	s.mu.Unlock()
	return nil
}

// hostFields returns the host's fields of the container table, a page at a time.
func (s *Store) hostFields(ctx context.Context, host string) ([]string, error) {
	var out []string
	iter := s.rdb.HScan(ctx, schema.KeyContainers, 0, schema.GlobEscape(host)+"/*", scanCount).Iterator()
	for i := 0; iter.Next(ctx); i++ {
		if i%2 == 0 { // field, value, field, value...
			out = append(out, iter.Val())
		}
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("write containers: %w", err)
	}
	return out, nil
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

// All returns the container table by host/name. A summary that does not decode is left out and reported
// in problems.
func (s *Store) All(ctx context.Context) (map[string]container.Summary, []error, error) {
	raw, err := s.rdb.HGetAll(ctx, schema.KeyContainers).Result()
	if err != nil {
		return nil, nil, fmt.Errorf("read containers: %w", err)
	}
	out := make(map[string]container.Summary, len(raw))
	var problems []error
	for target, v := range raw {
		sum, err := schema.DecodeContainer([]byte(v))
		if err != nil {
			problems = append(problems, fmt.Errorf("%s %s: %w", schema.KeyContainers, target, err))
			continue
		}
		if sum.Host == "" || sum.Name == "" {
			sum.Host, sum.Name, _ = strings.Cut(target, "/")
		}
		out[target] = sum
	}
	return out, problems, nil
}

// Targets returns the host/name of every known container, sorted, for completion.
func (s *Store) Targets(ctx context.Context) ([]string, error) {
	f, err := s.rdb.HKeys(ctx, schema.KeyContainers).Result()
	if err != nil {
		return nil, fmt.Errorf("read containers: %w", err)
	}
	sort.Strings(f)
	return f, nil
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

// Has reports whether a monitor watches the container (host/name).
func (s *Store) Has(ctx context.Context, target string) (bool, error) {
	ok, err := s.rdb.HExists(ctx, schema.KeyContainers, target).Result()
	if err != nil {
		return false, fmt.Errorf("container %s: %w", target, err)
	}
	return ok, nil
}
