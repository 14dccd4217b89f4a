package dash

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hemostat/hemostat/pkg/agent"
	"github.com/hemostat/hemostat/pkg/audit"
	"github.com/hemostat/hemostat/pkg/bus"
	"github.com/hemostat/hemostat/pkg/container"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/store/auditlog"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

// ContainerReader reads the container table and the latest samples; *containers.Store implements it.
type ContainerReader interface {
	All(ctx context.Context) (map[string]container.Summary, []error, error)
	Stats(ctx context.Context, targets []string) (map[string]schema.Stats, []error, error)
}

// LedgerReader reads safety ledgers by key; *ledger.Store implements it.
type LedgerReader interface {
	GetMany(ctx context.Context, keys []string) (map[string]schema.Ledger, []error, error)
}

// IncidentReader reads the open incidents; *incidents.Store implements it.
type IncidentReader interface {
	ListOpen(ctx context.Context, limit int64) ([]schema.Incident, []error, error)
}

// AgentLister lists the live agents; *agents.Store implements it.
type AgentLister interface {
	List(ctx context.Context) ([]schema.Agent, []error, error)
}

// AuditReader reads the audit trail's stream and index; *auditlog.Store implements it.
type AuditReader interface {
	Range(ctx context.Context, start, end string, count int64) ([]auditlog.Record, error)
	RevRange(ctx context.Context, end, start string, count int64) ([]auditlog.Record, error)
	IndexRevRange(ctx context.Context, target, end, start string, count int64) ([]auditlog.Record, error)
}

// EventLister reads the capped list of recent events; *notify.Store implements it.
type EventLister interface {
	Events(ctx context.Context, n int64) ([]schema.StoredEvent, error)
}

// StreamReader reads the work streams; *bus.Bus implements it.
type StreamReader interface {
	Range(ctx context.Context, stream, start, end string, count int64) ([]bus.Entry, error)
	RevRange(ctx context.Context, stream, end, start string, count int64) ([]bus.Entry, error)
	Follower() *bus.Bus
	// WorkStreams names every work stream, the hosts' request streams included; RequestStreams only the
	// latter (one SMEMBERS each).
	WorkStreams(ctx context.Context) ([]string, error)
	RequestStreams(ctx context.Context) ([]string, error)
}

// Sources are what the Redis source reads.
type Sources struct {
	Containers ContainerReader
	Ledgers    LedgerReader
	Incidents  IncidentReader
	Agents     AgentLister
	Audit      AuditReader
	Events     EventLister
	Streams    StreamReader
}

// Sizes of what the Redis source keeps and reads.
const (
	// AuditKeep is how many of the newest audit entries the dashboard holds for history and KPIs.
	AuditKeep = 2000
	// EventBackfill is how many recent entries of each stream are shown when the dashboard starts.
	EventBackfill = 200
	// MaxIncidents caps how many open incidents one refresh reads.
	MaxIncidents = 500
	readChunk    = 1000
)

// RedisSource reads the dashboard's data from Redis. Audit entries and false alarms are read incrementally:
// after the first refresh, each refresh fetches only what was appended since.
type RedisSource struct {
	c        Sources
	block    time.Duration // XREAD BLOCK of the follow
	retryMax time.Duration // longest wait between follow retries while Redis is away

	mu          sync.Mutex
	audit       []audit.Entry // newest first
	auditLast   string
	falseAlarms []time.Time // oldest first, last 24 hours
	faLast      string
	problems    []string
}

// NewRedisSource returns a source over the stores and the bus.
func NewRedisSource(c Sources) *RedisSource {
	return &RedisSource{c: c, block: 2 * time.Second, retryMax: 2 * time.Second}
}

// Snapshot implements Source.
func (s *RedisSource) Snapshot(ctx context.Context) (Snapshot, error) {
	now := time.Now()
	snap, err := s.readState(ctx, now)
	if err != nil {
		return Snapshot{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.readAudit(ctx); err != nil {
		return Snapshot{}, err
	}
	if err := s.readFalseAlarms(ctx, now); err != nil {
		return Snapshot{}, err
	}
	snap.Audit = s.audit
	snap.FalseAlarms = len(s.falseAlarms)
	snap.Problems = append(snap.Problems, s.problems...)
	return snap, nil
}

// ContainerAudit implements Source through the container's audit index.
func (s *RedisSource) ContainerAudit(ctx context.Context, host, name string, n int) ([]audit.Entry, error) {
	raw, err := s.c.Audit.IndexRevRange(ctx, event.Target(host, name), "+", "-", int64(n))
	if err != nil {
		return nil, err
	}
	out := make([]audit.Entry, 0, len(raw))
	for _, r := range raw {
		if len(r.JSON) == 0 {
			continue // the entry was trimmed from the trail
		}
		var e audit.Entry
		if err := json.Unmarshal(r.JSON, &e); err != nil {
			continue // reported by Snapshot's read of the trail
		}
		if e.Time.IsZero() {
			e.Time = bus.IDTime(r.ID)
		}
		out = append(out, e)
	}
	return out, nil
}

// newer reports whether stream id a sorts after b.
func newer(a, b string) bool {
	ams, aseq := splitID(a)
	bms, bseq := splitID(b)
	if ams != bms {
		return ams > bms
	}
	return aseq > bseq
}

func splitID(id string) (int64, int64) {
	l, r, _ := strings.Cut(id, "-")
	ms, _ := strconv.ParseInt(l, 10, 64)
	seq, _ := strconv.ParseInt(r, 10, 64)
	return ms, seq
}

// readAudit appends the audit entries written since the last read. It starts over when the stream's
// newest id went backwards (the stream was deleted and rebuilt).
func (s *RedisSource) readAudit(ctx context.Context) error {
	if s.auditLast != "" {
		tail, err := s.c.Audit.RevRange(ctx, "+", "-", 1)
		if err != nil {
			return err
		}
		if len(tail) == 0 || newer(s.auditLast, tail[0].ID) {
			s.audit, s.auditLast, s.problems = nil, "", nil
		}
	}
	var fresh []auditlog.Record
	if s.auditLast == "" {
		tail, err := s.c.Audit.RevRange(ctx, "+", "-", AuditKeep)
		if err != nil {
			return err
		}
		slices.Reverse(tail)
		fresh = tail
	} else {
		for {
			chunk, err := s.c.Audit.Range(ctx, "("+s.auditLast, "+", readChunk)
			if err != nil {
				return err
			}
			fresh = append(fresh, chunk...)
			if len(chunk) < readChunk {
				break
			}
			s.auditLast = chunk[len(chunk)-1].ID
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	s.auditLast = fresh[len(fresh)-1].ID
	add := make([]audit.Entry, 0, len(fresh))
	for i := len(fresh) - 1; i >= 0; i-- { // newest first
		var e audit.Entry
		if err := json.Unmarshal(fresh[i].JSON, &e); err != nil {
			s.problems = append(s.problems, fmt.Sprintf("%s %s: %v", schema.KeyAudit, fresh[i].ID, err))
			continue
		}
		if e.Time.IsZero() {
			e.Time = bus.IDTime(fresh[i].ID)
		}
		add = append(add, e)
	}
	s.audit = append(add, s.audit...)
	if len(s.audit) > AuditKeep {
		s.audit = s.audit[:AuditKeep:AuditKeep]
	}
	if len(s.problems) > 20 {
		s.problems = s.problems[len(s.problems)-20:]
	}
	return nil
}

// readFalseAlarms keeps the times of the false alarms of the last 24 hours.
func (s *RedisSource) readFalseAlarms(ctx context.Context, now time.Time) error {
	since := now.Add(-24 * time.Hour)
	var fresh []bus.Entry
	if s.faLast == "" {
		tail, err := s.c.Streams.RevRange(ctx, event.StreamFalseAlarm, "+", strconv.FormatInt(since.UnixMilli(), 10), 10*readChunk)
		if err != nil {
			return err
		}
		slices.Reverse(tail)
		fresh = tail
	} else {
		chunk, err := s.c.Streams.Range(ctx, event.StreamFalseAlarm, "("+s.faLast, "+", 10*readChunk)
		if err != nil {
			return err
		}
		fresh = chunk
	}
	for _, e := range fresh {
		s.falseAlarms = append(s.falseAlarms, e.Time())
		s.faLast = e.ID
	}
	i := 0
	for i < len(s.falseAlarms) && s.falseAlarms[i].Before(since) {
		i++
	}
	s.falseAlarms = s.falseAlarms[i:]
	return nil
}

// Follow implements Source: it backfills the newest entries of every work stream (or, when the streams are
// empty, of hemostat:events:all) and then follows the streams with a blocking XREAD, so nothing is polled
// and nothing appended between the backfill and the follow is lost.
func (s *RedisSource) Follow(ctx context.Context, out chan<- EventBatch) error {
	send := func(b EventBatch) bool {
		select {
		case out <- b:
			return true
		case <-ctx.Done():
			return false
		}
	}
	// A client of its own for the blocking XREAD, closed as soon as ctx is done so that quitting does not
	// wait for the block to time out.
	fc := s.c.Streams.Follower()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // exits when ctx is done or Follow returns
		defer wg.Done()
		select {
		case <-ctx.Done():
		case <-stop:
		}
		fc.Close()
	}()
	defer func() { close(stop); wg.Wait() }()

	bo := agent.Backoff{Min: min(250*time.Millisecond, s.retryMax), Max: s.retryMax}
	var last map[string]string
	var discovered time.Time
	for ctx.Err() == nil {
		if last != nil && time.Since(discovered) >= streamDiscovery {
			// A host that appeared since: its request stream is followed from its start.
			if streams, err := s.c.Streams.RequestStreams(ctx); err == nil {
				for _, st := range streams {
					if _, ok := last[st]; !ok {
						last[st] = "0-0"
					}
				}
				discovered = time.Now()
			}
		}
		if last == nil {
			evs, ids, err := s.backfill(ctx)
			if err != nil {
				if ctx.Err() != nil || !send(EventBatch{Err: err}) || !agent.Sleep(ctx, bo.Next()) {
					return nil
				}
				continue
			}
			bo.Reset()
			last, discovered = ids, time.Now()
			if !send(EventBatch{Events: evs, Backfill: true}) {
				return nil
			}
		}
		entries, err := fc.Follow(ctx, last, s.block)
		if err != nil {
			if ctx.Err() != nil || !send(EventBatch{Err: err}) || !agent.Sleep(ctx, bo.Next()) {
				return nil
			}
			continue
		}
		bo.Reset()
		if len(entries) == 0 {
			continue
		}
		evs := make([]Event, 0, len(entries))
		for _, e := range entries {
			evs = append(evs, decodeEvent(e))
			last[e.Stream] = e.ID
		}
		slices.SortStableFunc(evs, func(a, b Event) int { return a.Time.Compare(b.Time) })
		if !send(EventBatch{Events: evs}) {
			return nil
		}
	}
	return nil
}

// streamDiscovery is how often the follow looks for new hosts' request streams.
const streamDiscovery = 2 * time.Second

func (s *RedisSource) backfill(ctx context.Context) ([]Event, map[string]string, error) {
	work, err := s.c.Streams.WorkStreams(ctx)
	if err != nil {
		return nil, nil, err
	}
	streams := append(work, event.StreamDeadLetter)
	ids := make(map[string]string, len(streams))
	var evs []Event
	for _, stream := range streams {
		tail, err := s.c.Streams.RevRange(ctx, stream, "+", "-", EventBackfill)
		if err != nil {
			return nil, nil, err
		}
		slices.Reverse(tail)
		ids[stream] = "0-0"
		for _, e := range tail {
			evs = append(evs, decodeEvent(e))
			ids[stream] = e.ID
		}
	}
	if len(evs) == 0 {
		items, err := s.c.Events.Events(ctx, EventBackfill)
		if err != nil {
			return nil, nil, err
		}
		for i := len(items) - 1; i >= 0; i-- { // the list is newest first
			if ev, ok := decodeListItem(items[i]); ok {
				evs = append(evs, ev)
			}
		}
	}
	slices.SortStableFunc(evs, func(a, b Event) int { return a.Time.Compare(b.Time) })
	return evs, ids, nil
}
