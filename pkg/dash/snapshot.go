// Package dash owns `hemostat dash`: a Bubble Tea terminal dashboard over what the other agents write to
// Redis (containers, samples, incidents, ledgers, the audit trail, heartbeats and the event streams). The
// model reads through a Source, so views are tested against a fake and the Redis source separately.
//
// Reads: every --refresh, one snapshot in three round trips whatever the number of containers (pipelined
// hashes), plus only the audit entries and false alarms appended since the last refresh. Live events are
// followed with a blocking XREAD on the work streams and the dead letter stream rather than the pub/sub
// mirror: the same ids that end the backfill start the follow, so nothing published in between or during
// a reconnect is lost, and an idle dashboard costs one blocked read.
//
// Why hemostat does or does not act, and what it does next about an incident, is said with the responder's
// own rules (pkg/respond, explain.go) under the policy each responder publishes in its heartbeat.
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
	"github.com/hemostat/hemostat/pkg/respond"
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
	Containers  []Container       // sorted by host/name
	Incidents   []schema.Incident // open incidents, oldest first; what a partly written hash lacks comes from its key
	Audit       []audit.Entry     // newest first
	FalseAlarms int               // false alarms in the last 24 hours
	Agents      []Agent
	Problems    []string // values that could not be decoded, "key: reason"
}

// Container is one known container with its latest sample and safety state.
type Container struct {
	container.Summary
	Sample  *container.Sample // nil when no recent sample
	History container.History
	Ledger  *schema.Ledger // the responder's safety state; nil when respond never decided for it
	Shadow  *schema.Ledger // the shadow ledger of dry-run, suggest and observe; nil when none
}

// Agent is one live agent instance.
type Agent struct {
	Kind          string
	Instance      string
	Version       string
	Host          string
	StartedAt     time.Time
	LastHeartbeat time.Time
	Policy        *respond.Config // a responder's published policy; nil for other kinds and older responders
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
			c.Ledger = &l
		}
		if l, ok := ledgers[schema.ShadowKey(t)]; ok {
			c.Shadow = &l
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
		v, err := agentView(a)
		if err != nil {
			snap.Problems = append(snap.Problems, fmt.Sprintf("%s: %v", schema.AgentKey(a.Kind, a.Instance), err))
		}
		snap.Agents = append(snap.Agents, v)
	}
	slices.SortFunc(snap.Agents, func(a, b Agent) int {
		return strings.Compare(a.Kind+":"+a.Instance, b.Kind+":"+b.Instance)
	})
	return snap, nil
}

// agentView is the dashboard's view of a heartbeat: a responder's policy decoded. A policy that does not
// decode is left out, with the error.
func agentView(a schema.Agent) (Agent, error) {
	v := Agent{Kind: a.Kind, Instance: a.Instance, Version: a.Version, Host: a.Host, StartedAt: a.StartedAt,
		LastHeartbeat: a.LastHeartbeat}
	if a.Policy == "" {
		return v, nil
	}
	cfg, err := respond.DecodePolicy(a.Policy)
	if err != nil {
		return v, err
	}
	v.Policy = &cfg
	return v, nil
}

// incidentView completes an incident read from its hash: what the hash lacks (it may have expired or be
// partly written) comes from its key, host/name/class.
func incidentView(in schema.Incident) schema.Incident {
	if parts := strings.SplitN(in.Key, "/", 3); len(parts) == 3 {
		if in.Host == "" {
			in.Host = parts[0]
		}
		if in.Container == "" {
			in.Container = parts[1]
		}
		if in.Class == "" {
			in.Class = parts[2]
		}
	}
	if in.State == "" {
		in.State = schema.StateOpen
	}
	return in
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
		if s, err := event.StreamFor(env.EventType, env.Host); err == nil {
			ev.Stream = s
		}
	}
	return ev, true
}
