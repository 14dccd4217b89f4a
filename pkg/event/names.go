// Package event owns hemostat's wire protocol: the envelope, the typed payloads, the stream names, and
// strict decoding. The keys of the state in Redis are named in pkg/store/schema.
package event

import "fmt"

// Streams carry work between agents; each has a pub/sub channel of the same name for watching.
const (
	StreamHealthAlert         = "hemostat:health_alert"
	StreamRemediationNeeded   = "hemostat:remediation_needed"
	StreamRemediationComplete = "hemostat:remediation_complete"
	StreamFalseAlarm          = "hemostat:false_alarm"
	StreamContainerRecovered  = "hemostat:container_recovered"
	StreamDeadLetter          = "hemostat:dead_letter"
	StreamAudit               = "hemostat:audit"
)

// WorkStreams lists the streams that carry envelopes between agents, in flow order.
var WorkStreams = []string{
	StreamHealthAlert, StreamRemediationNeeded, StreamRemediationComplete, StreamFalseAlarm, StreamContainerRecovered,
}

// Event types, one per payload.
const (
	TypeContainerUnhealthy  = "container_unhealthy"
	TypeRemediationNeeded   = "remediation_needed"
	TypeFalseAlarm          = "false_alarm"
	TypeRemediationComplete = "remediation_complete"
	TypeContainerRecovered  = "container_recovered"
)

// StreamFor returns the stream an event type travels on.
func StreamFor(eventType string) (string, error) {
	switch eventType {
	case TypeContainerUnhealthy:
		return StreamHealthAlert, nil
	case TypeRemediationNeeded:
		return StreamRemediationNeeded, nil
	case TypeFalseAlarm:
		return StreamFalseAlarm, nil
	case TypeRemediationComplete:
		return StreamRemediationComplete, nil
	case TypeContainerRecovered:
		return StreamContainerRecovered, nil
	}
	return "", fmt.Errorf("unknown event type %q", eventType)
}

// Failure classes detected by the monitor (docs/architecture.md, detection).
const (
	ClassCrashed        = "crashed"
	ClassOOMKilled      = "oom_killed"
	ClassCrashLoop      = "crash_loop"
	ClassUnhealthy      = "unhealthy"
	ClassCPUSaturated   = "cpu_saturated"
	ClassMemoryPressure = "memory_pressure"
	ClassMemoryLeak     = "memory_leak"
)

// Classes lists every failure class.
var Classes = []string{
	ClassCrashed, ClassOOMKilled, ClassCrashLoop, ClassUnhealthy, ClassCPUSaturated, ClassMemoryPressure, ClassMemoryLeak,
}

// Remediation actions. ActionNone means "escalate to a human".
const (
	ActionRestart = "restart"
	ActionStop    = "stop"
	ActionStart   = "start"
	ActionScale   = "scale"
	ActionCleanup = "cleanup"
	ActionExec    = "exec"
	ActionNone    = "none"
)

// Actions lists every remediation action.
var Actions = []string{ActionRestart, ActionStop, ActionStart, ActionScale, ActionCleanup, ActionExec, ActionNone}

// Codes that start result.details of a remediation_complete the responder denied, held or skipped
// (followed by ": " and the particulars); the alert agent reads them back.
const (
	CodeGone             = "gone"
	CodeProtected        = "protected"
	CodeActionNotAllowed = "action_not_allowed"
	CodeBusy             = "busy"
	CodeBlastRadius      = "blast_radius"
	CodeCircuitOpen      = "circuit_open"
	CodeCooldown         = "cooldown"
)

// DenialCodes lists every code a denial, hold or skip starts with.
var DenialCodes = []string{CodeCircuitOpen, CodeCooldown, CodeProtected, CodeActionNotAllowed, CodeBlastRadius, CodeGone, CodeBusy}

// Result statuses of a remediation_complete event.
const (
	StatusSuccess   = "success"
	StatusFailed    = "failed"
	StatusSkipped   = "skipped"
	StatusDenied    = "denied"
	StatusHeld      = "held"
	StatusEscalated = "escalated"
	StatusDryRun    = "dry_run"
)

// Statuses lists every result status.
var Statuses = []string{StatusSuccess, StatusFailed, StatusSkipped, StatusDenied, StatusHeld, StatusEscalated, StatusDryRun}

// Target names one container on one host: "host/name".
func Target(host, name string) string { return host + "/" + name }

// IncidentKey is the deterministic incident key host/container-name/failure-class.
func IncidentKey(host, name, class string) string { return host + "/" + name + "/" + class }
