package monitor

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/hemostat/hemostat/pkg/agent"
	"github.com/hemostat/hemostat/pkg/container"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/store/containers"
	"github.com/hemostat/hemostat/pkg/store/incidents"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

// IncidentStore is the incident state the monitor keeps; *incidents.Store implements it.
type IncidentStore interface {
	Open(ctx context.Context, key string, d schema.Detection) error
	Realert(ctx context.Context, key, alertID string, at time.Time) error
	SetCondition(ctx context.Context, key string, c incidents.Change) error
	Close(ctx context.Context, key string, at time.Time, reason string) error
	OpenIncidents(ctx context.Context, host string) ([]schema.Incident, error)
	Get(ctx context.Context, key string) (schema.Incident, bool, error)
}

// StateStore is the container state the monitor writes for the views; *containers.Store implements it.
type StateStore interface {
	WriteContainers(ctx context.Context, host string, sums []container.Summary) error
	WriteStats(ctx context.Context, entries []containers.StatsEntry, ttl time.Duration) error
	WriteHost(ctx context.Context, h schema.HostStatus) error
}

// LedgerReader reads a container's safety ledger, to tell hemostat's own stops and kills from a client's;
// *ledger.Store implements it.
type LedgerReader interface {
	Get(ctx context.Context, key string) (schema.Ledger, bool, error)
}

// Stores are the bodies of state the monitor uses.
type Stores struct {
	Incidents IncidentStore
	State     StateStore
	Ledger    LedgerReader // nil: every stop waits ownCheckWait and is taken for a client's
}

// Publisher puts envelopes on the bus; *bus.Bus implements it.
type Publisher interface {
	Publish(ctx context.Context, stream string, env event.Envelope) (string, error)
}

// queue is the bounded buffer of notices waiting for Redis: when full, the oldest is dropped and counted.
type queue struct {
	mu      sync.Mutex
	items   []queued
	next    uint64
	max     int
	dropped int64
	signal  chan struct{}
}

type queued struct {
	seq uint64
	n   Notice
}

func newQueue(max int) *queue {
	if max <= 0 {
		max = 1000
	}
	return &queue{max: max, signal: make(chan struct{}, 1)}
}

func (q *queue) push(n Notice) {
	q.mu.Lock()
	if len(q.items) >= q.max {
		q.items = q.items[1:]
		q.dropped++
	}
	q.next++
	q.items = append(q.items, queued{seq: q.next, n: n})
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

func (q *queue) peek() (queued, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return queued{}, false
	}
	return q.items[0], true
}

// done removes the item seq if it is still at the head (it may have been dropped meanwhile).
func (q *queue) done(seq uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) > 0 && q.items[0].seq == seq {
		q.items = q.items[1:]
	}
}

func (q *queue) stats() (buffered int, dropped int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items), q.dropped
}

// Timeouts and backoff of the writes to Redis.
const (
	deliverTimeout  = 3 * time.Second // one notice: incident hash and envelope
	flushTimeout    = 2 * time.Second // what is left at shutdown, in all
	writeTimeout    = 5 * time.Second // one snapshot
	publishRetryMin = 100 * time.Millisecond
	publishRetryMax = 5 * time.Second
)

// publisher delivers notices in order: the incident hash first, then the envelope on the bus. While Redis
// is away it retries with backoff, logging the state change once, and the queue holds what waits.
type publisher struct {
	st        IncidentStore
	pub       Publisher
	q         *queue
	log       *slog.Logger
	published func() // counts a delivered notice
}

func (p *publisher) run(ctx context.Context) {
	state := agent.NewState(p.log, "redis")
	bo := agent.Backoff{Min: publishRetryMin, Max: publishRetryMax}
	for {
		it, ok := p.q.peek()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-p.q.signal:
				continue
			}
		}
		err := p.deliver(ctx, it.n)
		if ctx.Err() != nil {
			p.flush()
			return
		}
		state.Set(err)
		if err != nil {
			if !agent.Sleep(ctx, bo.Next()) {
				p.flush()
				return
			}
			continue
		}
		bo.Reset()
		p.q.done(it.seq)
		if p.published != nil {
			p.published()
		}
	}
}

// flush tries, briefly, to deliver what is left at shutdown.
func (p *publisher) flush() {
	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	for {
		it, ok := p.q.peek()
		if !ok || p.deliver(ctx, it.n) != nil {
			return
		}
		p.q.done(it.seq)
	}
}

func (p *publisher) deliver(ctx context.Context, n Notice) error {
	ctx, cancel := context.WithTimeout(ctx, deliverTimeout)
	defer cancel()
	switch n.Kind {
	case NoticeOpened, NoticeRealerted:
		if n.Envelope == nil {
			return nil
		}
		var err error
		if n.Kind == NoticeOpened {
			err = p.st.Open(ctx, n.Incident, schema.Detection{Class: n.Class, Host: n.Host, Container: n.Container,
				ContainerID: n.ContainerID, Severity: n.Severity, AlertID: n.Envelope.ID, OpenedAt: n.OpenedAt, LastAlertAt: n.Time})
		} else {
			err = p.st.Realert(ctx, n.Incident, n.Envelope.ID, n.Time)
		}
		if err != nil {
			return err
		}
		_, err = p.pub.Publish(ctx, event.StreamHealthAlert, *n.Envelope)
		return err
	case NoticeCondition:
		since := n.EventTime
		if since.IsZero() {
			since = n.Time
		}
		return p.st.SetCondition(ctx, n.Incident, incidents.Change{Condition: n.Condition, Since: since, Relapse: n.Relapse,
			Relapses: n.Relapses, RelapseAfter: n.RelapseAfter})
	case NoticeCleared, NoticeClosed:
		env := n.Envelope
		if env != nil {
			// The recovery says how many actions it took: the responder counted them on the incident.
			in, found, err := p.st.Get(ctx, n.Incident)
			if err != nil && !found {
				return err
			}
			if found && in.Attempts > 0 {
				if rec, err := event.DecodeData[event.ContainerRecovered](*env); err == nil {
					rec.Attempts = in.Attempts
					if e, err := env.WithPayload(rec); err == nil {
						env = &e
					}
				}
			}
		}
		if err := p.st.Close(ctx, n.Incident, n.Time, n.Reason); err != nil {
			return err
		}
		if env == nil {
			return nil
		}
		_, err := p.pub.Publish(ctx, event.StreamContainerRecovered, *env)
		return err
	}
	return nil
}

// snapshot is the state the views read, written after each round (latest wins).
type snapshot struct {
	ttl        time.Duration // of the stats keys
	containers []container.Summary
	stats      []containers.StatsEntry
	host       schema.HostStatus
}

// writer writes snapshots; a snapshot that cannot be written (Redis away) is dropped for the next one.
type writer struct {
	st   StateStore
	host string
	in   chan snapshot
	log  *slog.Logger
}

// post hands a snapshot to the writer, replacing one it has not taken yet.
func (w *writer) post(s snapshot) {
	for {
		select {
		case w.in <- s:
			return
		default:
		}
		select {
		case <-w.in:
		default:
		}
	}
}

func (w *writer) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case s := <-w.in:
			c, cancel := context.WithTimeout(ctx, writeTimeout)
			err := w.st.WriteContainers(c, w.host, s.containers)
			if err == nil {
				err = w.st.WriteStats(c, s.stats, s.ttl)
			}
			if err == nil {
				err = w.st.WriteHost(c, s.host)
			}
			cancel()
			if err != nil && ctx.Err() == nil {
				w.log.Debug("state not written", "err", err)
			}
		}
	}
}
