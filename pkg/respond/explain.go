package respond

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/hemostat/hemostat/pkg/container"
	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

// Explanations for views. A view (the dashboard) says why hemostat does or does not act on a container,
// and what it does next about an incident, with the responder's own rules: the functions below run the
// checks of Decide on what a view reads (a container's summary, its ledger, its incident), under the
// policy the responder publishes in its heartbeat (EncodePolicy), so that a view cannot disagree with the
// responder. They are pure.

// EncodePolicy is the policy as a responder publishes it in its heartbeat (schema.Agent.Policy): the JSON
// of the config, durations in nanoseconds.
func EncodePolicy(cfg Config) string {
	b, _ := json.Marshal(cfg) // only strings, numbers, booleans and string lists: it always encodes
	return string(b)
}

// DecodePolicy reads a policy published by EncodePolicy; fields it lacks take their defaults.
func DecodePolicy(s string) (Config, error) {
	var cfg Config
	if err := json.Unmarshal([]byte(s), &cfg); err != nil {
		return Config{}, fmt.Errorf("respond policy: %w", err)
	}
	return cfg.WithDefaults(), nil
}

// TargetOf is the target a container's summary (as the monitor lists it) describes: what step 1 would
// resolve for a request about that container.
func TargetOf(s container.Summary) Target {
	return Target{Found: true, State: docker.TargetState{
		ID: s.ID, Name: s.Name, Image: s.Image, Status: s.State, Running: s.State == "running", Health: s.Health,
		ExitCode: s.ExitCode, RestartCount: s.RestartCount, StartedAt: s.StartedAt, Labels: s.Labels,
		SwarmService: s.Labels[container.LabelSwarmService],
	}}
}

// Protected reports whether the responder never acts on a container of host, and why: the details of
// the denial (step 2) every request about it meets.
func Protected(cfg Config, host string, t Target) (bool, string) {
	d, stop := CheckProtected(cfg, Request{Host: host}, t)
	return stop, d.Details
}

// AttemptsWithin are the ledger's actions that count toward the breaker at now, oldest first.
func AttemptsWithin(now time.Time, cfg Config, l schema.Ledger) []time.Time {
	return schema.Ledger{Attempts: pruneAttempts(l.Attempts, now, cfg.BreakerWindow)}.AttemptTimes()
}

// BackoffResetAt is when the backoff starts again at its first step if the container stays healthy:
// HealthyReset after its latest action was verified. It is zero when no reset is coming (not verified
// healthy since its latest action, or the backoff is at its first step already).
func BackoffResetAt(cfg Config, l schema.Ledger) time.Time {
	if l.HealthySinceMS == 0 {
		return time.Time{}
	}
	at := l.HealthySince().Add(cfg.HealthyReset)
	if !healthyReset(at, cfg, Request{}, l) {
		return time.Time{}
	}
	return at
}

// Standing is what the breaker (step 7) and the backoff (step 8) say of a container now, whatever the
// request: the denials, or the escalation that opens the breaker, that a request would meet now. It is
// empty when they would let an action through.
func Standing(now time.Time, cfg Config, l schema.Ledger) []Decision {
	var out []Decision
	br, stop := CheckBreaker(now, cfg, l)
	if stop {
		out = append(out, br)
	}
	if br.BreakerClosed {
		l.Attempts, l.Breaker = nil, schema.BreakerClosed
	}
	if bo, stop := CheckBackoff(now, cfg, Request{}, l); stop {
		out = append(out, bo)
	}
	return out
}

// Outlook is what the responder does next about an open incident, for a view to say.
type Outlook struct {
	Kind      string        // one of the Outlook* kinds
	At        time.Time     // the next attempt or look; for OutlookGaveUp, the end of the breaker's cool-off
	Since     time.Time     // gave up at (OutlookGaveUp), healthy since (OutlookRecovering), verified at (OutlookVerified)
	Attempt   int           // the next attempt's number within the breaker window; the incident's attempts for OutlookGaveUp, OutlookVerified and OutlookRecovering
	Of        int           // attempts the breaker allows within Window: the container's MaxActionsPerHour
	Window    time.Duration // the breaker window
	Simulated bool          // attempts are simulated: --dry-run, or mode suggest or observe
	Step      string        // OutlookFinal: the step that stops every request (StepProtected, StepNone, ...)
	Details   string        // the responder's words for what stops it or makes it wait
	Relapse   string        // "relapsed 4s after restart 2": the condition came back after an action
}

// Outlook kinds.
const (
	OutlookAnalysis   = "analysis"   // the analyzer has not decided yet
	OutlookPending    = "pending"    // decided; no responder has recorded an outcome yet
	OutlookAttempt    = "attempt"    // the next attempt is at At
	OutlookGiveUp     = "give_up"    // at At the breaker opens: the responder escalates and stops
	OutlookHeld       = "held"       // held by the blast radius; looked at again at At
	OutlookBusy       = "busy"       // another responder holds the container's lease; looked at again at At
	OutlookGaveUp     = "gave_up"    // the breaker opened on it: no action until a reset or At
	OutlookVerified   = "verified"   // the latest action verified: nothing more unless the condition comes back
	OutlookRecovering = "recovering" // the condition is clear: it recovers if it stays so for the monitor's hysteresis
	OutlookFinal      = "final"      // the responder never acts on it: Step and Details say why
)

// OutlookOf says what the responder does next about an open incident of the container t, under cfg (its
// labels applied, ForLabels), with l the ledger its requests are decided on (the shadow ledger when they
// are simulated). The schedule the responder recorded (NextAt, NextReason) is taken as it is for holds and
// leases, which depend on the whole host; otherwise the decision sequence is run at the next look, as the
// follow-up will run it, which gives the attempt's number or the breaker that opens.
func OutlookOf(now time.Time, cfg Config, t Target, in schema.Incident, l schema.Ledger) Outlook {
	o := Outlook{Of: cfg.MaxActionsPerHour, Window: cfg.BreakerWindow, Simulated: Simulated(cfg, t.State.Labels)}
	if in.FalseAlarm {
		o.Kind, o.Step, o.Details = OutlookFinal, StepNone, "false alarm: "+in.Reason
		return o
	}
	if in.Action == "" {
		o.Kind = OutlookAnalysis
		return o
	}
	req := followUpRequest(in.Host, in, now)
	o.Relapse = req.Relapse
	// Steps 1 to 3 stop every request, whatever the ledger says.
	if d, stop := CheckTarget(req, t); stop {
		return final(o, d)
	}
	if d, stop := CheckEscalate(req); stop {
		return final(o, d)
	}
	if d, stop := CheckProtected(cfg, req, t); stop {
		return final(o, d)
	}
	if d, _, stop := CheckAllowed(cfg, req, t); stop {
		return final(o, d)
	}
	switch {
	case in.Condition == schema.ConditionClear:
		o.Kind, o.Since, o.Attempt = OutlookRecovering, in.ConditionSince, in.Attempts
		return o
	case in.GaveUp():
		o.Kind, o.Since, o.Attempt, o.At, o.Details = OutlookGaveUp, in.GaveUpAt, in.Attempts, in.BreakerUntil, in.LastDetails
		if l.Breaker == schema.BreakerOpen && l.BreakerUntilMS > 0 {
			o.At = l.BreakerUntil()
		}
		return o
	case in.NextAt.IsZero() && o.Relapse == "":
		// Nothing scheduled, and no relapse since the latest action (a relapse makes the follow-up due).
		switch in.LastOutcome {
		case "":
			o.Kind = OutlookPending
		case event.StatusSuccess:
			o.Kind, o.Since, o.Attempt = OutlookVerified, in.LastAttemptAt, in.Attempts
		default: // a final outcome: gone, protected, not allowed, escalated
			code, _, _ := strings.Cut(in.LastDetails, ":")
			o.Kind, o.Step, o.Details = OutlookFinal, code, in.LastDetails
		}
		return o
	}
	code, details, _ := strings.Cut(in.NextReason, ": ")
	switch code {
	case StepBlastRadius:
		o.Kind, o.At, o.Details = OutlookHeld, in.NextAt, details
		return o
	case StepBusy:
		o.Kind, o.At, o.Details = OutlookBusy, in.NextAt, details
		return o
	}
	at := later(in.NextAt, now)
	o.Kind = OutlookAttempt
	for round := 0; ; round++ {
		req = followUpRequest(in.Host, in, at)
		d := Decide(at, cfg, req, t, Snapshot{Ledger: l}, o.Simulated)
		waits := (d.Step == StepCooldown || d.Step == StepCircuitOpen) && !d.BreakerOpened
		if waits && round < outlookRounds {
			// A follow-up that would only be refused again is put back, silently, at the time the refusal
			// names (followUp).
			at = at.Add(d.RetryAfter)
			continue
		}
		switch {
		case d.Acts():
			o.Attempt = len(Plan(at, cfg, req, t, l, d).Attempts)
		case d.BreakerOpened:
			o.Kind, o.Attempt, o.Details = OutlookGiveUp, len(pruneAttempts(l.Attempts, at, cfg.BreakerWindow)), d.Details
		case !waits:
			return final(o, d)
		}
		o.At = at
		return o
	}
}

// outlookRounds bounds the refusals OutlookOf follows to reach the next attempt: a backoff, then the
// breaker's cool-off, are the most there can be.
const outlookRounds = 4

func final(o Outlook, d Decision) Outlook {
	o.Kind, o.Step, o.Details = OutlookFinal, d.Step, d.Details
	return o
}
