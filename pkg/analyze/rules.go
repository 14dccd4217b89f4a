// Package analyze owns diagnosis: the rules that decide every failure class within microseconds, the
// optional LLM diagnosis that is validated against a schema and never in the way, and the analyze agent
// that turns health alerts into remediation requests or false alarms.
package analyze

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hemostat/hemostat/pkg/container"
	"github.com/hemostat/hemostat/pkg/event"
)

// MethodRules is the analysis_method of a rules decision.
const MethodRules = "rules"

// Default tuning.
const (
	DefaultMinConfidence = 0.7
	DefaultOOMWindow     = time.Hour
)

// Rule is one row of the rules table: what the rules do for a failure class.
type Rule struct {
	Class      string
	Action     string  // the action when the evidence holds
	Confidence float64 // the confidence when the evidence holds
	Otherwise  string  // what changes the outcome, for the README table
}

// Rules returns the rules table, one row per failure class, in event.Classes order.
func Rules() []Rule {
	return []Rule{
		{event.ClassCrashed, event.ActionRestart, 0.9, "exit code 0: confidence 0.3 (false alarm)"},
		{event.ClassOOMKilled, event.ActionRestart, 0.8, "another OOM kill within the window (1 h): none 0.95, \"raise the memory limit\""},
		{event.ClassCrashLoop, event.ActionNone, 0.95, "always escalates: the restart policy is already restarting it"},
		{event.ClassUnhealthy, event.ActionRestart, 0.85, "health status back to healthy: confidence 0.4 (false alarm)"},
		{event.ClassCPUSaturated, event.ActionRestart, 0.75, "swarm service: scale; anomaly back under its threshold: 0.5 (false alarm)"},
		{event.ClassMemoryPressure, event.ActionRestart, 0.75, "swarm service: scale; anomaly back under its threshold: 0.5 (false alarm)"},
		{event.ClassMemoryLeak, event.ActionRestart, 0.8, "swarm service: scale"},
	}
}

// RulesMarkdown renders the rules table for the README.
func RulesMarkdown() string {
	var b strings.Builder
	b.WriteString("| class | action | confidence | otherwise |\n|---|---|---|---|\n")
	for _, r := range Rules() {
		fmt.Fprintf(&b, "| `%s` | `%s` | %.2f | %s |\n", r.Class, r.Action, r.Confidence, r.Otherwise)
	}
	return b.String()
}

// Facts are what the rules know beyond the alert itself.
type Facts struct {
	OOMRepeats    int           // other OOM kills of this container within OOMWindow
	OOMWindow     time.Duration // default DefaultOOMWindow
	MinConfidence float64       // below it the result is a false alarm; default DefaultMinConfidence
}

// Decision is the analyzer's answer to one alert.
type Decision struct {
	Action     string   `json:"action"`
	Confidence float64  `json:"confidence"`
	Reason     string   `json:"reason"`
	FalseAlarm bool     `json:"false_alarm"`
	Method     string   `json:"analysis_method"`
	Class      string   `json:"class"`
	RootCause  string   `json:"root_cause,omitempty"`
	Evidence   []string `json:"evidence,omitempty"`
	LLMError   string   `json:"llm_error,omitempty"`
	Proposed   string   `json:"proposed_action,omitempty"` // an LLM's refused proposal; Action is none
}

// Decide applies the rules to an alert. It is pure and allocation-light: it runs on every alert.
func Decide(a *event.ContainerUnhealthy, f Facts) Decision {
	if f.MinConfidence <= 0 {
		f.MinConfidence = DefaultMinConfidence
	}
	if f.OOMWindow <= 0 {
		f.OOMWindow = DefaultOOMWindow
	}
	swarm := a.Labels[container.LabelSwarmService] != ""
	d := Decision{Method: MethodRules, Class: a.Class}
	var candidates []string // acceptable actions in order of preference
	switch a.Class {
	case event.ClassCrashed:
		if a.ExitCode == 0 {
			d.Confidence, d.Reason = 0.3, "exited with code 0: a clean exit is not a crash"
		} else {
			d.Confidence, d.Reason = 0.9, fmt.Sprintf("exited with code %d", a.ExitCode)
		}
		candidates = []string{event.ActionRestart}
	case event.ClassOOMKilled:
		if f.OOMRepeats > 0 {
			d.Confidence = 0.95
			d.Reason = fmt.Sprintf("OOM-killed again within %s: raise the memory limit (a restart would only repeat it)", f.OOMWindow)
			candidates = []string{event.ActionNone}
		} else {
			d.Confidence, d.Reason = 0.8, "OOM-killed: restart once"
			candidates = []string{event.ActionRestart}
		}
	case event.ClassCrashLoop:
		d.Confidence = 0.95
		d.Reason = fmt.Sprintf("crash loop (%d restarts): the restart policy is already restarting it; a human must look", a.RestartCount)
		candidates = []string{event.ActionNone}
	case event.ClassUnhealthy:
		if a.HealthStatus == "healthy" {
			d.Confidence, d.Reason = 0.4, "healthcheck passes again"
		} else {
			d.Confidence, d.Reason = 0.85, "healthcheck failing"
		}
		candidates = []string{event.ActionRestart}
	case event.ClassCPUSaturated, event.ClassMemoryPressure:
		what := "cpu"
		if a.Class == event.ClassMemoryPressure {
			what = "memory"
		}
		if an, ok := cleared(a.Anomalies, what); ok {
			d.Confidence = 0.5
			d.Reason = fmt.Sprintf("%s %.1f%% is under its threshold %.1f%%: transient", what, an.Actual, an.Threshold)
		} else {
			d.Confidence, d.Reason = 0.75, fmt.Sprintf("%s saturated over consecutive samples", what)
		}
		candidates = ClassActions(a.Class, swarm)
	case event.ClassMemoryLeak:
		d.Confidence, d.Reason = 0.8, "memory grows steadily towards its limit"
		candidates = ClassActions(a.Class, swarm)
	default: // Validate rejects unknown classes; decide safely anyway
		d.Confidence, d.Reason = 0.5, fmt.Sprintf("unknown class %q", a.Class)
		candidates = []string{event.ActionNone}
	}
	d.Action = candidates[0]
	if allowed := a.Labels[container.LabelActions]; allowed != "" {
		d.Action = ""
		for _, c := range candidates {
			if ActionAllowed(a.Labels, c) {
				d.Action = c
				break
			}
		}
		if d.Action == "" {
			d.Action = event.ActionNone
			d.Reason += fmt.Sprintf("; %s not allowed by %s=%q: escalating", candidates[0], container.LabelActions, allowed)
		}
	}
	if swarm && d.Action == event.ActionScale {
		d.Reason += "; swarm service " + a.Labels[container.LabelSwarmService] + ": scale"
	}
	if d.Confidence < f.MinConfidence {
		d.FalseAlarm = true
		d.Reason = fmt.Sprintf("confidence %.2f below minimum %.2f: %s", d.Confidence, f.MinConfidence, d.Reason)
	}
	return d
}

func resourceActions(swarm bool) []string {
	if swarm {
		return []string{event.ActionScale, event.ActionRestart}
	}
	return []string{event.ActionRestart}
}

// cleared reports the first anomaly of the kind whose value is already under its threshold.
func cleared(as []event.Anomaly, what string) (event.Anomaly, bool) {
	for _, an := range as {
		if strings.Contains(strings.ToLower(an.Type), what) && an.Threshold > 0 && an.Actual < an.Threshold {
			return an, true
		}
	}
	return event.Anomaly{}, false
}

// ActionAllowed reports whether the container's hemostat.actions label (a comma list; absent means every
// action) allows the action. Action none, escalation, is always allowed.
func ActionAllowed(labels map[string]string, action string) bool {
	if action == event.ActionNone {
		return true
	}
	list, ok := labels[container.LabelActions]
	if !ok || strings.TrimSpace(list) == "" {
		return true
	}
	for item := range strings.SplitSeq(list, ",") {
		if strings.EqualFold(strings.TrimSpace(item), action) {
			return true
		}
	}
	return false
}

// ClassActions lists the remediations the rules consider for a failure class, in order of preference:
// restart for every class, scale before it for a swarm service's resource classes. Escalation (none) is
// not listed; it is always possible.
func ClassActions(class string, swarm bool) []string {
	switch class {
	case event.ClassCPUSaturated, event.ClassMemoryPressure, event.ClassMemoryLeak:
		return resourceActions(swarm)
	case event.ClassCrashed, event.ClassOOMKilled, event.ClassCrashLoop, event.ClassUnhealthy:
		return []string{event.ActionRestart}
	}
	return nil
}

// AllowedActions lists the actions an LLM may choose for an alert: the remediations the rules consider
// for its class (ClassActions), widened by the container's hemostat.llm_actions label, kept within its
// hemostat.actions label, and always none. Stop, start, cleanup and exec are never chosen by a model
// unless hemostat.llm_actions names them: log text reaches the prompt, and log text is anyone's. Scale
// applies to swarm services only.
func AllowedActions(class string, labels map[string]string) []string {
	swarm := labels[container.LabelSwarmService] != ""
	set := ClassActions(class, swarm)
	if extra := labels[container.LabelLLMActions]; extra != "" {
		for item := range strings.SplitSeq(extra, ",") {
			item = strings.ToLower(strings.TrimSpace(item))
			if slices.Contains(event.Actions, item) && !slices.Contains(set, item) {
				set = append(set, item)
			}
		}
	}
	var out []string
	for _, a := range event.Actions { // in the protocol's order, so prompts are stable
		switch {
		case !slices.Contains(set, a), a == event.ActionNone:
		case a == event.ActionScale && !swarm:
		case ActionAllowed(labels, a):
			out = append(out, a)
		}
	}
	return append(out, event.ActionNone)
}
