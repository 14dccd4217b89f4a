// Package agent owns the lifecycle every hemostat agent shares: run until a signal, heartbeat, log state
// changes once, back off while a dependency is away, and stop gracefully within a deadline.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/hemostat/hemostat/pkg/store/schema"
)

// Heartbeater records liveness; *agents.Store (pkg/store/agents) implements it.
type Heartbeater interface {
	Heartbeat(ctx context.Context, a schema.Agent, now time.Time, ttl time.Duration) error
	Remove(ctx context.Context, kind, instance string) error
}

// Options describe one agent instance.
type Options struct {
	Kind         string        // monitor, analyze, respond, alert, export
	Instance     string        // unique within the kind
	Version      string        // build version, written into the heartbeat
	Record       schema.Agent  // more heartbeat fields (host, mode, ...); its kind, instance and version are set from the above
	Interval     time.Duration // heartbeat period, default 5s; the key lives 3 periods
	StopDeadline time.Duration // how long the agent may take to stop after the signal, default 15s
	Logger       *slog.Logger
}

// ErrStopTimeout is returned when the agent did not stop within its deadline.
var ErrStopTimeout = errors.New("agent did not stop within its deadline")

// Run runs fn until ctx is cancelled, heartbeating alongside. fn must return soon after its context is
// cancelled, having finished or released the work in flight; Run waits up to StopDeadline for it.
func Run(ctx context.Context, o Options, hb Heartbeater, fn func(ctx context.Context) error) error {
	if o.Interval <= 0 {
		o.Interval = 5 * time.Second
	}
	if o.StopDeadline <= 0 {
		o.StopDeadline = 15 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	log := o.Logger.With("agent", o.Kind, "instance", o.Instance)
	rec := o.Record
	rec.Kind, rec.Instance, rec.Version, rec.StartedAt = o.Kind, o.Instance, o.Version, time.Now().UTC().Truncate(time.Second)
	log.Info("agent started")

	hbCtx, stopHB := context.WithCancel(context.WithoutCancel(ctx))
	g, gctx := errgroup.WithContext(hbCtx)
	// The heartbeat goroutine exits when fn has returned (stopHB).
	g.Go(func() error {
		state := NewState(log, "redis")
		t := time.NewTicker(o.Interval)
		defer t.Stop()
		for {
			c, cancel := context.WithTimeout(gctx, o.Interval)
			err := hb.Heartbeat(c, rec, time.Now().UTC(), 3*o.Interval)
			cancel()
			if gctx.Err() != nil {
				return nil // stopped during the heartbeat: its failure says nothing of Redis
			}
			state.Set(err)
			select {
			case <-gctx.Done():
				return nil
			case <-t.C:
			}
		}
	})

	done := make(chan error, 1)
	go func() { done <- fn(ctx) }() // exits when fn returns; fn watches ctx
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		select {
		case err = <-done:
		case <-time.After(o.StopDeadline):
			err = fmt.Errorf("%s: %w (%s)", o.Kind, ErrStopTimeout, o.StopDeadline)
		}
	}
	stopHB()
	_ = g.Wait()
	rc, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_ = hb.Remove(rc, o.Kind, o.Instance)
	cancel()
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, ctx.Err())) {
		err = nil // stopping because we were asked to is success
	}
	if err != nil {
		log.Error("agent stopped with error", "err", err)
		return err
	}
	log.Info("agent stopped")
	return nil
}

// State logs a dependency's state changes once each (connected, lost, back), not once per retry. A
// cancelled attempt is no outage: stopping (Ctrl-C) logs nothing.
type State struct {
	log  *slog.Logger
	name string
	up   bool
	seen bool
}

// NewState tracks the named dependency.
func NewState(log *slog.Logger, name string) *State { return &State{log: log, name: name} }

// Set records the outcome of the latest attempt; it logs only when the state changes. It reports
// whether the dependency is up. An error that wraps context.Canceled is not recorded: the attempt was
// stopped, and says nothing of the dependency. A caller whose errors may lose the chain (one formatted
// with %v) checks its context before calling Set.
func (s *State) Set(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	up := err == nil
	switch {
	case !s.seen && up:
		s.log.Debug(s.name + " connected")
	case !s.seen && !up:
		s.log.Warn(s.name+" unreachable; retrying", "err", err)
	case s.up && !up:
		s.log.Warn(s.name+" lost; retrying", "err", err)
	case !s.up && up:
		s.log.Info(s.name + " back")
	}
	s.seen, s.up = true, up
	return up
}

// Backoff is capped exponential backoff: Min, doubling to Max.
type Backoff struct {
	Min, Max time.Duration
	n        int
}

// Next returns the next wait and advances.
func (b *Backoff) Next() time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = 100 * time.Millisecond
	}
	if hi <= 0 {
		hi = 10 * time.Second
	}
	d := lo << min(b.n, 30)
	if d > hi || d <= 0 {
		d = hi
	}
	b.n++
	return d
}

// Reset starts again from Min.
func (b *Backoff) Reset() { b.n = 0 }

// Sleep waits for d or until ctx is done; it reports whether ctx is still live.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
