package respond

import (
	"context"
	"time"

	"github.com/hemostat/hemostat/pkg/store/incidents"
	"github.com/hemostat/hemostat/pkg/store/ledger"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

// LedgerStore is the safety state the responder reads and commits; *ledger.Store implements it.
type LedgerStore interface {
	Read(ctx context.Context, q ledger.Query, now time.Time) (ledger.Snapshot, error)
	ReadMany(ctx context.Context, qs []ledger.Query, now time.Time) ([]ledger.Snapshot, error)
	Get(ctx context.Context, key string) (schema.Ledger, bool, error)
	Apply(ctx context.Context, k schema.LedgerKeys, cm ledger.Commit) (string, error)
	ApplyMany(ctx context.Context, ks []schema.LedgerKeys, cms []ledger.Commit) ([]string, []error, error)
	AcquireSlot(ctx context.Context, k schema.LedgerKeys, token string, max int, ttl time.Duration, now time.Time) (bool, error)
	ReleaseSlot(ctx context.Context, k schema.LedgerKeys, token string) error
	Renew(ctx context.Context, k schema.LedgerKeys, token string, ttl time.Duration, now time.Time) (bool, error)
	HoldOnce(ctx context.Context, k schema.LedgerKeys, period time.Duration) (bool, error)
	ClaimReport(ctx context.Context, eventID, token string, ttl time.Duration) (bool, error)
	ClaimReports(ctx context.Context, eventIDs, tokens []string, ttl time.Duration) ([]bool, error)
	MarkDone(ctx context.Context, ttl time.Duration, eventIDs ...string) error
}

// IncidentStore is the incident state the responder reads and advances; *incidents.Store implements it.
type IncidentStore interface {
	Failing(ctx context.Context, host string) ([]string, error)
	Cleared(ctx context.Context, key string) error
	Get(ctx context.Context, key string) (schema.Incident, bool, error)
	Advance(ctx context.Context, steps []incidents.Step) ([]incidents.Progress, error)
	Schedule(ctx context.Context, key string, at time.Time, reason string) (bool, error)
	Cancel(ctx context.Context, key string) error
	TakeDue(ctx context.Context, host string, now time.Time, hold time.Duration, n int) ([]incidents.Due, error)
	NextDue(ctx context.Context, host string) (time.Time, error)
	OpenIncidents(ctx context.Context, host string) ([]schema.Incident, error)
}

// HostStore tells how many containers a host watches; *containers.Store implements it.
type HostStore interface {
	Host(ctx context.Context, host string) (schema.HostStatus, bool, error)
}

// Stores are the bodies of state the responder uses.
type Stores struct {
	Ledger    LedgerStore
	Incidents IncidentStore
	Hosts     HostStore
}
