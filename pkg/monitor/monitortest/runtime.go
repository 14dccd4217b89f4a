// Package monitortest holds a hand-written fake of monitor.Runtime for fast tests of the monitor's
// event handling, reconnects and reconciles without a Docker engine.
package monitortest

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/hemostat/hemostat/pkg/container"
	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/monitor"
)

var (
	_ monitor.Runtime = (*Runtime)(nil)
	_ monitor.Sampler = (*Runtime)(nil)
)

// Runtime is an in-memory engine: tests set containers, emit events and break the event stream; it
// records the calls it gets.
type Runtime struct {
	mu         sync.Mutex
	containers map[string]docker.Details
	subs       []*sub
	history    []docker.Event
	down       bool
	// Calls records "list", "inspect <id>", "events since=<unix nano>" in order.
	calls   []string
	samples map[string]container.Sample
}

type sub struct {
	ch   chan docker.Event
	errc chan error
	done chan struct{}
	once sync.Once
}

func (s *sub) end(err error) {
	s.once.Do(func() {
		s.errc <- err
		close(s.done)
	})
}

// New returns an empty fake engine.
func New() *Runtime {
	return &Runtime{containers: map[string]docker.Details{}, samples: map[string]container.Sample{}}
}

// ErrDown is what the fake answers while it is down.
var ErrDown = errors.New("fake engine down: " + docker.ErrUnavailable.Error())

func (r *Runtime) record(s string) {
	r.calls = append(r.calls, s)
}

// Calls returns the calls recorded so far.
func (r *Runtime) Calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

// Set adds or replaces a container.
func (r *Runtime) Set(d docker.Details) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.containers[d.ID] = d
}

// Remove deletes a container.
func (r *Runtime) Remove(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.containers, id)
}

// SetSample sets what Sample returns for a container.
func (r *Runtime) SetSample(id string, s container.Sample) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.samples[id] = s
}

// Emit sends an event to every subscriber (and keeps it for replays with since).
func (r *Runtime) Emit(e docker.Event) {
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	if e.TimeNano == 0 {
		e.TimeNano = e.Time.UnixNano()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.history = append(r.history, e)
	for _, s := range r.subs {
		select {
		case s.ch <- e:
		case <-s.done:
		}
	}
}

// Break ends every event stream with an error, as a daemon restart does.
func (r *Runtime) Break() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.subs {
		s.end(ErrDown)
	}
	r.subs = nil
}

// SetDown makes every call fail (and breaks the streams) until SetDown(false).
func (r *Runtime) SetDown(down bool) {
	if down {
		r.Break()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down = down
}

// Subscribers is the number of live event streams.
func (r *Runtime) Subscribers() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.subs)
}

// List implements monitor.Runtime.
func (r *Runtime) List(_ context.Context) ([]docker.Container, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.record("list")
	if r.down {
		return nil, ErrDown
	}
	out := make([]docker.Container, 0, len(r.containers))
	for _, d := range r.containers {
		out = append(out, docker.Container{ID: d.ID, Name: d.Name, Image: d.Image, State: d.State,
			Health: d.Health, Labels: d.Labels, Created: d.Created})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Inspect implements monitor.Runtime.
func (r *Runtime) Inspect(_ context.Context, id string) (docker.Details, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.record("inspect " + id)
	if r.down {
		return docker.Details{}, ErrDown
	}
	d, ok := r.containers[id]
	if !ok {
		return docker.Details{}, docker.ErrNotFound
	}
	return d, nil
}

// Events implements monitor.Runtime: it replays the kept events at or after since, then streams new ones.
func (r *Runtime) Events(ctx context.Context, o docker.EventsOptions) (<-chan docker.Event, <-chan error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.record("events since=" + sinceString(o.Since))
	s := &sub{ch: make(chan docker.Event, 4096), errc: make(chan error, 1), done: make(chan struct{})}
	if r.down {
		s.end(ErrDown)
		return s.ch, s.errc
	}
	if !o.Since.IsZero() {
		for _, e := range r.history {
			if !e.Time.Before(o.Since) {
				s.ch <- e
			}
		}
	}
	r.subs = append(r.subs, s)
	go func() { // ends the stream when the subscriber goes away
		select {
		case <-ctx.Done():
			r.mu.Lock()
			for i, x := range r.subs {
				if x == s {
					r.subs = append(r.subs[:i], r.subs[i+1:]...)
					break
				}
			}
			r.mu.Unlock()
			s.end(ctx.Err())
		case <-s.done:
		}
	}()
	return s.ch, s.errc
}

// Sample implements monitor.Sampler with the samples set by SetSample.
func (r *Runtime) Sample(_ context.Context, c monitor.ContainerRef) (container.Sample, error) {
	id := c.ID
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down {
		return container.Sample{}, ErrDown
	}
	s, ok := r.samples[id]
	if !ok {
		return container.Sample{}, docker.ErrNotFound
	}
	return s, nil
}

func sinceString(t time.Time) string {
	if t.IsZero() {
		return "0"
	}
	return t.UTC().Format(time.RFC3339Nano)
}
