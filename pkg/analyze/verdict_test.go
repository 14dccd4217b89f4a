package analyze

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseVerdict(t *testing.T) {
	valid := `{"root_cause":"heap exhausted by a cache without bound","failure_class":"memory_leak","action":"restart",` +
		`"confidence":0.82,"evidence":["memory grew 2%/min","OutOfMemoryError in logs"],"is_false_alarm":false}`
	tests := []struct {
		name    string
		raw     string
		want    Verdict
		field   string // of the VerdictError, when invalid
		errText string
	}{
		{name: "valid", raw: valid, want: Verdict{RootCause: "heap exhausted by a cache without bound", FailureClass: "memory_leak",
			Action: "restart", Confidence: 0.82, Evidence: []string{"memory grew 2%/min", "OutOfMemoryError in logs"}}},
		{name: "fenced and extra field", raw: "```json\n" + strings.Replace(valid, `"is_false_alarm":false`, `"is_false_alarm":false,"note":"x"`, 1) + "\n```",
			want: Verdict{RootCause: "heap exhausted by a cache without bound", FailureClass: "memory_leak",
				Action: "restart", Confidence: 0.82, Evidence: []string{"memory grew 2%/min", "OutOfMemoryError in logs"}}},
		{name: "confidence bounds inclusive", raw: strings.Replace(valid, "0.82", "1", 1),
			want: Verdict{RootCause: "heap exhausted by a cache without bound", FailureClass: "memory_leak",
				Action: "restart", Confidence: 1, Evidence: []string{"memory grew 2%/min", "OutOfMemoryError in logs"}}},
		{name: "not json", raw: "I think you should restart it.", errText: "not a JSON object"},
		{name: "array", raw: `[1,2]`, errText: "not a JSON object"},
		{name: "missing root cause", raw: strings.Replace(valid, `"root_cause":"heap exhausted by a cache without bound",`, "", 1), field: "root_cause"},
		{name: "empty root cause", raw: strings.Replace(valid, "heap exhausted by a cache without bound", "  ", 1), field: "root_cause"},
		{name: "string confidence", raw: strings.Replace(valid, "0.82", `"0.82"`, 1), field: "confidence", errText: "want a number"},
		{name: "confidence above 1", raw: strings.Replace(valid, "0.82", "1.2", 1), field: "confidence", errText: "outside 0..1"},
		{name: "negative confidence", raw: strings.Replace(valid, "0.82", "-0.1", 1), field: "confidence", errText: "outside 0..1"},
		{name: "missing confidence", raw: strings.Replace(valid, `"confidence":0.82,`, "", 1), field: "confidence", errText: "missing"},
		{name: "unknown action", raw: strings.Replace(valid, `"restart"`, `"reboot_host"`, 1), field: "action", errText: "not one of"},
		{name: "any known action parses", raw: strings.Replace(valid, `"restart"`, `"stop"`, 1),
			want: Verdict{RootCause: "heap exhausted by a cache without bound", FailureClass: "memory_leak",
				Action: "stop", Confidence: 0.82, Evidence: []string{"memory grew 2%/min", "OutOfMemoryError in logs"}}},
		{name: "numeric action", raw: strings.Replace(valid, `"restart"`, `3`, 1), field: "action", errText: "want a string"},
		{name: "unknown class", raw: strings.Replace(valid, "memory_leak", "gremlins", 1), field: "failure_class"},
		{name: "evidence string", raw: strings.Replace(valid, `["memory grew 2%/min","OutOfMemoryError in logs"]`, `"lots"`, 1), field: "evidence"},
		{name: "evidence null", raw: strings.Replace(valid, `["memory grew 2%/min","OutOfMemoryError in logs"]`, `null`, 1), field: "evidence"},
		{name: "evidence of numbers", raw: strings.Replace(valid, `["memory grew 2%/min","OutOfMemoryError in logs"]`, `[1,2]`, 1), field: "evidence"},
		{name: "string boolean", raw: strings.Replace(valid, `"is_false_alarm":false`, `"is_false_alarm":"false"`, 1), field: "is_false_alarm"},
		{name: "missing boolean", raw: strings.Replace(valid, `,"is_false_alarm":false`, ``, 1), field: "is_false_alarm"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseVerdict([]byte(tt.raw))
			if tt.field == "" && tt.errText == "" {
				if err != nil {
					t.Fatalf("ParseVerdict() error = %v", err)
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("ParseVerdict() mismatch (-want +got):\n%s", diff)
				}
				return
			}
			if !errors.Is(err, ErrInvalidVerdict) {
				t.Fatalf("ParseVerdict() error = %v, want an invalid verdict", err)
			}
			var ve *VerdictError
			errors.As(err, &ve)
			if ve.Field != tt.field {
				t.Errorf("ParseVerdict() field = %q, want %q (%v)", ve.Field, tt.field, err)
			}
			if !strings.Contains(err.Error(), tt.errText) {
				t.Errorf("ParseVerdict() error = %q, want it to contain %q", err, tt.errText)
			}
		})
	}
}

func TestVerdictApply(t *testing.T) {
	v := Verdict{RootCause: "bad config", FailureClass: "crash_loop", Action: "none", Confidence: 0.9, Evidence: []string{"e"}}
	allowed := []string{"restart", "none"}
	d := v.Apply("llm:openai:m", 0.7, allowed)
	if d.FalseAlarm || d.Action != "none" || d.Method != "llm:openai:m" || d.RootCause != "bad config" || d.Proposed != "" {
		t.Errorf("Apply() = %+v", d)
	}
	v.Confidence = 0.5
	if d := v.Apply("m", 0.7, allowed); !d.FalseAlarm || !strings.Contains(d.Reason, "below minimum") {
		t.Errorf("Apply() under min confidence = %+v, want a false alarm", d)
	}
	v.Confidence, v.IsFalseAlarm = 0.9, true
	if d := v.Apply("m", 0.7, allowed); !d.FalseAlarm {
		t.Errorf("Apply() of a false alarm verdict = %+v", d)
	}
	// A proposal outside the set is refused whatever else the verdict says: a human decides.
	for _, v := range []Verdict{
		{RootCause: "logs say so", FailureClass: "cpu_saturated", Action: "stop", Confidence: 0.99},
		{RootCause: "logs say so", FailureClass: "cpu_saturated", Action: "stop", Confidence: 0.1},
		{RootCause: "logs say so", FailureClass: "cpu_saturated", Action: "stop", Confidence: 0.99, IsFalseAlarm: true},
	} {
		d := v.Apply("llm:openai:m", 0.7, allowed)
		if d.Action != "none" || d.Proposed != "stop" || d.FalseAlarm || !strings.HasPrefix(d.Reason, "LLM proposed stop: a human decides") {
			t.Errorf("Apply(%+v) = %+v, want an escalation with the proposal", v, d)
		}
	}
}
