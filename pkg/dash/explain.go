package dash

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/respond"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

// Why hemostat does or does not act on a container, and what it does next about its incidents, said with
// the responder's own rules (pkg/respond, explain.go) under the policy the responder of the container's
// host publishes in its heartbeat, so that the dashboard cannot disagree with the responder.

// agentRespond is the kind of the responder's heartbeats.
const agentRespond = "respond"

// safety is what the responder decides a container's requests on.
type safety struct {
	cfg       respond.Config // the host's policy with the container's hemostat.* labels applied
	labelled  bool           // the labels changed the host's policy
	from      string         // the responder whose heartbeat published the policy; "" when the defaults stand in
	why       string         // why the defaults stand in
	target    respond.Target // the container as step 1 resolves it; not Found when the monitor lists no such container
	simulated bool           // its requests are simulated, on the shadow ledger
	ledger    schema.Ledger  // the ledger its requests are decided on (the shadow ledger when simulated)
}

// safetyOf returns what the responder of the container's host decides its requests on. The policy is the
// one the host's responder publishes (the latest heartbeat's, when several run), else the defaults, and
// the reason is kept to be said.
func (m Model) safetyOf(c Container, found bool) safety {
	var s safety
	base := respond.Config{}.WithDefaults()
	var latest *Agent
	up := ""
	for i, a := range m.snap.Agents {
		if a.Kind != agentRespond || a.Host != c.Host {
			continue
		}
		up = a.Instance
		if a.Policy != nil && (latest == nil || a.LastHeartbeat.After(latest.LastHeartbeat)) {
			latest = &m.snap.Agents[i]
		}
	}
	switch {
	case latest != nil:
		base, s.from = *latest.Policy, "respond "+latest.Instance
	case up != "":
		s.why = fmt.Sprintf("respond %s on %s does not publish its policy (an older version): explained here with the default policy", up, c.Host)
	default:
		s.why = fmt.Sprintf("no responder is running on %s: hemostat acts on nothing there until one starts; explained here with the default policy", c.Host)
	}
	s.cfg = base.ForLabels(c.Labels)
	s.labelled = !reflect.DeepEqual(s.cfg, base)
	if found {
		s.target = respond.TargetOf(c.Summary)
	}
	s.simulated = respond.Simulated(s.cfg, c.Labels)
	l := c.Ledger
	if s.simulated {
		l = c.Shadow
	}
	if l != nil {
		s.ledger = *l
	}
	return s
}

// containerAt returns the container host/name of the snapshot.
func (m Model) containerAt(target string) (Container, bool) {
	for _, c := range m.snap.Containers {
		if c.Target() == target {
			return c, true
		}
	}
	return Container{}, false
}

// outlookOf is what the responder does next about an open incident.
func (m Model) outlookOf(in schema.Incident) respond.Outlook {
	c, found := m.containerAt(event.Target(in.Host, in.Container))
	if !found { // gone from the monitor's list: the responder's step 1 finds no container either
		c.Host, c.Name = in.Host, in.Container
	}
	s := m.safetyOf(c, found)
	return respond.OutlookOf(m.o.Now(), s.cfg, s.target, in, s.ledger)
}

// explain says, in plain words, whether hemostat will act on the container and why, and what it does next
// about each of its open incidents.
func (m Model) explain(c Container, incs []schema.Incident) []string {
	now := m.o.Now()
	s := m.safetyOf(c, true)
	var out []string
	if !c.Watched {
		out = append(out, "not watched: hemostat ignores it (hemostat.enable=false, or excluded by configuration).")
	}
	if s.why != "" {
		out = append(out, s.why+".")
	}
	if ok, why := respond.Protected(s.cfg, c.Host, s.target); ok {
		out = append(out, "protected ("+strings.TrimPrefix(why, respond.StepProtected+": ")+"): hemostat never acts on it; requests are denied: protected.")
	}
	shadow := ""
	if s.simulated {
		shadow = " (shadow ledger)"
	}
	for _, d := range respond.Standing(now, s.cfg, s.ledger) {
		n := len(respond.AttemptsWithin(now, s.cfg, s.ledger))
		switch {
		case d.Step == respond.StepCircuitOpen && d.BreakerOpened:
			out = append(out, fmt.Sprintf("the breaker opens at the next request%s: %s within %s (max %d); hemostat then escalates once and acts no more for %s (or until `hemostat respond reset %s`).",
				shadow, plural(n, "action", "actions"), human(s.cfg.BreakerWindow), s.cfg.MaxActionsPerHour, human(s.cfg.BreakerCooloff), c.Name))
		case d.Step == respond.StepCircuitOpen:
			out = append(out, fmt.Sprintf("circuit breaker open%s: %s within %s (max %d); it closes in %s (or `hemostat respond reset %s`). Requests are denied: circuit_open.",
				shadow, plural(n, "action", "actions"), human(s.cfg.BreakerWindow), s.cfg.MaxActionsPerHour, human(d.RetryAfter), c.Name))
		case d.Step == respond.StepCooldown:
			out = append(out, fmt.Sprintf("cooling down%s: the next action is allowed in %s (backoff step %d); requests before then are denied: cooldown.",
				shadow, human(d.RetryAfter), s.ledger.BackoffStep))
		}
	}
	switch {
	case s.cfg.DryRun:
		out = append(out, "dry run (respond --dry-run): hemostat records what it would do in the shadow ledger and does not act.")
	case s.simulated:
		out = append(out, "mode "+respond.Mode(c.Labels)+": hemostat records what it would do in the shadow ledger and does not act.")
	}
	switch {
	case len(incs) == 0 && c.State == "running" && c.Health != "unhealthy":
		out = append(out, "no open incident: nothing to do.")
	case len(incs) == 0:
		out = append(out, "no open incident recorded for it (state "+orDash(c.State)+").")
	}
	for _, in := range incs {
		switch {
		case in.Action == "":
			out = append(out, fmt.Sprintf("incident %s open for %s: waiting for the analyzer's decision.", in.Class, human(now.Sub(in.OpenedAt))))
		case in.Action == event.ActionNone:
			out = append(out, fmt.Sprintf("incident %s: the analyzer chose not to act (escalated to a human): %s", in.Class, orDash(in.Reason)))
		default:
			out = append(out, fmt.Sprintf("incident %s: the analyzer chose %s (%s, confidence %.2f): %s", in.Class, in.Action, orDash(in.Method), in.Confidence, orDash(in.Reason)))
		}
		o := respond.OutlookOf(now, s.cfg, s.target, in, s.ledger)
		if line := m.outlookLine(c.Name, in, o, s); line != "" {
			out = append(out, line)
		}
	}
	if l := c.Ledger; l != nil && l.LastDecision != "" {
		line := fmt.Sprintf("last decision %s ago: %s → %s", ago(now, decidedAt(*l)), lastDecision(*l), orDash(l.LastResult))
		if l.LastReason != "" {
			line += " (" + l.LastReason + ")"
		}
		out = append(out, line+".")
	}
	return out
}

// decidedAt is when the ledger's latest decision was taken: its update, or its latest action for a
// ledger written before updates were timed.
func decidedAt(l schema.Ledger) time.Time {
	if l.UpdatedMS > 0 {
		return time.UnixMilli(l.UpdatedMS).UTC()
	}
	return l.LastActionAt()
}

// lastDecision names the ledger's latest decision, with the latest action when there was one.
func lastDecision(l schema.Ledger) string {
	if l.LastAction == "" {
		return l.LastDecision
	}
	return l.LastAction + " " + l.LastDecision
}

// outlookLine says what hemostat does next about an incident; "" when the lines before say it already.
func (m Model) outlookLine(name string, in schema.Incident, o respond.Outlook, s safety) string {
	now, loc := m.o.Now(), m.o.Location
	attempt := "attempt"
	if o.Simulated {
		attempt = "simulated attempt"
	}
	var line string
	switch o.Kind {
	case respond.OutlookAttempt:
		line = fmt.Sprintf("next %s %s (attempt %d of %d)", attempt, within(now, o.At), o.Attempt, o.Of)
	case respond.OutlookGiveUp:
		line = fmt.Sprintf("%d of %d attempts made within %s: at the next look, %s, the breaker opens; hemostat then gives up and escalates",
			o.Attempt, o.Of, human(o.Window), within(now, o.At))
	case respond.OutlookHeld:
		line = fmt.Sprintf("held: %s; hemostat looks again %s", o.Details, within(now, o.At))
	case respond.OutlookBusy:
		line = fmt.Sprintf("busy: %s; hemostat looks again %s", o.Details, within(now, o.At))
	case respond.OutlookGaveUp:
		line = fmt.Sprintf("gave up at %s after %s: reset with `hemostat respond reset %s`", clock(o.Since, loc), plural(o.Attempt, "attempt", "attempts"), name)
		switch {
		case o.At.After(now):
			line += fmt.Sprintf(", or the breaker closes at %s (in %s)", clock(o.At, loc), human(o.At.Sub(now)))
		case !o.At.IsZero():
			line += fmt.Sprintf("; the breaker's cool-off ended at %s: hemostat resumes at its next look", clock(o.At, loc))
		}
	case respond.OutlookVerified:
		line = fmt.Sprintf("%s %d verified at %s: nothing more to do unless the condition comes back; the monitor closes the incident once it stays clear",
			in.Action, o.Attempt, clock(o.Since, loc))
	case respond.OutlookRecovering:
		line = fmt.Sprintf("healthy since %s: recovered if it stays so for the monitor's recovery hysteresis", clock(o.Since, loc))
		if at := respond.BackoffResetAt(s.cfg, s.ledger); at.After(now) {
			line += fmt.Sprintf("; the backoff starts again at %s (after %s healthy)", clock(at, loc), human(s.cfg.HealthyReset))
		}
	case respond.OutlookPending:
		line = "waiting for a responder to take the analyzer's request"
	case respond.OutlookFinal:
		if o.Step == respond.StepProtected || (o.Step == respond.StepNone && !in.FalseAlarm) {
			return "" // said above
		}
		line = "hemostat will not act on it: " + o.Details
	default: // awaiting analysis: said above
		return ""
	}
	if o.Relapse != "" {
		line = o.Relapse + "; " + line
	}
	return line + "."
}

// outlookStatus is the incidents list's short form of an outlook.
func outlookStatus(o respond.Outlook, now time.Time) string {
	switch o.Kind {
	case respond.OutlookAttempt:
		what := "attempt"
		if o.Simulated {
			what = "dry run"
		}
		return fmt.Sprintf("%s %d/%d %s", what, o.Attempt, o.Of, within(now, o.At))
	case respond.OutlookGiveUp:
		return "gives up " + within(now, o.At)
	case respond.OutlookHeld:
		return "held"
	case respond.OutlookBusy:
		return "busy"
	case respond.OutlookGaveUp:
		return "gave up"
	case respond.OutlookVerified:
		return "verified"
	case respond.OutlookRecovering:
		return "healthy " + human(now.Sub(o.Since))
	case respond.OutlookPending:
		return "pending"
	case respond.OutlookFinal:
		return "no action"
	}
	return ""
}

// within says when t comes: "in 12s", or "now" when it is due.
func within(now, t time.Time) string {
	if !t.After(now) {
		return "now"
	}
	return "in " + human(t.Sub(now))
}

// policyLines describe the policy the responder applies to a container, in lines of at most w cells.
func policyLines(s safety, w int) []string {
	head := "policy of " + s.from
	if s.from == "" {
		head = "default policy"
	}
	if s.labelled {
		head += " with its hemostat.* labels"
	}
	items := policyItems(s.cfg)
	items[0] = head + ": " + items[0]
	return pack(items, w-2, " · ", "  ")
}

// policyItems are the parts of a policy that decide when a container is acted on again.
func policyItems(cfg respond.Config) []string {
	return []string{
		fmt.Sprintf("breaker at %d actions per %s, open %s", cfg.MaxActionsPerHour, human(cfg.BreakerWindow), human(cfg.BreakerCooloff)),
		fmt.Sprintf("backoff %s doubling to %s", human(cfg.BackoffBase), human(cfg.Cooldown)),
		fmt.Sprintf("reset after %s healthy", human(cfg.HealthyReset)),
	}
}
