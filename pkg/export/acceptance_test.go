package export_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hemostat/hemostat/pkg/alert"
	"github.com/hemostat/hemostat/pkg/alert/alerttest"
	alertslack "github.com/hemostat/hemostat/pkg/alert/slack"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

// TestAcceptanceIncidentSequence is the "done when": a scripted incident sequence, through the
// alert agent and the exporter running side by side on real Redis, produces exactly the expected
// notifications and metric values.
func TestAcceptanceIncidentSequence(t *testing.T) {
	e := open(t)
	slack := alerttest.NewSlack(t)
	recv := alerttest.NewReceiver(t, "acceptance-secret")
	a := alert.New(alert.Options{Instance: "a1", NotifyOnOpen: true, Delivery: alert.DeliveryOptions{MinBackoff: 10 * time.Millisecond}},
		alert.Stores{Notify: e.st.Notify, Incidents: e.st.Incidents}, []alert.Sink{
			{Name: "slack", Notifier: alertslack.NewWebhook(alertslack.WebhookOptions{URL: slack.WebhookURL("hook")})},
			{Name: "webhook", Notifier: alert.NewWebhook(alert.WebhookOptions{URL: recv.URL, Secret: "acceptance-secret"})},
		}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, e.bus) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("alert Run: %v", err)
		}
	})
	e.start()

	published := 0
	step := func(dt time.Duration, incident, causation string, p event.Payload) event.Envelope {
		t.Helper()
		host := strings.SplitN(incident, "/", 2)[0]
		env := e.publish(t0.Add(dt), host, incident, causation, p)
		published++
		eventually(t, 5*time.Second, func() bool { return e.exp.Processed() == int64(published) })
		if env.EventType != event.TypeRemediationNeeded { // the alert agent does not read requests
			eventually(t, 5*time.Second, func() bool {
				raw, _ := e.st.Conn.Client().LRange(context.Background(), schema.KeyEventsAll, 0, 0).Result()
				return len(raw) == 1 && strings.Contains(raw[0], env.ID)
			})
		}
		return env
	}
	denied := func(name, details string) *event.RemediationComplete {
		return &event.RemediationComplete{Container: name, Action: "restart", Result: event.Result{Status: "denied", Details: details}}
	}

	crash := step(100*time.Millisecond, "node-a/web-1/crashed", "", &event.ContainerUnhealthy{ContainerID: "a", ContainerName: "web-1",
		Class: "crashed", Severity: "critical", ExitCode: 1, EventTime: t0})
	step(30*time.Second, "node-a/web-1/crashed", "", &event.ContainerUnhealthy{ContainerID: "a", ContainerName: "web-1",
		Class: "crashed", Severity: "critical", EventTime: t0, Escalation: true}) // a repeat: counted
	step(200*time.Millisecond, "node-a/web-2/oom_killed", "", &event.ContainerUnhealthy{ContainerID: "b", ContainerName: "web-2",
		Class: "oom_killed", Severity: "critical", EventTime: t0}) // same minute, other container: sent
	need := step(110*time.Millisecond, "node-a/web-1/crashed", crash.ID, &event.RemediationNeeded{Container: "web-1", Action: "restart",
		Confidence: 0.9, AnalysisMethod: "rules", DurationMS: 1})
	step(8*time.Second, "node-a/web-1/crashed", need.ID, &event.RemediationComplete{Container: "web-1", Action: "restart",
		Result: event.Result{Status: "success"}, Verified: true, DurationMS: 7000, Confidence: 0.9, AnalysisMethod: "rules"})
	step(9*time.Second, "node-a/web-2/oom_killed", "", denied("web-2", "cooldown: 20s left"))
	step(10*time.Second, "node-a/web-2/oom_killed", "", &event.RemediationComplete{Container: "web-2", Action: "restart",
		Result: event.Result{Status: "escalated", Details: "circuit_open: breaker opened after 3 actions within 1h0m0s"},
		GaveUp: true, Attempts: 3, MaxAttempts: 3, OpenedAt: t0, BreakerUntil: t0.Add(time.Hour),
		Errors: []string{"exited again", "exited again", "not healthy within 3s"}}) // gave up: an escalation
	step(11*time.Second, "node-a/web-2/oom_killed", "", denied("web-2", "circuit_open")) // the breaker still open: counted
	step(12*time.Second, "node-a/web-3/cpu_saturated", "", &event.FalseAlarm{Container: "web-3", Confidence: 0.7,
		AnalysisMethod: "llm:anthropic:claude-haiku", DurationMS: 900})
	step(60*time.Second, "node-a/web-1/crashed", "", &event.ContainerRecovered{ContainerID: "a", ContainerName: "web-1", Class: "crashed",
		OpenedAt: t0, Attempts: 1})
	step(61*time.Second, "node-b/web-4/unhealthy", "", &event.RemediationComplete{Container: "web-4", Action: "restart",
		Result: event.Result{Status: "dry_run"}, DryRun: true})
	step(62*time.Second, "node-b/web-5/crashed", "", &event.RemediationComplete{Container: "web-5", Action: "restart",
		Result: event.Result{Status: "skipped", Details: "busy"}})
	step(63*time.Second, "node-b/web-6/unhealthy", "", &event.RemediationComplete{Container: "web-6", Action: "restart",
		Result: event.Result{Status: "held", Details: "blast_radius"}})
	step(64*time.Second, "node-b/web-7/memory_leak", "", &event.RemediationComplete{Container: "web-7", Action: "none",
		Result: event.Result{Status: "escalated"}, Reason: "raise the memory limit"})

	// Every decision is counted: once the counts add up, no other message can still come.
	const wantSent = 9
	eventually(t, 10*time.Second, func() bool {
		c, _, _ := e.st.Notify.Counters(context.Background())
		return c[schema.NotifyCounter{Counter: schema.CounterSent, Label: "slack"}] == wantSent &&
			c[schema.NotifyCounter{Counter: schema.CounterSent, Label: "webhook"}] == wantSent
	})
	want := []string{
		"Dry run: would have restarted web-4",
		"False alarm: web-3",
		"Gave up on web-2 after 3 attempts: circuit breaker open until 11:30 UTC",
		"Held: web-6 (blast radius)",
		"Incident opened: web-1 crashed",
		"Incident opened: web-2 oom_killed",
		"Needs a human: web-7",
		"Recovered: web-1 after 1 attempt",
		"Remediated: web-1 (restart)",
	}
	var gotSlack, gotHook []string
	for _, m := range slack.Messages() {
		gotSlack = append(gotSlack, m.Text)
	}
	for _, r := range recv.Received() {
		gotHook = append(gotHook, r.Payload.Title)
	}
	slices.Sort(gotSlack)
	slices.Sort(gotHook)
	if diff := cmp.Diff(want, gotSlack); diff != "" {
		t.Errorf("slack messages (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, gotHook); diff != "" {
		t.Errorf("webhook deliveries (-want +got):\n%s", diff)
	}

	wantMetrics := `
# HELP hemostat_alert_notifications_sent_total Notifications delivered, by sink.
# TYPE hemostat_alert_notifications_sent_total counter
hemostat_alert_notifications_sent_total{sink="slack"} 9
hemostat_alert_notifications_sent_total{sink="webhook"} 9
# HELP hemostat_alert_notifications_deduplicated_total Repeats of an incident state within the re-notify window, counted and not sent, by state.
# TYPE hemostat_alert_notifications_deduplicated_total counter
hemostat_alert_notifications_deduplicated_total{state="gave_up"} 1
hemostat_alert_notifications_deduplicated_total{state="opened"} 1
# HELP hemostat_alert_notifications_suppressed_total Outcomes counted but never sent (cooldown denials, skips), by reason.
# TYPE hemostat_alert_notifications_suppressed_total counter
hemostat_alert_notifications_suppressed_total{reason="cooldown"} 1
hemostat_alert_notifications_suppressed_total{reason="skipped"} 1
# HELP hemostat_monitor_alerts_total Health alerts (incidents opened or re-alerted) by failure class and severity.
# TYPE hemostat_monitor_alerts_total counter
hemostat_monitor_alerts_total{class="crashed",severity="critical"} 2
hemostat_monitor_alerts_total{class="oom_killed",severity="critical"} 1
# HELP hemostat_monitor_recoveries_total Incidents whose condition cleared, by failure class.
# TYPE hemostat_monitor_recoveries_total counter
hemostat_monitor_recoveries_total{class="crashed"} 1
# HELP hemostat_analyze_analyses_total Analyses by method (rules or llm:<provider>:<model>) and outcome (remediation or false_alarm).
# TYPE hemostat_analyze_analyses_total counter
hemostat_analyze_analyses_total{method="llm:anthropic:claude-haiku",outcome="false_alarm"} 1
hemostat_analyze_analyses_total{method="rules",outcome="remediation"} 1
# HELP hemostat_respond_remediations_total Remediation decisions by action and result status (success, failed, skipped, denied, held, escalated, dry_run).
# TYPE hemostat_respond_remediations_total counter
hemostat_respond_remediations_total{action="none",result="escalated"} 1
hemostat_respond_remediations_total{action="restart",result="denied"} 2
hemostat_respond_remediations_total{action="restart",result="escalated"} 1
hemostat_respond_remediations_total{action="restart",result="dry_run"} 1
hemostat_respond_remediations_total{action="restart",result="held"} 1
hemostat_respond_remediations_total{action="restart",result="skipped"} 1
hemostat_respond_remediations_total{action="restart",result="success"} 1
`
	if err := testutil.GatherAndCompare(e.exp.Registry(), strings.NewReader(wantMetrics),
		"hemostat_alert_notifications_sent_total", "hemostat_alert_notifications_deduplicated_total",
		"hemostat_alert_notifications_suppressed_total", "hemostat_monitor_alerts_total", "hemostat_monitor_recoveries_total",
		"hemostat_analyze_analyses_total", "hemostat_respond_remediations_total"); err != nil {
		t.Error(err)
	}
	// Time to detect (100 ms and 200 ms: the escalation is not a detection) and time to remediate (8 s,
	// traced back through remediation_needed to the health alert's Docker event time).
	fams, err := e.exp.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][2]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			if h := m.GetHistogram(); h != nil && strings.HasPrefix(f.GetName(), "hemostat_incident_") {
				key := f.GetName()
				for _, l := range m.GetLabel() {
					key += "/" + l.GetValue()
				}
				got[key] = [2]float64{float64(h.GetSampleCount()), h.GetSampleSum()}
			}
		}
	}
	wantH := map[string][2]float64{
		"hemostat_incident_time_to_detect_seconds/crashed":    {1, 0.1},
		"hemostat_incident_time_to_detect_seconds/oom_killed": {1, 0.2},
		"hemostat_incident_time_to_remediate_seconds/crashed": {1, 8},
		"hemostat_incident_attempts/gave_up":                  {1, 3},
		"hemostat_incident_attempts/recovered":                {1, 1},
		"hemostat_incident_duration_seconds/gave_up":          {1, 10},
		"hemostat_incident_duration_seconds/recovered":        {1, 60},
	}
	if diff := cmp.Diff(wantH, got); diff != "" {
		t.Errorf("incident histograms [count, sum] (-want +got):\n%s", diff)
	}
	ctxb := context.Background()
	if n := e.st.Conn.Client().LLen(ctxb, schema.KeyEventsAll).Val(); n != 13 {
		t.Errorf("hemostat:events:all holds %d events, want 13", n)
	}
	if n := e.st.Conn.Client().LLen(ctxb, schema.EventsKey(event.TypeContainerUnhealthy)).Val(); n != 3 {
		t.Errorf("hemostat:events:container_unhealthy holds %d events, want 3", n)
	}
}
