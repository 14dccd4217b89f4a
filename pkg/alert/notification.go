// Package alert owns hemostat's notifications: which incident state changes are worth a message, the
// deduplication that keeps repeats quiet, delivery through bounded per-sink queues with retries, the signed
// generic webhook, the redaction of secrets, and the capped event lists the seed's views read.
// The Slack adapter lives in pkg/alert/slack, the only importer of slack-go.
package alert

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// State is an incident state change that may be notified.
type State string

// The notifiable states (the policy table is in policy.go).
const (
	StateOpened     State = "opened"      // health_alert, only with --notify-on-open
	StateRemediated State = "remediated"  // remediation_complete success
	StateFailed     State = "failed"      // remediation_complete failed
	StateEscalated  State = "escalated"   // status escalated, action none, or denied so that a human must act
	StateGaveUp     State = "gave_up"     // the breaker opened on the incident (or denies while open)
	StateHeld       State = "held"        // held: blast_radius
	StateDryRun     State = "dry_run"     // what a real run would have done
	StateFalseAlarm State = "false_alarm" // the analyzer found nothing to do
	StateRecovered  State = "recovered"   // the condition cleared
)

// States lists every notifiable state.
var States = []State{StateOpened, StateRemediated, StateFailed, StateEscalated, StateGaveUp, StateHeld, StateDryRun,
	StateFalseAlarm, StateRecovered}

// Notification is one message about one incident state change, whatever the sink. Its JSON is the body of
// the generic webhook.
type Notification struct {
	State       State     `json:"state"`
	Incident    string    `json:"incident"`
	Host        string    `json:"host"`
	Container   string    `json:"container"`
	ContainerID string    `json:"container_id,omitempty"`
	Class       string    `json:"class,omitempty"`
	Severity    string    `json:"severity,omitempty"`
	Action      string    `json:"action,omitempty"`
	Result      string    `json:"result,omitempty"` // remediation result status
	Reason      string    `json:"reason,omitempty"`
	Details     string    `json:"details,omitempty"`
	Error       string    `json:"error,omitempty"`
	RootCause   string    `json:"root_cause,omitempty"`
	Evidence    []string  `json:"evidence,omitempty"`
	Confidence  *float64  `json:"confidence,omitempty"`
	Method      string    `json:"analysis_method,omitempty"`
	DryRun      bool      `json:"dry_run,omitempty"`
	Verified    bool      `json:"verified,omitempty"`
	Time        time.Time `json:"time"` // when the event happened, UTC
	EventID     string    `json:"event_id"`
	EventType   string    `json:"event_type"`
	// The incident's reconciliation.
	Attempts     int       `json:"attempts,omitempty"`     // actions hemostat took for the incident so far
	MaxAttempts  int       `json:"max_attempts,omitempty"` // actions the breaker allows within its window
	Relapse      string    `json:"relapse,omitempty"`      // "relapsed 4s after restart 2"
	Errors       []string  `json:"errors,omitempty"`       // each verification error, when hemostat gave up
	BreakerUntil time.Time `json:"breaker_until,omitzero"` // when hemostat may act again, when it gave up
	NextAt       time.Time `json:"next_at,omitzero"`       // when hemostat looks again
	// Escalation marks a notification that asks a human to act: it is never suppressed as a repeat of the
	// incident's state (only a redelivery of the same event is).
	Escalation bool `json:"escalation,omitempty"`
}

// attemptText is ", attempt 2 of 3" when the incident counts attempts.
func (n Notification) attemptText() string {
	switch {
	case n.Attempts > 0 && n.MaxAttempts > 0:
		return fmt.Sprintf(", attempt %d of %d", n.Attempts, n.MaxAttempts)
	case n.Attempts > 0:
		return fmt.Sprintf(", attempt %d", n.Attempts)
	}
	return ""
}

// relapseText is "; relapsed 4s after restart 2" when the outcome answers a relapse.
func (n Notification) relapseText() string {
	if n.Relapse == "" {
		return ""
	}
	return "; " + n.Relapse
}

// Title is the one-line headline of a notification.
func (n Notification) Title() string {
	c := n.Container
	if c == "" {
		c = n.Incident
	}
	dry := ""
	if n.DryRun && n.State != StateDryRun {
		dry = " (dry run)"
	}
	switch n.State {
	case StateOpened:
		return fmt.Sprintf("Incident opened: %s %s%s", c, orDash(n.Class), dry)
	case StateRemediated:
		return fmt.Sprintf("Remediated: %s (%s%s%s)%s", c, orDash(n.Action), n.attemptText(), n.relapseText(), dry)
	case StateFailed:
		return fmt.Sprintf("Remediation failed: %s (%s%s%s)%s", c, orDash(n.Action), n.attemptText(), n.relapseText(), dry)
	case StateEscalated:
		return fmt.Sprintf("Needs a human: %s%s", c, dry)
	case StateGaveUp:
		if n.Attempts > 0 {
			until := ""
			if !n.BreakerUntil.IsZero() {
				until = " until " + n.BreakerUntil.UTC().Format("15:04 MST")
			}
			return fmt.Sprintf("Gave up on %s after %d attempts: circuit breaker open%s%s", c, n.Attempts, until, dry)
		}
		return fmt.Sprintf("Gave up on %s: circuit breaker open%s", c, dry)
	case StateHeld:
		return fmt.Sprintf("Held: %s (blast radius)%s", c, dry)
	case StateDryRun:
		return fmt.Sprintf("Dry run: would have %s %s", pastTense(n.Action), c)
	case StateFalseAlarm:
		return fmt.Sprintf("False alarm: %s%s", c, dry)
	case StateRecovered:
		switch {
		case n.Attempts == 1:
			return fmt.Sprintf("Recovered: %s after 1 attempt%s", c, dry)
		case n.Attempts > 1:
			return fmt.Sprintf("Recovered: %s after %d attempts%s", c, n.Attempts, dry)
		}
		return fmt.Sprintf("Recovered: %s%s", c, dry)
	}
	return fmt.Sprintf("%s: %s", n.State, c)
}

// Emoji is the Slack emoji shortcode of a state.
func (n Notification) Emoji() string {
	switch n.State {
	case StateOpened:
		return ":red_circle:"
	case StateRemediated:
		return ":white_check_mark:"
	case StateFailed:
		return ":x:"
	case StateEscalated:
		return ":sos:"
	case StateGaveUp:
		return ":no_entry:"
	case StateHeld:
		return ":double_vertical_bar:"
	case StateDryRun:
		return ":test_tube:"
	case StateFalseAlarm:
		return ":information_source:"
	case StateRecovered:
		return ":green_heart:"
	}
	return ":bell:"
}

// ConfidenceText formats the confidence as a percentage, "" when unknown.
func (n Notification) ConfidenceText() string {
	if n.Confidence == nil {
		return ""
	}
	return fmt.Sprintf("%.0f%%", *n.Confidence*100)
}

// ResultText describes the result: the status, verified or not, and the details or error.
func (n Notification) ResultText() string {
	if n.Result == "" {
		return ""
	}
	s := n.Result
	if n.Result == "success" {
		if n.Verified {
			s += " (verified)"
		} else {
			s += " (not verified)"
		}
	}
	return s
}

// FormatTime renders t in loc (UTC when nil) in a fixed, readable layout.
func FormatTime(t time.Time, loc *time.Location) string {
	if loc == nil {
		loc = time.UTC
	}
	return t.In(loc).Format("2006-01-02 15:04:05 MST")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func pastTense(action string) string {
	switch action {
	case "restart":
		return "restarted"
	case "stop":
		return "stopped"
	case "start":
		return "started"
	case "scale":
		return "scaled"
	case "cleanup":
		return "cleaned up"
	case "exec":
		return "run a command in"
	case "", "none":
		return "escalated"
	}
	return strings.TrimSuffix(action, "e") + "ed"
}

// Notifier delivers a notification to one system. retry says whether the failure is worth another attempt
// (alertmanager's contract). A *RetryAfterError asks the caller to wait before that attempt.
type Notifier interface {
	Notify(ctx context.Context, n Notification) (retry bool, err error)
}

// RetryAfterError is a rate-limit answer: try again after After.
type RetryAfterError struct {
	After time.Duration
	Err   error
}

// Error implements error.
func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("rate limited, retry after %s: %v", e.After, e.Err)
}

// Unwrap returns the rate-limit answer's own error.
func (e *RetryAfterError) Unwrap() error { return e.Err }

// RetryAfter returns the wait a rate-limited error asks for, and whether it asks.
func RetryAfter(err error) (time.Duration, bool) {
	var ra *RetryAfterError
	if errors.As(err, &ra) {
		return ra.After, true
	}
	return 0, false
}
