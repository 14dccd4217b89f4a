// Package dash owns `hemostat dash`: a Bubble Tea terminal dashboard over what the other agents write to
// Redis (containers, samples, incidents, ledgers, the audit trail, heartbeats and the event streams). The
// model reads through a Source, so views are tested against a fake and the Redis source separately.
//
// Reads: every --refresh, one snapshot in three round trips whatever the number of containers (pipelined
// hashes), plus only the audit entries and false alarms appended since the last refresh. Live events are
// followed with a blocking XREAD on the work streams and the dead letter stream rather than the pub/sub
// mirror: the same ids that end the backfill start the follow, so nothing published in between or during
// a reconnect is lost, and an idle dashboard costs one blocked read.
package dash

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hemostat/hemostat/pkg/audit"
	"github.com/hemostat/hemostat/pkg/bus"
	"github.com/hemostat/hemostat/pkg/container"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

// Source is where the dashboard reads from: a snapshot on every refresh, and live events.
type Source interface {
	// Snapshot reads the current state.
	Snapshot(ctx context.Context) (Snapshot, error)
	// ContainerAudit reads the newest n audit entries of one container, newest first.
	ContainerAudit(ctx context.Context, host, name string, n int) ([]audit.Entry, error)
	// Follow sends recent events and then live ones to out until ctx is done, reporting connection trouble
	// as batches with Err set and retrying. It returns when ctx is done.
	Follow(ctx context.Context, out chan<- EventBatch) error
}

// Snapshot is everything the dashboard shows at one refresh.
type Snapshot struct {
	Time        time.Time
	Containers  []Container   // sorted by host/name
	Incidents   []Incident    // open incidents, oldest first
	Audit       []audit.Entry // newest first
	FalseAlarms int           // false alarms in the last 24 hours
	Agents      []Agent
	Problems    []string // values that could not be decoded, "key: reason"
}

// Container is one known container with its latest sample and safety state.
type Container struct {
	container.Summary
	Sample  *container.Sample // nil when no recent sample
	History container.History
	Ledger  *Ledger // nil when respond never decided for it
	Shadow  *Ledger // the shadow ledger of dry-run, suggest and observe; nil when none
}

// Ledger is the responder's safety state for one container.
type Ledger struct {
	Attempts     []time.Time // actions in the last hour
	BackoffStep  int
	NextAllowed  time.Time
	Breaker      string // closed or open
	BreakerUntil time.Time
	LastAction   string
	LastActionAt time.Time
	LastDecision string
	LastResult   string
	LastReason   string
	HealthySince time.Time
}

// Incident is one open incident with the analyzer's decision when it has made one.
type Incident struct {
	ID          string // host/name/class
	State       string
	Class       string
	Host        string
	Container   string
	ContainerID string
	Severity    string
	OpenedAt    time.Time
	AlertID     string
	Action      string
	Confidence  float64
	Method      string
	Reason      string
	RootCause   string
	Evidence    []string
	LLMError    string
	DecidedAt   time.Time
}

// Target is the incident's "host/name".
func (i Incident) Target() string { return event.Target(i.Host, i.Container) }

// Agent is one live agent instance.
type Agent struct {
	Kind          string
	Instance      string
	Version       string
	Host          string
	StartedAt     time.Time
	LastHeartbeat time.Time
}

// Event is one event seen on the bus.
type Event struct {
	Stream    string
	ID        string // stream entry id
	Time      time.Time
	Type      string
	Container string
	Incident  string
	Raw       string // the envelope JSON as published
}

// EventBatch is what Follow sends: events oldest first, or a connection error.
type EventBatch struct {
	Events   []Event
	Backfill bool  // recent history read at (re)connect, not live
	Err      error // the follow failed and is retrying
}

// readState reads containers, their latest samples, ledgers and shadow ledgers, the open incidents and
// the live agents, a few round trips whatever the number of containers, and turns them into a snapshot.
// Values that do not decode are skipped and reported in Problems.
func (s *RedisSource) readState(ctx context.Context, now time.Time) (Snapshot, error) {
	snap := Snapshot{Time: now}
	problems := func(errs []error) {
		for _, e := range errs {
			snap.Problems = append(snap.Problems, e.Error())
		}
	}
	sums, probs, err := s.c.Containers.All(ctx)
	if err != nil {
		return snap, err
	}
	problems(probs)
	targets := make([]string, 0, len(sums))
	keys := make([]string, 0, 2*len(sums))
	for t := range sums {
		targets = append(targets, t)
		keys = append(keys, schema.LedgerKey(t), schema.ShadowKey(t))
	}
	stats, probs, err := s.c.Containers.Stats(ctx, targets)
	if err != nil {
		return snap, err
	}
	problems(probs)
	ledgers, probs, err := s.c.Ledgers.GetMany(ctx, keys)
	if err != nil {
		return snap, err
	}
	problems(probs)
	for t, sum := range sums {
		c := Container{Summary: sum}
		if st, ok := stats[t]; ok {
			c.Sample, c.History = st.Sample, st.History
		}
		if l, ok := ledgers[schema.LedgerKey(t)]; ok {
			c.Ledger = ledgerView(l)
		}
		if l, ok := ledgers[schema.ShadowKey(t)]; ok {
			c.Shadow = ledgerView(l)
		}
		snap.Containers = append(snap.Containers, c)
	}
	slices.SortFunc(snap.Containers, func(a, b Container) int { return strings.Compare(a.Target(), b.Target()) })
	incs, probs, err := s.c.Incidents.ListOpen(ctx, MaxIncidents)
	if err != nil {
		return snap, err
	}
	problems(probs)
	for _, in := range incs {
		if in.State != schema.StateClosed { // closed between the monitor's two writes
			snap.Incidents = append(snap.Incidents, incidentView(in))
		}
	}
	agents, probs, err := s.c.Agents.List(ctx)
	if err != nil {
		return snap, fmt.Errorf("read agents: %w", err)
	}
	problems(probs)
	for _, a := range agents {
		snap.Agents = append(snap.Agents, Agent{Kind: a.Kind, Instance: a.Instance, Version: a.Version, Host: a.Host,
			StartedAt: a.StartedAt, LastHeartbeat: a.LastHeartbeat})
	}
	slices.SortFunc(snap.Agents, func(a, b Agent) int {
		return strings.Compare(a.Kind+":"+a.Instance, b.Kind+":"+b.Instance)
	})
	return snap, nil
}

// ledgerView is the dashboard's view of a ledger.
func ledgerView(l schema.Ledger) *Ledger {
	return &Ledger{Attempts: l.AttemptTimes(), BackoffStep: l.BackoffStep, NextAllowed: l.NextAllowed(),
		Breaker: l.Breaker, BreakerUntil: l.BreakerUntil(), LastAction: l.LastAction, LastActionAt: l.LastActionAt(),
		LastDecision: l.LastDecision, LastResult: l.LastResult, LastReason: l.LastReason, HealthySince: l.HealthySince()}
}

// incidentView is the dashboard's view of an incident; what the hash lacks (it may have expired or be
// partly written) comes from its key, host/name/class.
func incidentView(in schema.Incident) Incident {
	i := Incident{
		ID: in.Key, State: in.State, Class: in.Class, Host: in.Host, Container: in.Container,
		ContainerID: in.ContainerID, Severity: in.Severity, OpenedAt: in.OpenedAt, AlertID: in.AlertID,
		Action: in.Action, Confidence: in.Confidence, Method: in.Method, Reason: in.Reason, RootCause: in.RootCause,
		Evidence: in.Evidence, LLMError: in.LLM.Error, DecidedAt: in.DecidedAt,
	}
	parts := strings.SplitN(in.Key, "/", 3)
	if len(parts) == 3 {
		if i.Host == "" {
			i.Host = parts[0]
		}
		if i.Container == "" {
			i.Container = parts[1]
		}
		if i.Class == "" {
			i.Class = parts[2]
		}
	}
	if i.State == "" {
		i.State = schema.StateOpen
	}
	return i
}

// TypeDeadLetter is the timeline's type for entries of hemostat:dead_letter: events no agent could handle.
const TypeDeadLetter = "dead_letter"

// decodeEvent turns one stream entry (an envelope) into an event; bad JSON still shows, raw.
func decodeEvent(e bus.Entry) Event {
	ev := Event{Stream: e.Stream, ID: e.ID, Time: e.Time(), Raw: string(e.Raw)}
	var env event.Envelope
	err := json.Unmarshal(e.Raw, &env)
	if err == nil {
		fillFromEnvelope(&ev, env)
	}
	if e.Stream == event.StreamDeadLetter {
		// Show why it was dead-lettered with the entry, and never count it as the type it failed to be.
		ev.Type, ev.Time = TypeDeadLetter, e.Time()
		doc := map[string]any{}
		for k, v := range e.Extra {
			doc[k] = v
		}
		if err == nil {
			doc[event.Field] = json.RawMessage(e.Raw)
		} else {
			doc[event.Field] = string(e.Raw)
		}
		b, _ := json.Marshal(doc)
		ev.Raw = string(b)
		return ev
	}
	if err != nil {
		ev.Type = "malformed"
	}
	return ev
}

func fillFromEnvelope(ev *Event, env event.Envelope) {
	ev.Type = env.EventType
	ev.Incident = env.Incident
	if !env.Timestamp.IsZero() {
		ev.Time = env.Timestamp
	}
	var names struct {
		Container     string `json:"container"`
		ContainerName string `json:"container_name"`
	}
	_ = json.Unmarshal(env.Data, &names)
	ev.Container = names.Container
	if ev.Container == "" {
		ev.Container = names.ContainerName
	}
	if ev.Container == "" {
		if p := strings.SplitN(env.Incident, "/", 3); len(p) == 3 {
			ev.Container = p[1]
		}
	}
}

// decodeListItem turns one item of hemostat:events:all into an event.
func decodeListItem(item schema.StoredEvent) (Event, bool) {
	t, _ := time.Parse(time.RFC3339Nano, item.Timestamp)
	ev := Event{Time: t, Type: item.EventType, Raw: string(item.Event)}
	var env event.Envelope
	if err := json.Unmarshal(item.Event, &env); err == nil {
		fillFromEnvelope(&ev, env)
		ev.ID = env.ID
		if s, err := event.StreamFor(env.EventType); err == nil {
			ev.Stream = s
		}
	}
	return ev, true
}
