package analyze

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/hemostat/hemostat/pkg/analyze/llm"
	"github.com/hemostat/hemostat/pkg/bus"
	"github.com/hemostat/hemostat/pkg/container"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/redact"
	"github.com/hemostat/hemostat/pkg/store/incidents"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

// Agent and consumer group names.
const (
	AgentName = "analyze"
	GroupName = "analyze"
)

// RejectNoHost is the reason code (bus.RejectError) of a health alert without a host: its remediation
// request would go to a host's request stream that no responder reads, so it is refused for good and the
// bus moves it to the dead letter stream.
const RejectNoHost = "no_host"

// LLM modes.
const (
	// ModeAdvisory publishes the rules' decision at once; the LLM's root cause and evidence follow as an
	// enrichment of the incident.
	ModeAdvisory = "advisory"
	// ModeDecide uses the validated LLM decision when it comes within the timeout, for the classes that
	// can wait (crash_loop and the resource classes); crashed, oom_killed and unhealthy never wait.
	ModeDecide = "decide"
)

// Defaults of the LLM's use.
const (
	defaultLLMTimeout   = 10 * time.Second
	defaultLLMParallel  = 4
	defaultClaimStaleBy = 3 // a claim older than this many timeouts is taken over
	recordTimeout       = 2 * time.Second
)

// IncidentStore is the incident state the analyzer reads and records into; *incidents.Store implements it.
type IncidentStore interface {
	BeginAnalysis(ctx context.Context, key string, oom *incidents.OOMKill) (schema.Incident, bool, int, error)
	RecordLLM(ctx context.Context, key string, l schema.LLMResult, rootCause string, evidence []string) error
	ClaimLLM(ctx context.Context, key, openedAt string, now time.Time, stale time.Duration) (bool, error)
	// RecordDecisionsOp returns the write recording decisions on their incidents, a side write of the
	// Publisher's round trip that publishes their answers.
	RecordDecisionsOp(ds []incidents.Decision) bus.SideWrite
}

// StatsStore gives a container's latest samples, for the LLM's context; *containers.Store implements it.
type StatsStore interface {
	Stats(ctx context.Context, targets []string) (map[string]schema.Stats, []error, error)
}

// LedgerReader gives a container's safety ledger, for the LLM's context; *ledger.Store implements it.
type LedgerReader interface {
	Get(ctx context.Context, key string) (schema.Ledger, bool, error)
}

// Stores are the bodies of state the analyzer reads and writes.
type Stores struct {
	Incidents IncidentStore
	Stats     StatsStore
	Ledger    LedgerReader
}

// Publisher publishes the analyzer's answers, each with its side writes (the decisions' records), in one
// round trip; *bus.Bus implements it.
type Publisher interface {
	PublishManyWith(ctx context.Context, out []bus.Outgoing) error
}

// Consumer hands the analyzer the health alerts of its consumer group, a read at a time; its options'
// Concurrency bounds the alerts of a read HandleBatch passes to Handle at once. *bus.Bus implements it.
type Consumer interface {
	ConsumeBatch(ctx context.Context, g bus.Group, h bus.BatchHandler) error
	Options() bus.Options
}

// Bus is the analyzer's side of the bus: what it consumes with and what it publishes through.
type Bus interface {
	Publisher
	Consumer
}

var (
	_ Bus           = (*bus.Bus)(nil)
	_ IncidentStore = (*incidents.Store)(nil)
)

// Options configure an Analyzer. Zero values take the defaults.
type Options struct {
	MinConfidence  float64       // below it an alert is a false alarm; default 0.7
	OOMWindow      time.Duration // a second OOM kill within it escalates; default 1h
	LLM            llm.Provider  // nil: rules only
	LLMMode        string        // advisory (default) or decide
	LLMTimeout     time.Duration // per incident, context and call; default 10s
	LLMConcurrency int           // advisory calls in flight at once; default 4, more are skipped
	Inspector      Inspector     // nil: no inspect or log context for the LLM
	Consumer       string        // consumer name within the group
	Logger         *slog.Logger
}

// Stats counts what the analyzer has done.
type Stats struct {
	Alerts       atomic.Int64 // alerts decided
	Remediations atomic.Int64 // remediation_needed published with an action
	Escalations  atomic.Int64 // remediation_needed published with action none
	FalseAlarms  atomic.Int64
	Duplicates   atomic.Int64 // redeliveries of an alert already answered
	Ignored      atomic.Int64 // well-formed events that are not health alerts
	LLMCalls     atomic.Int64
	LLMErrors    atomic.Int64 // failed calls and rejected verdicts
	LLMSkipped   atomic.Int64 // advisory calls skipped because LLMConcurrency were in flight
	LLMRefused   atomic.Int64 // decide-mode proposals outside the actions the model may choose, escalated
}

// Analyzer is the analyze agent: it answers every health alert with a remediation request or a false alarm.
type Analyzer struct {
	o     Options
	st    Stores
	b     Bus
	log   *slog.Logger
	stats Stats
	sem   chan struct{}

	// Set by start, from the context of the first Run, Handle or HandleBatch.
	started sync.Once
	bg      context.Context // parent of advisory LLM calls; cancelled at stop
	stop    context.CancelFunc
	wg      sync.WaitGroup // advisory LLM calls
	commits *committer
	life    context.Context // the committer's; cancelled by Close, after the handlers are done
	endLife context.CancelFunc
	cwg     sync.WaitGroup
	closed  sync.Once
}

// New returns an analyzer over its stores and the bus (*bus.Bus; pkg/analyze/analyzetest has an in-memory
// one of both). It starts nothing: Run, or the first Handle, starts the group committer under the caller's
// context. Call Run, or Handle and then Close.
func New(o Options, st Stores, b Bus) *Analyzer {
	if o.MinConfidence <= 0 {
		o.MinConfidence = DefaultMinConfidence
	}
	if o.OOMWindow <= 0 {
		o.OOMWindow = DefaultOOMWindow
	}
	if o.LLMMode == "" {
		o.LLMMode = ModeAdvisory
	}
	if o.LLMTimeout <= 0 {
		o.LLMTimeout = defaultLLMTimeout
	}
	if o.LLMConcurrency <= 0 {
		o.LLMConcurrency = defaultLLMParallel
	}
	if o.Consumer == "" {
		o.Consumer = "analyze-" + strconv.Itoa(int(time.Now().UnixNano()%1e6))
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Analyzer{o: o, st: st, b: b, log: o.Logger.With("agent", AgentName), sem: make(chan struct{}, o.LLMConcurrency),
		commits: newCommitter(b, st.Incidents)}
}

// start gives the analyzer its lifetime, once: the advisory LLM calls and the committer live until Close,
// under ctx's values but not its cancellation (a handler's context ends with its read).
func (a *Analyzer) start(ctx context.Context) {
	a.started.Do(func() {
		base := context.WithoutCancel(ctx)
		a.bg, a.stop = context.WithCancel(base)
		a.life, a.endLife = context.WithCancel(base)
		a.cwg.Go(func() { a.commits.run(a.life) }) // exits at Close
	})
}

// Stats returns the analyzer's counters.
func (a *Analyzer) Stats() *Stats { return &a.stats }

// Run consumes health alerts until ctx is cancelled, then waits for the advisory LLM calls, which the
// cancellation also ends.
func (a *Analyzer) Run(ctx context.Context) error {
	a.start(ctx)
	stop := context.AfterFunc(ctx, a.stop)
	defer stop()
	method := MethodRules
	if a.o.LLM != nil {
		method = a.o.LLM.Method()
	}
	a.log.Info("analyzing health alerts", "group", GroupName, "consumer", a.o.Consumer, "llm", method, "llm_mode", a.o.LLMMode)
	err := a.b.ConsumeBatch(ctx, bus.Group{Name: GroupName, Consumer: a.o.Consumer, Streams: []string{event.StreamHealthAlert}}, a.HandleBatch)
	a.Close()
	s := &a.stats
	a.log.Info("analyzer stopped", "alerts", s.Alerts.Load(), "remediations", s.Remediations.Load(),
		"escalations", s.Escalations.Load(), "false_alarms", s.FalseAlarms.Load(), "duplicates", s.Duplicates.Load(),
		"ignored", s.Ignored.Load(), "llm_calls", s.LLMCalls.Load(), "llm_errors", s.LLMErrors.Load(), "llm_skipped", s.LLMSkipped.Load(),
		"llm_refused", s.LLMRefused.Load())
	return err
}

// Close cancels the advisory LLM calls in flight and waits for them, then stops the committer. Call it
// once no Handle is running (Run does).
func (a *Analyzer) Close() {
	a.started.Do(func() {}) // never started: nothing runs, and a later Handle fails with errStopped
	a.closed.Do(func() {
		if a.stop == nil {
			return
		}
		a.stop()
		a.wg.Wait()
		a.endLife()
		a.cwg.Wait()
	})
}

// alertRef is one alert being decided.
type alertRef struct {
	env      event.Envelope
	alert    *event.ContainerUnhealthy
	incident string
	state    schema.Incident // the incident as read (zero when not read or not found)
}

// Handle decides one health alert and publishes the answer. A redelivered alert that was already
// answered is skipped; an event that is not a health alert is logged and acked; a health alert without a
// host is refused with a bus.RejectError (RejectNoHost), which the bus dead-letters.
func (a *Analyzer) Handle(ctx context.Context, m bus.Message) error {
	a.start(ctx)
	if a.life == nil {
		return errStopped // closed before it ever started
	}
	start := time.Now()
	ref, ok, err := a.alertOf(m)
	if !ok {
		return err // nil (acked) or a RejectError (dead-lettered)
	}
	env, al := ref.env, ref.alert
	repeats := 0
	if a.needsState(m, al) {
		var oom *incidents.OOMKill
		if al.Class == event.ClassOOMKilled {
			oom = &incidents.OOMKill{Target: event.Target(env.Host, al.ContainerName), AlertID: env.ID, At: detectedAt(env, al), Window: a.o.OOMWindow}
		}
		in, _, n, err := a.st.Incidents.BeginAnalysis(ctx, ref.incident, oom)
		if err != nil {
			return err // Redis trouble: the bus retries
		}
		if in.DecisionAlertID == env.ID {
			a.stats.Duplicates.Add(1)
			a.log.Debug("alert already answered", "incident", ref.incident, "event_id", env.ID)
			return nil
		}
		ref.state, repeats = in, n
	}
	d := Decide(al, Facts{OOMRepeats: repeats, OOMWindow: a.o.OOMWindow, MinConfidence: a.o.MinConfidence})
	d = a.consult(ctx, ref, d)
	dur := time.Since(start)

	out, stream, err := answer(ref, d, dur)
	if err != nil {
		return err
	}
	// The answer and its record travel in one pipeline, shared with the answers of concurrent handlers.
	// If only part lands, the redelivery publishes the answer again under the same id, which consumers
	// dedupe.
	err = a.commits.publish(ctx, a.life, bus.Outgoing{Stream: stream, Env: out},
		incidents.Decision{Incident: ref.incident, Analysis: decisionRecord(d, env.ID, out.ID)})
	if err != nil {
		return err
	}
	a.count(d)
	a.log.Debug("alert decided", "incident", ref.incident, "action", d.Action, "false_alarm", d.FalseAlarm,
		"confidence", d.Confidence, "analysis_method", d.Method, "duration_ms", float64(dur.Microseconds())/1000)
	return nil
}

// alertOf decodes a health alert. Anything else is counted, logged and acked: ok is false, err nil. A
// health alert without a host is refused: ok is false, err a RejectError (RejectNoHost), which the bus
// dead-letters, since its answer would go to no host's request stream.
func (a *Analyzer) alertOf(m bus.Message) (ref alertRef, ok bool, err error) {
	env := m.Envelope
	al, err := event.DecodeData[event.ContainerUnhealthy](env)
	if err != nil {
		a.stats.Ignored.Add(1)
		a.log.Warn("not a health alert; ignored", "entry", m.ID, "event_id", env.ID, "event_type", env.EventType, "err", err)
		return alertRef{}, false, nil
	}
	if env.Host == "" {
		return alertRef{}, false, bus.Reject(RejectNoHost, "health alert %s for container %q has no host: "+
			"no host's responder would read its remediation request", env.ID, al.ContainerName)
	}
	ref = alertRef{env: env, alert: al, incident: env.Incident}
	if ref.incident == "" {
		ref.incident = event.IncidentKey(env.Host, al.ContainerName, al.Class)
	}
	return ref, true, nil
}

// needsState reports whether deciding the alert needs what Redis knows, read only when it can matter: a
// redelivery may already be answered, an OOM kill needs the container's recent kills, the LLM needs its
// cache. A first delivery of any other alert is decided by the rules alone and answered in one write.
func (a *Analyzer) needsState(m bus.Message, al *event.ContainerUnhealthy) bool {
	return m.Deliveries != 1 || al.Class == event.ClassOOMKilled || a.o.LLM != nil
}

// HandleBatch decides the alerts of one read: those the rules decide alone are answered together, their
// answers and incident records in one round trip; the others (redeliveries, OOM kills, an LLM configured)
// go through Handle, as many at once as the bus's Concurrency.
func (a *Analyzer) HandleBatch(ctx context.Context, ms []bus.Message) []error {
	a.start(ctx)
	start := time.Now()
	errs := make([]error, len(ms))
	if a.life == nil {
		for i := range errs {
			errs[i] = errStopped // closed before it ever started
		}
		return errs
	}
	var (
		outs    []bus.Outgoing
		recs    []incidents.Decision
		ds      []Decision
		answers []int
		single  []int
	)
	for i, m := range ms {
		ref, ok, err := a.alertOf(m)
		if !ok {
			errs[i] = err // nil (acked) or a RejectError (dead-lettered)
			continue
		}
		if a.needsState(m, ref.alert) {
			single = append(single, i)
			continue
		}
		d := Decide(ref.alert, Facts{OOMWindow: a.o.OOMWindow, MinConfidence: a.o.MinConfidence})
		out, stream, err := answer(ref, d, time.Since(start))
		if err != nil {
			errs[i] = err
			continue
		}
		outs = append(outs, bus.Outgoing{Stream: stream, Env: out})
		recs = append(recs, incidents.Decision{Incident: ref.incident, Analysis: decisionRecord(d, ref.env.ID, out.ID)})
		ds, answers = append(ds, d), append(answers, i)
	}
	for from := 0; from < len(outs); from += maxCommit {
		to := min(from+maxCommit, len(outs))
		if err := publishAnswers(ctx, a.b, a.st.Incidents, outs[from:to], recs[from:to]); err != nil {
			for _, i := range answers[from:to] {
				errs[i] = err // Redis trouble: the bus retries; a partial write is published again under the same ids
			}
			continue
		}
		for k, d := range ds[from:to] {
			a.count(d)
			a.log.Debug("alert decided", "incident", recs[from+k].Incident, "action", d.Action, "false_alarm", d.FalseAlarm,
				"confidence", d.Confidence, "analysis_method", d.Method)
		}
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(a.b.Options().Concurrency, 1))
	for _, i := range single {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = a.Handle(ctx, ms[i])
		})
	}
	wg.Wait()
	return errs
}

func (a *Analyzer) count(d Decision) {
	a.stats.Alerts.Add(1)
	switch {
	case d.FalseAlarm:
		a.stats.FalseAlarms.Add(1)
	case d.Action == event.ActionNone:
		a.stats.Escalations.Add(1)
	default:
		a.stats.Remediations.Add(1)
	}
}

// detectedAt is when Docker saw the failure, or the alert's time without it.
func detectedAt(env event.Envelope, al *event.ContainerUnhealthy) time.Time {
	if !al.EventTime.IsZero() {
		return al.EventTime
	}
	return env.Timestamp
}

// answer builds the envelope answering an alert. Its id is derived from the alert's, so publishing it
// again after a crash produces the same event, which every consumer dedupes by id.
func answer(ref alertRef, d Decision, dur time.Duration) (event.Envelope, string, error) {
	ms := float64(dur.Microseconds()) / 1000
	var p event.Payload
	if d.FalseAlarm {
		p = &event.FalseAlarm{Container: ref.alert.ContainerName, ContainerID: ref.alert.ContainerID, Reason: d.Reason,
			Confidence: d.Confidence, AnalysisMethod: d.Method, Class: ref.alert.Class, DurationMS: ms}
	} else {
		p = &event.RemediationNeeded{Container: ref.alert.ContainerName, ContainerID: ref.alert.ContainerID,
			Action: d.Action, Reason: d.Reason, Confidence: d.Confidence, AnalysisMethod: d.Method,
			RootCause: d.RootCause, Evidence: d.Evidence, Class: ref.alert.Class, DurationMS: ms, EventTime: ref.alert.EventTime,
			ProposedAction: d.Proposed}
	}
	if err := p.Validate(); err != nil {
		return event.Envelope{}, "", fmt.Errorf("answer %s: %w", ref.incident, err)
	}
	out, err := event.New(AgentName, ref.env.Host, ref.incident, ref.env.ID, p)
	if err != nil {
		return event.Envelope{}, "", err
	}
	// A request goes to its host's stream, which that host's responders read and no other host's; without
	// a host there is none (alertOf refuses such an alert before it is decided).
	stream, err := event.StreamFor(out.EventType, out.Host)
	if err != nil {
		return event.Envelope{}, "", fmt.Errorf("answer %s: %w", ref.incident, err)
	}
	out.ID = AnswerID(ref.env.ID)
	return out, stream, nil
}

// AnswerID derives the id of the analyzer's answer from the alert's id: a UUIDv7 with the alert's time
// and bits from a hash of its id, so it sorts by time and is the same on every redelivery.
func AnswerID(alertID string) string {
	sum := sha256.Sum256([]byte("hemostat/analyze/" + alertID))
	var u uuid.UUID
	copy(u[:], sum[:16])
	if in, err := uuid.Parse(alertID); err == nil && in.Version() == 7 {
		copy(u[:6], in[:6])
	}
	u[6] = (u[6] & 0x0f) | 0x70 // version 7
	u[8] = (u[8] & 0x3f) | 0x80 // RFC 9562 variant
	return u.String()
}

// decisionRecord is the incident's record of a decision.
func decisionRecord(d Decision, alertID, answerID string) schema.Analysis {
	return schema.Analysis{Action: d.Action, Confidence: d.Confidence, Method: d.Method, Reason: d.Reason,
		RootCause: d.RootCause, Evidence: d.Evidence, FalseAlarm: d.FalseAlarm, DecidedAt: time.Now().UTC(),
		DecisionAlertID: alertID, DecisionEventID: answerID, Proposed: d.Proposed, LLM: schema.LLMResult{Error: d.LLMError}}
}

// mayWait reports whether a class may wait for an LLM in decide mode. A crash, an OOM kill or a failing
// healthcheck is never held up: the rules' restart is right and time matters.
func mayWait(class string) bool {
	switch class {
	case event.ClassCrashed, event.ClassOOMKilled, event.ClassUnhealthy:
		return false
	}
	return true
}

// consult brings the LLM in, once per incident: a cached verdict is reused; in decide mode the classes
// that may wait ask now within the timeout; otherwise the call runs in the background and enriches the
// incident. The rules' decision stands whenever the LLM fails.
func (a *Analyzer) consult(ctx context.Context, ref alertRef, rules Decision) Decision {
	if a.o.LLM == nil {
		return rules
	}
	decide := a.o.LLMMode == ModeDecide && mayWait(ref.alert.Class)
	allowed := AllowedActions(ref.alert.Class, ref.alert.Labels)
	if v, ok := cachedVerdict(ref.state); ok {
		if decide {
			return a.apply(v, ref.state.LLM.Method, allowed)
		}
		rules.RootCause, rules.Evidence = v.RootCause, v.Evidence
		return rules
	}
	if !decide {
		a.enrichAsync(ctx, ref)
		return rules
	}
	claimed, err := a.st.Incidents.ClaimLLM(ctx, ref.incident, schema.FormatTime(ref.state.OpenedAt), time.Now(), defaultClaimStaleBy*a.o.LLMTimeout)
	if err != nil || !claimed {
		return rules // another instance is asking, or Redis is in trouble: never wait
	}
	cctx, cancel := context.WithTimeout(ctx, a.o.LLMTimeout)
	defer cancel()
	v, err := a.diagnose(cctx, ref)
	if err != nil {
		rules.LLMError = err.Error()
		return rules
	}
	return a.apply(v, a.o.LLM.Method(), allowed)
}

// apply turns a verdict into the decision, counting and logging a proposal the model may not make.
func (a *Analyzer) apply(v Verdict, method string, allowed []string) Decision {
	d := v.Apply(method, a.o.MinConfidence, allowed)
	if d.Proposed != "" {
		a.stats.LLMRefused.Add(1)
		a.log.Warn("llm proposal refused; escalating", "action", d.Proposed, "allowed", allowed)
	}
	return d
}

// cachedVerdict returns the verdict stored for this opening of the incident, if it is still valid.
func cachedVerdict(in schema.Incident) (Verdict, bool) {
	if in.LLM.Verdict == "" || in.LLM.OpenedAt != schema.FormatTime(in.OpenedAt) {
		return Verdict{}, false
	}
	v, err := ParseVerdict([]byte(in.LLM.Verdict))
	return v, err == nil
}

// enrichAsync starts the incident's one background LLM call, unless LLMConcurrency calls are in flight
// or another alert of the incident already claimed it. The goroutine ends with the call, bounded by
// LLMTimeout and by Close.
func (a *Analyzer) enrichAsync(ctx context.Context, ref alertRef) {
	if a.bg.Err() != nil {
		return
	}
	select {
	case a.sem <- struct{}{}:
	default:
		a.stats.LLMSkipped.Add(1)
		return
	}
	claimed, err := a.st.Incidents.ClaimLLM(ctx, ref.incident, schema.FormatTime(ref.state.OpenedAt), time.Now(), defaultClaimStaleBy*a.o.LLMTimeout)
	if err != nil || !claimed {
		<-a.sem
		return
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer func() { <-a.sem }()
		cctx, cancel := context.WithTimeout(a.bg, a.o.LLMTimeout)
		defer cancel()
		_, _ = a.diagnose(cctx, ref)
	}()
}

// diagnose gathers the case, asks the LLM, validates the verdict and records the outcome on the incident.
func (a *Analyzer) diagnose(ctx context.Context, ref alertRef) (Verdict, error) {
	c := a.gather(ctx, ref)
	r := Redactor(c.Inspect)
	c.Logs = r.Lines(c.Logs)
	a.stats.LLMCalls.Add(1)
	v, err := Ask(ctx, a.o.LLM, c, r)
	if errors.Is(err, context.Canceled) && a.bg.Err() != nil {
		return v, err // stopping: leave the claim to go stale so another instance can ask
	}
	res := schema.LLMResult{DoneAt: time.Now().UTC(), Method: a.o.LLM.Method(), OpenedAt: schema.FormatTime(ref.state.OpenedAt)}
	if err != nil {
		a.stats.LLMErrors.Add(1)
		res.Error = err.Error()
		a.log.Warn("llm diagnosis failed; rules decide", "incident", ref.incident, "err", err)
	} else {
		vb, _ := json.Marshal(v)
		res.Verdict = string(vb)
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if rerr := a.st.Incidents.RecordLLM(rctx, ref.incident, res, v.RootCause, v.Evidence); rerr != nil {
		a.log.Warn("record llm verdict failed", "incident", ref.incident, "err", rerr)
	}
	return v, err
}

// gather builds the LLM's case: the alert, inspect, logs, samples and history. What cannot be read is
// left out; the call goes ahead.
func (a *Analyzer) gather(ctx context.Context, ref alertRef) Case {
	c := Case{Host: ref.env.Host, Incident: ref.incident, Alert: ref.alert,
		Rules: Decide(ref.alert, Facts{MinConfidence: a.o.MinConfidence, OOMWindow: a.o.OOMWindow})}
	if a.o.Inspector != nil {
		if in, err := a.o.Inspector.Inspect(ctx, ref.alert.ContainerID); err == nil {
			c.Inspect = &in
		} else {
			a.log.Debug("inspect for llm context failed", "incident", ref.incident, "err", err)
		}
		if logs, err := a.o.Inspector.Logs(ctx, ref.alert.ContainerID, LogLines); err == nil {
			c.Logs = logs
		} else {
			a.log.Debug("logs for llm context failed", "incident", ref.incident, "err", err)
		}
	}
	target := event.Target(ref.env.Host, ref.alert.ContainerName)
	stats, _, err := a.st.Stats.Stats(ctx, []string{target})
	if err != nil {
		a.log.Debug("samples for llm context failed", "incident", ref.incident, "err", err)
	}
	st := stats[target]
	if st.Sample != nil {
		if b, err := json.Marshal(st.Sample); err == nil {
			c.Latest = b
		}
	}
	c.Samples = samplesFrom(st.History)
	l, acted, err := a.st.Ledger.Get(ctx, schema.LedgerKey(target))
	if err != nil {
		a.log.Debug("ledger for llm context failed", "incident", ref.incident, "err", err)
	}
	c.History = history(ref.state, l, acted)
	return c
}

// samplesFrom turns the monitor's history into samples, the last 20.
func samplesFrom(h container.History) []Sample {
	n := max(len(h.CPU), len(h.Memory))
	if n == 0 {
		return nil
	}
	out := make([]Sample, 0, min(n, 20))
	for i := max(n-20, 0); i < n; i++ {
		var s Sample
		if i < len(h.CPU) {
			s.CPUPercent = h.CPU[i]
		}
		if i < len(h.Memory) {
			s.MemoryPercent = h.Memory[i]
		}
		out = append(out, s)
	}
	return out
}

// history is the incident's and the ledger's state the LLM may use, without the verdict cache.
func history(in schema.Incident, l schema.Ledger, acted bool) map[string]string {
	out := map[string]string{}
	inc := in.Detection.Encode()
	for k, v := range in.Analysis.Encode() {
		inc[k] = v
	}
	for _, k := range []string{schema.FieldState, schema.FieldOpenedAt, schema.FieldSeverity, schema.FieldAction,
		schema.FieldReason, schema.FieldDecidedAt} {
		if v := inc[k]; v != "" && (k != schema.FieldDecidedAt || !in.DecidedAt.IsZero()) {
			out["incident."+k] = v
		}
	}
	if !acted {
		return out
	}
	led := l.Encode()
	for _, k := range []string{schema.FieldLedgerAttempts, schema.FieldLastAction, schema.FieldLastResult,
		schema.FieldLastReason, schema.FieldBreaker, schema.FieldBackoffStep} {
		if v := led[k]; v != "" {
			out["ledger."+k] = v
		}
	}
	return out
}

// Ask puts a case to the model, offering the actions it may choose for the alert, and validates its
// answer. A well-formed answer that proposes another action is returned as it is: Verdict.Apply refuses
// it. Logs in the case must already be redacted; r redacts the rest of the prompt.
func Ask(ctx context.Context, p llm.Provider, c Case, r *redact.Redactor) (Verdict, error) {
	raw, err := p.Complete(ctx, Prompt(c, AllowedActions(c.Alert.Class, c.Alert.Labels), r))
	if err != nil {
		return Verdict{}, err
	}
	return ParseVerdict(raw)
}
