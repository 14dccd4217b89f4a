// Package audit owns hemostat's append-only, hash-chained remediation trail: the entry type, the chain,
// queries and verification.
package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"
)

// Entry is one decision of the responder (or of a human through `respond reset`), stored as JSON in the
// field "entry" of the hemostat:audit stream.
type Entry struct {
	Seq            int64     `json:"seq,omitempty"` // position in the chain, from 1
	ID             string    `json:"id"`
	Time           time.Time `json:"time"`
	Host           string    `json:"host"`
	Container      string    `json:"container"`
	ContainerID    string    `json:"container_id,omitempty"`
	Incident       string    `json:"incident,omitempty"`
	CausationID    string    `json:"causation_id,omitempty"`
	Action         string    `json:"action"`
	Decision       string    `json:"decision"` // executed, denied, skipped, held, dry_run, escalated, reset
	Result         string    `json:"result"`   // a result status: success, failed, skipped, denied, held, escalated, dry_run
	Error          string    `json:"error,omitempty"`
	Details        string    `json:"details,omitempty"`        // what was done or found (redacted exec output, replicas removed, ...)
	RetryAfterMS   int64     `json:"retry_after_ms,omitempty"` // cooldown or breaker time left when denied
	Reason         string    `json:"reason,omitempty"`
	Confidence     float64   `json:"confidence"`
	AnalysisMethod string    `json:"analysis_method,omitempty"`
	ProposedAction string    `json:"proposed_action,omitempty"` // an LLM's proposal refused as outside its set
	Actor          string    `json:"actor"`                     // rules, llm:<provider>:<model>, or human:<user>
	DurationMS     float64   `json:"duration_ms"`
	Verified       bool      `json:"verified"`
	DryRun         bool      `json:"dry_run"`
	FollowUp       bool      `json:"follow_up,omitempty"` // hemostat looked again on its own schedule
	Attempts       int       `json:"attempts,omitempty"`  // actions executed for the incident so far
	GaveUp         bool      `json:"gave_up,omitempty"`   // this decision opened the breaker
	Errors         []string  `json:"errors,omitempty"`    // the incident's verification errors, when it gave up
	NextAt         time.Time `json:"next_at,omitzero"`    // when hemostat looks again; zero: it will not
	NextReason     string    `json:"next_reason,omitempty"`
	PrevHash       string    `json:"prev_hash"`
	Hash           string    `json:"hash"`

	// Once, when set, is the id of the request whose outcome the entry reports: the trail keeps at most one
	// entry per request, and appending another returns the one kept (a redelivery after a lost
	// acknowledgement or a Redis failover reports again but audits once). Not stored.
	Once string `json:"-"`
}

// ComputeHash returns the SHA-256 over the entry's JSON with Hash empty, chained to PrevHash.
func (e Entry) ComputeHash() string {
	e.Hash = ""
	b, _ := json.Marshal(e)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
