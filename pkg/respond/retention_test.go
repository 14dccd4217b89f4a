package respond

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hemostat/hemostat/pkg/audit"
	"github.com/hemostat/hemostat/pkg/store/auditlog"
	"github.com/hemostat/hemostat/pkg/store/schema"
	"log/slog"
)

// trimCounter is an audit store that only counts trims.
type trimCounter struct {
	audit.Store
	mu    sync.Mutex
	trims []auditlog.Retention
	at    []time.Time
}

func (c *trimCounter) Trim(_ context.Context, r auditlog.Retention, now time.Time) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.trims, c.at = append(c.trims, r), append(c.at, now)
	return 0, nil
}

func (c *trimCounter) ReadAnchor(context.Context) (schema.AuditAnchor, error) {
	return schema.AuditAnchor{}, nil
}

// TestRetentionTrimsOnSchedule: the responder trims the trail a minute after it starts and every hour
// after, with the default retention; a negative limit keeps everything and never trims.
func TestRetentionTrimsOnSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := &trimCounter{}
		r := &Responder{cfg: Config{}.WithDefaults(), trail: audit.NewTrail(tc), now: time.Now, log: discard()}
		start := time.Now()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); r.runRetention(ctx) }()
		time.Sleep(2*time.Hour + 30*time.Minute)
		synctest.Wait()
		cancel()
		<-done
		if len(tc.trims) != 3 || tc.at[0].Sub(start) != time.Minute || tc.at[2].Sub(start) != 2*time.Hour+time.Minute {
			t.Errorf("trims at %v", tc.at)
		}
		if want := (auditlog.Retention{MaxAge: 90 * 24 * time.Hour, MaxEntries: 200_000}); tc.trims[0] != want {
			t.Errorf("retention %+v, want %+v", tc.trims[0], want)
		}

		none := &trimCounter{}
		cfg := Config{AuditMaxEntries: -1, AuditMaxAge: -1}.WithDefaults()
		r = &Responder{cfg: cfg, trail: audit.NewTrail(none), now: time.Now, log: discard()}
		ctx, cancel = context.WithCancel(context.Background())
		done = make(chan struct{})
		go func() { defer close(done); r.runRetention(ctx) }()
		time.Sleep(3 * time.Hour)
		synctest.Wait()
		cancel()
		<-done
		if len(none.trims) != 0 {
			t.Errorf("no retention, yet %d trims", len(none.trims))
		}
	})
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
