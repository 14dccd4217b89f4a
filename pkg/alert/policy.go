package alert

import (
	"strconv"
	"strings"

	"github.com/hemostat/hemostat/pkg/event"
)

// Decision is what the policy makes of one event: a notification to send (Send), a reason it is counted
// but not sent (Suppressed), or nothing at all.
type Decision struct {
	Send         bool
	Suppressed   string // counted as suppressed:<reason> and not sent
	Notification Notification
}

// DenialCode finds the responder's code for a denial, hold or skip: it looks at result.details and
// result.error first (written by the responder), then at the start of reason (which may be the
// analyzer's text and is therefore only trusted as a prefix).
func DenialCode(rc *event.RemediationComplete) string {
	for _, s := range []string{rc.Result.Details, rc.Result.Error} {
		for _, c := range event.DenialCodes {
			if hasCode(s, c) {
				return c
			}
		}
	}
	r := strings.TrimSpace(rc.Reason)
	for _, c := range event.DenialCodes {
		if strings.HasPrefix(r, c) {
			return c
		}
	}
	return ""
}

// hasCode reports whether s contains code as a word (so "cooldown" does not match inside "cooldowns_x").
func hasCode(s, code string) bool {
	for i := 0; ; {
		j := strings.Index(s[i:], code)
		if j < 0 {
			return false
		}
		j += i
		end := j + len(code)
		before := j == 0 || !isWordByte(s[j-1])
		after := end == len(s) || !isWordByte(s[end])
		if before && after {
			return true
		}
		i = end
	}
}

func isWordByte(b byte) bool {
	return b == '_' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9'
}

// Decide applies the notification policy to one event. The policy, one notification per incident state:
//
//	event                 condition                              state        sent
//	health_alert          --notify-on-open                       opened       yes
//	health_alert          otherwise                              -            no (stored only)
//	remediation_complete  gave_up (the breaker opened)           gave_up      yes, an escalation
//	remediation_complete  action none (any status)               escalated    yes, an escalation
//	remediation_complete  success                                remediated   yes
//	remediation_complete  failed                                 failed       yes
//	remediation_complete  escalated                              escalated    yes, an escalation
//	remediation_complete  denied circuit_open                    gave_up      yes
//	remediation_complete  denied cooldown                        -            counted (suppressed:cooldown)
//	remediation_complete  denied protected / action_not_allowed  escalated    yes, an escalation: a human must act
//	remediation_complete  denied, other or no code               escalated    yes, an escalation
//	remediation_complete  held (blast_radius)                    held         yes (once: "page once")
//	remediation_complete  skipped (gone, busy)                   -            counted (suppressed:skipped)
//	remediation_complete  dry_run                                dry_run      yes: "would have <action>"
//	false_alarm                                                  false_alarm  yes
//	container_recovered                                          recovered    yes
//
// Dry-run flags on other statuses keep their state and are marked "(dry run)". Every sent state is then
// deduplicated on incident + state within the re-notify window, except escalations (a human must act:
// never suppressed as a repeat) and outcomes that answer a relapse (the incident came back: say so).
// Outcomes and recoveries carry the incident's attempts.
func Decide(env event.Envelope, notifyOnOpen bool) (Decision, error) {
	p, err := env.Payload()
	if err != nil {
		return Decision{}, err
	}
	n := Notification{Incident: env.Incident, Host: env.Host, Time: env.Timestamp.UTC(), EventID: env.ID, EventType: env.EventType}
	conf := func(v float64) *float64 { return &v }
	switch p := p.(type) {
	case *event.ContainerUnhealthy:
		n.Container, n.ContainerID, n.Class, n.Severity = p.ContainerName, p.ContainerID, p.Class, p.Severity
		n.State = StateOpened
		n.Reason = unhealthyReason(p)
		if !notifyOnOpen {
			return Decision{Notification: fill(n)}, nil
		}
	case *event.FalseAlarm:
		n.Container, n.ContainerID, n.Class = p.Container, p.ContainerID, p.Class
		n.State, n.Reason, n.Confidence, n.Method = StateFalseAlarm, p.Reason, conf(p.Confidence), p.AnalysisMethod
	case *event.ContainerRecovered:
		n.Container, n.ContainerID, n.Class = p.ContainerName, p.ContainerID, p.Class
		n.State, n.Attempts = StateRecovered, p.Attempts
	case *event.RemediationComplete:
		n.Container, n.ContainerID, n.Class, n.Action = p.Container, p.ContainerID, p.Class, p.Action
		n.Result, n.Reason, n.Details, n.Error = p.Result.Status, p.Reason, p.Result.Details, p.Result.Error
		n.RootCause, n.Evidence, n.Confidence, n.Method = p.RootCause, p.Evidence, conf(p.Confidence), p.AnalysisMethod
		n.DryRun, n.Verified = p.DryRun, p.Verified
		n.Attempts, n.MaxAttempts, n.Relapse, n.Errors, n.BreakerUntil, n.NextAt = p.Attempts, p.MaxAttempts, p.Relapse,
			p.Errors, p.BreakerUntil, p.NextAt
		switch code := DenialCode(p); {
		case p.GaveUp:
			n.State, n.Escalation = StateGaveUp, true
		case p.Action == event.ActionNone:
			n.State, n.Escalation = StateEscalated, true
		case p.Result.Status == event.StatusSuccess:
			n.State = StateRemediated
		case p.Result.Status == event.StatusFailed:
			n.State = StateFailed
		case p.Result.Status == event.StatusEscalated:
			n.State, n.Escalation = StateEscalated, true
		case p.Result.Status == event.StatusDryRun:
			n.State, n.DryRun = StateDryRun, true
		case p.Result.Status == event.StatusHeld:
			n.State = StateHeld
		case p.Result.Status == event.StatusSkipped:
			return Decision{Suppressed: "skipped", Notification: fill(n)}, nil
		case p.Result.Status == event.StatusDenied && code == event.CodeCircuitOpen:
			n.State = StateGaveUp
		case p.Result.Status == event.StatusDenied && code == event.CodeCooldown:
			return Decision{Suppressed: "cooldown", Notification: fill(n)}, nil
		default: // other denials: hemostat will not act on this incident, so a human must
			n.State, n.Escalation = StateEscalated, true
		}
	default:
		return Decision{}, nil
	}
	return Decision{Send: true, Notification: fill(n)}, nil
}

// fill derives the incident key from host, container and class when the envelope carried none.
func fill(n Notification) Notification {
	if n.Incident == "" && n.Host != "" && n.Container != "" && n.Class != "" {
		n.Incident = event.IncidentKey(n.Host, n.Container, n.Class)
	}
	if n.Class == "" && n.Incident != "" {
		if i := strings.LastIndexByte(n.Incident, '/'); i >= 0 {
			n.Class = n.Incident[i+1:]
		}
	}
	return n
}

func unhealthyReason(p *event.ContainerUnhealthy) string {
	var parts []string
	switch p.Class {
	case event.ClassCrashed, event.ClassCrashLoop:
		parts = append(parts, "exit code "+itoa(p.ExitCode))
	case event.ClassOOMKilled:
		parts = append(parts, "killed by the OOM killer")
	case event.ClassUnhealthy:
		parts = append(parts, "healthcheck failing")
	}
	for _, a := range p.Anomalies {
		parts = append(parts, a.Type+" "+ftoa(a.Actual)+" over "+ftoa(a.Threshold))
	}
	if p.RestartCount > 0 {
		parts = append(parts, itoa(p.RestartCount)+" restarts")
	}
	return strings.Join(parts, "; ")
}

func itoa(i int) string { return strconv.Itoa(i) }

func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
