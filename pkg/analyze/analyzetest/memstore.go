// Package analyzetest holds an in-memory fake of the analyzer's collaborators: its stores (analyze.Stores)
// and its side of the bus (analyze.Bus), so the analyzer's logic tests run without Redis. It does not
// import pkg/analyze, so the analyzer's own tests can use it; they check that it implements the interfaces.
package analyzetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/bus"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/store/incidents"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

// Operations Fail can make fail, named after the methods.
const (
	OpBeginAnalysis   = "BeginAnalysis"
	OpClaimLLM        = "ClaimLLM"
	OpRecordLLM       = "RecordLLM"
	OpStats           = "Stats"
	OpLedger          = "Get"
	OpPublishManyWith = "PublishManyWith"
)

// MemStore is the analyzer's state and bus in memory, with the semantics of the Redis stores
// (pkg/store/incidents/analysis.go): BeginAnalysis records an OOM kill and counts the container's others
// within the window, ClaimLLM grants one call per opening of an incident (a stale claim is taken over),
// records merge into the incident's hash, and the decisions' records are written by the call that publishes
// their answers. That call here lands whole or not at all (Fail makes it publish and record nothing); the
// real bus's (bus.PublishManyWith) is one pipeline, not a transaction, so in Redis part of it may land
// and the rest not, which the analyzer covers by publishing again under the same ids on the redelivery.
// The fake does not model such a partial write. Incident hashes are kept as their fields, encoded and
// decoded by pkg/store/schema, as in Redis.
//
// Its ConsumeBatch hands the handler the reads that Deliver queues, so Run is tested without a stream.
type MemStore struct {
	mu        sync.Mutex
	incidents map[string]map[string]string // incident key -> hash fields
	ooms      map[string]map[string]int64  // host/name -> alert id -> unix ms
	stats     map[string]schema.Stats      // host/name
	ledgers   map[string]schema.Ledger     // schema.LedgerKey(host/name)
	published []Published
	trips     int // successful PublishManyWith calls
	fail      map[string]error
	opts      bus.Options
	groups    []bus.Group
	reads     chan read
}

// Published is one envelope published, as a consumer of its stream reads it.
type Published struct {
	Stream string
	Env    event.Envelope
}

type read struct {
	ms   []bus.Message
	errs chan []error
}

// NewMemStore returns an empty store whose bus has the default options (bus.DefaultOptions).
func NewMemStore() *MemStore {
	return &MemStore{incidents: map[string]map[string]string{}, ooms: map[string]map[string]int64{},
		stats: map[string]schema.Stats{}, ledgers: map[string]schema.Ledger{}, fail: map[string]error{},
		opts: bus.DefaultOptions(), reads: make(chan read)}
}

// Fail makes every later call of op (one of the Op constants) fail with err, as Redis trouble would; a nil
// err makes it succeed again.
func (m *MemStore) Fail(op string, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err == nil {
		delete(m.fail, op)
		return
	}
	m.fail[op] = err
}

// --- what tests read and seed ---

// Write sets fields of an incident's hash (HSET), as the monitor writes its section.
func (m *MemStore) Write(key string, fields map[string]string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.record(key, fields)
}

// Fields returns an incident's hash as stored, empty when it does not exist.
func (m *MemStore) Fields(key string) map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.incidents[key])
}

// Incident returns an incident decoded, and whether its hash exists.
func (m *MemStore) Incident(key string) (schema.Incident, bool) {
	f := m.Fields(key)
	in, _ := schema.DecodeIncident(key, f)
	return in, len(f) > 0
}

// SetStats stores a container's latest sample and history, as the monitor writes them.
func (m *MemStore) SetStats(target string, s schema.Stats) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stats[target] = s
}

// SetLedger stores a container's safety ledger, as the responder writes it.
func (m *MemStore) SetLedger(target string, l schema.Ledger) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ledgers[schema.LedgerKey(target)] = l
}

// Published returns the envelopes published on a stream, oldest first.
func (m *MemStore) Published(stream string) []event.Envelope {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []event.Envelope
	for _, p := range m.published {
		if p.Stream == stream {
			out = append(out, p.Env)
		}
	}
	return out
}

// All returns every envelope published, oldest first.
func (m *MemStore) All() []Published {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.published)
}

// RoundTrips returns how many PublishManyWith calls succeeded: the round trips a Redis bus would have made
// to publish.
func (m *MemStore) RoundTrips() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.trips
}

// Groups returns the consumer groups ConsumeBatch was called with.
func (m *MemStore) Groups() []bus.Group {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.groups)
}

func (m *MemStore) failure(op string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.fail[op]
}

// record merges fields into an incident's hash, creating it. m.mu is held.
func (m *MemStore) record(key string, fields map[string]string) {
	h := m.incidents[key]
	if h == nil {
		h = map[string]string{}
		m.incidents[key] = h
	}
	maps.Copy(h, fields)
}

// --- analyze.IncidentStore ---

// BeginAnalysis implements analyze.IncidentStore: it reads the incident and, for an OOM kill, records it
// and counts the container's other kills within the window before it (a redelivery counts the same).
func (m *MemStore) BeginAnalysis(_ context.Context, key string, oom *incidents.OOMKill) (schema.Incident, bool, int, error) {
	if err := m.failure(OpBeginAnalysis); err != nil {
		return schema.Incident{Key: key}, false, 0, fmt.Errorf("read incident %s: %w", key, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	f := m.incidents[key]
	in, _ := schema.DecodeIncident(key, f) // a field that does not parse reads as zero
	n := 0
	if oom != nil {
		w := oom.Window.Milliseconds()
		if w <= 0 {
			w = time.Hour.Milliseconds()
		}
		at := oom.At.UnixMilli()
		kills := m.ooms[oom.Target]
		if kills == nil {
			kills = map[string]int64{}
			m.ooms[oom.Target] = kills
		}
		kills[oom.AlertID] = at
		for id, ms := range kills {
			if ms < at-2*w {
				delete(kills, id)
			}
		}
		for _, ms := range kills {
			if ms >= at-w && ms <= at {
				n++
			}
		}
		n = max(n-1, 0)
	}
	return in, len(f) > 0, n, nil
}

// RecordLLM implements analyze.IncidentStore.
func (m *MemStore) RecordLLM(_ context.Context, key string, l schema.LLMResult, rootCause string, evidence []string) error {
	if err := m.failure(OpRecordLLM); err != nil {
		return fmt.Errorf("record analysis of %s: %w", key, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.record(key, l.Encode(rootCause, evidence))
	return nil
}

// ClaimLLM implements analyze.IncidentStore: a claim fails when a call finished for this opening of the
// incident, or one started less than stale ago.
func (m *MemStore) ClaimLLM(_ context.Context, key, openedAt string, now time.Time, stale time.Duration) (bool, error) {
	if err := m.failure(OpClaimLLM); err != nil {
		return false, fmt.Errorf("claim llm call for %s: %w", key, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	f := m.incidents[key]
	claimedFor, has := f[schema.FieldLLMOpenedAt]
	if (has && claimedFor == openedAt) || (!has && openedAt == "") {
		if f[schema.FieldLLMDoneAt] != "" {
			return false, nil
		}
		if s, ok := f[schema.FieldLLMStartedMS]; ok {
			if started, err := strconv.ParseInt(s, 10, 64); err == nil && started > now.UnixMilli()-stale.Milliseconds() {
				return false, nil
			}
		}
	}
	m.record(key, map[string]string{schema.FieldLLMStartedMS: strconv.FormatInt(now.UnixMilli(), 10), schema.FieldLLMOpenedAt: openedAt})
	delete(m.incidents[key], schema.FieldLLMDoneAt)
	return true, nil
}

// RecordDecisionsOp implements analyze.IncidentStore. The write it returns ignores the pipeline it is
// given and records into the store: it is meant for this store's PublishManyWith, which runs it with a nil
// pipeline once the answers are published.
func (m *MemStore) RecordDecisionsOp(ds []incidents.Decision) bus.SideWrite {
	ds = slices.Clone(ds)
	return func(context.Context, redis.Pipeliner) {
		m.mu.Lock()
		defer m.mu.Unlock()
		for _, d := range ds {
			m.record(d.Incident, d.Analysis.Encode())
		}
	}
}

// --- analyze.StatsStore and analyze.LedgerReader ---

// Stats implements analyze.StatsStore: the targets that have samples.
func (m *MemStore) Stats(_ context.Context, targets []string) (map[string]schema.Stats, []error, error) {
	if err := m.failure(OpStats); err != nil {
		return nil, nil, fmt.Errorf("read stats: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]schema.Stats, len(targets))
	for _, t := range targets {
		if s, ok := m.stats[t]; ok {
			out[t] = s
		}
	}
	return out, nil, nil
}

// Get implements analyze.LedgerReader; key is schema.LedgerKey of a target.
func (m *MemStore) Get(_ context.Context, key string) (schema.Ledger, bool, error) {
	if err := m.failure(OpLedger); err != nil {
		return schema.Ledger{}, false, fmt.Errorf("read ledger %s: %w", key, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	l, ok := m.ledgers[key]
	return l, ok, nil
}

// --- analyze.Bus ---

// PublishManyWith implements analyze.Publisher. Every envelope goes through its wire form, as a consumer
// would read it; the side writes run after the envelopes are stored, with a nil pipeline (only this
// store's RecordDecisionsOp writes are accepted). On a failure (Fail, or an envelope that does not
// encode) nothing is published or recorded. The real bus gives no such guarantee: its PublishManyWith
// sends one pipeline, not a transaction, so a failure there may leave some envelopes or records written.
func (m *MemStore) PublishManyWith(ctx context.Context, out []bus.Outgoing) error {
	if err := m.failure(OpPublishManyWith); err != nil {
		return fmt.Errorf("publish %d events: %w", len(out), err)
	}
	ps := make([]Published, 0, len(out))
	for _, o := range out {
		raw, err := o.Env.Marshal()
		if err != nil {
			return fmt.Errorf("publish %s: %w", o.Stream, err)
		}
		env, err := event.Decode(raw)
		if err != nil {
			return fmt.Errorf("publish %s: %w", o.Stream, err)
		}
		ps = append(ps, Published{Stream: o.Stream, Env: env})
	}
	m.mu.Lock()
	m.published = append(m.published, ps...)
	m.trips++
	m.mu.Unlock()
	for _, o := range out {
		for _, s := range o.Side {
			s(ctx, nil)
		}
	}
	return nil
}

// Options implements analyze.Consumer.
func (m *MemStore) Options() bus.Options {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.opts
}

// ErrNoConsumer is returned by Deliver when no ConsumeBatch takes the read before its context ends.
var ErrNoConsumer = errors.New("no consumer took the read")

// ConsumeBatch implements analyze.Consumer: it hands h each read Deliver queues, one at a time, until ctx
// is cancelled, and then returns nil, as the bus does. Like the bus, it refuses a group without a name,
// a consumer or streams.
func (m *MemStore) ConsumeBatch(ctx context.Context, g bus.Group, h bus.BatchHandler) error {
	if g.Name == "" || g.Consumer == "" || len(g.Streams) == 0 {
		return fmt.Errorf("consume: group, consumer and streams are required")
	}
	m.mu.Lock()
	m.groups = append(m.groups, g)
	m.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			return nil
		case r := <-m.reads:
			r.errs <- h(ctx, r.ms)
		}
	}
}

// Deliver hands one read to the ConsumeBatch running and returns its handler's result for each message
// (nil: acked; an error: left for redelivery, or dead-lettered if it is a bus.RejectError). It waits for
// the handler; it fails with ErrNoConsumer if no ConsumeBatch takes the read before ctx ends.
func (m *MemStore) Deliver(ctx context.Context, ms ...bus.Message) ([]error, error) {
	r := read{ms: ms, errs: make(chan []error, 1)}
	select {
	case m.reads <- r:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrNoConsumer, ctx.Err())
	}
	return <-r.errs, nil
}
