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
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/redact"
	"github.com/hemostat/hemostat/pkg/store"
)

// Agent and consumer group names.
const (
	AgentName = "analyze"
	GroupName = "analyze"
)

// LLM modes.
const (
	// ModeAdvisory publishes the rules' decision at once; the LLM's root cause and evidence follow as an
	// enrichment of the incident.
	ModeAdvisory = "advisory"
	// ModeDecide uses the validated LLM decision when it comes within the timeout, for the classes that
	// can wait (crash_loop and the resource classes); crashed, oom_killed and unhealthy never wait.
	ModeDecide = "decide"
)

// Incident hash fields the analyzer writes (beyond the contract's action, confidence, analysis_method,
// reason, root_cause, evidence, llm_verdict, llm_error, decided_at).
const (
	fieldAction         = "action"
	fieldConfidence     = "confidence"
	fieldMethod         = "analysis_method"
	fieldReason         = "reason"
	fieldRootCause      = "root_cause"
	fieldEvidence       = "evidence"
	fieldLLMVerdict     = "llm_verdict"
	fieldLLMError       = "llm_error"
	fieldLLMMethod      = "llm_method"
	fieldLLMDoneAt      = "llm_done_at"
	fieldLLMOpenedAt    = "llm_opened_at"
	fieldDecidedAt      = "decided_at"
	fieldFalseAlarm     = "false_alarm"
	fieldDecisionAlert  = "decision_alert_id" // the health_alert id answered: redeliveries are skipped
	fieldDecisionEvent  = "decision_event_id" // the id of the answer published
	fieldOpenedAt       = "opened_at"         // written by the monitor
	defaultLLMTimeout   = 10 * time.Second
	defaultLLMParallel  = 4
	defaultClaimStaleBy = 3 // a claim older than this many timeouts is taken over
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
}

// Analyzer is the analyze agent: it answers every health alert with a remediation request or a false alarm.
type Analyzer struct {
	o     Options
	st    *store.Client
	b     *bus.Bus
	log   *slog.Logger
	stats Stats

	bg   context.Context // parent of advisory LLM calls; cancelled at stop
	stop context.CancelFunc
	sem  chan struct{}
	wg   sync.WaitGroup // advisory LLM calls

	commits *committer
	life    context.Context // the committer's; cancelled by Close, after the handlers are done
	endLife context.CancelFunc
	cwg     sync.WaitGroup
	closed  sync.Once
}

// New returns an analyzer over the store and the bus. Call Run, or Handle and then Close.
func New(o Options, st *store.Client, b *bus.Bus) *Analyzer {
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
	bg, stop := context.WithCancel(context.Background())
	life, endLife := context.WithCancel(context.Background())
	a := &Analyzer{o: o, st: st, b: b, log: o.Logger.With("agent", AgentName), bg: bg, stop: stop,
		sem: make(chan struct{}, o.LLMConcurrency), commits: newCommitter(b), life: life, endLife: endLife}
	a.cwg.Go(func() { a.commits.run(life) }) // exits at Close
	return a
}

// Stats returns the analyzer's counters.
func (a *Analyzer) Stats() *Stats { return &a.stats }

// Run consumes health alerts until ctx is cancelled, then waits for the advisory LLM calls, which the
// cancellation also ends.
func (a *Analyzer) Run(ctx context.Context) error {
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
		"ignored", s.Ignored.Load(), "llm_calls", s.LLMCalls.Load(), "llm_errors", s.LLMErrors.Load(), "llm_skipped", s.LLMSkipped.Load())
	return err
}

// Close cancels the advisory LLM calls in flight and waits for them, then stops the committer. Call it
// once no Handle is running (Run does).
func (a *Analyzer) Close() {
	a.closed.Do(func() {
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
	fields   map[string]string // the incident hash as read
}

// Handle decides one health alert and publishes the answer. A redelivered alert that was already
// answered is skipped; an event that is not a health alert is logged and acked.
func (a *Analyzer) Handle(ctx context.Context, m bus.Message) error {
	start := time.Now()
	ref, ok := a.alertOf(m)
	if !ok {
		return nil
	}
	env, al := ref.env, ref.alert
	var st store.AnalysisState
	var err error
	if a.needsState(m, al) {
		var oom *store.OOMKill
		if al.Class == event.ClassOOMKilled {
			oom = &store.OOMKill{Host: env.Host, Name: al.ContainerName, AlertID: env.ID, At: detectedAt(env, al), Window: a.o.OOMWindow}
		}
		st, err = a.st.BeginAnalysis(ctx, ref.incident, oom)
		if err != nil {
			return err // Redis trouble: the bus retries
		}
		if st.Incident[fieldDecisionAlert] == env.ID {
			a.stats.Duplicates.Add(1)
			a.log.Debug("alert already answered", "incident", ref.incident, "event_id", env.ID)
			return nil
		}
	}
	ref.fields = st.Incident
	d := Decide(al, Facts{OOMRepeats: st.OOMRepeats, OOMWindow: a.o.OOMWindow, MinConfidence: a.o.MinConfidence})
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
		store.AnalysisRecord{Incident: ref.incident, Fields: decisionFields(d, env.ID, out.ID)})
	if err != nil {
		return err
	}
	a.count(d)
	a.log.Debug("alert decided", "incident", ref.incident, "action", d.Action, "false_alarm", d.FalseAlarm,
		"confidence", d.Confidence, "analysis_method", d.Method, "duration_ms", float64(dur.Microseconds())/1000)
	return nil
}

// alertOf decodes a health alert; anything else is counted, logged and acked.
func (a *Analyzer) alertOf(m bus.Message) (alertRef, bool) {
	env := m.Envelope
	al, err := event.DecodeData[event.ContainerUnhealthy](env)
	if err != nil {
		a.stats.Ignored.Add(1)
		a.log.Warn("not a health alert; ignored", "entry", m.ID, "event_id", env.ID, "event_type", env.EventType, "err", err)
		return alertRef{}, false
	}
	ref := alertRef{env: env, alert: al, incident: env.Incident}
	if ref.incident == "" {
		ref.incident = event.IncidentKey(env.Host, al.ContainerName, al.Class)
	}
	return ref, true
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
	start := time.Now()
	errs := make([]error, len(ms))
	var (
		outs    []bus.Outgoing
		recs    []store.AnalysisRecord
		ds      []Decision
		answers []int
		single  []int
	)
	for i, m := range ms {
		ref, ok := a.alertOf(m)
		if !ok {
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
		recs = append(recs, store.AnalysisRecord{Incident: ref.incident, Fields: decisionFields(d, ref.env.ID, out.ID)})
		ds, answers = append(ds, d), append(answers, i)
	}
	for from := 0; from < len(outs); from += maxCommit {
		to := min(from+maxCommit, len(outs))
		if err := publishAnswers(ctx, a.b, outs[from:to], recs[from:to]); err != nil {
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
	stream := event.StreamRemediationNeeded
	if d.FalseAlarm {
		stream = event.StreamFalseAlarm
		p = &event.FalseAlarm{Container: ref.alert.ContainerName, ContainerID: ref.alert.ContainerID, Reason: d.Reason,
			Confidence: d.Confidence, AnalysisMethod: d.Method, Class: ref.alert.Class, DurationMS: ms}
	} else {
		p = &event.RemediationNeeded{Container: ref.alert.ContainerName, ContainerID: ref.alert.ContainerID,
			Action: d.Action, Reason: d.Reason, Confidence: d.Confidence, AnalysisMethod: d.Method,
			RootCause: d.RootCause, Evidence: d.Evidence, Class: ref.alert.Class, DurationMS: ms, EventTime: ref.alert.EventTime}
	}
	if err := p.Validate(); err != nil {
		return event.Envelope{}, "", fmt.Errorf("answer %s: %w", ref.incident, err)
	}
	out, err := event.New(AgentName, ref.env.Host, ref.incident, ref.env.ID, p)
	if err != nil {
		return event.Envelope{}, "", err
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

func decisionFields(d Decision, alertID, answerID string) map[string]string {
	f := map[string]string{
		fieldAction:        d.Action,
		fieldConfidence:    strconv.FormatFloat(d.Confidence, 'f', -1, 64),
		fieldMethod:        d.Method,
		fieldReason:        d.Reason,
		fieldFalseAlarm:    strconv.FormatBool(d.FalseAlarm),
		fieldDecidedAt:     time.Now().UTC().Format(time.RFC3339Nano),
		fieldDecisionAlert: alertID,
		fieldDecisionEvent: answerID,
	}
	if d.RootCause != "" {
		f[fieldRootCause] = d.RootCause
	}
	if len(d.Evidence) > 0 {
		ev, _ := json.Marshal(d.Evidence)
		f[fieldEvidence] = string(ev)
	}
	if d.LLMError != "" {
		f[fieldLLMError] = d.LLMError
	}
	return f
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
	allowed := AllowedActions(ref.alert.Labels)
	if v, ok := cachedVerdict(ref.fields, allowed); ok {
		if decide {
			return v.Apply(ref.fields[fieldLLMMethod], a.o.MinConfidence)
		}
		rules.RootCause, rules.Evidence = v.RootCause, v.Evidence
		return rules
	}
	if !decide {
		a.enrichAsync(ctx, ref)
		return rules
	}
	claimed, err := a.st.ClaimLLM(ctx, ref.incident, ref.fields[fieldOpenedAt], time.Now(), defaultClaimStaleBy*a.o.LLMTimeout)
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
	return v.Apply(a.o.LLM.Method(), a.o.MinConfidence)
}

// cachedVerdict returns the verdict stored for this opening of the incident, if it is still valid.
func cachedVerdict(f map[string]string, allowed []string) (Verdict, bool) {
	raw, ok := f[fieldLLMVerdict]
	if !ok || f[fieldLLMOpenedAt] != f[fieldOpenedAt] {
		return Verdict{}, false
	}
	v, err := ParseVerdict([]byte(raw), allowed)
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
	claimed, err := a.st.ClaimLLM(ctx, ref.incident, ref.fields[fieldOpenedAt], time.Now(), defaultClaimStaleBy*a.o.LLMTimeout)
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
	f := map[string]string{
		fieldLLMDoneAt:   time.Now().UTC().Format(time.RFC3339Nano),
		fieldLLMMethod:   a.o.LLM.Method(),
		fieldLLMOpenedAt: ref.fields[fieldOpenedAt],
	}
	if err != nil {
		a.stats.LLMErrors.Add(1)
		f[fieldLLMError] = err.Error()
		a.log.Warn("llm diagnosis failed; rules decide", "incident", ref.incident, "err", err)
	} else {
		vb, _ := json.Marshal(v)
		ev, _ := json.Marshal(v.Evidence)
		f[fieldLLMVerdict] = string(vb)
		f[fieldRootCause] = v.RootCause
		f[fieldEvidence] = string(ev)
		f[fieldLLMError] = ""
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if rerr := a.st.RecordAnalysis(rctx, ref.incident, f); rerr != nil {
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
	cs, err := a.st.AnalysisContext(ctx, ref.env.Host, ref.alert.ContainerName)
	if err != nil {
		a.log.Debug("state for llm context failed", "incident", ref.incident, "err", err)
	}
	if json.Valid(cs.Sample) {
		c.Latest = cs.Sample
	}
	c.Samples = samplesFrom(cs.History)
	c.History = history(ref.fields, cs.Ledger)
	return c
}

// samplesFrom turns the monitor's history (JSON container.History) into samples, the last 20.
func samplesFrom(raw []byte) []Sample {
	var h struct {
		CPU    []float64 `json:"cpu"`
		Memory []float64 `json:"memory"`
	}
	if len(raw) == 0 || json.Unmarshal(raw, &h) != nil {
		return nil
	}
	n := max(len(h.CPU), len(h.Memory))
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
func history(incident, ledger map[string]string) map[string]string {
	out := map[string]string{}
	for _, k := range []string{"state", "opened_at", "severity", fieldAction, fieldReason, fieldDecidedAt} {
		if v := incident[k]; v != "" {
			out["incident."+k] = v
		}
	}
	for _, k := range []string{"attempts", "last_action", "last_result", "last_reason", "breaker", "backoff_step"} {
		if v := ledger[k]; v != "" {
			out["ledger."+k] = v
		}
	}
	return out
}

// Ask puts a case to the model and validates its answer against the container's allowed actions. Logs
// in the case must already be redacted; r redacts the rest of the prompt.
func Ask(ctx context.Context, p llm.Provider, c Case, r *redact.Redactor) (Verdict, error) {
	allowed := AllowedActions(c.Alert.Labels)
	raw, err := p.Complete(ctx, Prompt(c, allowed, r))
	if err != nil {
		return Verdict{}, err
	}
	return ParseVerdict(raw, allowed)
}
