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
	"strconv"
	"strings"
	"time"

	"github.com/hemostat/hemostat/pkg/audit"
	"github.com/hemostat/hemostat/pkg/container"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/store"
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

// decodeState turns the raw Redis read into a snapshot, skipping values it cannot decode.
func decodeState(raw store.DashState, now time.Time) Snapshot {
	s := Snapshot{Time: now}
	problem := func(key string, err error) {
		s.Problems = append(s.Problems, fmt.Sprintf("%s: %v", key, err))
	}
	for target, js := range raw.Containers {
		var c Container
		if err := json.Unmarshal([]byte(js), &c.Summary); err != nil {
			problem(event.KeyContainers+" "+target, err)
			continue
		}
		if c.Host == "" || c.Name == "" {
			c.Host, c.Name, _ = strings.Cut(target, "/")
		}
		if st := raw.Stats[target]; st != nil {
			if v, ok := st["sample"]; ok {
				var smp container.Sample
				if err := json.Unmarshal([]byte(v), &smp); err != nil {
					problem("stats "+target, err)
				} else {
					c.Sample = &smp
				}
			}
			if v, ok := st["history"]; ok {
				if err := json.Unmarshal([]byte(v), &c.History); err != nil {
					problem("stats history "+target, err)
				}
			}
		}
		if f := raw.Ledgers[target]; f != nil {
			c.Ledger = decodeLedger(f)
		}
		if f := raw.Shadows[target]; f != nil {
			c.Shadow = decodeLedger(f)
		}
		s.Containers = append(s.Containers, c)
	}
	slices.SortFunc(s.Containers, func(a, b Container) int { return strings.Compare(a.Target(), b.Target()) })
	for _, in := range raw.Incidents {
		if i := decodeIncident(in); i.State != "closed" { // closed between the monitor's two writes
			s.Incidents = append(s.Incidents, i)
		}
	}
	for _, a := range raw.Agents {
		s.Agents = append(s.Agents, Agent{
			Kind:          a.Kind,
			Instance:      a.Instance,
			Version:       a.Fields["version"],
			Host:          a.Fields["host"],
			StartedAt:     parseTime(a.Fields["started_at"]),
			LastHeartbeat: parseTime(a.Fields["last_heartbeat"]),
		})
	}
	slices.SortFunc(s.Agents, func(a, b Agent) int {
		return strings.Compare(a.Kind+":"+a.Instance, b.Kind+":"+b.Instance)
	})
	return s
}

func decodeLedger(f map[string]string) *Ledger {
	l := &Ledger{
		BackoffStep:  atoi(f["backoff_step"]),
		NextAllowed:  msTime(f["next_allowed_ms"]),
		Breaker:      f["breaker"],
		BreakerUntil: msTime(f["breaker_until_ms"]),
		LastAction:   f["last_action"],
		LastActionAt: msTime(f["last_action_ms"]),
		LastDecision: f["last_decision"],
		LastResult:   f["last_result"],
		LastReason:   f["last_reason"],
		HealthySince: msTime(f["healthy_since_ms"]),
	}
	if l.Breaker == "" {
		l.Breaker = "closed"
	}
	var ms []int64
	if err := json.Unmarshal([]byte(f["attempts"]), &ms); err == nil {
		for _, v := range ms {
			l.Attempts = append(l.Attempts, time.UnixMilli(v).UTC())
		}
	}
	return l
}

func decodeIncident(in store.DashIncident) Incident {
	f := in.Fields
	i := Incident{
		ID:          in.ID,
		State:       f["state"],
		Class:       f["class"],
		Host:        f["host"],
		Container:   f["container"],
		ContainerID: f["container_id"],
		Severity:    f["severity"],
		OpenedAt:    parseTime(f["opened_at"]),
		AlertID:     f["alert_id"],
		Action:      f["action"],
		Method:      f["analysis_method"],
		Reason:      f["reason"],
		RootCause:   f["root_cause"],
		LLMError:    f["llm_error"],
		DecidedAt:   parseTime(f["decided_at"]),
	}
	if c, err := strconv.ParseFloat(f["confidence"], 64); err == nil {
		i.Confidence = c
	}
	_ = json.Unmarshal([]byte(f["evidence"]), &i.Evidence)
	// The id is host/name/class; fill what the hash lacks (it may have expired or be partly written).
	parts := strings.SplitN(in.ID, "/", 3)
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
	if i.OpenedAt.IsZero() && in.OpenedMS > 0 {
		i.OpenedAt = time.UnixMilli(in.OpenedMS).UTC()
	}
	if i.State == "" {
		i.State = "open"
	}
	return i
}

// TypeDeadLetter is the timeline's type for entries of hemostat:dead_letter: events no agent could handle.
const TypeDeadLetter = "dead_letter"

// decodeEvent turns one stream entry (an envelope) into an event; bad JSON still shows, raw.
func decodeEvent(e store.DashEntry) Event {
	ev := Event{Stream: e.Stream, ID: e.ID, Time: e.Time(), Raw: e.Value}
	var env event.Envelope
	err := json.Unmarshal([]byte(e.Value), &env)
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
			doc[event.Field] = json.RawMessage(e.Value)
		} else {
			doc[event.Field] = e.Value
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

// decodeListItem turns one item of hemostat:events:all ({"timestamp", "event_type", "event"}) into an event.
func decodeListItem(s string) (Event, bool) {
	var item struct {
		Timestamp time.Time       `json:"timestamp"`
		EventType string          `json:"event_type"`
		Event     json.RawMessage `json:"event"`
	}
	if err := json.Unmarshal([]byte(s), &item); err != nil || len(item.Event) == 0 {
		return Event{}, false
	}
	ev := Event{Time: item.Timestamp, Type: item.EventType, Raw: string(item.Event)}
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

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

func msTime(s string) time.Time {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(n).UTC()
}

func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}
