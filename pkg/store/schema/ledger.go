package schema

import (
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"time"
)

// Ledger is a container's safety state, the hash at LedgerKey (or ShadowKey). Only the responder writes
// it, through the ledger's compare-and-set script on Rev; views and the analyzer read it.
type Ledger struct {
	Rev            string  // revision, incremented by every commit; not part of Encode
	Attempts       []int64 // unix ms of actions within the breaker window
	BackoffStep    int
	NextAllowedMS  int64 // the backoff: no action before this
	Breaker        string
	BreakerUntilMS int64
	LastAction     string
	LastActionMS   int64
	LastDecision   string
	LastResult     string
	LastReason     string
	HealthySinceMS int64  // verified healthy since (0: not since the last action)
	InflightEvent  string // the request being acted on: a redelivery verifies instead of acting again
	InflightAction string
	InflightMS     int64
	ContainerID    string
	UpdatedMS      int64
	LastEvent      string // the last request whose decision was recorded
}

// Breaker states.
const (
	BreakerClosed = "closed"
	BreakerOpen   = "open"
)

// Ledger hash fields.
const (
	FieldRev            = "rev"
	FieldLedgerAttempts = "attempts"
	FieldBackoffStep    = "backoff_step"
	FieldNextAllowedMS  = "next_allowed_ms"
	FieldBreaker        = "breaker"
	FieldBreakerUntilMS = "breaker_until_ms"
	FieldLastAction     = "last_action"
	FieldLastActionMS   = "last_action_ms"
	FieldLastDecision   = "last_decision"
	FieldLastResult     = "last_result"
	FieldLastReason     = "last_reason"
	FieldHealthySinceMS = "healthy_since_ms"
	FieldInflightEvent  = "inflight_event"
	FieldInflightAction = "inflight_action"
	FieldInflightMS     = "inflight_ms"
	FieldLedgerCID      = "container_id"
	FieldUpdatedMS      = "updated_ms"
	FieldLastEvent      = "last_event"
)

// LastEventIs reports whether the ledger's last recorded decision answered the request.
func (l Ledger) LastEventIs(id string) bool { return id != "" && l.LastEvent == id }

// NextAllowed is the end of the backoff, zero when there is none.
func (l Ledger) NextAllowed() time.Time { return msTime(l.NextAllowedMS) }

// BreakerUntil is the end of the breaker's cool-off, zero when it is not open.
func (l Ledger) BreakerUntil() time.Time { return msTime(l.BreakerUntilMS) }

// LastActionAt is when the latest action started.
func (l Ledger) LastActionAt() time.Time { return msTime(l.LastActionMS) }

// HealthySince is when the latest action was verified, zero when it was not.
func (l Ledger) HealthySince() time.Time { return msTime(l.HealthySinceMS) }

// InflightSince is when the action in flight started, zero when none is.
func (l Ledger) InflightSince() time.Time { return msTime(l.InflightMS) }

// AttemptTimes are the attempts as times, oldest first.
func (l Ledger) AttemptTimes() []time.Time {
	out := make([]time.Time, len(l.Attempts))
	for i, ms := range l.Attempts {
		out[i] = time.UnixMilli(ms).UTC()
	}
	return out
}

func msTime(ms int64) time.Time {
	if ms <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// Encode returns the ledger's fields, Rev excluded (the commit script owns it). Zero values are omitted:
// absent and zero read back the same, and LedgerChanges turns an omission into a delete.
func (l Ledger) Encode() map[string]string {
	f := map[string]string{}
	str := func(k, v string) {
		if v != "" {
			f[k] = v
		}
	}
	num := func(k string, v int64) {
		if v != 0 {
			f[k] = strconv.FormatInt(v, 10)
		}
	}
	b, _ := json.Marshal(l.Attempts)
	if len(l.Attempts) == 0 {
		b = []byte("[]")
	}
	f[FieldLedgerAttempts] = string(b)
	breaker := l.Breaker
	if breaker == "" {
		breaker = BreakerClosed
	}
	f[FieldBreaker] = breaker // written every time, so the hash always says closed or open
	num(FieldBackoffStep, int64(l.BackoffStep))
	num(FieldNextAllowedMS, l.NextAllowedMS)
	num(FieldBreakerUntilMS, l.BreakerUntilMS)
	str(FieldLastAction, l.LastAction)
	num(FieldLastActionMS, l.LastActionMS)
	str(FieldLastDecision, l.LastDecision)
	str(FieldLastResult, l.LastResult)
	str(FieldLastReason, l.LastReason)
	num(FieldHealthySinceMS, l.HealthySinceMS)
	str(FieldInflightEvent, l.InflightEvent)
	str(FieldInflightAction, l.InflightAction)
	num(FieldInflightMS, l.InflightMS)
	str(FieldLedgerCID, l.ContainerID)
	num(FieldUpdatedMS, l.UpdatedMS)
	str(FieldLastEvent, l.LastEvent)
	return f
}

// DecodeLedger reads a ledger hash. Values that do not parse are left zero and reported in err.
func DecodeLedger(m map[string]string) (Ledger, error) {
	d := decoder{m: m}
	l := Ledger{
		Rev: m[FieldRev], BackoffStep: int(d.int(FieldBackoffStep)), NextAllowedMS: d.int(FieldNextAllowedMS),
		Breaker: m[FieldBreaker], BreakerUntilMS: d.int(FieldBreakerUntilMS), LastAction: m[FieldLastAction],
		LastActionMS: d.int(FieldLastActionMS), LastDecision: m[FieldLastDecision], LastResult: m[FieldLastResult],
		LastReason: m[FieldLastReason], HealthySinceMS: d.int(FieldHealthySinceMS), InflightEvent: m[FieldInflightEvent],
		InflightAction: m[FieldInflightAction], InflightMS: d.int(FieldInflightMS), ContainerID: m[FieldLedgerCID],
		UpdatedMS: d.int(FieldUpdatedMS), LastEvent: m[FieldLastEvent],
	}
	if l.Breaker == "" {
		l.Breaker = BreakerClosed
	}
	d.json(FieldLedgerAttempts, &l.Attempts)
	return l, d.err()
}

// LedgerChanges returns what turns ledger from into ledger to: the fields to set and the fields to
// delete, sorted, Rev aside. A commit writes only these, so two changes of different fields never undo
// each other.
func LedgerChanges(from, to Ledger) (set map[string]string, del []string) {
	a, b := from.Encode(), to.Encode()
	set = map[string]string{}
	for k, v := range b {
		if a[k] != v {
			set[k] = v
		}
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			del = append(del, k)
		}
	}
	slices.Sort(del)
	return set, del
}

// LedgerFields lists every field a ledger hash may hold.
func LedgerFields() []string {
	f := slices.Collect(maps.Keys(Ledger{Breaker: BreakerOpen, BackoffStep: 1, NextAllowedMS: 1, BreakerUntilMS: 1,
		LastAction: "x", LastActionMS: 1, LastDecision: "x", LastResult: "x", LastReason: "x", HealthySinceMS: 1,
		InflightEvent: "x", InflightAction: "x", InflightMS: 1, ContainerID: "x", UpdatedMS: 1, LastEvent: "x"}.Encode()))
	f = append(f, FieldRev)
	slices.Sort(f)
	return f
}
