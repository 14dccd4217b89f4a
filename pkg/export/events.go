package export

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hemostat/hemostat/pkg/event"
	"regexp"
	"slices"
)

// Histogram buckets, in seconds or as a ratio.
var (
	analysisBuckets    = []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}
	confidenceBuckets  = []float64{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1}
	remediationBuckets = []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120}
	detectBuckets      = []float64{0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}
	remediateBuckets   = []float64{0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1800}
	attemptBuckets     = []float64{0, 1, 2, 3, 4, 5, 6, 8, 10}
	incidentBuckets    = []float64{10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400}
)

// How an incident's reconciliation ended, the label of hemostat_incident_duration_seconds.
const (
	endRecovered = "recovered"
	endGaveUp    = "gave_up"
)

// eventMetrics are the metrics derived from the events the exporter's consumer group reads.
type eventMetrics struct {
	events          *prometheus.CounterVec
	alerts          *prometheus.CounterVec
	recoveries      *prometheus.CounterVec
	analyses        *prometheus.CounterVec
	analysisSeconds *prometheus.HistogramVec
	confidence      prometheus.Histogram
	remediations    *prometheus.CounterVec
	remediationSecs *prometheus.HistogramVec
	timeToDetect    *prometheus.HistogramVec
	timeToRemediate *prometheus.HistogramVec
	attempts        *prometheus.HistogramVec
	gaveUp          *prometheus.CounterVec
	incidentSeconds *prometheus.HistogramVec
	llmRefused      *prometheus.CounterVec

	processed atomic.Int64
	chain     *causes
}

func newEventMetrics(reg prometheus.Registerer) *eventMetrics {
	m := &eventMetrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hemostat_export_events_total",
			Help: "Events read from the work streams by this exporter, by event type."}, []string{"event_type"}),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hemostat_monitor_alerts_total",
			Help: "Health alerts (incidents opened or re-alerted) by failure class and severity."}, []string{"class", "severity"}),
		recoveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hemostat_monitor_recoveries_total",
			Help: "Incidents whose condition cleared, by failure class."}, []string{"class"}),
		analyses: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hemostat_analyze_analyses_total",
			Help: "Analyses by method (rules or llm:<provider>:<model>) and outcome (remediation or false_alarm)."},
			[]string{"method", "outcome"}),
		analysisSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "hemostat_analyze_duration_seconds",
			Help: "Time an analysis took, by method.", Buckets: analysisBuckets}, []string{"method"}),
		confidence: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "hemostat_analyze_confidence_ratio",
			Help: "Confidence of analyses, 0 to 1.", Buckets: confidenceBuckets}),
		remediations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hemostat_respond_remediations_total",
			Help: "Remediation decisions by action and result status (success, failed, skipped, denied, held, escalated, dry_run)."},
			[]string{"action", "result"}),
		remediationSecs: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "hemostat_respond_remediation_duration_seconds",
			Help: "Time an executed remediation took, verification included, by action.", Buckets: remediationBuckets}, []string{"action"}),
		timeToDetect: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "hemostat_incident_time_to_detect_seconds",
			Help: "From Docker's event time to the health alert on the bus, by failure class.", Buckets: detectBuckets}, []string{"class"}),
		timeToRemediate: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "hemostat_incident_time_to_remediate_seconds",
			Help: "From Docker's event time to the verified successful remediation, by failure class.", Buckets: remediateBuckets}, []string{"class"}),
		attempts: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "hemostat_incident_attempts",
			Help:    "Actions hemostat took for an incident by the time it ended, by how it ended (recovered or gave_up).",
			Buckets: attemptBuckets}, []string{"outcome"}),
		gaveUp: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hemostat_incidents_gave_up_total",
			Help: "Incidents hemostat gave up on (the breaker opened) and escalated, by failure class."}, []string{"class"}),
		incidentSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "hemostat_incident_duration_seconds",
			Help:    "From an incident's opening to its end: recovered, or gave up (the breaker opened).",
			Buckets: incidentBuckets}, []string{"outcome"}),
		llmRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hemostat_analyze_llm_refused_total",
			Help: "LLM proposals refused as outside the actions the model may choose for the alert, escalated instead, by proposed action."},
			[]string{"action"}),
		chain: newCauses(10000),
	}
	reg.MustRegister(m.events, m.alerts, m.recoveries, m.analyses, m.analysisSeconds, m.confidence, m.remediations,
		m.remediationSecs, m.timeToDetect, m.timeToRemediate, m.attempts, m.gaveUp, m.incidentSeconds, m.llmRefused)
	return m
}

// observe updates the metrics from one event. Unknown types are counted and otherwise ignored.
func (m *eventMetrics) observe(env event.Envelope) {
	defer m.processed.Add(1)
	m.events.WithLabelValues(known(env.EventType, eventTypes)).Inc()
	p, err := env.Payload()
	if err != nil {
		return
	}
	switch p := p.(type) {
	case *event.ContainerUnhealthy:
		m.alerts.WithLabelValues(known(p.Class, event.Classes), severity(p)).Inc()
		m.chain.put(env.ID, p.EventTime)
		if !p.Escalation && !p.EventTime.IsZero() {
			if d := env.Timestamp.Sub(p.EventTime); d >= 0 {
				m.timeToDetect.WithLabelValues(p.Class).Observe(d.Seconds())
			}
		}
	case *event.RemediationNeeded:
		method := methodLabel(p.AnalysisMethod)
		m.analyses.WithLabelValues(method, "remediation").Inc()
		m.analysisSeconds.WithLabelValues(method).Observe(p.DurationMS / 1000)
		m.confidence.Observe(p.Confidence)
		if p.ProposedAction != "" {
			m.llmRefused.WithLabelValues(known(p.ProposedAction, event.Actions)).Inc()
		}
		t := p.EventTime
		if t.IsZero() {
			t = m.chain.get(env.CausationID)
		}
		m.chain.put(env.ID, t)
	case *event.FalseAlarm:
		method := methodLabel(p.AnalysisMethod)
		m.analyses.WithLabelValues(method, "false_alarm").Inc()
		m.analysisSeconds.WithLabelValues(method).Observe(p.DurationMS / 1000)
		m.confidence.Observe(p.Confidence)
	case *event.RemediationComplete:
		m.remediations.WithLabelValues(known(p.Action, event.Actions), known(p.Result.Status, event.Statuses)).Inc()
		if p.GaveUp && !p.DryRun {
			m.gaveUp.WithLabelValues(classOf(p.Class, env.Incident)).Inc()
			m.ended(endGaveUp, p.Attempts, p.OpenedAt, env.Timestamp)
		}
		executed := !p.DryRun && (p.Result.Status == event.StatusSuccess || p.Result.Status == event.StatusFailed)
		if executed && p.Action != event.ActionNone {
			m.remediationSecs.WithLabelValues(known(p.Action, event.Actions)).Observe(p.DurationMS / 1000)
		}
		if executed && p.Result.Status == event.StatusSuccess && p.Verified {
			t := p.EventTime
			if t.IsZero() {
				t = m.chain.get(env.CausationID)
			}
			if !t.IsZero() {
				if d := env.Timestamp.Sub(t); d >= 0 {
					m.timeToRemediate.WithLabelValues(classOf(p.Class, env.Incident)).Observe(d.Seconds())
				}
			}
		}
	case *event.ContainerRecovered:
		m.recoveries.WithLabelValues(known(p.Class, event.Classes)).Inc()
		m.ended(endRecovered, p.Attempts, p.OpenedAt, env.Timestamp)
	}
}

// ended observes an incident's end: its attempts, and its duration when its opening is known.
func (m *eventMetrics) ended(outcome string, attempts int, opened, at time.Time) {
	m.attempts.WithLabelValues(outcome).Observe(float64(attempts))
	if !opened.IsZero() {
		if d := at.Sub(opened); d >= 0 {
			m.incidentSeconds.WithLabelValues(outcome).Observe(d.Seconds())
		}
	}
}

// severity is the alert's severity, else the highest of its anomalies', else "unknown".
func severity(p *event.ContainerUnhealthy) string {
	rank := map[string]int{event.SeverityInfo: 1, event.SeverityWarning: 2, event.SeverityCritical: 3}
	if rank[p.Severity] > 0 {
		return p.Severity
	}
	best := "unknown"
	for _, a := range p.Anomalies {
		if rank[a.Severity] > rank[best] {
			best = a.Severity
		}
	}
	return best
}

// Label values come from events anyone who can write to Redis may have forged: each is kept to a known
// set, so a flood of invented values cannot grow the series without bound.
var eventTypes = []string{event.TypeContainerUnhealthy, event.TypeRemediationNeeded, event.TypeFalseAlarm,
	event.TypeRemediationComplete, event.TypeContainerRecovered}

// known is s when it is one of set, else "unknown".
func known(s string, set []string) string {
	if slices.Contains(set, s) {
		return s
	}
	return "unknown"
}

// methodPattern is an analysis method as the analyzer writes it: rules, or llm:<provider>:<model>.
var methodPattern = regexp.MustCompile(`^(rules|llm:(anthropic|openai):[A-Za-z0-9._:/@-]{1,64})$`)

// methodLabel is the analysis method, or "unknown" when it is not one the analyzer writes.
func methodLabel(s string) string {
	if methodPattern.MatchString(s) {
		return s
	}
	return "unknown"
}

// classOf is the payload's class, else the last part of the incident key host/name/class.
func classOf(class, incident string) string {
	if class != "" {
		return known(class, event.Classes)
	}
	if i := strings.LastIndexByte(incident, '/'); i >= 0 && i < len(incident)-1 {
		return known(incident[i+1:], event.Classes)
	}
	return "unknown"
}

// causes remembers the Docker event time behind recent event ids, so a remediation without an event time
// can be traced back through its causation chain (remediation_complete -> remediation_needed ->
// health_alert). Bounded: the oldest entries are forgotten first.
type causes struct {
	mu   sync.Mutex
	m    map[string]time.Time
	ring []string
	next int
}

func newCauses(n int) *causes {
	return &causes{m: make(map[string]time.Time, n), ring: make([]string, n)}
}

func (c *causes) put(id string, t time.Time) {
	if id == "" || t.IsZero() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[id]; ok {
		return
	}
	if old := c.ring[c.next]; old != "" {
		delete(c.m, old)
	}
	c.ring[c.next] = id
	c.next = (c.next + 1) % len(c.ring)
	c.m[id] = t
}

func (c *causes) get(id string) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[id]
}
