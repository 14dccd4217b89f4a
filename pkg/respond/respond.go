// Package respond owns the responder agent: it consumes remediation requests for its own host, runs the
// decision sequence (docs/architecture.md, remediation) against a safety ledger in Redis, acts on the engine,
// verifies, audits every decision and publishes remediation_complete.
//
// Consistency. Each decision is taken by pure functions (Decide, Plan) on one snapshot of the container's
// ledger, lease and done marker, and committed by one Lua script (pkg/store/ledger/ledger.lua) that is a
// compare-and-set on the ledger's revision and takes the lease in the same step: when anything changed
// since the snapshot, nothing is written and the decision is taken again on a fresh snapshot. Any number
// of responders are therefore safe: exactly one of them commits an action. Keys shared by the whole host
// live outside the container's hash tag and are updated by their own atomic steps, ordered to fail
// closed: the host's running-actions slot is taken before the ledger commit (and given back when the
// commit loses); the done key of the request is set after the outcome is published.
//
// Hosts. Requests travel on one stream per host (event.RemediationNeededStream), read by the host's consumer
// group, respond:<host>: a responder reads its own host's requests and no other host's. It still acts only
// on requests whose envelope Host is its own and acks any other unread (an entry written to the wrong
// stream by hand). At its start it drains, once, what its group left on the legacy stream every host read
// before (event.StreamRemediationNeeded); see Run.
//
// Idle cost. The Workers consumers of an instance share a bus.Gate: one of them at a time blocks on
// XREADGROUP, and one per reclaim period runs XAUTOCLAIM, so an idle responder sends one read per bus
// Block, one read of its follow-up schedule per FollowupPoll, and its heartbeat.
//
// Idempotency and crashes. The commit that starts an action records the request id in the ledger
// (inflight_event) together with the lease. A responder killed after acting and before acking leaves it
// there; the redelivered request finds it, does not act again, verifies the container instead and
// publishes that outcome. Requests already finished (last_event) but not yet acked are republished from
// the ledger. Handled requests are remembered in hemostat:done:<id> for DoneTTL.
//
// Reporting. Every outcome is appended to the audit trail and published once: the responder first claims
// the request's done key (SET NX with a short TTL), publishes, then sets the done key for DoneTTL, so two
// responders never both report a request and a responder that dies mid-report lets the next delivery
// report it. A blast-radius hold pages once per host and hold period: the first hold is published, later
// ones within the period are audited only.
//
// Redis unreachable: no engine write happens (every action needs the ledger commit first) and the request
// is left pending (bus.ErrSkipAck) to be retried; so is a request met while the engine is unreachable.
package respond

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hemostat/hemostat/pkg/agent"
	"github.com/hemostat/hemostat/pkg/audit"
	"github.com/hemostat/hemostat/pkg/bus"
	"github.com/hemostat/hemostat/pkg/conn"
	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/store/incidents"
	"github.com/hemostat/hemostat/pkg/store/ledger"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

// Publisher publishes envelopes; *bus.Bus implements it. (The bus keeps a request's stream entry from
// being reclaimed while its handler acts on it.)
type Publisher interface {
	Publish(ctx context.Context, stream string, env event.Envelope) (string, error)
}

// Options are the responder's collaborators and tuning beyond its policy.
type Options struct {
	Instance string           // consumer name within respond:<host>
	Workers  int              // consumers of this instance, each handling one request at a time; default 4
	Logger   *slog.Logger     // default: discard
	Now      func() time.Time // the responder's clock, default time.Now (tests inject their own)
}

// Responder handles remediation requests.
type Responder struct {
	cfg     Config
	rt      Runtime
	led     LedgerStore
	inc     IncidentStore
	hosts   HostStore
	pub     Publisher
	trail   *audit.Trail
	log     *slog.Logger
	now     func() time.Time
	inst    string
	workers int
	stats   Stats
	wake    chan struct{} // a follow-up was scheduled sooner than the loop's next read
}

// Stats counts the responder's outcomes.
type Stats struct {
	Handled   atomic.Int64 // requests decided
	Acted     atomic.Int64 // engine write calls made
	Ignored   atomic.Int64 // requests of other hosts
	Duplicate atomic.Int64 // requests already handled
	Malformed atomic.Int64
	Deferred  atomic.Int64 // left pending (Redis away, another responder on the same request)
	Refused   atomic.Int64 // stale or replayed requests, dead-lettered (Config.MaxRequestAge)
}

// New returns a responder over the engine, its stores, the audit trail's store and the bus.
func New(cfg Config, rt Runtime, st Stores, trail audit.Store, pub Publisher, o Options) *Responder {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Instance == "" {
		o.Instance = "respond-" + nonce()
	}
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	return &Responder{cfg: cfg.WithDefaults(), rt: rt, led: st.Ledger, inc: st.Incidents, hosts: st.Hosts, pub: pub,
		trail: audit.NewTrail(trail), log: o.Logger, now: o.Now, inst: o.Instance, workers: o.Workers,
		wake: make(chan struct{}, 1)}
}

// Config returns the policy in force.
func (r *Responder) Config() Config { return r.cfg }

// Stats returns the responder's counters.
func (r *Responder) Stats() *Stats { return &r.stats }

// Group is the consumer group of a host's responders.
func Group(host string) string { return "respond:" + host }

// Run consumes remediation requests until ctx is done. It runs Workers consumers of the host's group on
// the host's request stream (named <instance>-<n>); each decides the requests of a read together (see
// ProcessBatch), so a long verification holds one consumer's next read and not the other consumers. The
// consumers share one bus.Gate: while they are idle only one of them waits on Redis. Beside them, once,
// a consumer <instance>-legacy drains the group's entries on the legacy request stream (requests published
// before the upgrade to per-host streams; it acks other hosts' unread and returns when the group has none
// left there, creating nothing). It returns when every consumer has stopped.
func (r *Responder) Run(ctx context.Context, b *bus.Bus) error {
	errs := make([]error, r.workers+1)
	var wg sync.WaitGroup
	wg.Go(func() { r.runFollowups(ctx) }) // returns when ctx is done
	wg.Go(func() { r.runRetention(ctx) }) // returns when ctx is done
	legacy := r.inst + "-legacy"
	// Returns when the legacy stream has nothing left for the group, or when ctx is done.
	wg.Go(func() {
		errs[r.workers] = b.ConsumeBatch(ctx, bus.Group{Name: Group(r.cfg.Host), Consumer: legacy,
			Streams: []string{event.StreamRemediationNeeded}, Once: true}, r.ProcessBatch)
	})
	gate := bus.NewGate()
	for i := range r.workers {
		consumer := fmt.Sprintf("%s-%d", r.inst, i)
		// Each consumer returns when ctx is done.
		wg.Go(func() {
			errs[i] = b.ConsumeBatch(ctx, bus.Group{Name: Group(r.cfg.Host), Consumer: consumer,
				Streams: []string{event.RemediationNeededStream(r.cfg.Host)}, Gate: gate}, r.ProcessBatch)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// RunFollowUps runs the healing loop alone, until ctx is done: the host's follow-ups, without consuming
// requests (Run runs it beside the consumers). Tests drive the responder with it and Process.
func (r *Responder) RunFollowUps(ctx context.Context) { r.runFollowups(ctx) }

// Outcome is what the responder did with one request.
type Outcome struct {
	Request   Request
	Decision  Decision
	Status    string
	Details   string
	Error     string
	Verified  bool
	DryRun    bool
	Duration  time.Duration
	Published bool   // a remediation_complete was published
	Ignored   bool   // another host's request
	Duplicate bool   // already handled: acked, nothing else
	Resumed   bool   // redelivered after a crash mid-action: verified, not acted again
	Audit     string // audit stream id

	// The incident's progress (filled when the outcome is recorded on its incident).
	Started     time.Time // when the action started
	NextAllowed time.Time // the backoff after this outcome
	Next        Next      // when hemostat looks at the incident again
	Attempts    int       // actions executed for the incident so far
	OpenedAt    time.Time
	Errors      []string // the incident's verification errors, when this outcome gave up
	MaxAttempts int      // actions the breaker allows within its window, for this container
}

// withRelapse starts the details of a follow-up that answers a relapse with the relapse.
func withRelapse(req Request, details string) string {
	if req.Relapse == "" || details == "" {
		return details
	}
	return req.Relapse + "; " + details
}

// errDeferred wraps conditions that leave a request pending without counting a failure.
func deferred(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), bus.ErrSkipAck)
}

// Process runs the decision sequence for one envelope and carries it out.
func (r *Responder) Process(ctx context.Context, env event.Envelope) (Outcome, error) {
	start := r.now()
	req, ok, ignored := r.admit(env)
	if !ok {
		return Outcome{Request: req, Ignored: ignored}, nil
	}
	if err := r.fresh(env); err != nil {
		return Outcome{Request: req}, err
	}
	out, err := r.process(ctx, req, start)
	return out, r.failure(err)
}

// admit decodes a request and keeps it if it is this host's: a malformed one is counted and dropped, one
// of another host counted as ignored.
func (r *Responder) admit(env event.Envelope) (req Request, ok, ignored bool) {
	if env.EventType != event.TypeRemediationNeeded {
		r.stats.Malformed.Add(1)
		return Request{}, false, false
	}
	p, err := event.DecodeData[event.RemediationNeeded](env)
	if err != nil {
		r.stats.Malformed.Add(1)
		r.log.Warn("malformed remediation request; dropped", "event_id", env.ID, "err", err)
		return Request{}, false, false
	}
	req = RequestFrom(env, p)
	if env.Host != r.cfg.Host {
		r.stats.Ignored.Add(1)
		return req, false, true
	}
	return req, true, false
}

// Reasons a request is refused for good (bus.Reject): replay protection, with Config.MaxRequestAge.
const (
	RejectStale    = "stale"    // older than MaxRequestAge
	RejectReplayed = "replayed" // already handled, and come again in a new stream entry
)

// fresh refuses a request older than MaxRequestAge: a replay of a validly signed request, or one that
// waited so long that acting on it would be acting on old news.
func (r *Responder) fresh(env event.Envelope) error {
	if r.cfg.MaxRequestAge <= 0 {
		return nil
	}
	if age := r.now().Sub(env.Timestamp); age > r.cfg.MaxRequestAge {
		r.stats.Refused.Add(1)
		return bus.Reject(RejectStale, "request %s for %s was sent %s ago (at %s), longer than --max-request-age %s",
			env.ID, env.Host, age.Round(time.Second), env.Timestamp.Format(time.RFC3339), r.cfg.MaxRequestAge)
	}
	return nil
}

// replayed refuses a request already handled (its done marker is set) that arrives in a new stream entry:
// a first delivery. A redelivery of the entry it was handled from is the bus's at-least-once and is acked.
func (r *Responder) replayed(out Outcome, deliveries int64) error {
	if r.cfg.MaxRequestAge <= 0 || !out.Duplicate || deliveries != 1 {
		return nil
	}
	r.stats.Refused.Add(1)
	return bus.Reject(RejectReplayed, "request %s was already handled", out.Request.EventID)
}

// failure is what the bus is told of a request that ended in err: dependencies away (Redis, the engine)
// and deferrals leave it pending without counting a failure.
func (r *Responder) failure(err error) error {
	switch {
	case err == nil:
		return nil
	case conn.IsUnavailable(err) || errors.Is(err, docker.ErrUnavailable):
		r.stats.Deferred.Add(1) // nothing was done; wait for the dependency
		return fmt.Errorf("%v: %w", err, bus.ErrSkipAck)
	case errors.Is(err, bus.ErrSkipAck):
		r.stats.Deferred.Add(1)
	}
	return err
}

func (r *Responder) process(ctx context.Context, req Request, start time.Time) (Outcome, error) {
	out := Outcome{Request: req}
	tgt, err := r.resolve(ctx, req)
	if err != nil {
		return out, err
	}
	cfg, simulate, keys, token := r.prepare(req, tgt)
	out.MaxAttempts = cfg.MaxActionsPerHour
	var d Decision
	var planned schema.Ledger // the ledger the committed decision left
	committed := false
	for try := 0; try < 10 && !committed; try++ {
		now := r.now()
		snap, err := r.snapshot(ctx, keys, req.EventID, now)
		if err != nil {
			return out, err
		}
		switch {
		case snap.Done:
			r.stats.Duplicate.Add(1)
			out.Duplicate = true
			return out, nil
		case snap.Reporting, snap.Self, strings.HasPrefix(snap.Lease, req.EventID+" "):
			return out, deferred("request %s is being handled by another responder", req.EventID)
		case snap.Ledger.InflightEvent == req.EventID:
			return r.resume(ctx, req, tgt, keys, snap, token, start)
		case snap.Ledger.LastEventIs(req.EventID):
			return r.republish(ctx, req, tgt, snap, simulate, start)
		}
		d = Decide(now, cfg, req, tgt, snap, simulate)
		if d.Step == StepGone || d.Step == StepNone {
			committed = true // nothing to record in a ledger
			break
		}
		cm := commitOf(now, cfg, req, tgt, snap, d)
		slot := false
		if d.Step == StepExecute {
			ok, err := r.led.AcquireSlot(ctx, keys, token, r.cfg.MaxConcurrent, r.cfg.LeaseTTL, now)
			if err != nil {
				return out, err
			}
			if !ok {
				continue // the host filled up since the snapshot: decide again (held)
			}
			slot = true
			cm.Lease, cm.Token, cm.LeaseTTL = ledger.LeaseTake, token, r.cfg.LeaseTTL
		}
		_, err = r.led.Apply(ctx, keys, cm)
		if err != nil && slot {
			_ = r.led.ReleaseSlot(context.WithoutCancel(ctx), keys, token)
		}
		switch {
		case errors.Is(err, ledger.ErrConflict), errors.Is(err, ledger.ErrLeaseHeld):
			continue
		case err != nil:
			return out, err
		}
		planned = cm.To
		committed = true
		out.Started, out.NextAllowed = now, planned.NextAllowed()
	}
	if !committed {
		return out, deferred("ledger of %s kept changing", req.Container)
	}
	r.decided(&out, d, simulate)
	publish := true
	if d.Step == StepBlastRadius {
		first, err := r.led.HoldOnce(ctx, keys, r.cfg.HoldPeriod)
		if err != nil {
			return out, err
		}
		publish = first // page once per hold period; later holds are audited only
		if first {
			out.Details += " (paging once for this hold period)"
		}
	}
	if d.Step == StepExecute {
		res := r.act(ctx, req, tgt, keys, d, token)
		out.Status, out.Details, out.Error, out.Verified = res.Status, res.Details, res.Error, res.Verified
		if err := r.finish(ctx, req, keys, token, planned, out); err != nil {
			return out, err
		}
	}
	out.Duration = r.now().Sub(start)
	return r.report(ctx, out, tgt, token, publish)
}

// prepare returns the policy, mode, ledger keys and a fresh lease token of a resolved request.
func (r *Responder) prepare(req Request, tgt Target) (cfg Config, simulate bool, keys schema.LedgerKeys, token string) {
	cfg = r.cfg.ForLabels(tgt.State.Labels)
	simulate = Simulated(cfg, tgt.State.Labels)
	return cfg, simulate, schema.RespondKeys(cfg.Host, req.Container, simulate), req.EventID + " " + r.inst + " " + nonce()
}

// snapshot reads one request's ledger snapshot and the host's load.
func (r *Responder) snapshot(ctx context.Context, keys schema.LedgerKeys, eventID string, now time.Time) (Snapshot, error) {
	raw, err := r.led.Read(ctx, ledger.Query{Keys: keys, EventID: eventID}, now)
	if err != nil {
		return Snapshot{}, err
	}
	load, err := r.load(ctx)
	if err != nil {
		return Snapshot{}, err
	}
	return SnapshotFor(raw, load, eventID), nil
}

// load reads how much of the host is failing now.
func (r *Responder) load(ctx context.Context) (Load, error) {
	failing, err := r.inc.Failing(ctx, r.cfg.Host)
	if err != nil {
		return Load{}, err
	}
	h, _, err := r.hosts.Host(ctx, r.cfg.Host)
	if err != nil && conn.IsUnavailable(err) {
		return Load{}, err
	}
	return LoadOf(failing, h.Watched), nil
}

// commitOf is the ledger commit of a decision taken on snap.
func commitOf(now time.Time, cfg Config, req Request, tgt Target, snap Snapshot, d Decision) ledger.Commit {
	return ledger.Commit{From: snap.Ledger, To: Plan(now, cfg, req, tgt, snap.Ledger, d)}
}

// decided counts a committed decision and records it in the outcome.
func (r *Responder) decided(out *Outcome, d Decision, simulate bool) {
	r.stats.Handled.Add(1)
	out.Decision, out.Status, out.Details, out.DryRun = d, d.Status, d.Details, d.Step == StepSimulate || (simulate && d.Status != "")
}

// resolve is step 1's read: the container by id, else its compose replacement by name.
func (r *Responder) resolve(ctx context.Context, req Request) (Target, error) {
	if req.ContainerID != "" {
		st, err := r.rt.ContainerState(ctx, req.ContainerID)
		if err == nil {
			return Target{Found: true, State: st}, nil
		}
		if !errors.Is(err, docker.ErrNotFound) {
			return Target{}, err
		}
	}
	st, err := r.rt.ContainerState(ctx, req.Container)
	if errors.Is(err, docker.ErrNotFound) {
		return Target{}, nil
	}
	if err != nil {
		return Target{}, err
	}
	if st.Name != req.Container {
		return Target{}, nil // the name matched an id prefix or an alias: not our container
	}
	if req.ContainerID != "" && st.ID != req.ContainerID {
		if st.ComposeProject == "" || st.ComposeService == "" {
			return Target{}, nil // another container took the name: not a replacement
		}
		return Target{Found: true, Replaced: true, State: st}, nil
	}
	return Target{Found: true, State: st}, nil
}

// finish records the verified outcome of an action on the ledger the action started on, and frees the
// lease and the host slot. It retries briefly: until it lands, a redelivery of the request resumes
// (verifies) instead of acting.
func (r *Responder) finish(ctx context.Context, req Request, keys schema.LedgerKeys, token string, started schema.Ledger, out Outcome) error {
	d := out.Decision
	d.Status, d.Details = out.Status, out.Details
	cm := ledger.Commit{From: started, To: PlanFinish(r.now(), req, started, d), Force: true, Lease: ledger.LeaseRelease, Token: token}
	var err error
	for i := range finishTries {
		if _, err = r.led.Apply(ctx, keys, cm); err == nil {
			break
		}
		agent.Sleep(ctx, time.Duration(i+1)*finishRetry)
	}
	_ = r.led.ReleaseSlot(context.WithoutCancel(ctx), keys, token)
	return err
}

// finish's retries: finishTries attempts, waiting finishRetry more before each.
const (
	finishTries = 3
	finishRetry = 200 * time.Millisecond
)

// resume handles the redelivery of a request whose action was started by a responder that died: the
// action is not repeated; the container is verified and that outcome reported.
func (r *Responder) resume(ctx context.Context, req Request, tgt Target, keys schema.LedgerKeys, snap Snapshot, token string, start time.Time) (Outcome, error) {
	out := Outcome{Request: req, Resumed: true, Started: snap.Ledger.InflightSince(), NextAllowed: snap.Ledger.NextAllowed()}
	if snap.Lease != "" {
		return out, deferred("request %s is being acted on", req.EventID)
	}
	started := snap.Ledger
	started.UpdatedMS = r.now().UnixMilli()
	_, err := r.led.Apply(ctx, keys, ledger.Commit{From: snap.Ledger, To: started, Lease: ledger.LeaseTake, Token: token,
		LeaseTTL: r.cfg.LeaseTTL})
	if errors.Is(err, ledger.ErrConflict) || errors.Is(err, ledger.ErrLeaseHeld) {
		return out, deferred("request %s: ledger moved while resuming", req.EventID)
	}
	if err != nil {
		return out, err
	}
	r.stats.Handled.Add(1)
	d := Decision{Step: StepExecute, Decision: DecisionExecuted}
	out.Decision = d
	since := snap.Ledger.InflightSince()
	res := Result{Status: event.StatusFailed, Details: "the container is gone"}
	how := "resumed after a responder stopped mid-action; verified without acting again: "
	switch {
	case !tgt.Found:
	case req.Action == event.ActionRestart && !r.restartLanded(ctx, keys, token, &tgt, since):
		// The responder died after recording the action and before its restart reached the engine:
		// verifying would only wait for a restart that never comes.
		res = r.act(ctx, req, tgt, keys, d, token)
		how = "resumed after a responder stopped before its restart reached the engine; restarted now: "
	default:
		stop := r.keepLease(ctx, keys, token)
		res = r.verify(ctx, req.Action, tgt, since)
		stop()
	}
	out.Status, out.Verified, out.Error = res.Status, res.Verified, res.Error
	out.Details = how + res.Details
	if err := r.finish(ctx, req, keys, token, started, out); err != nil {
		return out, err
	}
	out.Duration = r.now().Sub(start)
	return r.report(ctx, out, tgt, token, true)
}

// restartLanded reports whether the restart that a responder which died recorded at since reached the
// engine: the container started after since. Not running is no sign: a crashed container, the restart's
// usual target, was not running before the restart either. A restart the engine is still carrying out (a
// container being stopped) shows its new start within the container's stop timeout, so the wait for a
// sign ends restartLandGrace after that; the request's lease, expired before a resume, has usually outlasted it
// already. tgt is updated to the container's state.
func (r *Responder) restartLanded(ctx context.Context, keys schema.LedgerKeys, token string, tgt *Target, since time.Time) bool {
	stop := r.keepLease(ctx, keys, token)
	defer stop()
	deadline := since.Add(StopTimeout(r.cfg, tgt.State.Labels) + restartLandGrace)
	for {
		st, err := r.rt.ContainerState(ctx, tgt.State.ID)
		if err != nil {
			return true // verification reports what it finds
		}
		tgt.State = st
		if st.StartedAt.After(since) {
			return true
		}
		if ctx.Err() != nil {
			return true
		}
		if !r.now().Before(deadline) {
			return false
		}
		agent.Sleep(ctx, r.cfg.PollInterval)
	}
}

// restartLandGrace is how long after a container's stop timeout a restart the engine was asked for is
// sure to show in its state.
const restartLandGrace = 5 * time.Second

// republish reports a request whose outcome was recorded in the ledger but never acknowledged.
func (r *Responder) republish(ctx context.Context, req Request, tgt Target, snap Snapshot, simulate bool, start time.Time) (Outcome, error) {
	l := snap.Ledger
	out := Outcome{Request: req, Status: l.LastResult, Details: l.LastReason, DryRun: simulate,
		Decision: Decision{Decision: l.LastDecision, Status: l.LastResult, Details: l.LastReason}}
	if out.Status == "" {
		out.Status = event.StatusFailed
	}
	out.Verified = out.Status == event.StatusSuccess
	out.Duration = r.now().Sub(start)
	return r.report(ctx, out, tgt, req.EventID+" "+r.inst+" "+nonce(), true)
}

// report audits the outcome, publishes remediation_complete (unless publish is false) and marks the
// request done. It first claims the request's done key, so only one responder ever reports a request.
func (r *Responder) report(ctx context.Context, out Outcome, tgt Target, token string, publish bool) (Outcome, error) {
	req := out.Request
	claimed, err := r.led.ClaimReport(ctx, req.EventID, token, 2*r.cfg.LeaseTTL)
	if err != nil {
		return out, err
	}
	if !claimed {
		return out, deferred("request %s is being reported by another responder", req.EventID)
	}
	if err := r.advance(ctx, []*Outcome{&out}); err != nil {
		return out, err
	}
	out.Details = withRelapse(req, out.Details)
	e := r.auditEntry(out, tgt)
	rec, err := r.trail.Append(ctx, e)
	if err != nil {
		return out, err
	}
	out.Audit = rec.StreamID
	if publish {
		env, err := r.completion(out, e)
		if err != nil {
			return out, err
		}
		if _, err := r.pub.Publish(ctx, event.StreamRemediationComplete, env); err != nil {
			return out, err
		}
		out.Published = true
	}
	if err := r.led.MarkDone(ctx, r.cfg.DoneTTL, req.EventID); err != nil {
		return out, err
	}
	r.logOutcome(out, e)
	return out, nil
}

// auditEntry is the audit record of an outcome.
func (r *Responder) auditEntry(out Outcome, tgt Target) audit.Entry {
	req := out.Request
	actor := req.AnalysisMethod
	if actor == "" {
		actor = "rules"
	}
	containerID := req.ContainerID
	if tgt.Found {
		containerID = tgt.State.ID
	}
	return audit.Entry{
		Time: r.now(), Host: req.Host, Container: req.Container, ContainerID: containerID, Incident: req.Incident,
		CausationID: req.EventID, Action: req.Action, Decision: out.Decision.Decision, Result: out.Status, Error: out.Error,
		Details: out.Details, RetryAfterMS: out.Decision.RetryAfter.Milliseconds(), Reason: req.Reason,
		Confidence: req.Confidence, AnalysisMethod: req.AnalysisMethod, ProposedAction: req.ProposedAction, Actor: actor,
		DurationMS: float64(out.Duration.Microseconds()) / 1000, Verified: out.Verified, DryRun: out.DryRun,
		FollowUp: req.FollowUp, Attempts: out.Attempts, GaveUp: out.Decision.BreakerOpened, Errors: out.Errors,
		NextAt: out.Next.At, NextReason: out.Next.Reason, Once: req.EventID,
	}
}

// completion is the remediation_complete envelope of an outcome, given its audit entry.
func (r *Responder) completion(out Outcome, e audit.Entry) (event.Envelope, error) {
	req := out.Request
	incident := req.Incident
	if incident == "" && req.Class != "" {
		incident = event.IncidentKey(req.Host, req.Container, req.Class)
	}
	p := &event.RemediationComplete{
		Container: req.Container, ContainerID: e.ContainerID, Action: req.Action,
		Result: event.Result{Status: out.Status, Details: out.Details, Error: out.Error}, DryRun: out.DryRun,
		Reason: req.Reason, Confidence: req.Confidence, AnalysisMethod: req.AnalysisMethod, Verified: out.Verified,
		DurationMS: e.DurationMS, Class: req.Class, RootCause: req.RootCause, Evidence: req.Evidence,
		RetryAfterMS: e.RetryAfterMS, EventTime: req.EventTime, FollowUp: req.FollowUp, Attempts: out.Attempts,
		MaxAttempts: out.MaxAttempts, GaveUp: out.Decision.BreakerOpened, Errors: out.Errors, NextAt: out.Next.At,
		Relapse: req.Relapse, OpenedAt: out.OpenedAt, ProposedAction: req.ProposedAction,
	}
	if out.Decision.Step == StepCircuitOpen {
		p.BreakerUntil = e.Time.Add(out.Decision.RetryAfter)
	}
	return event.New("respond", req.Host, incident, req.EventID, p)
}

func (r *Responder) logOutcome(out Outcome, e audit.Entry) {
	req := out.Request
	r.log.Info("remediation decided", "container", req.Container, "action", req.Action, "decision", e.Decision,
		"result", out.Status, "details", out.Details, "event_id", req.EventID, "duration_ms", e.DurationMS)
}

// Reset closes a container's breaker and clears its backoff (real and shadow ledgers), audited as the actor.
// The container's open incidents are due at once: if it still fails, the reconciliation resumes.
func (r *Responder) Reset(ctx context.Context, name, actor string) (audit.Record, error) {
	now := r.now()
	for _, shadow := range []bool{false, true} {
		keys := schema.RespondKeys(r.cfg.Host, name, shadow)
		l, _, err := r.led.Get(ctx, keys.Ledger)
		if err != nil && conn.IsUnavailable(err) {
			return audit.Record{}, err
		}
		if _, err := r.led.Apply(ctx, keys, ledger.Commit{From: l, To: PlanReset(now, l, actor), Force: true}); err != nil {
			return audit.Record{}, err
		}
	}
	open, err := r.inc.OpenIncidents(ctx, r.cfg.Host)
	if err != nil {
		return audit.Record{}, err
	}
	var steps []incidents.Step
	for _, in := range open {
		if in.Container == name {
			steps = append(steps, incidents.Step{Incident: in.Key, Next: now, Reason: WaitReset, Outcome: incidents.Outcome{
				EventID: "reset " + nonce(), At: now, Status: DecisionReset, Details: "reset by " + actor, Resumed: true}})
		}
	}
	if _, err := r.inc.Advance(ctx, steps); err != nil {
		return audit.Record{}, err
	}
	return r.trail.Append(ctx, audit.Entry{
		Time: now, Host: r.cfg.Host, Container: name, Action: "reset", Decision: DecisionReset,
		Result: event.StatusSuccess, Reason: "breaker closed and backoff cleared by hand", Actor: actor, Verified: true,
	})
}

// keepLease renews the lease and host slot while an action runs (the bus keeps the request's stream entry
// from being reclaimed meanwhile); the returned stop waits for the renewer.
func (r *Responder) keepLease(ctx context.Context, keys schema.LedgerKeys, token string) (stop func()) {
	cctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	// The renewer exits when stop cancels it.
	wg.Go(func() {
		t := time.NewTicker(max(r.cfg.LeaseTTL/3, 10*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-cctx.Done():
				return
			case <-t.C:
				if _, err := r.led.Renew(cctx, keys, token, r.cfg.LeaseTTL, r.now()); err != nil && cctx.Err() == nil {
					r.log.Warn("lease renewal failed", "key", keys.Lease, "err", err)
				}
			}
		}
	})
	return func() { cancel(); wg.Wait() }
}

func nonce() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
