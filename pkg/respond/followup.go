package respond

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hemostat/hemostat/pkg/conn"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/store/incidents"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

// The healing loop. An open incident is worked on until it ends, level-triggered like a Kubernetes
// controller: every outcome that is not final names when the responder looks again (NextLook), and that
// time is kept in Redis, in the host's follow-up schedule (pkg/store/incidents). Each responder of the
// host polls the schedule (runFollowups); a due follow-up is taken by exactly one of them (pushed back by
// FollowupHold while it works, so a responder that dies gives it back) and handled like a request the
// analyzer sent again (followUp), under the same decision sequence, ledger and audit. Closing the incident
// (recovered, or closed by a person) cancels it.
//
// The schedule belongs to the responder because every wait is the responder's own policy: the backoff, the
// breaker's cool-off, the lease, the blast-radius hold. The monitor only makes a follow-up due at once when
// a condition comes back after it cleared (a relapse).

// Reasons a follow-up waits, besides the denial codes (cooldown, circuit_open, busy, blast_radius).
const (
	WaitVerify = "verify"  // the action did not verify: the next backoff step
	WaitDryRun = "dry_run" // a dry run simulated the action: the next step of the shadow ledger
	WaitReset  = "reset"   // a human reset the breaker: look now
)

// Next is when hemostat looks at an incident again, and why; a zero At means it will not.
type Next struct {
	At     time.Time
	Reason string
}

// NextLook says when to look at an incident again after an outcome. It is pure.
//
//   - an action that verified: not until the monitor sees the condition come back (a relapse);
//   - an action that did not verify: at the next backoff step;
//   - a dry run: at the shadow ledger's next step, as a real run that did not heal it would;
//   - denied by the backoff, or by the breaker (including the escalation that opened it): when it ends;
//   - skipped because another responder holds the lease: when the lease ends;
//   - held by the blast radius: after HoldRetry, again until the hold lifts;
//   - anything else (gone, escalated to a human, protected, not allowed) is final.
func NextLook(now time.Time, cfg Config, out Outcome) Next {
	d := out.Decision
	switch d.Step {
	case StepExecute:
		if out.Status == event.StatusSuccess {
			return Next{}
		}
		return Next{At: later(out.NextAllowed, now), Reason: WaitVerify}
	case StepSimulate:
		return Next{At: later(out.NextAllowed, now), Reason: WaitDryRun}
	case StepCooldown, StepCircuitOpen, StepBusy:
		return Next{At: now.Add(d.RetryAfter), Reason: d.Details}
	case StepBlastRadius:
		return Next{At: now.Add(cfg.HoldRetry), Reason: d.Details}
	}
	return Next{}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// step is what an outcome records on its incident.
func (r *Responder) step(out *Outcome) (incidents.Step, bool) {
	req := out.Request
	incident := incidentOf(req)
	if incident == "" || out.Decision.Step == "" {
		return incidents.Step{}, false // no incident to advance, or a republished outcome (recorded already)
	}
	now := r.now()
	d := out.Decision
	o := incidents.Outcome{EventID: req.EventID, At: now, Status: out.Status, Details: out.Details,
		GaveUp: d.BreakerOpened, Resumed: d.BreakerClosed}
	if d.Step == StepExecute || d.Step == StepSimulate {
		o.Attempt, o.At = true, out.Started
		if o.At.IsZero() {
			o.At = now
		}
		if out.Status == event.StatusFailed {
			o.Error = out.Error
			if o.Error == "" {
				o.Error = out.Details
			}
		}
	}
	if d.Step == StepCircuitOpen {
		o.BreakerUntil = now.Add(d.RetryAfter)
	}
	out.Next = NextLook(now, r.cfg, *out)
	return incidents.Step{Incident: incident, Outcome: o, Next: out.Next.At, Reason: out.Next.Reason}, true
}

// advance records outcomes on their incidents and schedules their follow-ups, in one round trip, and
// fills each outcome with its incident's progress.
func (r *Responder) advance(ctx context.Context, outs []*Outcome) error {
	var steps []incidents.Step
	var which []*Outcome
	for _, out := range outs {
		if st, ok := r.step(out); ok {
			steps = append(steps, st)
			which = append(which, out)
		}
	}
	if len(steps) == 0 {
		return nil
	}
	ps, err := r.inc.Advance(ctx, steps)
	if err != nil {
		return err
	}
	for i, out := range which {
		p := ps[i]
		out.Attempts, out.OpenedAt = p.Attempts, p.OpenedAt
		if !p.Open {
			out.Next = Next{} // not open: nothing was scheduled
		}
		if out.Decision.BreakerOpened {
			out.Errors = p.Errors
		}
		if out.Decision.Step == StepExecute && out.Status == event.StatusSuccess {
			// Verified: the container no longer counts toward the blast radius, even while its incident
			// waits out the recovery hysteresis. The monitor puts it back if the condition returns.
			if err := r.inc.Cleared(ctx, steps[i].Incident); err != nil && conn.IsUnavailable(err) {
				return err
			}
		}
	}
	return nil
}

// incidentOf is the incident a request is about.
func incidentOf(req Request) string {
	if req.Incident != "" {
		return req.Incident
	}
	if req.Class != "" {
		return event.IncidentKey(req.Host, req.Container, req.Class)
	}
	return ""
}

// runFollowups takes the host's due follow-ups and handles them, until ctx is done. It reads when the
// earliest follow-up is due (one ZRANGE), and takes them only when one is: the schedule is read when the
// earliest is due, and at least every FollowupPoll (another responder, or the monitor, may have scheduled
// an earlier one). It returns when ctx is done.
func (r *Responder) runFollowups(ctx context.Context) {
	for ctx.Err() == nil {
		wait := r.cfg.FollowupPoll
		next, err := r.inc.NextDue(ctx, r.cfg.Host)
		switch {
		case err != nil:
			if ctx.Err() == nil {
				r.log.Debug("follow-ups not read", "err", err)
			}
		case next.IsZero():
		case next.After(r.now()):
			wait = min(wait, max(next.Sub(r.now()), followupMinWait))
		default:
			more, err := r.takeFollowups(ctx)
			if more {
				continue // more may be due
			}
			if err == nil {
				wait = followupMinWait // read the schedule again, without spinning on one this could not take
			}
		}
		select {
		case <-ctx.Done():
		case <-r.wake:
		case <-time.After(wait):
		}
	}
}

// takeFollowups takes the due follow-ups, up to Workers, and handles them; it reports whether it took
// as many as it could (more may be due).
func (r *Responder) takeFollowups(ctx context.Context) (bool, error) {
	due, err := r.inc.TakeDue(ctx, r.cfg.Host, r.now(), r.cfg.FollowupHold, r.workers)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Debug("follow-ups not taken", "err", err)
		}
		return false, err
	}
	done := make(chan struct{}, len(due))
	for _, d := range due {
		go func() { // ends with the follow-up, which ctx bounds
			defer func() { done <- struct{}{} }()
			r.followUp(ctx, d)
		}()
	}
	for range due {
		<-done
	}
	return len(due) == r.workers, nil
}

// followupMinWait keeps the loop from spinning on a follow-up due in the past it could not take.
const followupMinWait = 10 * time.Millisecond

// schedule records a follow-up at at and wakes the loop when it is sooner than its next read.
func (r *Responder) schedule(ctx context.Context, incident string, at time.Time, reason string) error {
	if _, err := r.inc.Schedule(ctx, incident, at, reason); err != nil {
		return err
	}
	select {
	case r.wake <- struct{}{}:
	default:
	}
	return nil
}

// followUp handles one due follow-up: it looks at the incident again and, when its condition still holds,
// runs the decision sequence for the incident's remediation as a new request. A follow-up that the policy
// would only refuse again (backoff, breaker cool-off, lease, blast radius) is put back silently at the time
// that refusal names: the outcome that named it was audited and notified already.
func (r *Responder) followUp(ctx context.Context, d incidents.Due) {
	log := r.log.With("incident", d.Incident)
	in, found, err := r.inc.Get(ctx, d.Incident)
	if err != nil && !found {
		log.Debug("follow-up: incident not read; it comes back after the hold", "err", err)
		return
	}
	if !found || in.State != schema.StateOpen || in.Action == "" || in.Action == event.ActionNone || in.FalseAlarm {
		if err := r.inc.Cancel(ctx, d.Incident); err != nil {
			log.Debug("follow-up not cancelled", "err", err)
		}
		return
	}
	if in.Condition == schema.ConditionClear {
		// Healthy now: the monitor closes the incident after the hysteresis, or makes it due again if the
		// condition comes back.
		if err := r.inc.Cancel(ctx, d.Incident); err != nil {
			log.Debug("follow-up not cancelled", "err", err)
		}
		return
	}
	req := followUpRequest(r.cfg.Host, in, d.At)
	start := r.now()
	tgt, err := r.resolve(ctx, req)
	if err != nil {
		r.retryFollowUp(ctx, d.Incident, err)
		return
	}
	if tgt.Found {
		cfg, simulate, keys, _ := r.prepare(req, tgt)
		snap, err := r.snapshot(ctx, keys, req.EventID, start)
		if err != nil {
			r.retryFollowUp(ctx, d.Incident, err)
			return
		}
		if next, wait := quietWait(start, cfg, req, tgt, snap, simulate); wait {
			if err := r.schedule(ctx, d.Incident, next.At, next.Reason); err != nil {
				log.Debug("follow-up not put back", "err", err)
			}
			return
		}
	}
	out, err := r.process(ctx, req, start)
	if err = r.failure(err); err != nil {
		r.retryFollowUp(ctx, d.Incident, err)
		return
	}
	if out.Duplicate {
		return // taken twice (its hold ran out): handled once
	}
}

// quietWait reports whether a follow-up would only be refused again, and until when.
func quietWait(now time.Time, cfg Config, req Request, tgt Target, snap Snapshot, simulate bool) (Next, bool) {
	d := Decide(now, cfg, req, tgt, snap, simulate)
	switch d.Step {
	case StepCooldown, StepBusy:
		return Next{At: now.Add(d.RetryAfter), Reason: d.Details}, true
	case StepCircuitOpen:
		if d.BreakerOpened {
			return Next{}, false // the escalation that opens the breaker is reported once
		}
		return Next{At: now.Add(d.RetryAfter), Reason: d.Details}, true
	case StepBlastRadius:
		return Next{At: now.Add(cfg.HoldRetry), Reason: d.Details}, true
	}
	return Next{}, false
}

// retryFollowUp puts a follow-up that could not be handled (Redis or the engine away, another responder
// on it) back for a short while; when even that fails, its hold brings it back.
func (r *Responder) retryFollowUp(ctx context.Context, incident string, cause error) {
	r.log.Debug("follow-up deferred", "incident", incident, "err", cause)
	if errors.Is(cause, context.Canceled) {
		return
	}
	_ = r.schedule(context.WithoutCancel(ctx), incident, r.now().Add(r.cfg.HoldRetry), "retry")
}

// followUpRequest is the request a follow-up makes of an incident: the analyzer's decision, with an id
// that is the same every time this follow-up is taken.
func followUpRequest(host string, in schema.Incident, due time.Time) Request {
	req := Request{
		EventID: event.DeriveID("follow-up/"+in.Key, due), Host: host, Incident: in.Key, Container: in.Container,
		ContainerID: in.ContainerID, Action: in.Action, Reason: in.Reason, Confidence: in.Confidence,
		AnalysisMethod: in.Method, Class: in.Class, RootCause: in.RootCause, Evidence: in.Evidence,
		EventTime: in.ConditionSince, FollowUp: true, ProposedAction: in.Proposed,
	}
	if in.Relapses > 0 && !in.RelapsedAt.IsZero() && !in.RelapsedAt.Before(in.LastAttemptAt) && in.Attempts > 0 {
		req.Relapse = fmt.Sprintf("relapsed %s after %s %d", in.RelapseAfter.Round(time.Second), actionNoun(in.Action), in.Attempts)
	}
	return req
}

// actionNoun names an action in a sentence: "restart 2", "start 1".
func actionNoun(action string) string { return strings.ReplaceAll(action, "_", " ") }
