package analyze

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/hemostat/hemostat/pkg/event"
)

// Verdict is an LLM's diagnosis, after strict validation.
type Verdict struct {
	RootCause    string   `json:"root_cause"`
	FailureClass string   `json:"failure_class"`
	Action       string   `json:"action"`
	Confidence   float64  `json:"confidence"`
	Evidence     []string `json:"evidence"`
	IsFalseAlarm bool     `json:"is_false_alarm"`
}

// Limits on what a verdict may carry into events and the incident hash.
const (
	maxRootCause     = 1000
	maxEvidence      = 10
	maxEvidenceItem  = 300
	verdictToolName  = "report_diagnosis"
	verdictToolUsage = "Report the diagnosis of the container failure and the one remediation action to take."
)

// VerdictError says why an LLM's answer was rejected; the rules decide instead.
type VerdictError struct {
	Field  string
	Reason string
}

// Error implements error.
func (e *VerdictError) Error() string {
	if e.Field == "" {
		return "invalid verdict: " + e.Reason
	}
	return fmt.Sprintf("invalid verdict: %s: %s", e.Field, e.Reason)
}

// ErrInvalidVerdict matches every *VerdictError with errors.Is.
var ErrInvalidVerdict = errors.New("invalid verdict")

// Is lets errors.Is(err, ErrInvalidVerdict) match.
func (e *VerdictError) Is(target error) bool { return target == ErrInvalidVerdict }

// VerdictSchema is the JSON schema of a verdict whose action is one of allowed. It is strict (every field
// required, nothing else), as OpenAI's structured outputs require.
func VerdictSchema(allowed []string) map[string]any {
	return map[string]any{
		"type": "object",
		"properties": map[string]any{
			"root_cause":     map[string]any{"type": "string", "description": "the most likely root cause, one or two sentences"},
			"failure_class":  map[string]any{"type": "string", "enum": event.Classes, "description": "the failure class you conclude"},
			"action":         map[string]any{"type": "string", "enum": allowed, "description": "the one remediation to take; none escalates to a human"},
			"confidence":     map[string]any{"type": "number", "description": "0 to 1"},
			"evidence":       map[string]any{"type": "array", "items": map[string]any{"type": "string"}, "description": "facts from the input that support the diagnosis"},
			"is_false_alarm": map[string]any{"type": "boolean", "description": "true when nothing is wrong"},
		},
		"required":             []string{"root_cause", "failure_class", "action", "confidence", "evidence", "is_false_alarm"},
		"additionalProperties": false,
	}
}

// ParseVerdict validates an LLM's JSON strictly: every field present with its type, confidence within
// 0..1, a known failure class and a known action. Unknown fields are ignored. Whether the model may
// choose the action is Apply's question.
func ParseVerdict(raw []byte) (Verdict, error) {
	raw = stripFence(raw)
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return Verdict{}, &VerdictError{Reason: "not a JSON object: " + err.Error()}
	}
	var v Verdict
	str := func(name string, dst *string) error {
		r, ok := fields[name]
		if !ok {
			return &VerdictError{Field: name, Reason: "missing"}
		}
		if len(r) == 0 || r[0] != '"' || json.Unmarshal(r, dst) != nil {
			return &VerdictError{Field: name, Reason: "want a string, got " + clip(string(r), 40)}
		}
		return nil
	}
	if err := str("root_cause", &v.RootCause); err != nil {
		return Verdict{}, err
	}
	if err := str("failure_class", &v.FailureClass); err != nil {
		return Verdict{}, err
	}
	if err := str("action", &v.Action); err != nil {
		return Verdict{}, err
	}
	r, ok := fields["confidence"]
	switch {
	case !ok:
		return Verdict{}, &VerdictError{Field: "confidence", Reason: "missing"}
	case len(r) == 0 || (r[0] != '-' && (r[0] < '0' || r[0] > '9')) || json.Unmarshal(r, &v.Confidence) != nil:
		return Verdict{}, &VerdictError{Field: "confidence", Reason: "want a number, got " + clip(string(r), 40)}
	case v.Confidence < 0 || v.Confidence > 1:
		return Verdict{}, &VerdictError{Field: "confidence", Reason: fmt.Sprintf("%v is outside 0..1", v.Confidence)}
	}
	r, ok = fields["evidence"]
	switch {
	case !ok:
		return Verdict{}, &VerdictError{Field: "evidence", Reason: "missing"}
	case len(r) == 0 || r[0] != '[' || json.Unmarshal(r, &v.Evidence) != nil:
		return Verdict{}, &VerdictError{Field: "evidence", Reason: "want an array of strings, got " + clip(string(r), 40)}
	}
	r, ok = fields["is_false_alarm"]
	switch {
	case !ok:
		return Verdict{}, &VerdictError{Field: "is_false_alarm", Reason: "missing"}
	case json.Unmarshal(r, &v.IsFalseAlarm) != nil || (string(r) != "true" && string(r) != "false"):
		return Verdict{}, &VerdictError{Field: "is_false_alarm", Reason: "want a boolean, got " + clip(string(r), 40)}
	}
	if !slices.Contains(event.Classes, v.FailureClass) {
		return Verdict{}, &VerdictError{Field: "failure_class", Reason: fmt.Sprintf("%q is not a failure class", clip(v.FailureClass, 40))}
	}
	if !slices.Contains(event.Actions, v.Action) {
		return Verdict{}, &VerdictError{Field: "action", Reason: fmt.Sprintf("%q is not one of %v", clip(v.Action, 40), event.Actions)}
	}
	v.RootCause = clip(strings.TrimSpace(v.RootCause), maxRootCause)
	if v.RootCause == "" {
		return Verdict{}, &VerdictError{Field: "root_cause", Reason: "empty"}
	}
	if len(v.Evidence) > maxEvidence {
		v.Evidence = v.Evidence[:maxEvidence]
	}
	for i, e := range v.Evidence {
		v.Evidence[i] = clip(e, maxEvidenceItem)
	}
	return v, nil
}

// stripFence removes a Markdown code fence some OpenAI-compatible servers wrap JSON in.
func stripFence(b []byte) []byte {
	b = bytes.TrimSpace(b)
	if !bytes.HasPrefix(b, []byte("```")) {
		return b
	}
	b = bytes.TrimPrefix(b, []byte("```"))
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	}
	b = bytes.TrimSuffix(bytes.TrimSpace(b), []byte("```"))
	return bytes.TrimSpace(b)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary.
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}

// Apply turns a validated verdict into a decision. An action outside allowed, the actions the model may
// choose for the alert (AllowedActions), is refused whatever else the verdict says: the decision
// escalates to a human and keeps the proposal.
func (v Verdict) Apply(method string, minConfidence float64, allowed []string) Decision {
	if minConfidence <= 0 {
		minConfidence = DefaultMinConfidence
	}
	d := Decision{Action: v.Action, Confidence: v.Confidence, Method: method, Class: v.FailureClass,
		RootCause: v.RootCause, Evidence: v.Evidence, Reason: v.RootCause}
	switch {
	case !slices.Contains(allowed, v.Action):
		d.Action, d.Proposed = event.ActionNone, v.Action
		d.Reason = fmt.Sprintf("LLM proposed %s: a human decides (it may choose %s)", v.Action, strings.Join(allowed, ", "))
	case v.IsFalseAlarm:
		d.FalseAlarm = true
		d.Reason = "the model judged it a false alarm: " + v.RootCause
	case v.Confidence < minConfidence:
		d.FalseAlarm = true
		d.Reason = fmt.Sprintf("confidence %.2f below minimum %.2f: %s", v.Confidence, minConfidence, v.RootCause)
	}
	return d
}
