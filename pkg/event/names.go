// Package event owns hemostat's wire protocol: the envelope, the typed payloads, the stream names, and
// strict decoding. The keys of the state in Redis are named in pkg/store/schema.
package event

import (
	"fmt"
	"slices"
	"strings"
)

// Streams carry work between agents; each has a pub/sub channel of the same name for watching.
// Remediation requests travel on one stream per host (RemediationNeededStream), so that a host's responder
// reads its own host's requests and nothing else.
const (
	StreamHealthAlert = "hemostat:health_alert"
	// StreamRemediationNeeded is the prefix of the hosts' request streams, and the name of the one request
	// stream every host read before them (the legacy stream: a responder drains what its host's group left
	// there once, at its start).
	StreamRemediationNeeded   = "hemostat:remediation_needed"
	StreamRemediationComplete = "hemostat:remediation_complete"
	StreamFalseAlarm          = "hemostat:false_alarm"
	StreamContainerRecovered  = "hemostat:container_recovered"
	StreamDeadLetter          = "hemostat:dead_letter"
	StreamAudit               = "hemostat:audit"
)

// WorkStreams lists the streams of fixed name that carry envelopes between agents, in flow order; the
// hosts' request streams (RemediationNeededStream) come after StreamHealthAlert (see WorkStreamsWith).
var WorkStreams = []string{
	StreamHealthAlert, StreamRemediationComplete, StreamFalseAlarm, StreamContainerRecovered,
}

// RemediationNeededStream is the stream of the remediation requests for one host:
// hemostat:remediation_needed:<host>. Only that host's responders read it.
func RemediationNeededStream(host string) string { return StreamRemediationNeeded + ":" + host }

// RemediationNeededHost returns the host of a request stream, and false for any other stream (the legacy
// stream included).
func RemediationNeededHost(stream string) (string, bool) {
	host, ok := strings.CutPrefix(stream, StreamRemediationNeeded+":")
	return host, ok && host != ""
}

// WorkStreamsWith lists every work stream in flow order, with the request streams of the given hosts
// (sorted, each once) after StreamHealthAlert.
func WorkStreamsWith(hosts []string) []string {
	hs := slices.Clone(hosts)
	slices.Sort(hs)
	hs = slices.Compact(hs)
	out := make([]string, 0, len(WorkStreams)+len(hs))
	out = append(out, StreamHealthAlert)
	for _, h := range hs {
		if h != "" {
			out = append(out, RemediationNeededStream(h))
		}
	}
	return append(out, WorkStreams[1:]...)
}

// Event types, one per payload.
const (
	TypeContainerUnhealthy  = "container_unhealthy"
	TypeRemediationNeeded   = "remediation_needed"
	TypeFalseAlarm          = "false_alarm"
	TypeRemediationComplete = "remediation_complete"
	TypeContainerRecovered  = "container_recovered"
)

// StreamFor returns the stream an event type travels on; a remediation request travels on its host's.
func StreamFor(eventType, host string) (string, error) {
	switch eventType {
	case TypeContainerUnhealthy:
		return StreamHealthAlert, nil
	case TypeRemediationNeeded:
		if host == "" {
			return "", fmt.Errorf("a remediation request needs a host")
		}
		return RemediationNeededStream(host), nil
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
