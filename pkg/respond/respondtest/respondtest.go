// Package respondtest holds hand-written fakes of respond.Runtime: an in-memory engine and a recorder that
// wraps any runtime (the real client included) and records every call with its time.
package respondtest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/respond"
)

// Call is one recorded runtime call.
type Call struct {
	Op   string // state, restart, stop, start, exec, scale, cleanup
	Ref  string // container id or name, or service
	Args []string
	At   time.Time
}

// Write reports whether the call changes anything on the engine.
func (c Call) Write() bool { return c.Op != "state" }

// Recorder wraps a runtime and records every call. OnWrite, when set, runs before each write call is
// passed on (tests use it to stamp times or to simulate a crash).
type Recorder struct {
	Inner   respond.Runtime
	OnWrite func(Call)
	// AfterWrite, when set, runs after each write call returned.
	AfterWrite func(Call)

	mu    sync.Mutex
	calls []Call
}

var _ respond.Runtime = (*Recorder)(nil)

func (r *Recorder) record(op, ref string, args ...string) Call {
	c := Call{Op: op, Ref: ref, Args: args, At: time.Now()}
	r.mu.Lock()
	r.calls = append(r.calls, c)
	r.mu.Unlock()
	if c.Write() && r.OnWrite != nil {
		r.OnWrite(c)
	}
	return c
}

func (r *Recorder) after(c Call) {
	if r.AfterWrite != nil {
		r.AfterWrite(c)
	}
}

// Calls returns every call so far.
func (r *Recorder) Calls() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// Writes returns the write calls so far.
func (r *Recorder) Writes() []Call {
	var out []Call
	for _, c := range r.Calls() {
		if c.Write() {
			out = append(out, c)
		}
	}
	return out
}

// Count returns how many calls of op were made.
func (r *Recorder) Count(op string) int {
	n := 0
	for _, c := range r.Calls() {
		if c.Op == op {
			n++
		}
	}
	return n
}

// ContainerState implements respond.Runtime.
func (r *Recorder) ContainerState(ctx context.Context, ref string) (docker.TargetState, error) {
	r.record("state", ref)
	return r.Inner.ContainerState(ctx, ref)
}

// RestartContainer implements respond.Runtime.
func (r *Recorder) RestartContainer(ctx context.Context, id string, timeout time.Duration) error {
	c := r.record("restart", id, timeout.String())
	defer r.after(c)
	return r.Inner.RestartContainer(ctx, id, timeout)
}

// StopContainer implements respond.Runtime.
func (r *Recorder) StopContainer(ctx context.Context, id string, timeout time.Duration) error {
	c := r.record("stop", id, timeout.String())
	defer r.after(c)
	return r.Inner.StopContainer(ctx, id, timeout)
}

// StartContainer implements respond.Runtime.
func (r *Recorder) StartContainer(ctx context.Context, id string) error {
	c := r.record("start", id)
	defer r.after(c)
	return r.Inner.StartContainer(ctx, id)
}

// ExecCommand implements respond.Runtime.
func (r *Recorder) ExecCommand(ctx context.Context, id string, cmd []string, maxOutput int) (docker.ExecResult, error) {
	c := r.record("exec", id, cmd...)
	defer r.after(c)
	return r.Inner.ExecCommand(ctx, id, cmd, maxOutput)
}

// ScaleService implements respond.Runtime.
func (r *Recorder) ScaleService(ctx context.Context, service string, maxReplicas uint64) (docker.ScaleResult, error) {
	c := r.record("scale", service, fmt.Sprint(maxReplicas))
	defer r.after(c)
	return r.Inner.ScaleService(ctx, service, maxReplicas)
}

// CleanupReplicas implements respond.Runtime.
func (r *Recorder) CleanupReplicas(ctx context.Context, id string) ([]string, error) {
	c := r.record("cleanup", id)
	defer r.after(c)
	return r.Inner.CleanupReplicas(ctx, id)
}

// Fake is an in-memory engine: containers that restart instantly and come back healthy unless told not to.
type Fake struct {
	mu         sync.Mutex
	containers map[string]*docker.TargetState // by id
	byName     map[string]*docker.TargetState
	broken     map[string]bool   // restarts leave it exited
	startH     map[string]string // the health a start leaves, "healthy" when unset
	// ExecResult is returned by every exec.
	ExecResult docker.ExecResult
}

var _ respond.Runtime = (*Fake)(nil)

// NewFake returns an engine with the given containers (running unless their Status says otherwise).
func NewFake(cs ...docker.TargetState) *Fake {
	f := &Fake{containers: map[string]*docker.TargetState{}, byName: map[string]*docker.TargetState{}, broken: map[string]bool{}, startH: map[string]string{}}
	for _, c := range cs {
		f.Add(c)
	}
	return f
}

// Add puts a container on the fake engine.
func (f *Fake) Add(c docker.TargetState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c.Status == "" {
		c.Status, c.Running = "running", true
	}
	if c.StartedAt.IsZero() {
		c.StartedAt = time.Now().Add(-time.Hour)
	}
	if c.HealthConfig != nil && c.Health == "" {
		c.Health = "healthy"
	}
	if c.ComposeProject == "" { // as the real engine client derives them
		c.ComposeProject, c.ComposeService = c.Labels["com.docker.compose.project"], c.Labels["com.docker.compose.service"]
	}
	if c.SwarmService == "" {
		c.SwarmService = c.Labels["com.docker.swarm.service.name"]
	}
	f.containers[c.ID] = &c
	f.byName[c.Name] = &c
}

// Remove deletes a container.
func (f *Fake) Remove(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.containers[id]; ok {
		delete(f.byName, c.Name)
	}
	delete(f.containers, id)
}

// Break makes restarts and starts of a container leave it exited (verification fails).
func (f *Fake) Break(id string, broken bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.broken[id] = broken
}

// StartHealth sets the health a start or restart of a container with a healthcheck leaves ("healthy"
// unless set): "starting" is a verdict still pending.
func (f *Fake) StartHealth(id, health string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.startH[id] = health
}

// SetHealth sets a container's health now, as Docker does when a probe ends.
func (f *Fake) SetHealth(id, health string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.find(id); c != nil {
		c.Health = health
	}
}

func (f *Fake) find(ref string) *docker.TargetState {
	if c, ok := f.containers[ref]; ok {
		return c
	}
	if c, ok := f.byName[ref]; ok {
		return c
	}
	for _, c := range f.containers {
		if len(ref) >= 12 && strings.HasPrefix(c.ID, ref) {
			return c
		}
	}
	return nil
}

func notFound(ref string) error { return fmt.Errorf("inspect %s: %w", ref, docker.ErrNotFound) }

// ContainerState implements respond.Runtime.
func (f *Fake) ContainerState(_ context.Context, ref string) (docker.TargetState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.find(ref)
	if c == nil {
		return docker.TargetState{}, notFound(ref)
	}
	return *c, nil
}

func (f *Fake) start(id string) error {
	c := f.find(id)
	if c == nil {
		return notFound(id)
	}
	c.StartedAt = time.Now()
	if f.broken[c.ID] {
		c.Running, c.Status, c.ExitCode = false, "exited", 1
		return nil
	}
	c.Running, c.Status, c.ExitCode = true, "running", 0
	if c.HealthConfig != nil {
		c.Health = "healthy"
		if h := f.startH[c.ID]; h != "" {
			c.Health = h
		}
	}
	return nil
}

// RestartContainer implements respond.Runtime.
func (f *Fake) RestartContainer(_ context.Context, id string, _ time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.find(id); c != nil {
		c.RestartCount++
	}
	return f.start(id)
}

// StartContainer implements respond.Runtime.
func (f *Fake) StartContainer(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.start(id)
}

// StopContainer implements respond.Runtime.
func (f *Fake) StopContainer(_ context.Context, id string, _ time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.find(id)
	if c == nil {
		return notFound(id)
	}
	c.Running, c.Status, c.ExitCode = false, "exited", 143
	return nil
}

// ExecCommand implements respond.Runtime.
func (f *Fake) ExecCommand(_ context.Context, id string, _ []string, _ int) (docker.ExecResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.find(id) == nil {
		return docker.ExecResult{}, notFound(id)
	}
	return f.ExecResult, nil
}

// ScaleService implements respond.Runtime: the fake engine is not a swarm.
func (f *Fake) ScaleService(_ context.Context, service string, _ uint64) (docker.ScaleResult, error) {
	return docker.ScaleResult{}, fmt.Errorf("scale %s: %w", service, docker.ErrNotApplicable)
}

// CleanupReplicas implements respond.Runtime: nothing to remove.
func (f *Fake) CleanupReplicas(_ context.Context, id string) ([]string, error) {
	return nil, nil
}
