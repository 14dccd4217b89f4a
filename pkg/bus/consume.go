package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/conn"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/sign"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

// Group names a consumer group, the consumer (instance) within it, and the streams it reads.
type Group struct {
	Name     string
	Consumer string
	Streams  []string
	StartID  string // where a new group starts: "0" (default, nothing already written is missed) or "$"
	// Gate, shared by the consumers of one instance, lets one of them at a time wait on XREADGROUP for the
	// group (the others wait for the gate, not on Redis, and take it as soon as the reader has entries to
	// handle) and one of them reclaim stale entries per reclaim period: an idle instance then costs Redis
	// one blocking read per Block whatever its number of consumers. nil: each consumer reads and reclaims
	// on its own.
	Gate *Gate
	// Discover, when set, is asked every DiscoverEvery (default 10s) for the streams to read: those not
	// read yet are added, with their group, and none is dropped; reads name them in Discover's order. The
	// hosts' request streams, for readers of every host's requests. Its errors are logged and the streams
	// kept.
	Discover      func(ctx context.Context) ([]string, error)
	DiscoverEvery time.Duration
	// Once reads what the group has and returns: its entries not yet delivered, this consumer's pending
	// ones, and other consumers' once idle for ClaimIdle. It returns when none is left (nothing new,
	// nothing pending in the group). It creates neither the group nor the stream: without them there is
	// nothing to read. It reads and reclaims on its own, whatever Gate. A responder drains the legacy
	// request stream with it.
	Once bool
}

// Gate is shared by the consumers of one instance of a group (Group.Gate).
type Gate struct {
	read   chan struct{} // holds the one token of the right to block on XREADGROUP
	claims claimClock    // the reclaims of all the gate's consumers
}

// NewGate returns a gate for the consumers of one instance.
func NewGate() *Gate {
	g := &Gate{read: make(chan struct{}, 1), claims: claimClock{shared: true}}
	g.read <- struct{}{}
	return g
}

// claimClock times the reclaims of one consumer, or of the consumers sharing a Gate, one of which takes
// each period's reclaim.
type claimClock struct {
	mu     sync.Mutex
	last   time.Time
	shared bool // a gate's: a failed reclaim still uses up its period's turn
}

// take reports whether a reclaim is due at now and, if so, records it as made now; prev is the record it
// replaced, for failed.
func (k *claimClock) take(now time.Time, every time.Duration) (prev time.Time, due bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if now.Sub(k.last) < every {
		return k.last, false
	}
	prev, k.last = k.last, now
	return prev, true
}

// failed is told that the reclaim take allowed did not get through: a consumer's own clock forgets it, so
// the consumer reclaims again on its next round; a gate's keeps it until the next period.
func (k *claimClock) failed(prev time.Time) {
	if k.shared {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.last = prev
}

// next is when the next reclaim is due.
func (k *claimClock) next(every time.Duration) time.Time {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.last.Add(every)
}

// Message is one delivered, decoded entry.
type Message struct {
	Stream     string
	ID         string
	Envelope   event.Envelope
	Raw        []byte
	Deliveries int64 // 1 on first delivery
}

// Handler handles one message. Returning nil acks it; an error leaves it pending for a retry.
type Handler func(ctx context.Context, m Message) error

// BatchHandler handles the decoded messages of one read together (so their Redis work can share round
// trips) and returns one error per message, in order, with the meaning of Handler's.
type BatchHandler func(ctx context.Context, ms []Message) []error

// RejectError is returned by a handler that refuses an entry for good without acting on it (a stale or
// replayed request): the entry goes to the dead letter stream with the reason, and is counted in
// KeyBusRejected by stream, group and reason.
type RejectError struct {
	Reason string // a short code, the metric's label: stale, replayed
	Detail string
}

func (e *RejectError) Error() string { return e.Reason + ": " + e.Detail }

// Reject returns a *RejectError with the reason code and a detail.
func Reject(reason, format string, args ...any) error {
	return &RejectError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// ErrSkipAck may be returned by a handler to leave an entry pending without counting a failure,
// for example when the work must wait until Redis is back.
var ErrSkipAck = errors.New("leave pending")

type consumer struct {
	b        *Bus
	g        Group
	h        Handler
	bh       BatchHandler
	log      *slog.Logger
	hctx     context.Context // handler context: outlives the stop by StopGrace
	retryOwn bool
	retryAt  time.Time
	// claims times the reclaims, every claimEvery: the gate's clock when gated, the consumer's own otherwise.
	claims     *claimClock
	claimEvery time.Duration
	failures   int
	down       bool
	// deferred holds entries whose handler returned ErrSkipAck: they are retried from memory, their idle
	// time refreshed with XCLAIM JUSTID, which does not count a delivery.
	deferred map[string]Message
}

// Consume reads the group's streams until ctx is cancelled, calling h for each entry. Malformed entries,
// unauthenticated ones (with Keys: checked before anything is decoded), entries a handler refused (Reject)
// and entries delivered more than MaxDeliveries times go to the dead letter stream. When Redis goes away
// it retries with capped backoff; nothing unacknowledged is lost. It returns nil after a graceful stop.
func (b *Bus) Consume(ctx context.Context, g Group, h Handler) error {
	return b.consume(ctx, g, h, nil)
}

// ConsumeBatch is Consume with a handler of whole reads: every batch of decoded entries (up to Batch, and
// the redeliveries and retries of the group) goes to h at once; Concurrency does not apply.
func (b *Bus) ConsumeBatch(ctx context.Context, g Group, h BatchHandler) error {
	return b.consume(ctx, g, nil, h)
}

func (b *Bus) consume(ctx context.Context, g Group, h Handler, bh BatchHandler) error {
	if g.Name == "" || g.Consumer == "" || len(g.Streams) == 0 {
		return fmt.Errorf("consume: group, consumer and streams are required")
	}
	if h == nil && bh == nil {
		return fmt.Errorf("consume: a handler is required")
	}
	if g.StartID == "" {
		g.StartID = "0"
	}
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(b.o.StopGrace, cancel)
		_ = t
	})
	defer stop()
	c := &consumer{b: b, g: g, h: h, bh: bh, hctx: hctx, retryOwn: true, deferred: map[string]Message{},
		claims: &claimClock{}, claimEvery: max(b.o.ClaimIdle/2, 50*time.Millisecond),
		log: b.o.Logger.With("group", g.Name, "consumer", g.Consumer)}
	if g.Gate != nil && !g.Once {
		c.claims = &g.Gate.claims
	}
	return c.run(ctx)
}

func (c *consumer) run(ctx context.Context) error {
	o := c.b.o
	if c.g.Once {
		return c.once(ctx)
	}
	for ctx.Err() == nil {
		if err := c.ensureGroups(ctx, c.g.Streams); err != nil {
			c.lost(ctx, err)
			continue
		}
		break
	}
	discoverEvery := c.g.DiscoverEvery
	if discoverEvery <= 0 {
		discoverEvery = 10 * time.Second
	}
	var lastDiscover time.Time
	for ctx.Err() == nil {
		now := time.Now()
		if c.g.Discover != nil && now.Sub(lastDiscover) >= discoverEvery {
			c.discover(ctx)
			lastDiscover = now
		}
		if !c.upkeep(ctx, now) {
			continue
		}
		block := o.Block
		if c.retryOwn {
			block = min(block, max(time.Until(c.retryAt), time.Millisecond))
		}
		block = min(block, max(time.Until(c.claims.next(c.claimEvery)), time.Millisecond))
		if c.g.Discover != nil {
			block = min(block, max(time.Until(lastDiscover.Add(discoverEvery)), time.Millisecond))
		}
		if c.g.Gate != nil && !c.enter(ctx, block) {
			continue // retries or a reclaim are due first, or the stop
		}
		res, err := c.read(ctx, block)
		if c.g.Gate != nil {
			c.g.Gate.read <- struct{}{} // the next consumer reads while this one handles what it got
		}
		if errors.Is(err, redis.Nil) {
			c.back()
			continue
		}
		if err != nil {
			if isNoGroup(err) {
				if err := c.ensureGroups(ctx, c.g.Streams); err != nil {
					c.lost(ctx, err)
				}
				continue
			}
			c.lost(ctx, err)
			continue
		}
		c.back()
		for _, s := range res {
			c.process(ctx, s.Stream, s.Messages, nil)
		}
	}
	return nil
}

// upkeep retries this consumer's failed entries when their retry is due, and reclaims the group's idle
// entries when the reclaim period comes. It returns false when Redis was lost (lost has waited).
func (c *consumer) upkeep(ctx context.Context, now time.Time) bool {
	if c.retryOwn && !now.Before(c.retryAt) {
		if err := c.drainOwn(ctx); err != nil {
			c.lost(ctx, err)
			return false
		}
	}
	if prev, due := c.claims.take(now, c.claimEvery); due {
		if err := c.autoclaim(ctx); err != nil {
			c.claims.failed(prev)
			c.lost(ctx, err)
			return false
		}
	}
	return true
}

// enter waits up to d for the gate's read token; false when it did not come (or ctx is done).
func (c *consumer) enter(ctx context.Context, d time.Duration) bool {
	select {
	case <-c.g.Gate.read:
		return true
	default:
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.g.Gate.read:
		return true
	case <-ctx.Done():
	case <-t.C:
	}
	return false
}

// read is one XREADGROUP of new entries on the group's streams, blocking up to block (no BLOCK when block
// is negative). ctx's end does not cut it short: a read cut mid-flight would strand entries.
func (c *consumer) read(ctx context.Context, block time.Duration) ([]redis.XStream, error) {
	ctx = context.WithoutCancel(ctx)
	args := make([]string, 0, 2*len(c.g.Streams))
	args = append(args, c.g.Streams...)
	for range c.g.Streams {
		args = append(args, ">")
	}
	return c.b.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: c.g.Name, Consumer: c.g.Consumer, Streams: args, Count: c.b.o.Batch, Block: block,
	}).Result()
}

// discover adds the streams Discover names that the consumer does not read yet, with their groups. The
// streams are then read in Discover's order (a reader that joins events across streams sees them in
// flow order within a read), followed by any it no longer names.
func (c *consumer) discover(ctx context.Context) {
	found, err := c.g.Discover(ctx)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Debug("streams not discovered; reading the known ones", "err", err)
		}
		return
	}
	var add []string
	for _, s := range found {
		if !slices.Contains(c.g.Streams, s) && !slices.Contains(add, s) {
			add = append(add, s)
		}
	}
	if len(add) == 0 {
		return
	}
	if err := c.ensureGroups(ctx, add); err != nil {
		if ctx.Err() == nil {
			c.log.Debug("streams not added; next discovery retries", "err", err)
		}
		return
	}
	streams := make([]string, 0, len(c.g.Streams)+len(add))
	for _, s := range found {
		if !slices.Contains(streams, s) {
			streams = append(streams, s)
		}
	}
	for _, s := range c.g.Streams {
		if !slices.Contains(streams, s) {
			streams = append(streams, s)
		}
	}
	c.g.Streams = streams
	c.log.Debug("streams added", "streams", add)
}

// once is run's Once mode: read until the group has nothing left for it.
func (c *consumer) once(ctx context.Context) error {
	for ctx.Err() == nil {
		if !c.upkeep(ctx, time.Now()) {
			continue
		}
		res, err := c.read(ctx, -1)
		if err != nil && !errors.Is(err, redis.Nil) {
			if isNoGroup(err) {
				return nil // no stream or no group: nothing to drain
			}
			c.lost(ctx, err)
			continue
		}
		c.back()
		got := false
		for _, s := range res {
			got = got || len(s.Messages) > 0
			c.process(ctx, s.Stream, s.Messages, nil)
		}
		if got {
			continue
		}
		pending := int64(0)
		for _, s := range c.g.Streams {
			n, err := c.b.Pending(ctx, s, c.g.Name)
			if err != nil {
				c.lost(ctx, err)
				pending = -1
				break
			}
			pending += n
		}
		if pending == 0 {
			return nil
		}
		if pending < 0 {
			continue
		}
		// Entries wait: this consumer's (retried at retryAt) or other consumers' (reclaimed once idle).
		wait := time.Until(c.claims.next(c.claimEvery))
		if c.retryOwn {
			wait = min(wait, time.Until(c.retryAt))
		}
		sleep(ctx, max(wait, time.Millisecond))
	}
	return nil
}

// lost logs once that Redis is gone and waits with capped exponential backoff. A failure while ctx is
// done is the stop cutting a call short, not an outage: it is neither logged nor waited on.
func (c *consumer) lost(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	if !c.down {
		c.log.Warn("redis lost; retrying", "err", err)
		c.down = true
		c.failures = 0
	}
	c.failures++
	sleep(ctx, min(100*time.Millisecond<<min(c.failures, 6), 5*time.Second))
}

// sleep waits for d, or until ctx is done.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func (c *consumer) back() {
	if c.down {
		c.log.Info("redis back")
		c.down = false
		c.failures = 0
	}
}

func isNoGroup(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "NOGROUP") }

func (c *consumer) ensureGroups(ctx context.Context, streams []string) error {
	for _, s := range streams {
		err := c.b.rdb.XGroupCreateMkStream(ctx, s, c.g.Name, c.g.StartID).Err()
		if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
			if conn.IsUnavailable(err) {
				return err
			}
			return fmt.Errorf("create group %s on %s: %w", c.g.Name, s, err)
		}
	}
	return nil
}

// drainOwn retries the entries pending under this consumer: failed ones, and those left by a previous
// run with the same name. Each pass claims them again, which counts a delivery.
func (c *consumer) drainOwn(ctx context.Context) error {
	any := false
	for _, s := range c.g.Streams {
		pend, err := c.b.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{
			Stream: s, Group: c.g.Name, Start: "-", End: "+", Count: c.b.o.Batch, Consumer: c.g.Consumer,
		}).Result()
		if err != nil {
			if isNoGroup(err) {
				continue
			}
			return err
		}
		if len(pend) == 0 {
			continue
		}
		any = true
		var ids, waiting []string
		counts := make(map[string]int64, len(pend))
		for _, p := range pend {
			if _, ok := c.deferred[s+" "+p.ID]; ok {
				waiting = append(waiting, p.ID)
				continue
			}
			ids = append(ids, p.ID)
			counts[p.ID] = p.RetryCount + 1
		}
		if len(waiting) > 0 {
			// Still ours (not reclaimed by another consumer): refresh the idle time without counting a delivery.
			mine, err := c.b.rdb.XClaimJustID(ctx, &redis.XClaimArgs{Stream: s, Group: c.g.Name, Consumer: c.g.Consumer, Messages: waiting}).Result()
			if err != nil {
				return err
			}
			again := make([]Message, 0, len(mine))
			for _, id := range mine {
				again = append(again, c.deferred[s+" "+id])
			}
			for _, id := range waiting {
				delete(c.deferred, s+" "+id)
			}
			c.handleBatch(ctx, s, again)
		}
		if len(ids) > 0 {
			msgs, err := c.b.rdb.XClaim(ctx, &redis.XClaimArgs{Stream: s, Group: c.g.Name, Consumer: c.g.Consumer, Messages: ids}).Result()
			if err != nil {
				return err
			}
			c.process(ctx, s, msgs, counts)
		}
	}
	if !any {
		c.retryOwn = false
		c.failures = 0
	}
	return nil
}

// autoclaim takes over entries idle longer than ClaimIdle under any consumer of the group.
func (c *consumer) autoclaim(ctx context.Context) error {
	for _, s := range c.g.Streams {
		start := "0-0"
		for range 10 { // bounded per round; the rest waits for the next round
			msgs, next, err := c.b.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
				Stream: s, Group: c.g.Name, Consumer: c.g.Consumer, MinIdle: c.b.o.ClaimIdle, Start: start, Count: c.b.o.Batch,
			}).Result()
			if err != nil {
				if isNoGroup(err) {
					break
				}
				return err
			}
			if len(msgs) > 0 {
				pend, err := c.b.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{
					Stream: s, Group: c.g.Name, Start: msgs[0].ID, End: msgs[len(msgs)-1].ID,
					Count: int64(len(msgs)) * 2, Consumer: c.g.Consumer,
				}).Result()
				if err != nil {
					return err
				}
				counts := make(map[string]int64, len(pend))
				for _, p := range pend {
					counts[p.ID] = p.RetryCount
				}
				c.b.stats.Reclaimed.Add(int64(len(msgs)))
				c.log.Info("reclaimed stale entries", "stream", s, "count", len(msgs))
				c.process(ctx, s, msgs, counts)
			}
			if next == "0-0" || next == "" {
				break
			}
			start = next
		}
	}
	return nil
}

// process decodes, dead-letters or handles a batch, then acks what succeeded in one call.
// counts holds delivery counts for redelivered entries; fresh entries count 1.
func (c *consumer) process(ctx context.Context, stream string, msgs []redis.XMessage, counts map[string]int64) {
	o := c.b.o
	work := make([]Message, 0, len(msgs))
	for _, m := range msgs {
		raw, _ := m.Values[event.Field].(string)
		n := int64(1)
		if counts != nil {
			if v, ok := counts[m.ID]; ok {
				n = v
			}
		}
		if n > o.MaxDeliveries {
			c.deadLetter(stream, m.ID, raw, n, fmt.Sprintf("delivered %d times (max %d)", n, o.MaxDeliveries), "")
			continue
		}
		// Authenticated before a byte of it is parsed; an entry too large to be an envelope is refused by
		// Decode without being hashed.
		if o.Keys != nil && len(raw) <= event.MaxEnvelopeBytes {
			mac, _ := m.Values[sign.Field].(string)
			if err := o.Keys.Verify(stream, []byte(raw), mac); err != nil {
				var se *sign.Error
				code := sign.ReasonBadMAC
				if errors.As(err, &se) {
					code = se.Reason
				}
				c.deadLetter(stream, m.ID, raw, n, err.Error(), code)
				continue
			}
		}
		env, err := event.Decode([]byte(raw))
		if err != nil {
			c.b.stats.Malformed.Add(1)
			c.deadLetter(stream, m.ID, raw, n, err.Error(), "")
			continue
		}
		work = append(work, Message{Stream: stream, ID: m.ID, Envelope: env, Raw: []byte(raw), Deliveries: n})
	}
	c.handleBatch(ctx, stream, work)
}

// handleBatch runs the handler over decoded messages and acks what succeeded in one call; entries whose
// handler asked to wait (ErrSkipAck) are kept for a retry that does not count a delivery.
func (c *consumer) handleBatch(ctx context.Context, stream string, work []Message) {
	o := c.b.o
	if len(work) == 0 {
		return
	}
	ok := make([]result, len(work))
	rejected := make([]*RejectError, len(work))
	stopKeeping := c.keepPending(stream, work)
	defer stopKeeping()
	if c.bh != nil {
		c.handleAll(work, ok, rejected)
	} else if o.Concurrency == 1 || len(work) == 1 {
		for i, m := range work {
			ok[i], rejected[i] = c.handle(m)
		}
	} else {
		var wg sync.WaitGroup
		next := make(chan int)
		for range min(o.Concurrency, len(work)) {
			wg.Go(func() {
				for i := range next {
					ok[i], rejected[i] = c.handle(work[i])
				}
			})
		}
		for i := range work {
			next <- i
		}
		close(next)
		wg.Wait()
	}
	ids := make([]string, 0, len(work))
	failed := false
	for i, m := range work {
		switch ok[i] {
		case handled:
			ids = append(ids, m.ID)
		case waiting:
			c.deferred[stream+" "+m.ID] = m
			failed = true
		case refused:
			c.deadLetter(stream, m.ID, string(m.Raw), m.Deliveries, rejected[i].Error(), rejected[i].Reason)
		default:
			failed = true
		}
	}
	if len(ids) > 0 {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if err := c.b.rdb.XAck(actx, stream, c.g.Name, ids...).Err(); err != nil {
			// Unacked entries stay pending and come back; handlers are idempotent.
			c.log.Warn("ack failed; entries will be redelivered", "stream", stream, "count", len(ids), "err", err)
		}
		cancel()
	}
	if failed {
		c.retryOwn = true
		c.failures++
		wait := min(o.RetryDelay<<min(c.failures-1, 6), 30*time.Second)
		if len(c.deferred) > 0 {
			// Only the retry refreshes a waiting entry's idle time: it must come before the group's other
			// consumers see the entry as abandoned (ClaimIdle), or their claims count deliveries until the
			// entry is dead-lettered while it waits, for instance for a dead responder's lease to expire.
			wait = min(wait, o.ClaimIdle/3)
		}
		c.retryAt = time.Now().Add(wait)
	}
}

// keepPending refreshes the idle time of entries while their handlers run, every third of ClaimIdle, so
// that no other consumer of the group takes over an entry whose handler is slow (a restart waiting out a
// stop timeout on a loaded engine): such a claim would count a delivery, run the work twice at once, and
// after MaxDeliveries dead-letter an entry that was being handled. XCLAIM JUSTID counts no delivery.
func (c *consumer) keepPending(stream string, work []Message) (stop func()) {
	ids := make([]string, len(work))
	for i, m := range work {
		ids[i] = m.ID
	}
	kctx, cancel := context.WithCancel(c.hctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(max(c.b.o.ClaimIdle/3, 10*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-kctx.Done():
				return
			case <-t.C:
				err := c.b.rdb.XClaimJustID(kctx, &redis.XClaimArgs{Stream: stream, Group: c.g.Name, Consumer: c.g.Consumer, Messages: ids}).Err()
				if err != nil && kctx.Err() == nil {
					c.log.Debug("keeping entries pending failed", "stream", stream, "count", len(ids), "err", err)
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}

type result int

const (
	failedResult result = iota
	handled
	waiting
	refused // dead-lettered: a handler's RejectError
)

// handleAll runs the batch handler, turning a panic into a failure of the whole batch.
func (c *consumer) handleAll(work []Message, ok []result, rejected []*RejectError) {
	defer func() {
		if r := recover(); r != nil {
			c.b.stats.Failed.Add(int64(len(work)))
			c.log.Error("batch handler panicked", "stream", work[0].Stream, "entries", len(work), "panic", fmt.Sprint(r))
			clear(ok)
		}
	}()
	errs := c.bh(c.hctx, work)
	for i, m := range work {
		var err error
		if i < len(errs) {
			err = errs[i]
		} else {
			err = fmt.Errorf("batch handler returned %d results for %d entries", len(errs), len(work))
		}
		ok[i], rejected[i] = c.outcome(m, err)
	}
}

// handle runs the handler, turning a panic into an error: bad input never crashes an agent.
func (c *consumer) handle(m Message) (res result, rej *RejectError) {
	defer func() {
		if r := recover(); r != nil {
			c.b.stats.Failed.Add(1)
			c.log.Error("handler panicked", "stream", m.Stream, "entry", m.ID, "event_id", m.Envelope.ID, "panic", fmt.Sprint(r))
			res, rej = failedResult, nil
		}
	}()
	return c.outcome(m, c.h(c.hctx, m))
}

// outcome counts and logs what a handler said of a message.
func (c *consumer) outcome(m Message, err error) (result, *RejectError) {
	var rej *RejectError
	switch {
	case err == nil:
		c.b.stats.Handled.Add(1)
		return handled, nil
	case errors.As(err, &rej):
		return refused, rej
	case errors.Is(err, ErrSkipAck):
		c.log.Debug("entry left pending", "stream", m.Stream, "entry", m.ID, "event_id", m.Envelope.ID, "why", err)
		return waiting, nil
	default:
		c.b.stats.Failed.Add(1)
		c.log.Warn("handler failed; will retry", "stream", m.Stream, "entry", m.ID, "event_id", m.Envelope.ID,
			"deliveries", m.Deliveries, "err", err)
		return failedResult, nil
	}
}

// deadLetter moves an entry to hemostat:dead_letter with the reason and acks it, atomically. A refused
// entry (rejected is its reason code: pkg/sign's, stale, replayed) is also counted in KeyBusRejected, in
// the same transaction.
func (c *consumer) deadLetter(stream, id, raw string, deliveries int64, reason, rejected string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pipe := c.b.rdb.TxPipeline()
	values := []any{
		event.Field, raw, "stream", stream, "entry_id", id, "group", c.g.Name, "consumer", c.g.Consumer,
		"reason", reason, "deliveries", deliveries, "time", time.Now().UTC().Format(time.RFC3339Nano),
	}
	if rejected != "" {
		values = append(values, "rejected", rejected)
		pipe.HIncrBy(ctx, schema.KeyBusRejected, schema.BusRejection{Stream: stream, Group: c.g.Name, Reason: rejected}.Field(), 1)
	}
	pipe.XAdd(ctx, &redis.XAddArgs{Stream: event.StreamDeadLetter, MaxLen: c.b.o.DeadLetterLen, Approx: true, Values: values})
	pipe.XAck(ctx, stream, c.g.Name, id)
	if _, err := pipe.Exec(ctx); err != nil {
		c.log.Warn("dead letter failed; entry stays pending", "stream", stream, "entry", id, "err", err)
		return
	}
	c.b.stats.DeadLettered.Add(1)
	if rejected != "" {
		c.b.stats.Rejected.Add(1)
		c.log.Warn("entry refused and moved to dead letter; not acted on", "stream", stream, "entry", id, "rejected", rejected, "reason", reason)
		return
	}
	c.log.Warn("entry moved to dead letter", "stream", stream, "entry", id, "reason", reason)
}

// DeadLetter is one entry of the dead letter stream.
type DeadLetter struct {
	ID         string
	Stream     string
	EntryID    string
	Group      string
	Reason     string
	Deliveries string
	Rejected   string // the reason code of a refused entry (unsigned, bad_mac, unknown_key, stale, replayed)
	Raw        []byte
}

// DeadLetters returns the newest dead letters, newest first.
func (b *Bus) DeadLetters(ctx context.Context, count int64) ([]DeadLetter, error) {
	msgs, err := b.rdb.XRevRangeN(ctx, event.StreamDeadLetter, "+", "-", count).Result()
	if err != nil {
		return nil, err
	}
	out := make([]DeadLetter, len(msgs))
	for i, m := range msgs {
		s := func(k string) string { v, _ := m.Values[k].(string); return v }
		out[i] = DeadLetter{ID: m.ID, Stream: s("stream"), EntryID: s("entry_id"), Group: s("group"),
			Reason: s("reason"), Deliveries: s("deliveries"), Rejected: s("rejected"), Raw: []byte(s(event.Field))}
	}
	return out, nil
}

// Rejections returns the counts of refused entries (KeyBusRejected), by stream, group and reason. Fields
// that do not parse are returned as errors beside the counts.
func (b *Bus) Rejections(ctx context.Context) (map[schema.BusRejection]int64, []error, error) {
	m, err := b.rdb.HGetAll(ctx, schema.KeyBusRejected).Result()
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", schema.KeyBusRejected, err)
	}
	out := make(map[schema.BusRejection]int64, len(m))
	var probs []error
	for f, v := range m {
		r, err := schema.ParseBusRejection(f)
		if err != nil {
			probs = append(probs, err)
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			probs = append(probs, fmt.Errorf("bus rejection counter %q: %w", f, err))
			continue
		}
		out[r] = n
	}
	return out, probs, nil
}
