package alert

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/hemostat/hemostat/pkg/agent"
	"github.com/hemostat/hemostat/pkg/redact"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

// Sink is one named destination (slack, slack-bot, webhook).
type Sink struct {
	Name     string
	Notifier Notifier
}

// DeliveryOptions tune delivery. Zero values take the defaults.
type DeliveryOptions struct {
	Workers       int           // workers per sink, default 4; one incident always goes to the same worker, in order
	QueueSize     int           // buffered notifications per worker, default 256
	MaxAttempts   int           // tries per notification and sink, default 5
	MinBackoff    time.Duration // first wait between tries, default 1s, doubling
	MaxBackoff    time.Duration // longest computed wait, default 30s
	MaxRetryAfter time.Duration // longest Retry-After honoured, default 5m (a longer one is cut to this)
	SendTimeout   time.Duration // one try, default 10s
	DrainTimeout  time.Duration // how long queued notifications may still be sent after the stop, default 10s
}

func (o *DeliveryOptions) defaults() {
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 256
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.MaxRetryAfter <= 0 {
		o.MaxRetryAfter = 5 * time.Minute
	}
	if o.SendTimeout <= 0 {
		o.SendTimeout = 10 * time.Second
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 10 * time.Second
	}
}

// dispatcher delivers notifications through one bounded queue per sink worker. The consumer only
// enqueues, so a slow or failing sink delays nothing but its own queue, and within it only the incidents
// that hash to the same worker.
type dispatcher struct {
	o      DeliveryOptions
	sinks  []*sinkQueues
	log    *slog.Logger
	red    *redact.Redactor
	st     Store
	report func(sink string, n Notification, err error)

	mu       sync.RWMutex
	closed   bool
	stopping chan struct{} // closed at stop: retries stop waiting, queued notifications get one try
	wg       sync.WaitGroup
}

type sinkQueues struct {
	Sink
	queues []chan Notification
}

func newDispatcher(o DeliveryOptions, sinks []Sink, st Store, red *redact.Redactor, log *slog.Logger,
	report func(string, Notification, error)) *dispatcher {
	o.defaults()
	d := &dispatcher{o: o, log: log, red: red, st: st, report: report, stopping: make(chan struct{})}
	for _, s := range sinks {
		sq := &sinkQueues{Sink: s, queues: make([]chan Notification, o.Workers)}
		for i := range sq.queues {
			sq.queues[i] = make(chan Notification, o.QueueSize)
		}
		d.sinks = append(d.sinks, sq)
	}
	return d
}

// start runs the workers until the queues are closed and drained; ctx bounds the sends in flight.
func (d *dispatcher) start(ctx context.Context) {
	for _, s := range d.sinks {
		for _, q := range s.queues {
			d.wg.Add(1)
			// Exits when its queue is closed and empty (stop).
			go func() {
				defer d.wg.Done()
				for n := range q {
					d.deliver(ctx, s.Sink, n)
				}
			}()
		}
	}
}

// stop closes the queues and waits for the workers; cancel (called after the drain timeout) cuts the
// sends still running, whose notifications are then recorded as failed.
func (d *dispatcher) stop(cancel context.CancelFunc) {
	d.mu.Lock()
	if !d.closed {
		d.closed = true
		close(d.stopping)
		for _, s := range d.sinks {
			for _, q := range s.queues {
				close(q)
			}
		}
	}
	d.mu.Unlock()
	t := time.AfterFunc(d.o.DrainTimeout, cancel)
	d.wg.Wait()
	t.Stop()
}

func shard(incident string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(incident))
	return int(h.Sum32() % uint32(n))
}

// enqueue hands n to every sink without blocking. A full queue is a failed delivery (counted, stored):
// blocking would stall the consumer and every other sink behind one broken one.
func (d *dispatcher) enqueue(ctx context.Context, n Notification) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	for _, s := range d.sinks {
		if d.closed {
			d.fail(ctx, s.Name, n, 0, errors.New("alert agent stopping"))
			continue
		}
		select {
		case s.queues[shard(n.Incident, len(s.queues))] <- n:
		default:
			d.fail(ctx, s.Name, n, 0, errors.New("delivery queue full"))
		}
	}
}

// deliver tries one notification on one sink with capped exponential backoff, honouring Retry-After.
func (d *dispatcher) deliver(ctx context.Context, s Sink, n Notification) {
	b := agent.Backoff{Min: d.o.MinBackoff, Max: d.o.MaxBackoff}
	for attempt := 1; ; attempt++ {
		if ctx.Err() != nil {
			d.fail(ctx, s.Name, n, attempt-1, errors.New("alert agent stopped before delivery"))
			return
		}
		sctx, cancel := context.WithTimeout(ctx, d.o.SendTimeout)
		retry, err := s.Notifier.Notify(sctx, n)
		cancel()
		if err == nil {
			d.count(ctx, schema.NotifyCounter{Counter: schema.CounterSent, Label: s.Name})
			d.log.Info("notification sent", "sink", s.Name, "incident", n.Incident, "state", string(n.State), "attempts", attempt)
			if d.report != nil {
				d.report(s.Name, n, nil)
			}
			return
		}
		err = d.red.Error(err)
		if !retry || attempt >= d.o.MaxAttempts || d.isStopping() {
			d.fail(ctx, s.Name, n, attempt, err)
			return
		}
		wait := b.Next()
		if ra, ok := RetryAfter(err); ok {
			wait = min(max(ra, d.o.MinBackoff/10), d.o.MaxRetryAfter)
		}
		d.count(ctx, schema.NotifyCounter{Counter: schema.CounterRetried, Label: s.Name})
		d.log.Warn("notification failed; retrying", "sink", s.Name, "incident", n.Incident, "state", string(n.State),
			"attempt", attempt, "wait", wait, "err", err)
		if !d.sleep(ctx, wait) {
			d.fail(ctx, s.Name, n, attempt, fmt.Errorf("alert agent stopped during retry: %w", err))
			return
		}
	}
}

// fail counts and stores a delivery that failed for good, and releases the dedup claim so the next
// occurrence of the state is sent again (a duplicate is better than a miss).
func (d *dispatcher) fail(ctx context.Context, sink string, n Notification, attempts int, err error) {
	err = d.red.Error(err)
	d.log.Error("notification failed", "sink", sink, "incident", n.Incident, "state", string(n.State),
		"attempts", attempts, "err", err)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if e := d.st.RecordFailure(rctx, schema.NotifyFailure{Time: time.Now().UTC(), Sink: sink, Incident: n.Incident,
		State: string(n.State), EventID: n.EventID, Attempts: attempts, Error: err.Error()}); e != nil {
		d.log.Warn("record failed notification", "err", e)
	}
	if n.Incident != "" {
		if e := d.st.Release(rctx, n.Incident, string(n.State)); e != nil {
			d.log.Warn("release notification claim", "err", e)
		}
	}
	d.count(rctx, schema.NotifyCounter{Counter: schema.CounterFailed, Label: sink}) // last: once counted, the failure is recorded and the claim released
	if d.report != nil {
		d.report(sink, n, err)
	}
}

func (d *dispatcher) isStopping() bool {
	select {
	case <-d.stopping:
		return true
	default:
		return false
	}
}

// sleep waits for the retry delay; it reports false when the agent stops meanwhile.
func (d *dispatcher) sleep(ctx context.Context, wait time.Duration) bool {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-d.stopping:
	}
	return false
}

func (d *dispatcher) count(ctx context.Context, c schema.NotifyCounter) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := d.st.Count(rctx, c, 1); err != nil {
		d.log.Debug("count notification", "counter", c.Field(), "err", err)
	}
}
