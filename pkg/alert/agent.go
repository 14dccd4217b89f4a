package alert

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/hemostat/hemostat/pkg/bus"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/redact"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

// Group is the alert agent's consumer group.
const Group = "alert"

// Store is the notification state the alert agent keeps; *notify.Store (pkg/store/notify) implements it.
type Store interface {
	RecordEvent(ctx context.Context, env event.Envelope) (bool, error)
	Claim(ctx context.Context, incident, state string, ttl time.Duration, release ...string) (int64, error)
	Release(ctx context.Context, incident string, states ...string) error
	Count(ctx context.Context, c schema.NotifyCounter, n int64) error
	RecordFailure(ctx context.Context, f schema.NotifyFailure) error
}

// IncidentReader reads what the monitor and the analyzer recorded on an incident; *incidents.Store
// implements it.
type IncidentReader interface {
	Get(ctx context.Context, key string) (schema.Incident, bool, error)
}

// Stores are the bodies of state the alert agent uses.
type Stores struct {
	Notify    Store
	Incidents IncidentReader
}

// Consumer reads the bus; *bus.Bus implements it.
type Consumer interface {
	Consume(ctx context.Context, g bus.Group, h bus.Handler) error
}

// Options configure the alert agent.
type Options struct {
	Instance     string        // consumer name within the group
	Renotify     time.Duration // repeats of an incident state within this window are counted, not sent; default 1h
	NotifyOnOpen bool          // also notify when an incident opens (health_alert)
	Delivery     DeliveryOptions
	Logger       *slog.Logger
	// Report, when set, is called after each final delivery outcome (tests, the run command's summary).
	Report func(sink string, n Notification, err error)
}

// Agent consumes incident events, stores them for the views, and notifies each incident state change once.
type Agent struct {
	o     Options
	st    Store
	inc   IncidentReader
	sinks []Sink
	red   *redact.Redactor
	log   *slog.Logger
	d     *dispatcher
}

// New builds an alert agent. red (may be nil) scrubs the sinks' secrets from every log line and stored error.
func New(o Options, st Stores, sinks []Sink, red *redact.Redactor) *Agent {
	if o.Renotify <= 0 {
		o.Renotify = DefaultRenotify
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Instance == "" {
		o.Instance = "alert"
	}
	if red == nil {
		red = redact.New(nil)
	}
	log := slog.New(red.Handler(o.Logger.Handler()))
	a := &Agent{o: o, st: st.Notify, inc: st.Incidents, sinks: sinks, red: red, log: log}
	a.d = newDispatcher(o.Delivery, sinks, st.Notify, red, log, o.Report)
	return a
}

// Streams are the streams the agent consumes. health_alert is always read, so that new incidents reach
// hemostat:events:* for the views; it is notified only with NotifyOnOpen.
func (a *Agent) Streams() []string {
	return []string{event.StreamRemediationComplete, event.StreamFalseAlarm, event.StreamContainerRecovered,
		event.StreamHealthAlert}
}

// Run consumes until ctx is cancelled, then lets queued notifications drain for up to the drain timeout.
//
// Trade-off: an entry is acknowledged once its notification is queued, not once it is delivered, so a
// crash loses what was queued but not sent. In exchange the consumer never waits on Slack. Deliveries that
// fail for good (retries exhausted, queue full, stopped while queued) are counted and kept in
// hemostat:notify:failed, so nothing is lost silently.
func (a *Agent) Run(ctx context.Context, c Consumer) error {
	if len(a.sinks) == 0 {
		a.log.Warn("no notification sink configured: events are stored and counted, nothing is sent")
	}
	dctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	a.d.start(dctx)
	err := c.Consume(ctx, bus.Group{Name: Group, Consumer: a.o.Instance, Streams: a.Streams()}, a.Handle)
	// Consume has returned: no handler runs any more, so nothing enqueues after the queues close.
	a.d.stop(cancel)
	if err != nil {
		return fmt.Errorf("alert: %w", err)
	}
	return nil
}

// Handle stores one event, applies the policy and the deduplication, and queues the notification.
// It fails open: when Redis cannot say whether the state was already notified, the notification is sent.
func (a *Agent) Handle(ctx context.Context, m bus.Message) error {
	env := m.Envelope
	if _, err := a.st.RecordEvent(ctx, env); err != nil {
		a.log.Warn("store event", "event_id", env.ID, "event_type", env.EventType, "err", err)
	}
	dec, err := Decide(env, a.o.NotifyOnOpen)
	if err != nil {
		a.log.Warn("undecodable event ignored", "event_id", env.ID, "event_type", env.EventType, "err", err)
		return nil
	}
	n := dec.Notification
	if dec.Suppressed != "" {
		a.count(ctx, schema.NotifyCounter{Counter: schema.CounterSuppressed, Label: dec.Suppressed})
		a.log.Debug("notification suppressed", "incident", n.Incident, "reason", dec.Suppressed)
		return nil
	}
	if !dec.Send {
		return nil
	}
	if n.Incident != "" {
		seen, err := a.st.Claim(ctx, n.Incident, string(n.State), a.o.Renotify, releasedBy(n.State)...)
		switch {
		case err != nil:
			a.log.Warn("deduplication unavailable; sending anyway", "incident", n.Incident, "state", string(n.State), "err", err)
		case seen > 1 && (n.Escalation || n.Relapse != ""):
			// Never a repeat: a human must act, or the incident came back. The claim above still counts it,
			// so a later plain repeat of the state (a denial by the open breaker) is suppressed.
		case seen > 1:
			a.count(ctx, schema.NotifyCounter{Counter: schema.CounterDeduplicated, Label: string(n.State)})
			a.log.Debug("repeat not sent", "incident", n.Incident, "state", string(n.State), "seen", seen)
			return nil
		}
		a.enrich(ctx, &n)
	}
	a.d.enqueue(ctx, n)
	return nil
}

// releasedBy lists the claims a first notification of state forgets, starting a new occurrence: a recovery
// forgets the incident's other states, so the next crash is notified in full; any other state forgets the
// recovery, so the next recovery is notified too.
func releasedBy(state State) []string {
	if state != StateRecovered {
		return []string{string(StateRecovered)}
	}
	out := make([]string, 0, len(States)-1)
	for _, s := range States {
		if s != StateRecovered {
			out = append(out, string(s))
		}
	}
	return out
}

// enrich fills what the analyzer and the monitor wrote on the incident: root cause, evidence, severity,
// and the analysis when the event did not carry it.
func (a *Agent) enrich(ctx context.Context, n *Notification) {
	in, found, err := a.inc.Get(ctx, n.Incident)
	if err != nil && !found {
		a.log.Debug("read incident", "incident", n.Incident, "err", err)
		return
	}
	if !found {
		return
	}
	if n.RootCause == "" {
		n.RootCause = in.RootCause
	}
	if len(n.Evidence) == 0 {
		n.Evidence = in.Evidence
	}
	if n.Severity == "" {
		n.Severity = in.Severity
	}
	if n.Method == "" {
		n.Method = in.Method
	}
	if n.Confidence == nil && in.Method != "" {
		v := in.Confidence
		n.Confidence = &v
	}
	if n.Action == "" && n.State != StateOpened && n.State != StateRecovered {
		n.Action = in.Action
	}
	if n.ContainerID == "" {
		n.ContainerID = in.ContainerID
	}
}

func (a *Agent) count(ctx context.Context, c schema.NotifyCounter) {
	if err := a.st.Count(ctx, c, 1); err != nil {
		a.log.Debug("count notification", "counter", c.Field(), "err", err)
	}
}
