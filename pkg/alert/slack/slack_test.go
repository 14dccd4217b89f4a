package slack

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/hemostat/hemostat/pkg/alert"
	"github.com/hemostat/hemostat/pkg/alert/alerttest"
)

func sample() alert.Notification {
	conf := 0.87
	return alert.Notification{State: alert.StateRemediated, Incident: "node-a/web-1/oom_killed", Host: "node-a",
		Container: "web-1", Class: "oom_killed", Action: "restart", Result: "success", Verified: true,
		Reason: "OOM killed <twice>", RootCause: "heap grows without bound",
		Evidence:   []string{"e1", "e2", "e3", "e4", "e5", "e6", "e7"},
		Confidence: &conf, Method: "llm:anthropic:claude", Time: time.Date(2026, 11, 28, 10, 30, 0, 0, time.UTC), EventID: "ev-1"}
}

func TestBlocksShowTheFacts(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Skip("no tzdata")
	}
	b, err := json.Marshal(slack.Blocks{BlockSet: Blocks(sample(), paris)})
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{`"type":"header"`, "Remediated: web-1 (restart)", `*Container*\nweb-1`, `*Host*\nnode-a`,
		`*Failure class*\noom_killed`, `*Action*\nrestart`, `success (verified)`, `*Confidence*\n87%`,
		`llm:anthropic:claude`, "2026-11-28 11:30:00 CET", "heap grows without bound", "• e5", "and 2 more",
		"OOM killed \\u0026lt;twice\\u0026gt;", "node-a/web-1/oom_killed"} {
		if !strings.Contains(s, want) {
			t.Errorf("blocks lack %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "• e6") {
		t.Errorf("evidence not capped: %s", s)
	}
}

func TestCut(t *testing.T) {
	long := strings.Repeat("é", 200)
	got := cut(long, 150)
	if len(got) > 150 || !strings.HasSuffix(got, "…") || !strings.HasPrefix(got, "é") {
		t.Errorf("cut = %q (%d bytes)", got, len(got))
	}
	if got := cut("short", 150); got != "short" {
		t.Errorf("cut(short) = %q", got)
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		wantRetry bool
		wantAfter time.Duration
	}{
		{"rate limited", &slack.RateLimitedError{RetryAfter: 7 * time.Second}, true, 7 * time.Second},
		{"server error", slack.StatusCodeError{Code: 503, Status: "503 Service Unavailable"}, true, 0},
		{"not found", slack.StatusCodeError{Code: 404, Status: "404 Not Found"}, false, 0},
		{"invalid auth", slack.SlackErrorResponse{Err: "invalid_auth"}, false, 0},
		{"timeout", context.DeadlineExceeded, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			retry, err := classify(tt.err)
			after, _ := alert.RetryAfter(err)
			if retry != tt.wantRetry || after != tt.wantAfter || err == nil || !strings.Contains(err.Error(), tt.err.Error()) {
				t.Errorf("classify = %v, %v (after %s)", retry, err, after)
			}
		})
	}
}

func TestWebhookRateLimitIsRetryAfter(t *testing.T) {
	s := alerttest.NewSlack(t)
	s.Fail(alerttest.Reply{Status: 429, RetryAfter: "3"})
	w := NewWebhook(WebhookOptions{URL: s.WebhookURL("SECRETpart")})
	retry, err := w.Notify(context.Background(), sample())
	after, ok := alert.RetryAfter(err)
	if !retry || !ok || after != 3*time.Second {
		t.Fatalf("Notify = %v, %v; want retry after 3s", retry, err)
	}
	if _, err := w.Notify(context.Background(), sample()); err != nil {
		t.Fatalf("second Notify: %v", err)
	}
	m := s.Messages()
	if len(m) != 1 || m[0].Text != "Remediated: web-1 (restart)" || len(m[0].Blocks) < 3 {
		t.Fatalf("messages = %+v", m)
	}
}

func TestWebhookErrorsDoNotQuoteTheURL(t *testing.T) {
	s := alerttest.NewSlack(t)
	u := s.WebhookURL("SECRETpart")
	s.Close()
	_, err := NewWebhook(WebhookOptions{URL: u}).Notify(context.Background(), sample())
	if err == nil || strings.Contains(err.Error(), "SECRETpart") {
		t.Fatalf("error = %v", err)
	}
}
