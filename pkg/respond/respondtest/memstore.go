package respondtest

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/store/auditlog"
	"github.com/hemostat/hemostat/pkg/store/incidents"
	"github.com/hemostat/hemostat/pkg/store/ledger"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

// MemStore is the responder's state in memory, with the same semantics as the Redis stores (the
// ledger's compare-and-set and lease, host slots, done markers, incidents and their follow-ups, the
// audit trail) and a recording publisher. It lets the responder run inside a testing/synctest bubble,
// where no network I/O may block, so its timings are tested at their real, default values in virtual
// time. Times come from time.Now: the bubble's clock.
type MemStore struct {
	mu        sync.Mutex
	ledgers   map[string]map[string]string // ledger key -> fields, rev included
	leases    map[string]lease
	active    map[string]map[string]time.Time // host set key -> token -> expiry
	holds     map[string]time.Time
	done      map[string]string
	incidents map[string]schema.Incident
	open      map[string]bool
	failing   map[string]map[string]bool      // host -> incident keys
	followups map[string]map[string]time.Time // host -> incident -> due
	hosts     map[string]schema.HostStatus
	trail     []auditlog.Record
	head      schema.AuditHead
	audited   map[string]string // request id -> its entry's stream id (auditlog's request keys)
	published []event.Envelope
}

type lease struct {
	token string
	until time.Time
}

// NewMemStore returns an empty store.
func NewMemStore() *MemStore {
	return &MemStore{ledgers: map[string]map[string]string{}, leases: map[string]lease{},
		active: map[string]map[string]time.Time{}, holds: map[string]time.Time{}, done: map[string]string{},
		incidents: map[string]schema.Incident{}, open: map[string]bool{}, failing: map[string]map[string]bool{},
		followups: map[string]map[string]time.Time{}, hosts: map[string]schema.HostStatus{}}
}

// OpenIncident puts an open incident in the store, as the monitor and the analyzer would have written it.
func (m *MemStore) OpenIncident(in schema.Incident) {
	m.mu.Lock()
	defer m.mu.Unlock()
	in.State = schema.StateOpen
	if in.Condition == "" {
		in.Condition = schema.ConditionFailing
	}
	m.incidents[in.Key] = in
	m.open[in.Key] = true
	if in.Condition == schema.ConditionFailing {
		m.set(m.failing, incidents.HostOf(in.Key))[in.Key] = true
	}
}

// Incident returns an incident as stored.
func (m *MemStore) Incident(key string) schema.Incident {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.incidents[key]
}

// Published returns every envelope published so far.
func (m *MemStore) Published() []event.Envelope {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.published)
}

// Audit returns the audit trail's records, oldest first.
func (m *MemStore) Audit() []auditlog.Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.trail)
}

func (m *MemStore) set(sets map[string]map[string]bool, host string) map[string]bool {
	if sets[host] == nil {
		sets[host] = map[string]bool{}
	}
	return sets[host]
}

// --- ledger ---

func (m *MemStore) snapshot(q ledger.Query, now time.Time) ledger.Snapshot {
	l, _ := schema.DecodeLedger(m.ledgers[q.Keys.Ledger])
	s := ledger.Snapshot{Ledger: l, Done: m.done[schema.DoneKey(q.EventID)] == schema.DoneValue,
		Reporting: strings.HasPrefix(m.done[schema.DoneKey(q.EventID)], schema.DoneReporting)}
	if ls, ok := m.leases[q.Keys.Lease]; ok && ls.until.After(now) {
		s.Lease, s.LeaseLeft = ls.token, ls.until.Sub(now)
	}
	for token, until := range m.active[q.Keys.Active] {
		if until.After(now) {
			s.Slots = append(s.Slots, token)
		}
	}
	return s
}

// Read implements respond.LedgerStore.
func (m *MemStore) Read(_ context.Context, q ledger.Query, now time.Time) (ledger.Snapshot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.snapshot(q, now), nil
}

// ReadMany implements respond.LedgerStore.
func (m *MemStore) ReadMany(_ context.Context, qs []ledger.Query, now time.Time) ([]ledger.Snapshot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]ledger.Snapshot, len(qs))
	for i, q := range qs {
		out[i] = m.snapshot(q, now)
	}
	return out, nil
}

// MemLedger is the store's ledger view: it adds the ledger's Get (the store's own Get reads incidents).
type MemLedger struct{ *MemStore }

// Ledger returns the store's ledger view, a respond.LedgerStore.
func (m *MemStore) Ledger() MemLedger { return MemLedger{m} }

// Get implements respond.LedgerStore.
func (m MemLedger) Get(_ context.Context, key string) (schema.Ledger, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.ledgers[key]
	l, err := schema.DecodeLedger(f)
	return l, ok, err
}

func (m *MemStore) apply(k schema.LedgerKeys, cm ledger.Commit) (string, error) {
	f := m.ledgers[k.Ledger]
	if f == nil {
		f = map[string]string{}
	}
	if !cm.Force && f[schema.FieldRev] != cm.From.Rev {
		return "", ledger.ErrConflict
	}
	now := time.Now()
	switch cm.Lease {
	case ledger.LeaseTake:
		if ls, ok := m.leases[k.Lease]; ok && ls.until.After(now) {
			return "", ledger.ErrLeaseHeld
		}
		ttl := cm.LeaseTTL
		if ttl <= 0 {
			ttl = ledger.DefaultLeaseTTL
		}
		m.leases[k.Lease] = lease{token: cm.Token, until: now.Add(ttl)}
	case ledger.LeaseRelease:
		if m.leases[k.Lease].token == cm.Token {
			delete(m.leases, k.Lease)
		}
	}
	set, del := schema.LedgerChanges(cm.From, cm.To)
	maps.Copy(f, set)
	for _, d := range del {
		delete(f, d)
	}
	rev, _ := strconv.Atoi(f[schema.FieldRev])
	f[schema.FieldRev] = strconv.Itoa(rev + 1)
	m.ledgers[k.Ledger] = f
	return f[schema.FieldRev], nil
}

// Apply implements respond.LedgerStore.
func (m *MemStore) Apply(_ context.Context, k schema.LedgerKeys, cm ledger.Commit) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.apply(k, cm)
}

// ApplyMany implements respond.LedgerStore.
func (m *MemStore) ApplyMany(_ context.Context, ks []schema.LedgerKeys, cms []ledger.Commit) ([]string, []error, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	revs, errs := make([]string, len(cms)), make([]error, len(cms))
	for i := range cms {
		revs[i], errs[i] = m.apply(ks[i], cms[i])
	}
	return revs, errs, nil
}

// AcquireSlot implements respond.LedgerStore.
func (m *MemStore) AcquireSlot(_ context.Context, k schema.LedgerKeys, token string, limit int, ttl time.Duration, now time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	slots := m.active[k.Active]
	if slots == nil {
		slots = map[string]time.Time{}
		m.active[k.Active] = slots
	}
	for t, until := range slots {
		if !until.After(now) {
			delete(slots, t)
		}
	}
	if _, ok := slots[token]; !ok && len(slots) >= limit {
		return false, nil
	}
	slots[token] = now.Add(ttl)
	return true, nil
}

// ReleaseSlot implements respond.LedgerStore.
func (m *MemStore) ReleaseSlot(_ context.Context, k schema.LedgerKeys, token string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.active[k.Active], token)
	return nil
}

// Renew implements respond.LedgerStore.
func (m *MemStore) Renew(_ context.Context, k schema.LedgerKeys, token string, ttl time.Duration, now time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.active[k.Active][token]; ok {
		m.active[k.Active][token] = now.Add(ttl)
	}
	if ls, ok := m.leases[k.Lease]; ok && ls.token == token {
		m.leases[k.Lease] = lease{token: token, until: time.Now().Add(ttl)}
		return true, nil
	}
	return false, nil
}

// HoldOnce implements respond.LedgerStore.
func (m *MemStore) HoldOnce(_ context.Context, k schema.LedgerKeys, period time.Duration) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if until, ok := m.holds[k.Hold]; ok && until.After(time.Now()) {
		return false, nil
	}
	m.holds[k.Hold] = time.Now().Add(period)
	return true, nil
}

// ClaimReport implements respond.LedgerStore.
func (m *MemStore) ClaimReport(_ context.Context, eventID, token string, _ time.Duration) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := schema.DoneKey(eventID)
	if _, ok := m.done[k]; ok {
		return false, nil
	}
	m.done[k] = schema.DoneReporting + token
	return true, nil
}

// ClaimReports implements respond.LedgerStore.
func (m *MemStore) ClaimReports(ctx context.Context, eventIDs, tokens []string, ttl time.Duration) ([]bool, error) {
	out := make([]bool, len(eventIDs))
	for i := range eventIDs {
		out[i], _ = m.ClaimReport(ctx, eventIDs[i], tokens[i], ttl)
	}
	return out, nil
}

// MarkDone implements respond.LedgerStore.
func (m *MemStore) MarkDone(_ context.Context, _ time.Duration, eventIDs ...string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range eventIDs {
		m.done[schema.DoneKey(id)] = schema.DoneValue
	}
	return nil
}

// --- incidents ---

// Failing implements respond.IncidentStore.
func (m *MemStore) Failing(_ context.Context, host string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Sorted(maps.Keys(m.failing[host])), nil
}

// Get implements respond.IncidentStore.
func (m *MemStore) Get(_ context.Context, key string) (schema.Incident, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	in, ok := m.incidents[key]
	return in, ok, nil
}

// Cleared implements respond.IncidentStore.
func (m *MemStore) Cleared(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.failing[incidents.HostOf(key)], key)
	return nil
}

// Advance implements respond.IncidentStore.
func (m *MemStore) Advance(_ context.Context, steps []incidents.Step) ([]incidents.Progress, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]incidents.Progress, len(steps))
	for i, st := range steps {
		in, ok := m.incidents[st.Incident]
		host := incidents.HostOf(st.Incident)
		if !ok {
			delete(m.followups[host], st.Incident)
			continue
		}
		o := st.Outcome
		if in.LastEventID != o.EventID {
			if o.Attempt {
				in.Attempts++
				in.LastAttemptAt = o.At
			}
			if o.Error != "" {
				in.Errors = append(in.Errors, o.Error)
				if len(in.Errors) > schema.MaxErrors {
					in.Errors = in.Errors[len(in.Errors)-schema.MaxErrors:]
				}
			}
			in.LastEventID, in.LastOutcome, in.LastDetails = o.EventID, o.Status, o.Details
			switch {
			case o.GaveUp:
				in.GaveUpAt, in.BreakerUntil = o.At, o.BreakerUntil
			case o.Resumed:
				in.GaveUpAt, in.BreakerUntil = time.Time{}, time.Time{}
			case !o.BreakerUntil.IsZero():
				in.BreakerUntil = o.BreakerUntil
			}
		}
		open := m.open[st.Incident]
		if open && !st.Next.IsZero() {
			if m.followups[host] == nil {
				m.followups[host] = map[string]time.Time{}
			}
			m.followups[host][st.Incident] = st.Next
			in.NextAt, in.NextReason = st.Next, st.Reason
		} else {
			delete(m.followups[host], st.Incident)
			in.NextAt, in.NextReason = time.Time{}, ""
		}
		m.incidents[st.Incident] = in
		out[i] = incidents.Progress{Found: true, Open: open, Attempts: in.Attempts, OpenedAt: in.OpenedAt, Errors: slices.Clone(in.Errors)}
	}
	return out, nil
}

// Schedule implements respond.IncidentStore.
func (m *MemStore) Schedule(_ context.Context, key string, at time.Time, reason string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	host := incidents.HostOf(key)
	if !m.open[key] {
		delete(m.followups[host], key)
		return false, nil
	}
	if m.followups[host] == nil {
		m.followups[host] = map[string]time.Time{}
	}
	m.followups[host][key] = at
	in := m.incidents[key]
	in.NextAt, in.NextReason = at, reason
	m.incidents[key] = in
	return true, nil
}

// Cancel implements respond.IncidentStore.
func (m *MemStore) Cancel(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.followups[incidents.HostOf(key)], key)
	if in, ok := m.incidents[key]; ok {
		in.NextAt, in.NextReason = time.Time{}, ""
		m.incidents[key] = in
	}
	return nil
}

// TakeDue implements respond.IncidentStore.
func (m *MemStore) TakeDue(_ context.Context, host string, now time.Time, hold time.Duration, n int) ([]incidents.Due, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var due []incidents.Due
	for key, at := range m.followups[host] {
		if !at.After(now) {
			due = append(due, incidents.Due{Incident: key, At: at})
		}
	}
	slices.SortFunc(due, func(a, b incidents.Due) int { return a.At.Compare(b.At) })
	if len(due) > n {
		due = due[:n]
	}
	for _, d := range due {
		m.followups[host][d.Incident] = now.Add(hold)
	}
	return due, nil
}

// NextDue implements respond.IncidentStore.
func (m *MemStore) NextDue(_ context.Context, host string) (time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var next time.Time
	for _, at := range m.followups[host] {
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	return next, nil
}

// OpenIncidents implements respond.IncidentStore.
func (m *MemStore) OpenIncidents(_ context.Context, host string) ([]schema.Incident, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []schema.Incident
	for key := range m.open {
		if host == "" || incidents.HostOf(key) == host {
			out = append(out, m.incidents[key])
		}
	}
	slices.SortFunc(out, func(a, b schema.Incident) int { return a.OpenedAt.Compare(b.OpenedAt) })
	return out, nil
}

// --- hosts ---

// SetHost records a host's monitor figures.
func (m *MemStore) SetHost(h schema.HostStatus) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.hosts[h.Host] = h
}

// Host implements respond.HostStore.
func (m *MemStore) Host(_ context.Context, host string) (schema.HostStatus, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h, ok := m.hosts[host]
	return h, ok, nil
}

// --- audit ---

// ReadHead implements audit.Store.
func (m *MemStore) ReadHead(context.Context) (schema.AuditHead, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.head, nil
}

// Append implements audit.Store.
func (m *MemStore) Append(_ context.Context, prev schema.AuditHead, seq int64, items []auditlog.Item) ([]string, schema.AuditHead, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	dup := &auditlog.DuplicateError{Audited: map[int]string{}}
	for i, it := range items {
		if id, ok := m.audited[it.Request]; ok && it.Request != "" {
			dup.Audited[i] = id
		}
	}
	if len(dup.Audited) > 0 {
		return nil, prev, dup
	}
	if prev.Hash != m.head.Hash || seq != m.head.Seq+1 {
		return nil, m.head, auditlog.ErrConflict
	}
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = strconv.FormatInt(time.Now().UnixMilli(), 10) + "-" + strconv.Itoa(len(m.trail))
		rec := auditlog.Record{ID: ids[i], JSON: it.JSON}
		m.trail = append(m.trail, rec)
		m.head = schema.AuditHead{Hash: it.Hash, Seq: seq + int64(i), ID: ids[i]}
		if it.Request != "" {
			if m.audited == nil {
				m.audited = map[string]string{}
			}
			m.audited[it.Request] = ids[i]
		}
	}
	return ids, m.head, nil
}

// Range implements audit.Store (the whole trail, oldest first; enough for tests).
func (m *MemStore) Range(_ context.Context, _, _ string, count int64) ([]auditlog.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.trail[:min(int(count), len(m.trail))]), nil
}

// RevRange implements audit.Store.
func (m *MemStore) RevRange(context.Context, string, string, int64) ([]auditlog.Record, error) {
	return nil, errors.ErrUnsupported
}

// IndexRevRange implements audit.Store.
func (m *MemStore) IndexRevRange(context.Context, string, string, string, int64) ([]auditlog.Record, error) {
	return nil, errors.ErrUnsupported
}

// Follow implements audit.Store.
func (m *MemStore) Follow(context.Context, string, time.Duration) ([]auditlog.Record, error) {
	return nil, errors.ErrUnsupported
}

// --- bus ---

// Publish implements respond.Publisher.
func (m *MemStore) Publish(_ context.Context, _ string, env event.Envelope) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.published = append(m.published, env)
	return strconv.Itoa(len(m.published)) + "-0", nil
}

// ReadAnchor implements audit.Store: the in-memory trail is never trimmed.
func (m *MemStore) ReadAnchor(context.Context) (schema.AuditAnchor, error) {
	return schema.AuditAnchor{}, nil
}

// Trim implements audit.Store: the in-memory trail keeps everything.
func (m *MemStore) Trim(context.Context, auditlog.Retention, time.Time) (int64, error) { return 0, nil }
