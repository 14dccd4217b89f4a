package respond

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hemostat/hemostat/pkg/container"
	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/store/incidents"
	"github.com/hemostat/hemostat/pkg/store/ledger"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

// Request is one remediation request as the responder sees it.
type Request struct {
	EventID        string
	Host           string
	Incident       string
	Container      string
	ContainerID    string
	Action         string
	Command        []string
	Reason         string
	Confidence     float64
	AnalysisMethod string
	Class          string
	RootCause      string
	Evidence       []string
	EventTime      time.Time
	FollowUp       bool   // hemostat looked again on its own schedule; no alert asked
	Relapse        string // "relapsed 4s after restart 2", when the condition came back after an action
	ProposedAction string // an LLM's proposal outside the actions it may choose; Action is none
}

// RequestFrom builds a request from a remediation_needed envelope and its payload.
func RequestFrom(env event.Envelope, p *event.RemediationNeeded) Request {
	return Request{
		EventID: env.ID, Host: env.Host, Incident: env.Incident,
		Container: p.Container, ContainerID: p.ContainerID, Action: p.Action, Command: p.Command,
		Reason: p.Reason, Confidence: p.Confidence, AnalysisMethod: p.AnalysisMethod, Class: p.Class,
		RootCause: p.RootCause, Evidence: p.Evidence, EventTime: p.EventTime, ProposedAction: p.ProposedAction,
	}
}

// Target is what step 1 found: the container the request names, or its compose replacement.
type Target struct {
	Found    bool
	Replaced bool // found by name under a new id (compose recreated it)
	State    docker.TargetState
}

// Snapshot is everything a decision reads from Redis.
type Snapshot struct {
	Ledger    schema.Ledger
	Lease     string        // lease token, "" when free
	LeaseLeft time.Duration // until the lease expires, when held
	Done      bool
	Reporting bool // another responder is publishing this request's outcome
	Active    int  // actions running on the host (of other requests, in a snapshot taken for a request)
	Self      bool // a responder holds a host slot for this very request: it is acting on it now
	Load
}

// Load is how much of a host is failing: the blast radius's numerator and denominator.
type Load struct {
	Unhealthy int // containers of the host whose failure condition holds now
	Watched   int // watched containers of the host
}

// LoadOf counts the distinct containers among a host's failing incidents (keys host/name/class): a
// container with two failing incidents counts once. Containers verified healthy, even while their
// incidents wait out the recovery hysteresis, are not among them.
func LoadOf(failing []string, watched int) Load {
	seen := make(map[string]bool, len(failing))
	for _, key := range failing {
		seen[incidents.ContainerOf(key)] = true
	}
	return Load{Unhealthy: len(seen), Watched: watched}
}

// SnapshotFrom combines a ledger read with the host's load.
func SnapshotFrom(s ledger.Snapshot, l Load) Snapshot {
	return Snapshot{Ledger: s.Ledger, Lease: s.Lease, LeaseLeft: s.LeaseLeft, Done: s.Done, Reporting: s.Reporting,
		Active: len(s.Slots), Load: l}
}

// SnapshotFor is SnapshotFrom for one request: a host slot taken for the same request (by another
// responder racing for it) is not another action on the host but the request being handled (Self), so it
// neither fills the host nor lets the request be held on its own account.
func SnapshotFor(s ledger.Snapshot, l Load, eventID string) Snapshot {
	out := SnapshotFrom(s, l)
	for _, tok := range s.Slots {
		if strings.HasPrefix(tok, eventID+" ") {
			out.Active--
			out.Self = true
		}
	}
	return out
}

// Steps of the decision sequence, as recorded in Decision.Step; a denial, hold or skip is its wire code.
const (
	StepGone        = event.CodeGone
	StepNone        = "none"
	StepProtected   = event.CodeProtected
	StepNotAllowed  = event.CodeActionNotAllowed
	StepBusy        = event.CodeBusy
	StepBlastRadius = event.CodeBlastRadius
	StepCircuitOpen = event.CodeCircuitOpen
	StepCooldown    = event.CodeCooldown
	StepSimulate    = "simulate"
	StepExecute     = "execute"
)

// Audit decisions.
const (
	DecisionExecuted  = "executed"
	DecisionDenied    = "denied"
	DecisionSkipped   = "skipped"
	DecisionHeld      = "held"
	DecisionDryRun    = "dry_run"
	DecisionEscalated = "escalated"
	DecisionReset     = "reset"
)

// Decision is the outcome of the decision sequence for one request.
type Decision struct {
	Step       string
	Status     string // result status (event.Status*); for execute it is set after the action
	Decision   string // audit decision
	Details    string // starts with the step's code for denials, holds and skips
	RetryAfter time.Duration
	// Ledger transitions the decision carries.
	BreakerOpened bool
	BreakerClosed bool // the cool-off has passed
	BackoffReset  bool // healthy long enough: the backoff starts again
	Command       []string
}

// Acts reports whether the decision performs (or simulates) the action.
func (d Decision) Acts() bool { return d.Step == StepExecute || d.Step == StepSimulate }

func deny(step, status, decision, format string, args ...any) Decision {
	details := step
	if format != "" {
		details += ": " + fmt.Sprintf(format, args...)
	}
	return Decision{Step: step, Status: status, Decision: decision, Details: details}
}

// CheckTarget is step 1: the target must resolve to the same container or its compose replacement.
func CheckTarget(req Request, t Target) (Decision, bool) {
	if !t.Found {
		return deny(StepGone, event.StatusSkipped, DecisionSkipped, "container %s no longer exists", req.Container), true
	}
	return Decision{}, false
}

// CheckEscalate handles action none: a human must look; nothing is done.
func CheckEscalate(req Request) (Decision, bool) {
	if req.Action == event.ActionNone {
		return Decision{Step: StepNone, Status: event.StatusEscalated, Decision: DecisionEscalated,
			Details: "no automatic action: escalated to a human"}, true
	}
	return Decision{}, false
}

// CheckProtected is step 2: protected containers (label, hemostat's own, configured list) are never touched.
func CheckProtected(cfg Config, req Request, t Target) (Decision, bool) {
	s := t.State
	name := s.Name
	switch {
	case isTrue(s.Labels[container.LabelProtected]):
		return deny(StepProtected, event.StatusDenied, DecisionDenied, "label %s=true", container.LabelProtected), true
	case isTrue(s.Labels[container.LabelSelf]):
		return deny(StepProtected, event.StatusDenied, DecisionDenied, "hemostat's own container (label %s)", container.LabelSelf), true
	case selfName(cfg.SelfPrefix, name):
		return deny(StepProtected, event.StatusDenied, DecisionDenied, "hemostat's own container (name prefix %q)", cfg.SelfPrefix), true
	}
	for _, p := range cfg.Protected {
		if p == name || p == event.Target(req.Host, name) || (s.ID != "" && len(p) >= 12 && strings.HasPrefix(s.ID, p)) {
			return deny(StepProtected, event.StatusDenied, DecisionDenied, "in the --protected list"), true
		}
	}
	return Decision{}, false
}

// selfName reports whether a container name is one of hemostat's own: the prefix alone or followed by a
// separator or digit (hemostat, hemostat-respond, hemostat_1), not merely a word that starts with it.
func selfName(prefix, name string) bool {
	if prefix == "" || !strings.HasPrefix(name, prefix) {
		return false
	}
	if len(name) == len(prefix) {
		return true
	}
	c := name[len(prefix)]
	return c == '-' || c == '_' || c == '.' || (c >= '0' && c <= '9')
}

func isTrue(v string) bool {
	b, err := strconv.ParseBool(strings.TrimSpace(v))
	return err == nil && b
}

// AllowedActions is the container's allowed set: the hemostat.actions label, or the configured default.
func AllowedActions(cfg Config, labels map[string]string) []string {
	if v, ok := labels[container.LabelActions]; ok {
		var out []string
		for _, a := range strings.Split(v, ",") {
			if a = strings.TrimSpace(a); a != "" {
				out = append(out, a)
			}
		}
		return out
	}
	return cfg.Actions
}

// ExecCommands parses the hemostat.exec label: a JSON array of commands (each an array of strings), one
// JSON command, or plain commands separated by ";" with arguments separated by spaces (no shell, no quoting).
func ExecCommands(label string) [][]string {
	label = strings.TrimSpace(label)
	if label == "" {
		return nil
	}
	var many [][]string
	if json.Unmarshal([]byte(label), &many) == nil {
		return slices.DeleteFunc(many, func(c []string) bool { return len(c) == 0 })
	}
	var one []string
	if json.Unmarshal([]byte(label), &one) == nil && len(one) > 0 {
		return [][]string{one}
	}
	var out [][]string
	for _, c := range strings.Split(label, ";") {
		if f := strings.Fields(c); len(f) > 0 {
			out = append(out, f)
		}
	}
	return out
}

// CheckAllowed is step 3: the action must be in the container's allowed set. Exec additionally needs the
// command declared in hemostat.exec (the first one when the request names none); scale needs a swarm
// service.
func CheckAllowed(cfg Config, req Request, t Target) (Decision, []string, bool) {
	labels := t.State.Labels
	switch req.Action {
	case event.ActionExec:
		cmds := ExecCommands(labels[container.LabelExec])
		if len(cmds) == 0 {
			return deny(StepNotAllowed, event.StatusDenied, DecisionDenied, "exec needs commands declared in the %s label", container.LabelExec), nil, true
		}
		if len(req.Command) == 0 {
			return Decision{}, cmds[0], false
		}
		for _, c := range cmds {
			if slices.Equal(c, req.Command) {
				return Decision{}, c, false
			}
		}
		return deny(StepNotAllowed, event.StatusDenied, DecisionDenied, "command %q is not declared in %s", strings.Join(req.Command, " "), container.LabelExec), nil, true
	case event.ActionScale:
		if t.State.SwarmService == "" {
			return deny(StepNotAllowed, event.StatusDenied, DecisionDenied, "scale applies to swarm services only"), nil, true
		}
	}
	if !slices.Contains(AllowedActions(cfg, labels), req.Action) {
		return deny(StepNotAllowed, event.StatusDenied, DecisionDenied, "%s is not in the allowed set %v", req.Action, AllowedActions(cfg, labels)), nil, true
	}
	return Decision{}, nil, false
}

// CheckBusy is step 5: one actor per container. It is busy until the lease ends.
func CheckBusy(cfg Config, s Snapshot) (Decision, bool) {
	if s.Lease != "" {
		d := deny(StepBusy, event.StatusSkipped, DecisionSkipped, "another responder is acting on the container")
		d.RetryAfter = s.LeaseLeft
		if d.RetryAfter <= 0 {
			d.RetryAfter = cfg.LeaseTTL
		}
		return d, true
	}
	return Decision{}, false
}

// UnhealthyLimit is the most containers that may be unhealthy at once before automatic action stops.
func UnhealthyLimit(cfg Config, watched int) int {
	if cfg.MaxUnhealthy > 0 {
		return cfg.MaxUnhealthy
	}
	return max(3, watched*cfg.MaxUnhealthyPercent/100)
}

// CheckBlastRadius is step 6: no automatic action while too much is broken or too much is being done.
func CheckBlastRadius(cfg Config, s Snapshot, simulate bool) (Decision, bool) {
	if limit := UnhealthyLimit(cfg, s.Watched); s.Unhealthy > limit {
		return deny(StepBlastRadius, event.StatusHeld, DecisionHeld, "%d containers unhealthy at once (limit %d of %d watched)", s.Unhealthy, limit, s.Watched), true
	}
	if !simulate && s.Active >= cfg.MaxConcurrent {
		return deny(StepBlastRadius, event.StatusHeld, DecisionHeld, "%d actions already running on the host (max %d)", s.Active, cfg.MaxConcurrent), true
	}
	return Decision{}, false
}

// pruneAttempts keeps the attempts within the breaker window before now.
func pruneAttempts(a []int64, now time.Time, window time.Duration) []int64 {
	from := now.Add(-window).UnixMilli()
	out := make([]int64, 0, len(a)+1)
	for _, t := range a {
		if t > from {
			out = append(out, t)
		}
	}
	return out
}

// CheckBreaker is step 7: after MaxActionsPerHour actions within the window the breaker opens (one
// escalation) and denies until the cool-off passes or a human resets it.
func CheckBreaker(now time.Time, cfg Config, l schema.Ledger) (Decision, bool) {
	var d Decision
	if l.Breaker == schema.BreakerOpen {
		until := time.UnixMilli(l.BreakerUntilMS)
		if now.Before(until) {
			d = deny(StepCircuitOpen, event.StatusDenied, DecisionDenied, "breaker open until %s (or `hemostat respond reset`)", until.UTC().Format(time.RFC3339))
			d.RetryAfter = until.Sub(now)
			return d, true
		}
		d.BreakerClosed = true // cool-off over: the window starts again
		return d, false
	}
	if n := len(pruneAttempts(l.Attempts, now, cfg.BreakerWindow)); n >= cfg.MaxActionsPerHour {
		d = deny(StepCircuitOpen, event.StatusEscalated, DecisionEscalated, "breaker opened after %d actions within %s; closed again in %s or by `hemostat respond reset`", n, cfg.BreakerWindow, cfg.BreakerCooloff)
		d.BreakerOpened = true
		d.RetryAfter = cfg.BreakerCooloff
		return d, true
	}
	return d, false
}

// Gap is the backoff gap after an action taken at backoff step step: base doubling up to the cap.
func Gap(cfg Config, step int) time.Duration {
	g := cfg.BackoffBase << min(step, 40)
	if g <= 0 || g > cfg.Cooldown {
		return cfg.Cooldown
	}
	return g
}

// healthyReset reports whether the container has been healthy long enough since its last action for the
// backoff to start again. The failure's own time bounds the healthy period when the request carries it.
func healthyReset(now time.Time, cfg Config, req Request, l schema.Ledger) bool {
	if l.HealthySinceMS == 0 || l.HealthySinceMS < l.LastActionMS || l.BackoffStep == 0 {
		return false
	}
	ref := now
	if !req.EventTime.IsZero() && req.EventTime.Before(now) {
		ref = req.EventTime
	}
	return ref.Sub(time.UnixMilli(l.HealthySinceMS)) >= cfg.HealthyReset
}

// CheckBackoff is step 8: actions on one container are spaced by the backoff gap, unless the container
// has been healthy long enough since the last one.
func CheckBackoff(now time.Time, cfg Config, req Request, l schema.Ledger) (Decision, bool) {
	if healthyReset(now, cfg, req, l) {
		return Decision{BackoffReset: true}, false
	}
	if next := time.UnixMilli(l.NextAllowedMS); l.NextAllowedMS > 0 && now.Before(next) {
		left := next.Sub(now)
		d := deny(StepCooldown, event.StatusDenied, DecisionDenied, "next action allowed in %s (backoff step %d)", left.Round(time.Second), l.BackoffStep)
		d.RetryAfter = left
		return d, true
	}
	return Decision{}, false
}

// Mode is the container's hemostat.mode label, or auto.
func Mode(labels map[string]string) string {
	switch m := strings.ToLower(strings.TrimSpace(labels[container.LabelMode])); m {
	case container.ModeSuggest, container.ModeObserve:
		return m
	}
	return container.ModeAuto
}

// Simulated reports whether requests for a container only simulate: --dry-run, or mode suggest/observe.
func Simulated(cfg Config, labels map[string]string) bool {
	return cfg.DryRun || Mode(labels) != container.ModeAuto
}

// Decide runs the decision sequence (docs/architecture.md, remediation) for one request. simulate selects step 9
// (and means the snapshot is the shadow ledger's). The done check (step 4) and a redelivery of a request
// already being acted on are handled before, by the caller: they produce no decision at all.
func Decide(now time.Time, cfg Config, req Request, t Target, s Snapshot, simulate bool) Decision {
	if d, stop := CheckTarget(req, t); stop {
		return d
	}
	if d, stop := CheckEscalate(req); stop {
		return d
	}
	if d, stop := CheckProtected(cfg, req, t); stop {
		return d
	}
	d, cmd, stop := CheckAllowed(cfg, req, t)
	if stop {
		return d
	}
	if d, stop := CheckBusy(cfg, s); stop {
		return d
	}
	if d, stop := CheckBlastRadius(cfg, s, simulate); stop {
		return d
	}
	l := s.Ledger
	br, stop := CheckBreaker(now, cfg, l)
	if stop {
		return br
	}
	if br.BreakerClosed {
		l.Attempts, l.Breaker = nil, schema.BreakerClosed
	}
	bo, stop := CheckBackoff(now, cfg, req, l)
	if stop {
		bo.BreakerClosed = br.BreakerClosed
		return bo
	}
	out := Decision{Step: StepExecute, Decision: DecisionExecuted, Command: cmd,
		BreakerClosed: br.BreakerClosed, BackoffReset: bo.BackoffReset}
	if simulate {
		out.Step, out.Status, out.Decision = StepSimulate, event.StatusDryRun, DecisionDryRun
		out.Details = "dry run: would " + req.Action
		if len(cmd) > 0 {
			out.Details += " " + strings.Join(cmd, " ")
		}
	}
	return out
}

// Plan returns the ledger a decision leaves, from the ledger l it was taken on. It is pure: the caller
// commits the difference with a compare-and-set on l's revision. The request is recorded as the last one
// decided, except for an action, which records it when it finishes (PlanFinish).
func Plan(now time.Time, cfg Config, req Request, t Target, l schema.Ledger, d Decision) schema.Ledger {
	ms := now.UnixMilli()
	n := l
	n.LastDecision, n.LastResult, n.LastReason, n.UpdatedMS = d.Decision, d.Status, d.Details, ms
	if t.State.ID != "" {
		n.ContainerID = t.State.ID
	}
	if n.Breaker == "" {
		n.Breaker = schema.BreakerClosed
	}
	attempts := pruneAttempts(l.Attempts, now, cfg.BreakerWindow)
	step := l.BackoffStep
	if d.BreakerClosed {
		attempts = attempts[:0]
		n.Breaker, n.BreakerUntilMS = schema.BreakerClosed, 0
	}
	if d.BreakerOpened {
		n.Breaker, n.BreakerUntilMS = schema.BreakerOpen, now.Add(cfg.BreakerCooloff).UnixMilli()
	}
	if d.BackoffReset {
		step = 0
		n.BackoffStep = 0
		n.NextAllowedMS = l.LastActionMS + cfg.BackoffBase.Milliseconds()
	}
	n.LastEvent = req.EventID
	if d.Acts() {
		attempts = append(attempts, ms)
		n.BackoffStep = step + 1
		n.NextAllowedMS = now.Add(Gap(cfg, step)).UnixMilli()
		n.LastAction, n.LastActionMS = req.Action, ms
		if d.Step == StepSimulate {
			n.HealthySinceMS = ms // a simulated action is assumed to verify
		} else {
			n.HealthySinceMS = 0
			n.InflightEvent, n.InflightAction, n.InflightMS = req.EventID, req.Action, ms
			n.LastEvent = l.LastEvent // set when the action finishes
		}
	}
	n.Attempts = attempts
	return n
}

// PlanFinish returns the ledger once an executed action has been verified (or not), from the ledger l the
// action started on.
func PlanFinish(now time.Time, req Request, l schema.Ledger, d Decision) schema.Ledger {
	n := l
	n.LastDecision, n.LastResult, n.LastReason, n.UpdatedMS = d.Decision, d.Status, d.Details, now.UnixMilli()
	n.HealthySinceMS = 0
	if d.Status == event.StatusSuccess {
		n.HealthySinceMS = now.UnixMilli()
	}
	n.InflightEvent, n.InflightAction, n.InflightMS = "", "", 0
	n.LastEvent = req.EventID
	return n
}

// PlanReset returns the ledger a human reset leaves: breaker closed, backoff cleared.
func PlanReset(now time.Time, l schema.Ledger, actor string) schema.Ledger {
	n := l
	n.Breaker, n.BreakerUntilMS, n.Attempts, n.BackoffStep, n.NextAllowedMS = schema.BreakerClosed, 0, nil, 0, 0
	n.LastDecision, n.LastResult, n.LastReason = DecisionReset, "", "reset by "+actor
	n.UpdatedMS = now.UnixMilli()
	return n
}
