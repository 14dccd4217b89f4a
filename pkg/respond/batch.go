package respond

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/hemostat/hemostat/pkg/audit"
	"github.com/hemostat/hemostat/pkg/bus"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/store/ledger"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

// The batch path. A storm of requests is mostly decisions that touch no engine: denials by the breaker or
// the backoff, blast-radius holds, escalations, dry runs. The requests of one read are decided together,
// each step of the sequence one round trip for all of them: snapshots, commits (each its own
// compare-and-set), report claims, audit entries (one chained write), outcomes, done marks. Everything
// that needs more care goes through the one-request path, after the batch path and on the ledger it left:
// engine actions (lease, host slot, verification), redeliveries (done, being reported, in flight, already
// decided), a commit that lost its compare-and-set, and a second request for a container already in the
// batch. So both paths take the same decisions on the same state; the batch path only shares round trips.

// BatchPublisher publishes many envelopes to one stream in one round trip; *bus.Bus implements it.
type BatchPublisher interface {
	PublishBatch(ctx context.Context, stream string, envs []event.Envelope) error
}

// maxResolve caps the concurrent engine reads of one batch.
const maxResolve = 16

// item is one request of a batch on the batch path.
type item struct {
	i        int // index in the batch
	req      Request
	tgt      Target
	cfg      Config
	simulate bool
	keys     schema.LedgerKeys
	token    string
	snap     Snapshot
	d        Decision
	out      Outcome
	entry    audit.Entry

	started, nextAllowed time.Time // of a committed decision
}

// ProcessBatch handles the requests of one read and returns what the bus is told of each (nil acks;
// bus.ErrSkipAck leaves it pending).
func (r *Responder) ProcessBatch(ctx context.Context, ms []bus.Message) []error {
	start := r.now()
	errs := make([]error, len(ms))
	var items []*item
	var careful []int
	for i, m := range ms {
		req, ok, _ := r.admit(m.Envelope)
		if !ok {
			continue
		}
		if errs[i] = r.fresh(m.Envelope); errs[i] != nil {
			continue
		}
		items = append(items, &item{i: i, req: req})
	}
	items = r.resolveAll(ctx, items, errs)
	taken := map[string]bool{}
	fast := items[:0]
	for _, it := range items {
		it.cfg, it.simulate, it.keys, it.token = r.prepare(it.req, it.tgt)
		if taken[it.keys.Ledger] {
			careful = append(careful, it.i) // decided after the first request for the container
			continue
		}
		taken[it.keys.Ledger] = true
		fast = append(fast, it)
	}
	fast, careful = r.decideAll(ctx, fast, errs, careful)
	r.reportAll(ctx, fast, errs, start)
	r.carefully(ctx, ms, careful, errs)
	return errs
}

// resolveAll reads the targets of the requests from the engine, a few at a time; a request whose read
// failed gets its error and leaves the batch path.
func (r *Responder) resolveAll(ctx context.Context, items []*item, errs []error) []*item {
	failed := make([]error, len(items))
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxResolve)
	for k, it := range items {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			it.tgt, failed[k] = r.resolve(ctx, it.req)
		})
	}
	wg.Wait()
	kept := items[:0]
	for k, it := range items {
		if failed[k] != nil {
			errs[it.i] = r.failure(failed[k])
			continue
		}
		kept = append(kept, it)
	}
	return kept
}

// decideAll takes the snapshots, decides, and commits the decisions that stay on the batch path. It
// returns the items decided and the batch indices that need the one-request path.
func (r *Responder) decideAll(ctx context.Context, items []*item, errs []error, careful []int) ([]*item, []int) {
	if len(items) == 0 {
		return nil, careful
	}
	qs := make([]ledger.Query, len(items))
	for k, it := range items {
		qs[k] = ledger.Query{Keys: it.keys, EventID: it.req.EventID}
	}
	now := r.now()
	raw, err := r.led.ReadMany(ctx, qs, now)
	if err != nil {
		r.failAll(items, errs, err)
		return nil, careful
	}
	load, err := r.load(ctx)
	if err != nil {
		r.failAll(items, errs, err)
		return nil, careful
	}
	decided := items[:0]
	var commits []*item
	for k, it := range items {
		it.snap = SnapshotFor(raw[k], load, it.req.EventID)
		s := it.snap
		if s.Done || s.Reporting || s.Self || s.Lease != "" || s.Ledger.InflightEvent != "" || s.Ledger.LastEventIs(it.req.EventID) {
			careful = append(careful, it.i) // a redelivery, or a container being acted on
			continue
		}
		it.d = Decide(now, it.cfg, it.req, it.tgt, s, it.simulate)
		switch it.d.Step {
		case StepExecute, StepBlastRadius:
			careful = append(careful, it.i) // an engine action, or a hold that pages once
		case StepGone, StepNone:
			decided = append(decided, it) // nothing to record in a ledger
		default:
			commits = append(commits, it)
		}
	}
	if len(commits) == 0 {
		return r.markDecided(decided), careful
	}
	ks := make([]schema.LedgerKeys, len(commits))
	cms := make([]ledger.Commit, len(commits))
	for k, it := range commits {
		ks[k], cms[k] = it.keys, commitOf(now, it.cfg, it.req, it.tgt, it.snap, it.d)
		it.started, it.nextAllowed = now, cms[k].To.NextAllowed()
	}
	_, cerrs, err := r.led.ApplyMany(ctx, ks, cms)
	if err != nil {
		r.failAll(commits, errs, err)
		return r.markDecided(decided), careful
	}
	for k, it := range commits {
		switch {
		case errors.Is(cerrs[k], ledger.ErrConflict), errors.Is(cerrs[k], ledger.ErrLeaseHeld):
			careful = append(careful, it.i) // the ledger moved since the snapshot: decide again, alone
		case cerrs[k] != nil:
			errs[it.i] = r.failure(cerrs[k])
		default:
			decided = append(decided, it)
		}
	}
	return r.markDecided(decided), careful
}

// markDecided counts the decisions and records them in their outcomes.
func (r *Responder) markDecided(items []*item) []*item {
	for _, it := range items {
		it.out = Outcome{Request: it.req, Started: it.started, NextAllowed: it.nextAllowed, MaxAttempts: it.cfg.MaxActionsPerHour}
		r.decided(&it.out, it.d, it.simulate)
	}
	return items
}

// failAll gives every item the failure of a round trip that did not happen.
func (r *Responder) failAll(items []*item, errs []error, err error) {
	for _, it := range items {
		errs[it.i] = r.failure(err)
	}
}

// reportAll reports the decided items like report does, each step one round trip for all of them.
func (r *Responder) reportAll(ctx context.Context, items []*item, errs []error, start time.Time) {
	if len(items) == 0 {
		return
	}
	ids, tokens := make([]string, len(items)), make([]string, len(items))
	for k, it := range items {
		ids[k], tokens[k] = it.req.EventID, it.token
	}
	claimed, err := r.led.ClaimReports(ctx, ids, tokens, 2*r.cfg.LeaseTTL)
	if err != nil {
		r.failAll(items, errs, err)
		return
	}
	mine := items[:0]
	for k, it := range items {
		if !claimed[k] {
			errs[it.i] = r.failure(deferred("request %s is being reported by another responder", it.req.EventID))
			continue
		}
		mine = append(mine, it)
	}
	if len(mine) == 0 {
		return
	}
	outs := make([]*Outcome, len(mine))
	for k, it := range mine {
		outs[k] = &it.out
	}
	if err := r.advance(ctx, outs); err != nil {
		r.failAll(mine, errs, err)
		return
	}
	entries := make([]audit.Entry, len(mine))
	for k, it := range mine {
		it.out.Details = withRelapse(it.req, it.out.Details)
		it.out.Duration = r.now().Sub(start)
		it.entry = r.auditEntry(it.out, it.tgt)
		entries[k] = it.entry
	}
	recs, err := r.trail.AppendMany(ctx, entries)
	if err != nil {
		r.failAll(mine, errs, err)
		return
	}
	envs := make([]event.Envelope, 0, len(mine))
	for k, it := range mine {
		it.out.Audit = recs[k].StreamID
		env, err := r.completion(it.out, it.entry)
		if err != nil {
			r.failAll(mine, errs, err)
			return
		}
		envs = append(envs, env)
	}
	if err := r.publishAll(ctx, envs); err != nil {
		r.failAll(mine, errs, err)
		return
	}
	done := make([]string, len(mine))
	for k, it := range mine {
		it.out.Published = true
		done[k] = it.req.EventID
	}
	if err := r.led.MarkDone(ctx, r.cfg.DoneTTL, done...); err != nil {
		r.failAll(mine, errs, err)
		return
	}
	for _, it := range mine {
		r.logOutcome(it.out, it.entry)
	}
}

// publishAll publishes outcomes in one round trip when the publisher can.
func (r *Responder) publishAll(ctx context.Context, envs []event.Envelope) error {
	if bp, ok := r.pub.(BatchPublisher); ok {
		return bp.PublishBatch(ctx, event.StreamRemediationComplete, envs)
	}
	for _, env := range envs {
		if _, err := r.pub.Publish(ctx, event.StreamRemediationComplete, env); err != nil {
			return err
		}
	}
	return nil
}

// carefully runs the one-request path for the given batch indices, at most Workers at a time.
func (r *Responder) carefully(ctx context.Context, ms []bus.Message, idx []int, errs []error) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, r.workers)
	for _, i := range idx {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			m := ms[i]
			var out Outcome
			out, errs[i] = r.Process(ctx, m.Envelope)
			if errs[i] == nil {
				errs[i] = r.replayed(out, m.Deliveries)
			}
		})
	}
	wg.Wait()
}
