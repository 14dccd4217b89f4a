package dash

import (
	"fmt"
	"strings"
	"time"

	"github.com/hemostat/hemostat/pkg/audit"
	"github.com/hemostat/hemostat/pkg/respond"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

// The detail view of one container: what it is, why hemostat does or does not act (explain.go), its
// latest sample, its open incidents, its ledgers and its latest decisions.

// detailLines renders the container detail; the view scrolls through them.
func (m Model) detailLines(w int) []string {
	st := m.st
	now := m.o.Now()
	c, ok := m.detailContainer()
	if !ok {
		return []string{"", "  " + m.detail + " is not known (any more): the monitor lists its host's containers in the container table.", "  esc goes back."}
	}
	var out []string
	id := c.ID
	if len(id) > 12 {
		id = id[:12]
	}
	out = append(out, pack([]string{
		st.bold.Render(c.Name), "host " + c.Host, "image " + orDash(c.Image), "id " + orDash(id),
	}, w-2, "  ", "  ")...)
	watched := "yes"
	if !c.Watched {
		watched = st.warn.Render("no")
	}
	out = append(out, pack([]string{
		"state " + st.state(c.State), "health " + st.state(orDash(c.Health)), fmt.Sprintf("restarts %d", c.RestartCount),
		"mode " + st.state(modeOf(c)), "watched " + watched, startedAgo(now, c.StartedAt),
	}, w-2, "  ", "  ")...)

	incs := m.incidentsOf(c)
	out = append(out, "", st.bold.Render("Why"))
	for _, l := range m.explain(c, incs) {
		for i, wl := range wrap(l, w-6) {
			if i == 0 {
				out = append(out, "  • "+wl)
			} else {
				out = append(out, "    "+wl)
			}
		}
	}

	out = append(out, "", st.bold.Render("Latest sample"))
	if c.Sample == nil {
		out = append(out, "  none recent (samples expire after 3 monitor intervals)")
	} else {
		s := c.Sample
		out = append(out, pack([]string{
			fmt.Sprintf("%s ago from %s", ago(now, s.Time), orDash(s.Source)),
			"cpu " + pct(s.Metrics.CPUPercent) + "%",
			fmt.Sprintf("mem %s%% (%s of %s)", pct(s.Metrics.MemoryPercent), bytesIEC(s.Metrics.MemoryUsage), bytesIEC(s.Metrics.MemoryLimit)),
			fmt.Sprintf("pids %d", s.Metrics.PIDs),
			fmt.Sprintf("net rx %s tx %s", bytesIEC(s.Metrics.NetworkRxBytes), bytesIEC(s.Metrics.NetworkTxBytes)),
			fmt.Sprintf("io r %s w %s", bytesIEC(s.Metrics.BlkioReadBytes), bytesIEC(s.Metrics.BlkioWriteBytes)),
		}, w-2, "  ", "  ")...)
	}
	if len(c.History.CPU)+len(c.History.Memory) > 0 {
		sw := min(60, w-12)
		out = append(out, "  cpu "+sparkline(c.History.CPU, sw), "  mem "+sparkline(c.History.Memory, sw))
	}

	out = append(out, "", st.bold.Render("Open incident"))
	if len(incs) == 0 {
		out = append(out, "  none")
	}
	for _, in := range incs {
		out = append(out, m.incidentDetail(in, w)...)
	}

	s := m.safetyOf(c, true)
	out = append(out, "", st.bold.Render("Ledger (respond)"))
	out = append(out, m.ledgerLines(c.Ledger, s.cfg, w)...)
	out = append(out, policyLines(s, w)...)
	if c.Shadow != nil {
		out = append(out, "", st.bold.Render("Shadow ledger (dry-run, suggest, observe: what a real run would have done)"))
		out = append(out, m.ledgerLines(c.Shadow, s.cfg, w)...)
	}

	out = append(out, "", st.bold.Render("Last decisions"))
	n := 0
	for _, e := range m.decisionsOf(c) {
		n++
		line := fmt.Sprintf("  %s  %s %s → %s", stamp(e.Time, m.o.Location), e.Action, e.Decision, st.state(e.Result))
		if e.Reason != "" {
			line += ": " + e.Reason
		}
		if e.ProposedAction != "" && !strings.Contains(e.Reason, "proposed "+e.ProposedAction) {
			line += " (the LLM proposed " + e.ProposedAction + ", refused)"
		}
		out = append(out, wrapIndent(line, w)...)
	}
	if n == 0 {
		out = append(out, "  none recorded in hemostat:audit")
	}
	return out
}

func startedAgo(now, t time.Time) string {
	if t.IsZero() {
		return "started -"
	}
	return "started " + ago(now, t) + " ago"
}

// decisionsOf returns the container's newest decisions: read through its audit index when that read is
// done, else found in the trail the snapshot holds.
func (m Model) decisionsOf(c Container) []audit.Entry {
	if m.detailFor == c.Target() {
		return m.detailAudit
	}
	var out []audit.Entry
	for _, e := range m.snap.Audit {
		if e.Host == c.Host && e.Container == c.Name {
			out = append(out, e)
			if len(out) == detailDecisions {
				break
			}
		}
	}
	return out
}

func (m Model) incidentsOf(c Container) []schema.Incident {
	var out []schema.Incident
	for _, in := range m.snap.Incidents {
		if in.Host == c.Host && in.Container == c.Name {
			out = append(out, in)
		}
	}
	return out
}

// incidentDetail shows an open incident: the analyzer's decision and the responder's progress.
func (m Model) incidentDetail(in schema.Incident, w int) []string {
	now, loc := m.o.Now(), m.o.Location
	head := fmt.Sprintf("  %s since %s (%s ago)", m.st.bad.Render(in.Class), clock(in.OpenedAt, loc), ago(now, in.OpenedAt))
	if in.Severity != "" {
		head += ", " + in.Severity
	}
	out := []string{head}
	add := func(label, v string) {
		if v == "" {
			return
		}
		for i, l := range wrap(label+v, w-6) {
			if i == 0 {
				out = append(out, "    "+l)
			} else {
				out = append(out, "      "+l)
			}
		}
	}
	if in.Action == "" {
		add("decision: ", "awaiting analysis")
	} else {
		add("decision: ", fmt.Sprintf("%s, confidence %.2f, by %s at %s", in.Action, in.Confidence, orDash(in.Method), clock(in.DecidedAt, loc)))
	}
	if in.Proposed != "" {
		add("refused: ", "the LLM proposed "+in.Proposed+", which it may not choose here; a human decides")
	}
	add("reason: ", in.Reason)
	add("root cause: ", in.RootCause)
	for _, e := range in.Evidence {
		add("evidence: ", e)
	}
	add("llm error: ", in.LLM.Error)
	if in.Condition != "" && !in.ConditionSince.IsZero() {
		cond := fmt.Sprintf("%s since %s", in.Condition, clock(in.ConditionSince, loc))
		if in.Relapses > 0 {
			cond += fmt.Sprintf(" (relapse %d: %s after the action)", in.Relapses, human(in.RelapseAfter))
		}
		add("condition: ", cond)
	}
	if in.Attempts > 0 || in.LastOutcome != "" {
		p := plural(in.Attempts, "attempt", "attempts")
		if !in.LastAttemptAt.IsZero() {
			p += ", the latest at " + clock(in.LastAttemptAt, loc)
		}
		if in.LastOutcome != "" {
			p += "; last outcome " + in.LastOutcome
		}
		add("progress: ", p)
	}
	for _, e := range in.Errors {
		add("error: ", e)
	}
	return out
}

// ledgerLines shows a ledger, with the breaker window and the healthy reset of the container's policy.
func (m Model) ledgerLines(l *schema.Ledger, cfg respond.Config, w int) []string {
	if l == nil {
		return []string{"  no decisions yet: respond has not acted on this container"}
	}
	now, loc := m.o.Now(), m.o.Location
	var recent []string
	within := respond.AttemptsWithin(now, cfg, *l)
	for _, a := range within {
		recent = append(recent, clock(a, loc))
	}
	att := fmt.Sprintf("attempts within %s: %d of %d", human(cfg.BreakerWindow), len(within), cfg.MaxActionsPerHour)
	if len(recent) > 0 {
		att += " (" + strings.Join(recent, ", ") + ")"
	}
	cool := "cooldown: none, an action is allowed now"
	if next := l.NextAllowed(); next.After(now) {
		cool = fmt.Sprintf("cooldown: %s left (next allowed %s)", human(next.Sub(now)), clock(next, loc))
	}
	breaker := "breaker: " + l.Breaker
	if until := l.BreakerUntil(); l.Breaker == schema.BreakerOpen && until.After(now) {
		breaker += fmt.Sprintf(" for %s more (until %s)", human(until.Sub(now)), clock(until, loc))
	}
	out := pack([]string{att, fmt.Sprintf("backoff step %d", l.BackoffStep)}, w-2, " · ", "  ")
	out = append(out, "  "+cool, "  "+breaker)
	if l.LastAction != "" || l.LastDecision != "" {
		last := fmt.Sprintf("last: %s → %s at %s", lastDecision(*l), orDash(l.LastResult), clock(decidedAt(*l), loc))
		if l.LastReason != "" {
			last += ": " + l.LastReason
		}
		out = append(out, wrapIndent("  "+last, w)...)
	}
	if since := l.HealthySince(); !since.IsZero() {
		h := "  healthy since " + clock(since, loc) + " (" + ago(now, since)
		if at := respond.BackoffResetAt(cfg, *l); !at.IsZero() {
			h += fmt.Sprintf("; the backoff resets at %s, after %s healthy", clock(at, loc), human(cfg.HealthyReset))
		}
		out = append(out, h+")")
	}
	return out
}
