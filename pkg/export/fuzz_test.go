package export

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hemostat/hemostat/pkg/event"
)

// FuzzObserve feeds the exporter's event metrics anyone's bytes from the work streams. It never panics,
// and every label value stays within a known set, so forged events cannot grow the series without bound.
func FuzzObserve(f *testing.F) {
	add := func(p event.Payload, incident string) {
		env, _ := event.New("x", "node-a", incident, "", p)
		b, _ := json.Marshal(env)
		f.Add(b)
	}
	add(&event.ContainerUnhealthy{ContainerName: "w", Class: "crashed", Severity: "made-up"}, "node-a/w/crashed")
	add(&event.RemediationNeeded{Container: "w", Action: "none", ProposedAction: "stop", Confidence: 1,
		AnalysisMethod: "llm:openai:gpt-4o-mini"}, "node-a/w/cpu_saturated")
	add(&event.RemediationNeeded{Container: "w", Action: "restart", AnalysisMethod: "invented\x1b-method"}, "")
	add(&event.RemediationComplete{Container: "w", Action: "restart", Result: event.Result{Status: "success"}, Verified: true,
		GaveUp: true, Attempts: 3}, "node-a/w/"+strings.Repeat("z", 300))
	add(&event.ContainerRecovered{ContainerName: "w", Class: "crashed", Attempts: 1}, "")
	f.Add([]byte(`{"id":"1","event_type":"invented","data":{}}`))
	allowed := map[string][]string{
		"class": append([]string{"unknown"}, event.Classes...), "action": append([]string{"unknown"}, event.Actions...),
		"result": append([]string{"unknown"}, event.Statuses...), "event_type": append([]string{"unknown"}, eventTypes...),
		"severity": {"unknown", event.SeverityInfo, event.SeverityWarning, event.SeverityCritical},
		"outcome":  {"remediation", "false_alarm", endRecovered, endGaveUp},
	}
	method := regexp.MustCompile(`^(unknown|rules|llm:(anthropic|openai):[A-Za-z0-9._:/@-]{1,64})$`)
	f.Fuzz(func(t *testing.T, raw []byte) {
		env, err := event.Decode(raw)
		if err != nil {
			return
		}
		reg := prometheus.NewRegistry()
		m := newEventMetrics(reg)
		m.observe(env)
		m.observe(env)
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatalf("gather: %v", err)
		}
		for _, mf := range mfs {
			for _, mt := range mf.GetMetric() {
				for _, l := range mt.GetLabel() {
					v := l.GetValue()
					if set, ok := allowed[l.GetName()]; ok && !slices.Contains(set, v) {
						t.Fatalf("%s{%s=%q}: not a known value", mf.GetName(), l.GetName(), v)
					}
					if l.GetName() == "method" && !method.MatchString(v) {
						t.Fatalf("%s{method=%q}: not a method the analyzer writes", mf.GetName(), v)
					}
				}
			}
		}
	})
}
