package slack

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	goslack "github.com/slack-go/slack"

	"github.com/hemostat/hemostat/pkg/alert"
	"github.com/hemostat/hemostat/pkg/event"
)

// FuzzNotification runs what the alert agent does with anyone's bytes from its streams: decode, apply the
// notification policy, render the Slack blocks and the webhook body. It never panics, and a notification
// it sends is one Slack accepts: every text within Slack's limits (a longer one is refused with
// invalid_blocks and the page is lost), valid UTF-8, and no mrkdwn control (<!channel>, <url|link>) from
// the input.
func FuzzNotification(f *testing.F) {
	add := func(p event.Payload, incident string) {
		env, _ := event.New("respond", "node-a", incident, "", p)
		b, _ := json.Marshal(env)
		f.Add(b)
	}
	add(&event.RemediationComplete{Container: "web-1", Action: "restart", Result: event.Result{Status: "success"},
		Reason: "exit code 1", Confidence: 0.9, AnalysisMethod: "rules", Class: "crashed", Attempts: 2, MaxAttempts: 3,
		Errors: []string{"a", "b"}, Evidence: []string{"e1", "e2", "e3", "e4", "e5", "e6"}}, "node-a/web-1/crashed")
	add(&event.RemediationComplete{Container: "<!channel>", Action: "none", Result: event.Result{Status: "escalated"},
		Reason: "<https://evil.example|click> " + strings.Repeat("é", 4000), ProposedAction: "stop"}, strings.Repeat("k", 5000))
	add(&event.ContainerUnhealthy{ContainerName: "web\x1b[2J", Class: "unhealthy", Severity: "critical"}, "")
	add(&event.FalseAlarm{Container: "x", Reason: "\xff\xfe", Confidence: 0.3, AnalysisMethod: "rules"}, "")
	add(&event.ContainerRecovered{ContainerName: "x", Class: "crashed", Attempts: 4}, "")
	f.Fuzz(func(t *testing.T, raw []byte) {
		env, err := event.Decode(raw)
		if err != nil {
			return
		}
		d, err := alert.Decide(env, true)
		if err != nil || !d.Send {
			return
		}
		if _, err := json.Marshal(d.Notification); err != nil {
			t.Fatalf("webhook body: %v", err)
		}
		blocks := Blocks(d.Notification, time.UTC)
		if _, err := json.Marshal(goslack.Blocks{BlockSet: blocks}); err != nil {
			t.Fatalf("blocks: %v", err)
		}
		check := func(where string, o *goslack.TextBlockObject, limit int) {
			if o == nil {
				return
			}
			if n := utf8.RuneCountInString(o.Text); n > limit {
				t.Fatalf("%s text of %d characters, Slack's limit is %d", where, n, limit)
			}
			if !utf8.ValidString(o.Text) {
				t.Fatalf("%s text is not valid UTF-8: %q", where, o.Text)
			}
			if o.Type == goslack.MarkdownType && strings.ContainsAny(o.Text, "<>") {
				t.Fatalf("%s mrkdwn carries a control from the input: %q", where, o.Text)
			}
		}
		for _, b := range blocks {
			switch b := b.(type) {
			case *goslack.HeaderBlock:
				check("header", b.Text, maxHeader)
			case *goslack.SectionBlock:
				check("section", b.Text, maxSection)
				for _, fl := range b.Fields {
					check("field", fl, maxField)
				}
			case *goslack.ContextBlock:
				for _, e := range b.ContextElements.Elements {
					if o, ok := e.(*goslack.TextBlockObject); ok {
						check("context", o, maxSection)
					}
				}
			}
		}
		if n := utf8.RuneCountInString(Text(d.Notification)); n > maxSection {
			t.Fatalf("fallback text of %d characters", n)
		}
	})
}
