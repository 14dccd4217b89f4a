package export

import (
	"context"
	"fmt"

	"github.com/hemostat/hemostat/pkg/bus"
	"github.com/hemostat/hemostat/pkg/container"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

// ContainerReader reads the container table, the latest samples and the hosts' figures;
// *containers.Store (pkg/store/containers) implements it.
type ContainerReader interface {
	All(ctx context.Context) (map[string]container.Summary, []error, error)
	Stats(ctx context.Context, targets []string) (map[string]schema.Stats, []error, error)
	Hosts(ctx context.Context) ([]schema.HostStatus, []error, error)
}

// IncidentCounter counts the open incidents; *incidents.Store implements it.
type IncidentCounter interface {
	CountOpen(ctx context.Context) (int64, error)
}

// CounterReader reads the notification counters; *notify.Store implements it.
type CounterReader interface {
	Counters(ctx context.Context) (map[schema.NotifyCounter]int64, []error, error)
}

// AgentLister lists the live agents; *agents.Store implements it.
type AgentLister interface {
	List(ctx context.Context) ([]schema.Agent, []error, error)
}

// StreamReader reads the streams' lengths, consumer groups and refused entries; *bus.Bus implements it.
type StreamReader interface {
	// WorkStreams names every work stream, the hosts' request streams included.
	WorkStreams(ctx context.Context) ([]string, error)
	Len(ctx context.Context, stream string) (int64, error)
	Groups(ctx context.Context, stream string) ([]bus.GroupInfo, error)
	Rejections(ctx context.Context) (map[schema.BusRejection]int64, []error, error)
}

// Sources are what the exporter reads at each scrape.
type Sources struct {
	Containers ContainerReader
	Incidents  IncidentCounter
	Notify     CounterReader
	Agents     AgentLister
	Streams    StreamReader
}

// state is one scrape's read of the shared state.
type state struct {
	containers    map[string]container.Summary
	samples       map[string]schema.Stats
	hosts         []schema.HostStatus
	agents        []schema.Agent
	streams       []string // every work stream, the hosts' request streams included
	streamLen     map[string]int64
	groups        []groupState
	deadLetters   int64
	rejected      map[schema.BusRejection]int64
	openIncidents int64
	counters      map[schema.NotifyCounter]int64
	problems      int // values that did not decode
}

type groupState struct {
	stream string
	bus.GroupInfo
}

// read reads everything one scrape reports. A value that does not decode is counted in problems and left
// out; a read that fails fails the scrape's state.
func (src Sources) read(ctx context.Context) (*state, error) {
	s := &state{streamLen: map[string]int64{}}
	var probs []error
	var err error
	if s.containers, probs, err = src.Containers.All(ctx); err != nil {
		return nil, err
	}
	s.problems += len(probs)
	targets := make([]string, 0, len(s.containers))
	for t := range s.containers {
		targets = append(targets, t)
	}
	if s.samples, probs, err = src.Containers.Stats(ctx, targets); err != nil {
		return nil, err
	}
	s.problems += len(probs)
	if s.hosts, probs, err = src.Containers.Hosts(ctx); err != nil {
		return nil, err
	}
	s.problems += len(probs)
	if s.agents, probs, err = src.Agents.List(ctx); err != nil {
		return nil, err
	}
	s.problems += len(probs)
	if s.counters, probs, err = src.Notify.Counters(ctx); err != nil {
		return nil, err
	}
	s.problems += len(probs)
	if s.openIncidents, err = src.Incidents.CountOpen(ctx); err != nil {
		return nil, err
	}
	if s.streams, err = src.Streams.WorkStreams(ctx); err != nil {
		return nil, err
	}
	for _, st := range s.streams {
		n, err := src.Streams.Len(ctx, st)
		if err != nil {
			return nil, fmt.Errorf("length of %s: %w", st, err)
		}
		s.streamLen[st] = n
		gs, err := src.Streams.Groups(ctx, st)
		if err != nil {
			return nil, fmt.Errorf("groups of %s: %w", st, err)
		}
		for _, g := range gs {
			s.groups = append(s.groups, groupState{stream: st, GroupInfo: g})
		}
	}
	if s.deadLetters, err = src.Streams.Len(ctx, event.StreamDeadLetter); err != nil {
		return nil, fmt.Errorf("length of %s: %w", event.StreamDeadLetter, err)
	}
	if s.rejected, probs, err = src.Streams.Rejections(ctx); err != nil {
		return nil, err
	}
	s.problems += len(probs)
	return s, nil
}
