package monitor

import (
	"context"
	"errors"
	"time"

	"github.com/hemostat/hemostat/pkg/agent"
	"github.com/hemostat/hemostat/pkg/docker"
)

// How the event stream is kept connected.
const (
	// connectProbe is how long a new subscription is given to fail: a refused connection fails at once, so
	// a stream still open after this counts as connected.
	connectProbe = 100 * time.Millisecond
	// replayOverlap is how far before the latest event seen a reconnected stream starts again, so an event
	// stamped in the same second as the break is not missed; the replayed ones are skipped by dedupe.
	replayOverlap = time.Second
	// eventRetryMin and eventRetryMax bound the backoff between reconnections.
	eventRetryMin = 200 * time.Millisecond
	eventRetryMax = 5 * time.Second
	// dedupeWindow is how long an event is remembered to skip its replay, counted back from the newest.
	dedupeWindow = 2 * time.Minute
	// dedupeMinPrune is the size of the memory of events below which it is never pruned.
	dedupeMinPrune = 4096
)

// watchEvents keeps the event stream connected: after a break it reconnects with backoff from the last
// event's time minus replayOverlap, skips the events it has already seen, and signals connected after
// every (re)connection so that the loop reconciles. It runs on its own goroutine and exits when ctx is done.
func (l *loop) watchEvents(ctx context.Context) {
	m := l.m
	state := agent.NewState(l.log, "docker")
	bo := agent.Backoff{Min: eventRetryMin, Max: eventRetryMax}
	seen := newDedupe()
	var last time.Time
	first := true
	for ctx.Err() == nil {
		var since time.Time
		if !last.IsZero() {
			since = last.Add(-replayOverlap)
		}
		sctx, stop := context.WithCancel(ctx)
		evs, errs := m.rt.Events(sctx, docker.EventsOptions{Since: since, Actions: docker.ContainerActions})
		var err error
		select {
		case err = <-errs:
		case <-time.After(connectProbe):
		case <-ctx.Done():
		}
		if err == nil && ctx.Err() == nil {
			state.Set(nil)
			bo.Reset()
			if !first {
				m.Counters.Reconnects.Add(1)
			}
			first = false
			select {
			case l.connected <- struct{}{}:
			default:
			}
			err = l.forward(ctx, evs, errs, seen, &last)
		}
		stop()
		if ctx.Err() != nil {
			return
		}
		state.Set(err)
		agent.Sleep(ctx, bo.Next())
	}
}

// forward passes events on until the stream ends, returning its error.
func (l *loop) forward(ctx context.Context, evs <-chan docker.Event, errs <-chan error, seen *dedupe, last *time.Time) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errs:
			// Drain what was decoded before the break.
			for {
				select {
				case e, ok := <-evs:
					if !ok {
						return err
					}
					l.pass(ctx, e, seen, last)
				default:
					return err
				}
			}
		case e, ok := <-evs:
			if !ok {
				return errors.New("event stream closed")
			}
			l.pass(ctx, e, seen, last)
		}
	}
}

// pass hands a new event to the loop, waiting while its queue is full, and counts a replayed one.
func (l *loop) pass(ctx context.Context, e docker.Event, seen *dedupe, last *time.Time) {
	if !seen.add(e) {
		l.m.Counters.Duplicates.Add(1)
		return
	}
	if e.Time.After(*last) {
		*last = e.Time
	}
	select {
	case l.events <- e:
	case <-ctx.Done():
	}
}

// dedupe remembers recent events by (id, action, time) so a replay after a reconnect is not handled twice.
type dedupe struct {
	seen    map[dedupeKey]struct{}
	newest  int64
	pruneAt int
}

type dedupeKey struct {
	id, action string
	nano       int64
}

func newDedupe() *dedupe { return &dedupe{seen: map[dedupeKey]struct{}{}, pruneAt: dedupeMinPrune} }

// add records e and reports whether it is new.
func (d *dedupe) add(e docker.Event) bool {
	k := dedupeKey{e.ID, e.Action, e.TimeNano}
	if _, ok := d.seen[k]; ok {
		return false
	}
	d.seen[k] = struct{}{}
	if e.TimeNano > d.newest {
		d.newest = e.TimeNano
	}
	if len(d.seen) > d.pruneAt {
		cut := d.newest - int64(dedupeWindow)
		for k := range d.seen {
			if k.nano < cut {
				delete(d.seen, k)
			}
		}
		d.pruneAt = max(dedupeMinPrune, 2*len(d.seen))
	}
	return true
}
