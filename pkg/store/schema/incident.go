package schema

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"time"
)

// Incident is the record of one incident, the hash at IncidentKey(key). Three agents write it, each its
// own section: the monitor its Detection, the analyzer its Analysis, the responder its Progress.
type Incident struct {
	Key string // host/name/class; not stored, it is the key
	Detection
	Analysis
	Progress
}

// Incident states.
const (
	StateOpen   = "open"
	StateClosed = "closed"
)

// Conditions of an open incident: whether its failure holds now.
const (
	ConditionFailing = "failing"
	ConditionClear   = "clear"
)

// Detection is the monitor's section of an incident.
type Detection struct {
	State          string // StateOpen or StateClosed
	Class          string
	Host           string
	Container      string
	ContainerID    string
	Severity       string
	AlertID        string // event id of the latest health_alert
	OpenedAt       time.Time
	LastAlertAt    time.Time
	ClosedAt       time.Time
	CloseReason    string
	Condition      string    // ConditionFailing or ConditionClear
	ConditionSince time.Time // when the condition last changed
	Relapses       int       // times the condition came back after it had cleared or after an action
	RelapsedAt     time.Time
	RelapseAfter   time.Duration // from the end of the action before the latest relapse to the relapse
}

// Analysis is the analyzer's section of an incident: its decision, and the LLM's verdict cache.
type Analysis struct {
	Action          string
	Confidence      float64
	Method          string // analysis method: rules, or the LLM's
	Proposed        string // an action the LLM proposed outside what it may choose: refused, escalated
	Reason          string
	RootCause       string
	Evidence        []string
	FalseAlarm      bool
	DecidedAt       time.Time
	DecisionAlertID string // the health_alert answered: a redelivery is skipped
	DecisionEventID string // the answer published
	LLM             LLMResult
}

// LLMResult is the LLM's part of the analysis: one call per opening of the incident.
type LLMResult struct {
	Verdict  string // JSON of the validated verdict
	Error    string
	Method   string
	DoneAt   time.Time
	OpenedAt string // the opened_at of the opening the call was for, as stored
	Started  int64  // unix ms of the claim of the call
}

// Progress is the responder's section of an incident: how the reconciliation is going.
type Progress struct {
	Attempts      int       // actions executed for this incident
	LastAttemptAt time.Time // when the latest action started
	LastOutcome   string    // result status of the latest outcome
	LastDetails   string
	Errors        []string  // each failed verification's error, oldest first, at most MaxErrors
	NextAt        time.Time // when hemostat looks again; zero when it will not
	NextReason    string    // why it waits: a denial, hold or skip code, or "verify"/"relapse"
	GaveUpAt      time.Time // the breaker opened: no action until reset or the cool-off
	BreakerUntil  time.Time
	LastEventID   string // the request whose outcome was recorded last: recording it again changes nothing
}

// MaxErrors caps Progress.Errors.
const MaxErrors = 10

// GaveUp reports whether the reconciliation stopped at the breaker and has not resumed.
func (p Progress) GaveUp() bool { return !p.GaveUpAt.IsZero() }

// Incident hash fields, by section.
const (
	FieldState          = "state"
	FieldClass          = "class"
	FieldHost           = "host"
	FieldContainer      = "container"
	FieldContainerID    = "container_id"
	FieldSeverity       = "severity"
	FieldAlertID        = "alert_id"
	FieldOpenedAt       = "opened_at"
	FieldLastAlertAt    = "last_alert_at"
	FieldClosedAt       = "closed_at"
	FieldCloseReason    = "close_reason"
	FieldCondition      = "condition"
	FieldConditionSince = "condition_since"
	FieldRelapses       = "relapses"
	FieldRelapsedAt     = "relapsed_at"
	FieldRelapseAfterMS = "relapse_after_ms"

	FieldAction          = "action"
	FieldConfidence      = "confidence"
	FieldMethod          = "analysis_method"
	FieldReason          = "reason"
	FieldRootCause       = "root_cause"
	FieldEvidence        = "evidence"
	FieldProposed        = "proposed_action"
	FieldFalseAlarm      = "false_alarm"
	FieldDecidedAt       = "decided_at"
	FieldDecisionAlertID = "decision_alert_id"
	FieldDecisionEventID = "decision_event_id"
	FieldLLMVerdict      = "llm_verdict"
	FieldLLMError        = "llm_error"
	FieldLLMMethod       = "llm_method"
	FieldLLMDoneAt       = "llm_done_at"
	FieldLLMOpenedAt     = "llm_opened_at"
	FieldLLMStartedMS    = "llm_started_ms"

	FieldAttempts      = "attempts"
	FieldLastAttemptAt = "last_attempt_at"
	FieldLastOutcome   = "last_outcome"
	FieldLastDetails   = "last_details"
	FieldErrors        = "errors"
	FieldNextAt        = "next_at"
	FieldNextReason    = "next_reason"
	FieldGaveUpAt      = "gave_up_at"
	FieldBreakerUntil  = "breaker_until"
	FieldLastEventID   = "last_event_id"
)

// IncidentClosedTTL is how long a closed incident's hash is kept.
const IncidentClosedTTL = 7 * 24 * time.Hour

// AnalysisTTL is how long an incident hash lives when the analyzer created it (normally the monitor
// creates it and expires it IncidentClosedTTL after it closes).
const AnalysisTTL = 7 * 24 * time.Hour

// FormatTime is how incident times are stored: RFC 3339 with nanoseconds, UTC; "" for the zero time.
func FormatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// ParseTime reads a FormatTime value; "" is the zero time.
func ParseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

// Encode returns every field of the monitor's section.
func (d Detection) Encode() map[string]string {
	return map[string]string{
		FieldState: d.State, FieldClass: d.Class, FieldHost: d.Host, FieldContainer: d.Container,
		FieldContainerID: d.ContainerID, FieldSeverity: d.Severity, FieldAlertID: d.AlertID,
		FieldOpenedAt: FormatTime(d.OpenedAt), FieldLastAlertAt: FormatTime(d.LastAlertAt),
		FieldClosedAt: FormatTime(d.ClosedAt), FieldCloseReason: d.CloseReason,
		FieldCondition: d.Condition, FieldConditionSince: FormatTime(d.ConditionSince),
		FieldRelapses: strconv.Itoa(d.Relapses), FieldRelapsedAt: FormatTime(d.RelapsedAt),
		FieldRelapseAfterMS: strconv.FormatInt(d.RelapseAfter.Milliseconds(), 10),
	}
}

// Encode returns every field of the analyzer's decision (not the LLM's part, which LLMResult.Encode
// writes when the call ends). Optional fields left empty are omitted, so a later decision without them
// keeps what an LLM wrote.
func (a Analysis) Encode() map[string]string {
	f := map[string]string{
		FieldAction: a.Action, FieldConfidence: strconv.FormatFloat(a.Confidence, 'f', -1, 64),
		FieldMethod: a.Method, FieldReason: a.Reason, FieldFalseAlarm: strconv.FormatBool(a.FalseAlarm),
		FieldDecidedAt: FormatTime(a.DecidedAt), FieldDecisionAlertID: a.DecisionAlertID,
		FieldDecisionEventID: a.DecisionEventID, FieldProposed: a.Proposed,
	}
	if a.RootCause != "" {
		f[FieldRootCause] = a.RootCause
	}
	if len(a.Evidence) > 0 {
		b, _ := json.Marshal(a.Evidence)
		f[FieldEvidence] = string(b)
	}
	if a.LLM.Error != "" {
		f[FieldLLMError] = a.LLM.Error
	}
	return f
}

// Encode returns the fields an LLM call writes when it ends: the verdict (and the root cause and
// evidence it gives) or the error. rootCause and evidence are the verdict's, empty after an error.
func (l LLMResult) Encode(rootCause string, evidence []string) map[string]string {
	f := map[string]string{
		FieldLLMDoneAt: FormatTime(l.DoneAt), FieldLLMMethod: l.Method, FieldLLMOpenedAt: l.OpenedAt,
		FieldLLMError: l.Error,
	}
	if l.Error == "" {
		b, _ := json.Marshal(evidence)
		f[FieldLLMVerdict], f[FieldRootCause], f[FieldEvidence] = l.Verdict, rootCause, string(b)
	}
	return f
}

// Encode returns every field of the responder's section.
func (p Progress) Encode() map[string]string {
	errs, _ := json.Marshal(p.Errors)
	if len(p.Errors) == 0 {
		errs = []byte("[]")
	}
	return map[string]string{
		FieldAttempts: strconv.Itoa(p.Attempts), FieldLastAttemptAt: FormatTime(p.LastAttemptAt),
		FieldLastOutcome: p.LastOutcome, FieldLastDetails: p.LastDetails, FieldErrors: string(errs),
		FieldNextAt: FormatTime(p.NextAt), FieldNextReason: p.NextReason, FieldGaveUpAt: FormatTime(p.GaveUpAt),
		FieldBreakerUntil: FormatTime(p.BreakerUntil), FieldLastEventID: p.LastEventID,
	}
}

// Only returns the named fields of an encoded section, for writers that change part of it.
func Only(fields map[string]string, names ...string) map[string]string {
	out := make(map[string]string, len(names))
	for _, n := range names {
		if v, ok := fields[n]; ok {
			out[n] = v
		}
	}
	return out
}

// DecodeIncident reads an incident hash. Values that do not parse are left zero and reported in err,
// each naming its field; the rest of the record is still returned.
func DecodeIncident(key string, m map[string]string) (Incident, error) {
	d := decoder{m: m}
	in := Incident{Key: key}
	in.State, in.Class, in.Host = m[FieldState], m[FieldClass], m[FieldHost]
	in.Container, in.ContainerID, in.Severity, in.AlertID = m[FieldContainer], m[FieldContainerID], m[FieldSeverity], m[FieldAlertID]
	in.OpenedAt = d.time(FieldOpenedAt)
	in.LastAlertAt = d.time(FieldLastAlertAt)
	in.ClosedAt = d.time(FieldClosedAt)
	in.CloseReason = m[FieldCloseReason]
	in.Condition = m[FieldCondition]
	in.ConditionSince = d.time(FieldConditionSince)
	in.Relapses = int(d.int(FieldRelapses))
	in.RelapsedAt = d.time(FieldRelapsedAt)
	in.RelapseAfter = time.Duration(d.int(FieldRelapseAfterMS)) * time.Millisecond

	in.Action, in.Method, in.Reason, in.RootCause = m[FieldAction], m[FieldMethod], m[FieldReason], m[FieldRootCause]
	in.Confidence = d.float(FieldConfidence)
	in.Proposed = m[FieldProposed]
	d.json(FieldEvidence, &in.Evidence)
	in.FalseAlarm = d.bool(FieldFalseAlarm)
	in.DecidedAt = d.time(FieldDecidedAt)
	in.DecisionAlertID, in.DecisionEventID = m[FieldDecisionAlertID], m[FieldDecisionEventID]
	in.LLM = LLMResult{Verdict: m[FieldLLMVerdict], Error: m[FieldLLMError], Method: m[FieldLLMMethod],
		DoneAt: d.time(FieldLLMDoneAt), OpenedAt: m[FieldLLMOpenedAt], Started: d.int(FieldLLMStartedMS)}

	in.Attempts = int(d.int(FieldAttempts))
	in.LastAttemptAt = d.time(FieldLastAttemptAt)
	in.LastOutcome, in.LastDetails = m[FieldLastOutcome], m[FieldLastDetails]
	d.json(FieldErrors, &in.Errors)
	in.NextAt = d.time(FieldNextAt)
	in.NextReason = m[FieldNextReason]
	in.GaveUpAt = d.time(FieldGaveUpAt)
	in.BreakerUntil = d.time(FieldBreakerUntil)
	in.LastEventID = m[FieldLastEventID]
	if in.LastAlertAt.IsZero() {
		in.LastAlertAt = in.OpenedAt
	}
	return in, d.err()
}

// decoder parses the fields of one hash, collecting what does not parse.
type decoder struct {
	m    map[string]string
	errs []error
}

func (d *decoder) fail(field string, err error) {
	d.errs = append(d.errs, fmt.Errorf("field %s: %w", field, err))
}

func (d *decoder) time(field string) time.Time {
	t, err := ParseTime(d.m[field])
	if err != nil {
		d.fail(field, err)
	}
	return t
}

func (d *decoder) int(field string) int64 {
	v, ok := d.m[field]
	if !ok || v == "" {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		d.fail(field, err)
	}
	return n
}

func (d *decoder) float(field string) float64 {
	v, ok := d.m[field]
	if !ok || v == "" {
		return 0
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		d.fail(field, err)
	}
	return f
}

func (d *decoder) bool(field string) bool {
	v, ok := d.m[field]
	if !ok || v == "" {
		return false
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		d.fail(field, err)
	}
	return b
}

func (d *decoder) json(field string, dst any) {
	v, ok := d.m[field]
	if !ok || v == "" {
		return
	}
	if err := json.Unmarshal([]byte(v), dst); err != nil {
		d.fail(field, err)
		reflect.ValueOf(dst).Elem().SetZero() // Unmarshal leaves what it decoded before the error
	}
}

func (d *decoder) err() error { return errors.Join(d.errs...) }
