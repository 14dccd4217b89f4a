// Package slack delivers hemostat notifications to Slack through slack-go: an incoming webhook with Block
// Kit, or a bot token posting one thread per incident. It is the only importer of slack-go.
package slack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/hemostat/hemostat/pkg/alert"
)

// Slack's limits on text objects.
const (
	maxHeader  = 150
	maxField   = 2000
	maxSection = 3000
	maxEvident = 5
)

// Blocks renders a notification as Block Kit: a header, the facts as fields (container, host, failure
// class, action, result, confidence, method, time), then reason, root cause and evidence when known, and a
// context line with the incident key and event id.
func Blocks(n alert.Notification, loc *time.Location) []slack.Block {
	md := func(s string) *slack.TextBlockObject {
		return slack.NewTextBlockObject(slack.MarkdownType, s, false, false)
	}
	header := slack.NewHeaderBlock(slack.NewTextBlockObject(slack.PlainTextType, cut(n.Title(), maxHeader), true, false))

	var fields []*slack.TextBlockObject
	field := func(k, v string) {
		if v != "" && len(fields) < 10 {
			fields = append(fields, md(cut("*"+k+"*\n"+escape(v), maxField)))
		}
	}
	field("Container", n.Container)
	field("Host", n.Host)
	field("Failure class", n.Class)
	if n.State != alert.StateOpened && n.State != alert.StateRecovered {
		field("Action", n.Action)
	}
	field("Result", n.ResultText())
	field("Confidence", n.ConfidenceText())
	field("Method", n.Method)
	field("Severity", n.Severity)
	if n.Attempts > 0 {
		a := fmt.Sprint(n.Attempts)
		if n.MaxAttempts > 0 {
			a += fmt.Sprintf(" of %d an hour", n.MaxAttempts)
		}
		field("Attempts", a)
	}
	if !n.BreakerUntil.IsZero() {
		field("Breaker open until", alert.FormatTime(n.BreakerUntil, loc))
	}
	field("Time", alert.FormatTime(n.Time, loc))
	blocks := []slack.Block{header, slack.NewSectionBlock(md(n.Emoji()+" *"+escape(stateText(n))+"*"), fields, nil)}

	section := func(k, v string) {
		if v != "" {
			blocks = append(blocks, slack.NewSectionBlock(md(cut("*"+k+"*\n"+escape(v), maxSection)), nil, nil))
		}
	}
	section("Reason", n.Reason)
	if n.Error != "" {
		section("Error", n.Error)
	} else if n.Details != "" && n.Details != n.Reason {
		section("Details", n.Details)
	}
	section("Relapse", n.Relapse)
	if len(n.Errors) > 0 {
		var b strings.Builder
		for i, e := range n.Errors {
			fmt.Fprintf(&b, "%d. %s\n", i+1, e)
		}
		section("Each attempt's verification", strings.TrimSpace(b.String()))
	}
	section("Root cause", n.RootCause)
	if len(n.Evidence) > 0 {
		var b strings.Builder
		for i, e := range n.Evidence {
			if i == maxEvident {
				fmt.Fprintf(&b, "• … and %d more\n", len(n.Evidence)-maxEvident)
				break
			}
			b.WriteString("• " + e + "\n")
		}
		section("Evidence", strings.TrimSpace(b.String()))
	}
	ctx := "incident `" + escape(n.Incident) + "`"
	if n.EventID != "" {
		ctx += " · event `" + escape(n.EventID) + "`"
	}
	blocks = append(blocks, slack.NewContextBlock("", md(cut(ctx, maxSection))))
	return blocks
}

// Text is the plain fallback shown in notifications and by clients without Block Kit.
func Text(n alert.Notification) string { return cut(n.Title(), maxSection) }

func stateText(n alert.Notification) string {
	s := strings.ReplaceAll(string(n.State), "_", " ")
	if n.DryRun {
		s += " (dry run)"
	}
	return s
}

// escape neutralises Slack's control characters in mrkdwn.
func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	r := []rune(s[:n-3])
	return string(r[:len(r)-1]) + "…"
}

// classify turns a slack-go error into the Notifier contract: a rate limit waits Retry-After, server
// errors and network errors retry, Slack's own error answers (invalid_auth, channel_not_found, ...) do not.
func classify(err error) (bool, error) {
	if err == nil {
		return false, nil
	}
	var rl *slack.RateLimitedError
	if errors.As(err, &rl) {
		return true, &alert.RetryAfterError{After: rl.RetryAfter, Err: err}
	}
	var sc slack.StatusCodeError
	if errors.As(err, &sc) {
		return sc.Retryable(), err
	}
	var se slack.SlackErrorResponse
	if errors.As(err, &se) {
		switch se.Err {
		case "ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout":
			return true, err
		}
		return false, err
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) {
		return true, err
	}
	return true, err
}
