package respond

import (
	"context"
	"time"

	"github.com/hemostat/hemostat/pkg/store/auditlog"
)

// The audit trail's default retention: what `hemostat run` (and every responder) keeps. The trail is the
// responder's record, so the responder trims it; any number of responders may, the trim is atomic. The
// first entry kept anchors the chain, and `hemostat audit verify` says where it starts.
const (
	DefaultAuditMaxEntries = 200_000
	DefaultAuditMaxAge     = 90 * 24 * time.Hour
)

// retentionDelay is how long after its start a responder first trims: the trim is not urgent, and the
// agents' start is busy enough.
const retentionDelay = time.Minute

// runRetention trims the audit trail to the retention every RetentionEvery, until ctx is done.
func (r *Responder) runRetention(ctx context.Context) {
	keep := auditlog.Retention{MaxAge: r.cfg.AuditMaxAge, MaxEntries: r.cfg.AuditMaxEntries}
	if keep.MaxAge < 0 {
		keep.MaxAge = 0
	}
	if keep.MaxEntries < 0 {
		keep.MaxEntries = 0
	}
	if keep == (auditlog.Retention{}) {
		return // keep everything
	}
	wait := retentionDelay
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = r.cfg.RetentionEvery
		n, err := r.trail.Trim(ctx, keep, r.now())
		switch {
		case err != nil && ctx.Err() == nil:
			r.log.Warn("audit trail not trimmed", "err", err)
		case n > 0:
			r.log.Info("audit trail trimmed", "removed", n, "max_entries", keep.MaxEntries, "max_age", keep.MaxAge)
		}
	}
}
