// Package schema is the one definition of hemostat's state in Redis: every key, every hash record with its
// fields, and the one encode and one decode of each record. The store packages read and write through it,
// and every reader outside them gets typed records, never field names. A test in this package keeps it so:
// no other non-test file spells a key ("hemostat:...") or a hash field as a string literal.
//
// Streams are the wire protocol and are named in pkg/event; everything else is named here. docs/architecture.md
// (section 3, the state in Redis) lists the keys with their owners and writers.
//
// Braces in key names are Redis Cluster hash tags: every key a Lua script touches for one container shares
// the {host/name} slot; keys shared by a host share {host}.
package schema

import (
	"strings"
	"time"

	"github.com/hemostat/hemostat/pkg/event"
)

// Prefix starts every key hemostat writes.
const Prefix = "hemostat:"

// Keys of one kind each.
const (
	// KeyContainersLegacy is the container table as it was before each host had its own hash
	// (ContainersKey): one hash shared by every host, field "host/name". Nothing reads it any more; a
	// monitor removes its host's fields from it at its first write of the host, so that it goes once every
	// host has been upgraded (issue 17).
	KeyContainersLegacy = Prefix + "containers"
	// KeyHosts is the set of host names whose monitor has written a HostStatus or containers
	// (ContainersKey): the readers of the container table find the hosts' hashes through it.
	KeyHosts = Prefix + "hosts"
	// KeyRequestHosts is the set of the hosts that have a request stream (event.RemediationNeededStream):
	// pkg/bus adds the host in the round trip of every request it publishes, so readers of every host's
	// requests (export, dash) find the streams with one SMEMBERS instead of a SCAN of the keyspace.
	KeyRequestHosts = Prefix + "request_hosts"
	// KeyIncidentsOpen is the sorted set of open incidents: member the incident key host/name/class, score
	// the opening time in unix ms.
	KeyIncidentsOpen = Prefix + "incidents:open"
	// KeyAudit is the audit trail, a stream (pkg/event names it as the protocol's last stream).
	KeyAudit = event.StreamAudit
	// KeyAuditHead is the hash of the audit chain's head (AuditHead).
	KeyAuditHead = Prefix + "audit:head"
	// KeyNotifyMetrics is the hash of notification counters (NotifyCounter).
	KeyNotifyMetrics = Prefix + "metrics:notify"
	// KeyBusRejected is the hash of entries consumers refused and dead-lettered unread (BusRejection):
	// unauthenticated ones, stale or replayed requests.
	KeyBusRejected = Prefix + "metrics:bus_rejected"
	// KeyNotifyFailed is the capped list of deliveries that failed for good (JSON of a NotifyFailure).
	KeyNotifyFailed = Prefix + "notify:failed"
	// KeyEventsAll is the capped list of recent events of every type (JSON of a StoredEvent).
	KeyEventsAll = Prefix + "events:all"
	// AgentKeyPattern matches every agent's heartbeat key, for SCAN.
	AgentKeyPattern = Prefix + "agents:*"
)

const (
	agentPrefix    = Prefix + "agents:"
	incidentPrefix = Prefix + "incident:"
)

// Target names one container on one host: "host/name". It is the hash tag of per-container keys.
func Target(host, name string) string { return event.Target(host, name) }

// ContainersKey is the hash of one host's known containers: field "host/name" (Target), value the JSON of
// a container.Summary (EncodeContainer). The host's monitor replaces it; readers find the hosts in KeyHosts.
func ContainersKey(host string) string { return Prefix + "containers:{" + host + "}" }

// StatsKey is the hash of a container's latest sample (Stats), expiring three sampling periods after it
// was written.
func StatsKey(target string) string { return Prefix + "stats:{" + target + "}" }

// HostKey is the hash of a host's monitor figures (HostStatus).
func HostKey(host string) string { return Prefix + "host:{" + host + "}" }

// IncidentKey is the hash of one incident (Incident), by its key host/name/class.
func IncidentKey(incident string) string { return incidentPrefix + incident }

// IncidentOf returns the incident key of an IncidentKey, or the string itself when it is not one.
func IncidentOf(key string) string {
	if len(key) > len(incidentPrefix) && key[:len(incidentPrefix)] == incidentPrefix {
		return key[len(incidentPrefix):]
	}
	return key
}

// FailingKey is the sorted set of a host's containers whose failure condition holds now: member the
// container name, score since when in unix ms. The monitor adds a container when a condition fires and
// removes it when the condition clears; the responder removes a container it has verified. The blast
// radius counts it.
func FailingKey(host string) string { return Prefix + "failing:{" + host + "}" }

// FollowupsKey is the sorted set of a host's incidents hemostat will look at again: member the incident
// key, score when in unix ms. The responder schedules and takes them; closing an incident cancels its
// follow-up.
func FollowupsKey(host string) string { return Prefix + "followups:{" + host + "}" }

// OOMKey is the sorted set of a container's recent OOM-kill alerts (member alert id, score event time in
// unix ms), which tells a first OOM kill from a repeat.
func OOMKey(target string) string { return Prefix + "oom:{" + target + "}" }

// LedgerKeys names the keys of one container's safety state: the real ones, or the shadow ones that
// dry-run, suggest and observe record into.
type LedgerKeys struct {
	Ledger string // hash: the ledger (Ledger)
	Lease  string // string: the one-actor lease, value the holder's token
	Active string // sorted set: actions running on the host (member lease token, score expiry in unix ms)
	Hold   string // string: the blast-radius page marker of the host
}

// RespondKeys returns the keys of a container's real or shadow safety state.
func RespondKeys(host, name string, shadow bool) LedgerKeys {
	target := Target(host, name)
	if shadow {
		return LedgerKeys{
			Ledger: ShadowKey(target),
			Lease:  Prefix + "shadow:lease:{" + target + "}",
			Active: Prefix + "shadow:active:{" + host + "}",
			Hold:   Prefix + "shadow:hold:{" + host + "}",
		}
	}
	return LedgerKeys{
		Ledger: LedgerKey(target),
		Lease:  Prefix + "lease:{" + target + "}",
		Active: Prefix + "respond:active:{" + host + "}",
		Hold:   Prefix + "respond:hold:{" + host + "}",
	}
}

// LedgerKey is the hash of a container's safety ledger.
func LedgerKey(target string) string { return Prefix + "ledger:{" + target + "}" }

// ShadowKey is the hash of a container's shadow ledger (dry run, suggest, observe).
func ShadowKey(target string) string { return Prefix + "shadow:{" + target + "}" }

// DoneKey marks a request event as handled: DoneValue once handled, DoneReporting plus a token while a
// responder publishes its outcome.
func DoneKey(eventID string) string { return Prefix + "done:" + eventID }

// Values of a DoneKey.
const (
	DoneValue     = "1"
	DoneReporting = "reporting "
)

// AuditIndexKey is the per-container index of audit stream ids, a stream whose entries carry
// AuditIndexField.
func AuditIndexKey(target string) string { return Prefix + "audit:idx:{" + target + "}" }

// GlobEscape quotes the characters a SCAN or HSCAN MATCH pattern gives a meaning, so a name (a host, a
// container) is matched as it is inside a pattern.
func GlobEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// AuditRequestKey marks that the outcome of a request event was audited: it holds the entry's stream id,
// for AuditRequestTTL. The audit append script writes it with the entry, so a request redelivered after a
// lost acknowledgement or a Redis failover is audited once.
func AuditRequestKey(eventID string) string { return Prefix + "audit:req:" + eventID }

// AuditRequestTTL is how long AuditRequestKey is kept: as long as respond remembers handled requests by
// default (its DoneTTL).
const AuditRequestTTL = 24 * time.Hour

// AuditIndexPattern matches every per-container audit index, for SCAN.
const AuditIndexPattern = Prefix + "audit:idx:*"

// AgentKey is the heartbeat hash of one agent instance (Agent).
func AgentKey(kind, instance string) string { return agentPrefix + kind + ":" + instance }

// AgentOf splits an AgentKey into the agent's kind and instance.
func AgentOf(key string) (kind, instance string, ok bool) {
	if len(key) <= len(agentPrefix) || key[:len(agentPrefix)] != agentPrefix {
		return "", "", false
	}
	rest := key[len(agentPrefix):]
	for i := 0; i < len(rest); i++ {
		if rest[i] == ':' {
			return rest[:i], rest[i+1:], true
		}
	}
	return rest, "", true
}

// EventsKey is the capped list of recent events of one type (JSON of a StoredEvent).
func EventsKey(eventType string) string { return Prefix + "events:" + eventType }

// AlertSeenKey marks an event the alert agent has stored, so a redelivery is stored once.
func AlertSeenKey(eventID string) string { return Prefix + "alert:seen:" + eventID }

// NotifyDedupKey is the deduplication counter of one incident state: the incident plus the state,
// nothing else.
func NotifyDedupKey(incident, state string) string {
	return Prefix + "notify:dedup:{" + incident + "}:" + state
}

// NotifyThreadKey is the hash of an incident's Slack thread (Thread).
func NotifyThreadKey(incident string) string { return Prefix + "notify:thread:{" + incident + "}" }
