package schema_test

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/hemostat/hemostat/pkg/container"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

var t0 = time.Date(2026, 11, 28, 12, 0, 0, 123456789, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

// merge returns the union of encoded sections, later ones winning.
func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		maps.Copy(out, m)
	}
	return out
}

// wantFieldErrors checks that err names each of the fields, and only those.
func wantFieldErrors(t *testing.T, err error, fields ...string) {
	t.Helper()
	if len(fields) == 0 {
		if err != nil {
			t.Errorf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Errorf("no error, want one naming %v", fields)
		return
	}
	var got []string // one line per field: "field <name>: <error>"
	for _, line := range strings.Split(err.Error(), "\n") {
		name, _, _ := strings.Cut(strings.TrimPrefix(line, "field "), ":")
		got = append(got, name)
	}
	if diff := cmp.Diff(fields, got, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("fields named by %q (-want +got):\n%s", err, diff)
	}
}

func fullIncident() schema.Incident {
	return schema.Incident{
		Key: "h/web/crashed",
		Detection: schema.Detection{State: schema.StateClosed, Class: "crashed", Host: "h", Container: "web", ContainerID: "abc",
			Severity: "critical", AlertID: "a2", OpenedAt: t0, LastAlertAt: at(time.Minute), ClosedAt: at(time.Hour),
			CloseReason: "recovered", Condition: schema.ConditionClear, ConditionSince: at(time.Hour), Relapses: 2,
			RelapsedAt: at(30 * time.Minute), RelapseAfter: 90*time.Second + 250*time.Millisecond},
		Analysis: schema.Analysis{Action: "restart", Confidence: 0.123456789, Method: "claude", Reason: "exit 137",
			RootCause: "leak", Evidence: []string{"rss grows", `a "quoted" / thing`}, FalseAlarm: true, DecidedAt: at(time.Second),
			DecisionAlertID: "a1", DecisionEventID: "e1",
			LLM: schema.LLMResult{Verdict: `{"action":"restart"}`, Method: "claude", DoneAt: at(2 * time.Second),
				OpenedAt: schema.FormatTime(t0), Started: at(time.Second).UnixMilli()}},
		Progress: schema.Progress{Attempts: 3, LastAttemptAt: at(10 * time.Minute), LastOutcome: "failure", LastDetails: "exit 1",
			Errors: []string{"e1", "e2"}, NextAt: at(20 * time.Minute), NextReason: "verify", GaveUpAt: at(15 * time.Minute),
			BreakerUntil: at(75 * time.Minute), LastEventID: "r9"},
	}
}

// encodeIncident is the hash the writers of an incident leave: each section's encoding, and the claim
// script's start of the LLM call.
func encodeIncident(in schema.Incident) map[string]string {
	m := merge(in.Detection.Encode(), in.Analysis.Encode(), in.LLM.Encode(in.RootCause, in.Evidence), in.Progress.Encode())
	if in.LLM.Started != 0 {
		m[schema.FieldLLMStartedMS] = strconv.FormatInt(in.LLM.Started, 10)
	}
	return m
}

func TestIncidentRoundTrip(t *testing.T) {
	t.Parallel()
	full := fullIncident()
	failedLLM := full
	failedLLM.LLM = schema.LLMResult{Error: "timeout", Method: "claude", DoneAt: at(time.Minute), OpenedAt: schema.FormatTime(t0)}
	failedLLM.RootCause, failedLLM.Evidence = "", nil
	tests := []struct {
		name string
		in   schema.Incident
	}{
		{"every field", full},
		{"a failed LLM call", failedLLM},
		{"just opened", schema.Incident{Key: "h/db/oom_killed", Detection: schema.Detection{State: schema.StateOpen, Class: "oom_killed",
			Host: "h", Container: "db", OpenedAt: t0, LastAlertAt: t0, Condition: schema.ConditionFailing, ConditionSince: t0}}},
		{"the zero incident", schema.Incident{Key: "k"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := schema.DecodeIncident(tt.in.Key, encodeIncident(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.in, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestIncidentSectionsAreDisjoint(t *testing.T) {
	t.Parallel()
	in := fullIncident()
	det, prog := in.Detection.Encode(), in.Progress.Encode()
	ana := merge(in.Analysis.Encode(), in.LLM.Encode(in.RootCause, in.Evidence))
	for name, pair := range map[string][2]map[string]string{"detection/analysis": {det, ana}, "detection/progress": {det, prog}, "analysis/progress": {ana, prog}} {
		for k := range pair[0] {
			if _, ok := pair[1][k]; ok {
				t.Errorf("%s both write field %s: one writer would undo the other", name, k)
			}
		}
	}
}

// TestAnalysisEncodeOmitsEmptyOptionals: a decision without a root cause, evidence or LLM error does not
// write them, so it keeps what an LLM wrote. The refused proposal belongs to each decision: always written.
func TestAnalysisEncodeOmitsEmptyOptionals(t *testing.T) {
	t.Parallel()
	got := slices.Sorted(maps.Keys(schema.Analysis{Action: "none"}.Encode()))
	want := []string{schema.FieldAction, schema.FieldMethod, schema.FieldConfidence, schema.FieldDecidedAt, schema.FieldDecisionAlertID,
		schema.FieldDecisionEventID, schema.FieldFalseAlarm, schema.FieldReason, schema.FieldProposed}
	slices.Sort(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("fields (-want +got):\n%s", diff)
	}
	// A failed call writes its error and leaves the verdict, root cause and evidence alone.
	got = slices.Sorted(maps.Keys(schema.LLMResult{Error: "x"}.Encode("ignored", []string{"ignored"})))
	want = []string{schema.FieldLLMDoneAt, schema.FieldLLMError, schema.FieldLLMMethod, schema.FieldLLMOpenedAt}
	slices.Sort(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("fields of a failed call (-want +got):\n%s", diff)
	}
}

func TestDecodeIncidentReportsBadFields(t *testing.T) {
	t.Parallel()
	good := fullIncident()
	tests := []struct {
		field, value string
		zero         func(*schema.Incident)
	}{
		{schema.FieldOpenedAt, "yesterday", func(in *schema.Incident) { in.OpenedAt = time.Time{} }},
		{schema.FieldLastAlertAt, "2026-13-01", func(in *schema.Incident) { in.LastAlertAt = in.OpenedAt }},
		{schema.FieldRelapses, "two", func(in *schema.Incident) { in.Relapses = 0 }},
		{schema.FieldRelapseAfterMS, "1.5", func(in *schema.Incident) { in.RelapseAfter = 0 }},
		{schema.FieldConfidence, "high", func(in *schema.Incident) { in.Confidence = 0 }},
		{schema.FieldEvidence, `["a", 1]`, func(in *schema.Incident) { in.Evidence = nil }},
		{schema.FieldFalseAlarm, "maybe", func(in *schema.Incident) { in.FalseAlarm = false }},
		{schema.FieldLLMStartedMS, "now", func(in *schema.Incident) { in.LLM.Started = 0 }},
		{schema.FieldAttempts, "-", func(in *schema.Incident) { in.Attempts = 0 }},
		{schema.FieldErrors, `["e1", {}]`, func(in *schema.Incident) { in.Errors = nil }},
		{schema.FieldNextAt, "soon", func(in *schema.Incident) { in.NextAt = time.Time{} }},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			m := encodeIncident(good)
			m[tt.field] = tt.value
			got, err := schema.DecodeIncident(good.Key, m)
			wantFieldErrors(t, err, tt.field)
			want := good
			tt.zero(&want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("the rest of the record (-want +got):\n%s", diff)
			}
		})
	}
	// Several at once: each is reported.
	m := encodeIncident(good)
	m[schema.FieldAttempts], m[schema.FieldClosedAt] = "x", "y"
	_, err := schema.DecodeIncident(good.Key, m)
	wantFieldErrors(t, err, schema.FieldAttempts, schema.FieldClosedAt)
}

func TestLedgerRoundTrip(t *testing.T) {
	t.Parallel()
	full := schema.Ledger{Rev: "7", Attempts: []int64{1, 2, 3}, BackoffStep: 2, NextAllowedMS: 10, Breaker: schema.BreakerOpen,
		BreakerUntilMS: 20, LastAction: "restart", LastActionMS: 30, LastDecision: "execute", LastResult: "success",
		LastReason: "ok", HealthySinceMS: 40, InflightEvent: "e1", InflightAction: "restart", InflightMS: 50, ContainerID: "abc",
		UpdatedMS: 60, LastEvent: "e0"}
	tests := []struct {
		name string
		l    schema.Ledger
	}{
		{"every field", full},
		{"the zero ledger reads closed", schema.Ledger{Breaker: schema.BreakerClosed}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.l.Encode()
			if _, ok := m[schema.FieldRev]; ok {
				t.Errorf("Encode wrote the revision, which the commit script owns")
			}
			if tt.l.Rev != "" {
				m[schema.FieldRev] = tt.l.Rev
			}
			got, err := schema.DecodeLedger(m)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.l, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
	if diff := cmp.Diff(map[string]string{schema.FieldLedgerAttempts: "[]", schema.FieldBreaker: schema.BreakerClosed}, schema.Ledger{}.Encode()); diff != "" {
		t.Errorf("encoding of the zero ledger, zero values omitted (-want +got):\n%s", diff)
	}
	if got, err := schema.DecodeLedger(nil); err != nil || !cmp.Equal(got, schema.Ledger{Breaker: schema.BreakerClosed}) {
		t.Errorf("decode of no hash = %+v %v, want a closed zero ledger", got, err)
	}
}

func TestDecodeLedgerReportsBadFields(t *testing.T) {
	t.Parallel()
	good := schema.Ledger{Rev: "3", Attempts: []int64{5}, BackoffStep: 1, NextAllowedMS: 10, Breaker: schema.BreakerOpen,
		LastAction: "restart", InflightMS: 7}
	tests := []struct {
		field, value string
		zero         func(*schema.Ledger)
	}{
		{schema.FieldLedgerAttempts, `[1, "x"]`, func(l *schema.Ledger) { l.Attempts = nil }},
		{schema.FieldBackoffStep, "one", func(l *schema.Ledger) { l.BackoffStep = 0 }},
		{schema.FieldNextAllowedMS, "1e3", func(l *schema.Ledger) { l.NextAllowedMS = 0 }},
		{schema.FieldInflightMS, " 7", func(l *schema.Ledger) { l.InflightMS = 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			m := good.Encode()
			m[schema.FieldRev] = good.Rev
			m[tt.field] = tt.value
			got, err := schema.DecodeLedger(m)
			wantFieldErrors(t, err, tt.field)
			want := good
			tt.zero(&want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("the rest of the ledger (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLedgerChanges(t *testing.T) {
	t.Parallel()
	base := schema.Ledger{Rev: "4", Attempts: []int64{1}, BackoffStep: 1, LastAction: "restart", InflightEvent: "e1", InflightMS: 9}
	with := func(f func(*schema.Ledger)) schema.Ledger {
		l := base
		l.Attempts = slices.Clone(base.Attempts)
		f(&l)
		return l
	}
	tests := []struct {
		name    string
		from    schema.Ledger
		to      schema.Ledger
		wantSet map[string]string
		wantDel []string
	}{
		{"nothing changed", base, base, map[string]string{}, nil},
		{"only the revision differs", base, with(func(l *schema.Ledger) { l.Rev = "9" }), map[string]string{}, nil},
		{"the first commit writes only what is not zero", schema.Ledger{}, schema.Ledger{LastAction: "stop", BackoffStep: 2},
			map[string]string{schema.FieldLastAction: "stop", schema.FieldBackoffStep: "2"}, nil},
		{"the inflight action ends", base, with(func(l *schema.Ledger) { l.InflightEvent, l.InflightMS, l.LastResult = "", 0, "success" }),
			map[string]string{schema.FieldLastResult: "success"}, []string{schema.FieldInflightEvent, schema.FieldInflightMS}},
		{"an attempt added", base, with(func(l *schema.Ledger) { l.Attempts = append(l.Attempts, 2) }),
			map[string]string{schema.FieldLedgerAttempts: "[1,2]"}, nil},
		{"the attempts forgotten", base, with(func(l *schema.Ledger) { l.Attempts = nil }),
			map[string]string{schema.FieldLedgerAttempts: "[]"}, nil},
		{"the breaker closes: written, never deleted", with(func(l *schema.Ledger) { l.Breaker = schema.BreakerOpen }), base,
			map[string]string{schema.FieldBreaker: schema.BreakerClosed}, nil},
		{"everything cleared", base, schema.Ledger{},
			map[string]string{schema.FieldLedgerAttempts: "[]"},
			[]string{schema.FieldBackoffStep, schema.FieldInflightEvent, schema.FieldInflightMS, schema.FieldLastAction}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, del := schema.LedgerChanges(tt.from, tt.to)
			if diff := cmp.Diff(tt.wantSet, set); diff != "" {
				t.Errorf("set (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantDel, del); diff != "" {
				t.Errorf("delete (-want +got):\n%s", diff)
			}
			// Applying the changes to the encoding of from gives the encoding of to.
			h := tt.from.Encode()
			maps.Copy(h, set)
			for _, f := range del {
				delete(h, f)
			}
			if diff := cmp.Diff(tt.to.Encode(), h); diff != "" {
				t.Errorf("from + changes != to (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLedgerFields(t *testing.T) {
	t.Parallel()
	want := []string{schema.FieldRev, schema.FieldLedgerAttempts, schema.FieldBackoffStep, schema.FieldNextAllowedMS, schema.FieldBreaker,
		schema.FieldBreakerUntilMS, schema.FieldLastAction, schema.FieldLastActionMS, schema.FieldLastDecision, schema.FieldLastResult,
		schema.FieldLastReason, schema.FieldHealthySinceMS, schema.FieldInflightEvent, schema.FieldInflightAction, schema.FieldInflightMS,
		schema.FieldLedgerCID, schema.FieldUpdatedMS, schema.FieldLastEvent}
	slices.Sort(want)
	if diff := cmp.Diff(want, schema.LedgerFields()); diff != "" {
		t.Errorf("ledger fields (-want +got):\n%s", diff)
	}
}

func TestLedgerTimes(t *testing.T) {
	t.Parallel()
	ms := t0.Truncate(time.Millisecond)
	l := schema.Ledger{Attempts: []int64{ms.UnixMilli()}, NextAllowedMS: ms.UnixMilli(), LastEvent: "e1"}
	if got := l.NextAllowed(); !got.Equal(ms) || got.Location() != time.UTC {
		t.Errorf("NextAllowed = %v, want %v in UTC", got, ms)
	}
	for name, got := range map[string]time.Time{"BreakerUntil": l.BreakerUntil(), "LastActionAt": l.LastActionAt(),
		"HealthySince": l.HealthySince(), "InflightSince": l.InflightSince()} {
		if !got.IsZero() {
			t.Errorf("%s of 0 ms = %v, want the zero time", name, got)
		}
	}
	if diff := cmp.Diff([]time.Time{ms}, l.AttemptTimes()); diff != "" {
		t.Errorf("attempt times (-want +got):\n%s", diff)
	}
	if !l.LastEventIs("e1") || l.LastEventIs("e2") || (schema.Ledger{}).LastEventIs("") {
		t.Errorf("LastEventIs: an empty id must never match, e1 must")
	}
}

func TestOnly(t *testing.T) {
	t.Parallel()
	f := map[string]string{"a": "1", "b": "", "c": "3"}
	tests := []struct {
		names []string
		want  map[string]string
	}{
		{[]string{"a", "b"}, map[string]string{"a": "1", "b": ""}},
		{[]string{"c", "missing"}, map[string]string{"c": "3"}},
		{nil, map[string]string{}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, schema.Only(f, tt.names...)); diff != "" {
			t.Errorf("Only(%v) (-want +got):\n%s", tt.names, diff)
		}
	}
	// Only copies: changing its result leaves the encoding alone.
	out := schema.Only(f, "a")
	out["a"] = "changed"
	if f["a"] != "1" {
		t.Errorf("Only shares its map with the input")
	}
}

func TestStatsRoundTrip(t *testing.T) {
	t.Parallel()
	sample := &container.Sample{Time: t0, Source: "cgroup", Metrics: event.Metrics{CPUPercent: 1.5, MemoryUsage: 1 << 30, PIDs: 12},
		CPUTotalNS: 99, SystemNS: 100, OnlineCPUs: 4}
	for _, s := range []schema.Stats{
		{Sample: sample, History: container.History{CPU: []float64{1, 2}, Memory: []float64{3}}},
		{History: container.History{CPU: []float64{1}}},
	} {
		m, err := s.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := m[schema.FieldSample]; ok != (s.Sample != nil) {
			t.Errorf("sample field written = %v, want %v", ok, s.Sample != nil)
		}
		got, err := schema.DecodeStats(m)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(s, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
	}
	good, _ := schema.Stats{Sample: sample, History: container.History{CPU: []float64{1}}}.Encode()
	tests := []struct {
		field string
		want  schema.Stats
	}{
		{schema.FieldSample, schema.Stats{History: container.History{CPU: []float64{1}}}},
		{schema.FieldHistory, schema.Stats{Sample: sample}},
	}
	for _, tt := range tests {
		m := maps.Clone(good)
		m[tt.field] = `{"cpu":["x"]}`
		if tt.field == schema.FieldSample {
			m[tt.field] = `{"time":1}`
		}
		got, err := schema.DecodeStats(m)
		wantFieldErrors(t, err, tt.field)
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("bad %s, the rest (-want +got):\n%s", tt.field, diff)
		}
	}
}

func TestAgentRoundTrip(t *testing.T) {
	t.Parallel()
	full := schema.Agent{Kind: "respond", Instance: "h-1", Version: "1.0", Host: "h", StartedAt: t0, LastHeartbeat: at(time.Minute),
		Mode: "auto", Listen: ":9090", LLM: "claude", LLMMode: "decide", Policy: `{"max":1}`}
	minimal := schema.Agent{Kind: "monitor", Instance: "m", Version: "1.0", StartedAt: t0, LastHeartbeat: t0}
	for _, a := range []schema.Agent{full, minimal} {
		m := a.Encode()
		got, err := schema.DecodeAgent(schema.AgentKey(a.Kind, a.Instance), m)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(a, got); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
	}
	got := slices.Sorted(maps.Keys(minimal.Encode()))
	want := []string{schema.FieldInstance, schema.FieldKind, schema.FieldLastHeartbeat, schema.FieldStartedAt, schema.FieldVersion}
	slices.Sort(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("fields of a minimal heartbeat, empty optionals omitted (-want +got):\n%s", diff)
	}
	// Kind and instance come from the key when the hash lacks them; a bad time is reported, the rest kept.
	a, err := schema.DecodeAgent(schema.AgentKey("alert", "a:1"), map[string]string{schema.FieldVersion: "2", schema.FieldLastHeartbeat: "now"})
	wantFieldErrors(t, err, schema.FieldLastHeartbeat)
	if diff := cmp.Diff(schema.Agent{Kind: "alert", Instance: "a:1", Version: "2"}, a); diff != "" {
		t.Errorf("decode from the key (-want +got):\n%s", diff)
	}
}

func TestHostStatusRoundTrip(t *testing.T) {
	t.Parallel()
	h := schema.HostStatus{Host: "h", Sampler: "api", Workers: 8, RoundSeconds: 1.234567, Rounds: 1 << 40, RoundsSkipped: 2, SampleErrors: 3,
		Events: 4, AlertsBuffered: 5, AlertsDropped: 6, Containers: 7, Running: 6, Watched: 5, UpdatedAt: t0}
	got, err := schema.DecodeHostStatus(h.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(h, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	m := h.Encode()
	m[schema.FieldRoundSeconds], m[schema.FieldWatched] = "fast", "all"
	got, err = schema.DecodeHostStatus(m)
	wantFieldErrors(t, err, schema.FieldRoundSeconds, schema.FieldWatched)
	want := h
	want.RoundSeconds, want.Watched = 0, 0
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("the rest (-want +got):\n%s", diff)
	}
}

func TestSmallRecords(t *testing.T) {
	t.Parallel()
	th := schema.Thread{Channel: "C1", TS: "1700000000.000100"}
	if got := schema.DecodeThread(th.Encode()); got != th {
		t.Errorf("thread round trip = %+v, want %+v", got, th)
	}
	head, err := schema.DecodeAuditHead(map[string]string{schema.FieldHeadHash: "abc", schema.FieldHeadSeq: "42", schema.FieldHeadID: "1-0"})
	if err != nil || head != (schema.AuditHead{Hash: "abc", Seq: 42, ID: "1-0"}) {
		t.Errorf("audit head = %+v %v", head, err)
	}
	head, err = schema.DecodeAuditHead(map[string]string{schema.FieldHeadHash: "abc", schema.FieldHeadSeq: "x"})
	wantFieldErrors(t, err, schema.FieldHeadSeq)
	if head != (schema.AuditHead{Hash: "abc"}) {
		t.Errorf("audit head with a bad seq = %+v", head)
	}
	if head, err := schema.DecodeAuditHead(nil); err != nil || head != (schema.AuditHead{}) {
		t.Errorf("audit head of an empty trail = %+v %v", head, err)
	}
}

func TestNotifyCounter(t *testing.T) {
	t.Parallel()
	for _, c := range []schema.NotifyCounter{{schema.CounterSent, "slack"}, {schema.CounterSuppressed, ""}, {schema.CounterDeduplicated, "a:b"}} {
		got, err := schema.ParseNotifyCounter(c.Field())
		if err != nil || got != c {
			t.Errorf("parse of %q = %+v %v, want %+v", c.Field(), got, err, c)
		}
	}
	for _, bad := range []string{"sent", ":slack", ""} {
		if _, err := schema.ParseNotifyCounter(bad); err == nil || !strings.Contains(err.Error(), `"`+bad+`"`) {
			t.Errorf("parse of %q: %v, want an error quoting it", bad, err)
		}
	}
}

func TestContainerRoundTrip(t *testing.T) {
	t.Parallel()
	s := container.Summary{ID: "abc", Name: "web", Host: "h", Image: "nginx", State: "running", Health: "healthy", ExitCode: 1,
		RestartCount: 2, OOMKilled: true, StartedAt: t0, Labels: map[string]string{"a": "b"}, Mode: container.ModeSuggest,
		Incidents: []string{"crashed"}, UpdatedAt: at(time.Second)}
	for _, watched := range []bool{true, false} {
		s.Watched = watched
		b, err := schema.EncodeContainer(s)
		if err != nil {
			t.Fatal(err)
		}
		got, err := schema.DecodeContainer(b)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(s, got); diff != "" {
			t.Errorf("round trip, watched %v (-want +got):\n%s", watched, diff)
		}
	}
	if got, err := schema.DecodeContainer([]byte(`{"name":"old"}`)); err != nil || !got.Watched {
		t.Errorf("a summary from before the watched flag = %+v %v, want watched", got, err)
	}
	if _, err := schema.DecodeContainer([]byte(`{"name":`)); err == nil {
		t.Errorf("a truncated summary decoded")
	}
}

func TestTimes(t *testing.T) {
	t.Parallel()
	paris := time.FixedZone("CET", 3600)
	tests := []struct {
		in   time.Time
		want string
	}{
		{time.Time{}, ""},
		{t0, "2026-11-28T12:00:00.123456789Z"},
		{time.Date(2026, 11, 28, 13, 0, 0, 0, paris), "2026-11-28T12:00:00Z"},
	}
	for _, tt := range tests {
		s := schema.FormatTime(tt.in)
		if s != tt.want {
			t.Errorf("FormatTime(%v) = %q, want %q", tt.in, s, tt.want)
		}
		back, err := schema.ParseTime(s)
		if err != nil || !back.Equal(tt.in) {
			t.Errorf("ParseTime(%q) = %v %v, want %v", s, back, err, tt.in)
		}
	}
	if _, err := schema.ParseTime("yesterday"); err == nil {
		t.Errorf("ParseTime of a word succeeded")
	}
}

func TestKeys(t *testing.T) {
	t.Parallel()
	// Every key a container's ledger script touches shares the container's hash tag; the host's keys share
	// the host's. The shadow keys are apart from the real ones.
	for _, shadow := range []bool{false, true} {
		k := schema.RespondKeys("h", "web", shadow)
		for _, key := range []string{k.Ledger, k.Lease} {
			if !strings.HasSuffix(key, "{h/web}") {
				t.Errorf("shadow %v: %s is not in the container's slot", shadow, key)
			}
		}
		for _, key := range []string{k.Active, k.Hold} {
			if !strings.HasSuffix(key, "{h}") {
				t.Errorf("shadow %v: %s is not in the host's slot", shadow, key)
			}
		}
	}
	live, shadow := schema.RespondKeys("h", "web", false), schema.RespondKeys("h", "web", true)
	if live.Ledger != schema.LedgerKey("h/web") || shadow.Ledger != schema.ShadowKey("h/web") {
		t.Errorf("ledgers = %s, %s", live.Ledger, shadow.Ledger)
	}
	for _, pair := range [][2]string{{live.Ledger, shadow.Ledger}, {live.Lease, shadow.Lease}, {live.Active, shadow.Active}, {live.Hold, shadow.Hold}} {
		if pair[0] == pair[1] {
			t.Errorf("a real key is also a shadow key: %s", pair[0])
		}
	}

	agents := []struct {
		kind, instance string
	}{{"monitor", "h-1"}, {"respond", "h:2"}, {"alert", ""}}
	for _, a := range agents {
		kind, inst, ok := schema.AgentOf(schema.AgentKey(a.kind, a.instance))
		if !ok || kind != a.kind || inst != a.instance {
			t.Errorf("AgentOf(AgentKey(%q, %q)) = %q %q %v", a.kind, a.instance, kind, inst, ok)
		}
	}
	for _, k := range []string{schema.ContainersKey("h"), schema.KeyContainersLegacy} {
		if _, _, ok := schema.AgentOf(k); ok {
			t.Errorf("AgentOf accepted %s", k)
		}
	}
	for _, tt := range []struct{ in, want string }{
		{schema.IncidentKey("h/web/crashed"), "h/web/crashed"},
		{"h/web/crashed", "h/web/crashed"},
		{schema.IncidentKey(""), schema.IncidentKey("")},
	} {
		if got := schema.IncidentOf(tt.in); got != tt.want {
			t.Errorf("IncidentOf(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if schema.NotifyDedupKey("h/a/x", "opened") == schema.NotifyDedupKey("h/a/x", "recovered") {
		t.Errorf("two states share a deduplication key")
	}
}

func TestProgressGaveUp(t *testing.T) {
	t.Parallel()
	if (schema.Progress{}).GaveUp() || !(schema.Progress{GaveUpAt: t0}).GaveUp() {
		t.Errorf("GaveUp must follow GaveUpAt")
	}
}

func TestBusRejectionRoundTrip(t *testing.T) {
	for _, r := range []schema.BusRejection{
		{Stream: "hemostat:remediation_needed", Group: "respond:node-a", Reason: "bad_mac"},
		{Stream: "hemostat:health_alert", Group: "odd|group", Reason: "unsigned"},
	} {
		got, err := schema.ParseBusRejection(r.Field())
		if err != nil || got != r {
			t.Errorf("ParseBusRejection(%q) = %+v, %v, want %+v", r.Field(), got, err, r)
		}
	}
	for _, bad := range []string{"", "stream", "stream|group", "|group|reason", "stream|group|"} {
		if _, err := schema.ParseBusRejection(bad); err == nil {
			t.Errorf("ParseBusRejection(%q) succeeded", bad)
		}
	}
}
