package alert_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hemostat/hemostat/pkg/alert"
	"github.com/hemostat/hemostat/pkg/alert/alerttest"
	alertslack "github.com/hemostat/hemostat/pkg/alert/slack"
	"github.com/hemostat/hemostat/pkg/bus"
	"github.com/hemostat/hemostat/pkg/conn"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/redact"
	"github.com/hemostat/hemostat/pkg/store"
	"github.com/hemostat/hemostat/pkg/store/schema"
	"github.com/hemostat/hemostat/pkg/testenv"
	"strconv"
)

const (
	hookSecret    = "XyZhookSECRETpath0123456789"
	botToken      = "xoxb-1111-2222-botTOKENsecret"
	webhookSecret = "whsec-signing-KEY-42"
)

func eventually(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, timeout, "the condition", cond)
}

// syncBuffer is safe for concurrent writers and the test.
type syncBuffer = testenv.SyncBuffer

type harness struct {
	t     *testing.T
	st    *store.Store
	bus   *bus.Bus
	slack *alerttest.Slack
	recv  *alerttest.Receiver
	logs  *syncBuffer
	red   *redact.Redactor
	stop  func() // stops the agent and waits for it
}

type setup struct {
	sinks        []string // slack, slack_bot, webhook
	notifyOnOpen bool
	renotify     time.Duration
	delivery     alert.DeliveryOptions
	storeWrap    func(alert.Store) alert.Store
}

func newHarness(t *testing.T) *harness {
	url := testenv.RequireRedis(t)
	st, err := store.Open(conn.Options{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &harness{t: t, st: st, bus: bus.New(st.Conn, bus.Options{Block: 50 * time.Millisecond}),
		slack: alerttest.NewSlack(t), recv: alerttest.NewReceiver(t, webhookSecret), logs: &syncBuffer{}}
}

// start runs an alert agent until the test ends.
func (h *harness) start(s setup) {
	t := h.t
	h.red = redact.New(nil).WithSecrets(h.slack.WebhookURL(hookSecret), botToken, webhookSecret)
	var sinks []alert.Sink
	for _, name := range s.sinks {
		switch name {
		case "slack":
			sinks = append(sinks, alert.Sink{Name: name, Notifier: alertslack.NewWebhook(alertslack.WebhookOptions{URL: h.slack.WebhookURL(hookSecret)})})
		case "slack_bot":
			sinks = append(sinks, alert.Sink{Name: name, Notifier: alertslack.NewBot(alertslack.BotOptions{
				Token: botToken, Channel: "C0ALERTS", APIURL: h.slack.APIURL(), Threads: h.st.Notify})})
		case "webhook":
			sinks = append(sinks, alert.Sink{Name: name, Notifier: alert.NewWebhook(alert.WebhookOptions{URL: h.recv.URL + "/hook", Secret: webhookSecret})})
		}
	}
	d := s.delivery
	if d.MinBackoff == 0 {
		d.MinBackoff = 10 * time.Millisecond
	}
	if d.MaxBackoff == 0 {
		d.MaxBackoff = 50 * time.Millisecond
	}
	var st alert.Store = h.st.Notify
	if s.storeWrap != nil {
		st = s.storeWrap(st)
	}
	log := slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a := alert.New(alert.Options{Instance: "t1", Renotify: s.renotify, NotifyOnOpen: s.notifyOnOpen, Delivery: d, Logger: log}, alert.Stores{Notify: st, Incidents: h.st.Incidents}, sinks, h.red)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, h.bus) }()
	var once sync.Once
	h.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(h.stop)
}

// publish puts one event on its stream and waits until the agent has stored it (handled it).
func (h *harness) publish(host, incident string, p event.Payload) event.Envelope {
	t := h.t
	t.Helper()
	env, err := event.New("test", host, incident, "", p)
	if err != nil {
		t.Fatal(err)
	}
	stream, _ := event.StreamFor(env.EventType, env.Host)
	if _, err := h.bus.Publish(context.Background(), stream, env); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() bool {
		raw, err := h.st.Conn.Client().LRange(context.Background(), schema.KeyEventsAll, 0, -1).Result()
		if err != nil {
			return false
		}
		for _, r := range raw {
			if strings.Contains(r, env.ID) {
				return true
			}
		}
		return false
	})
	return env
}

func (h *harness) counters() map[string]string {
	h.t.Helper()
	m, _, err := h.st.Notify.Counters(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	out := make(map[string]string, len(m))
	for c, v := range m {
		out[c.Field()] = strconv.FormatInt(v, 10)
	}
	return out
}

func (h *harness) slackTitles() []string {
	var out []string
	for _, m := range h.slack.Messages() {
		out = append(out, m.Text)
	}
	return out
}

func success(name, class string) *event.RemediationComplete {
	return &event.RemediationComplete{Container: name, ContainerID: "id-" + name, Action: "restart", Class: class,
		Result: event.Result{Status: "success"}, Verified: true, Confidence: 0.95, AnalysisMethod: "rules", DurationMS: 850}
}

func recovered(name, class string) *event.ContainerRecovered {
	return &event.ContainerRecovered{ContainerID: "id-" + name, ContainerName: name, Class: class}
}

func TestTwoContainersSameMinuteBothArrive(t *testing.T) {
	h := newHarness(t)
	h.start(setup{sinks: []string{"slack"}})
	h.publish("node-a", "node-a/web-1/crashed", success("web-1", "crashed"))
	h.publish("node-a", "node-a/web-2/crashed", success("web-2", "crashed"))
	eventually(t, 5*time.Second, func() bool { return len(h.slack.Messages()) == 2 })
	got := h.slackTitles()
	slices.Sort(got)
	want := []string{"Remediated: web-1 (restart)", "Remediated: web-2 (restart)"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("messages (-want +got):\n%s", diff)
	}
}

func TestRepeatIsCountedRecoveryIsSent(t *testing.T) {
	h := newHarness(t)
	h.start(setup{sinks: []string{"slack"}})
	const inc = "node-a/web-1/crashed"
	h.publish("node-a", inc, success("web-1", "crashed"))
	h.publish("node-a", inc, success("web-1", "crashed"))
	h.publish("node-a", inc, success("web-1", "crashed"))
	h.publish("node-a", inc, recovered("web-1", "crashed"))
	eventually(t, 5*time.Second, func() bool { return len(h.slack.Messages()) >= 2 })
	// The incident happens again after its recovery: a new occurrence is notified in full.
	h.publish("node-a", inc, success("web-1", "crashed"))
	eventually(t, 5*time.Second, func() bool { return len(h.slack.Messages()) >= 3 })
	want := []string{"Remediated: web-1 (restart)", "Recovered: web-1", "Remediated: web-1 (restart)"}
	if diff := cmp.Diff(want, h.slackTitles()); diff != "" {
		t.Errorf("messages (-want +got):\n%s", diff)
	}
	eventually(t, 5*time.Second, func() bool { return h.counters()["sent:slack"] == "3" }) // counted after delivery
	c := h.counters()
	if got, want := c["deduplicated:remediated"], "2"; got != want {
		t.Errorf("deduplicated:remediated = %q, want %q (all: %v)", got, want, c)
	}
	if got, want := c["sent:slack"], "3"; got != want {
		t.Errorf("sent:slack = %q, want %q", got, want)
	}
}

func TestRenotifyWindowExpires(t *testing.T) {
	h := newHarness(t)
	h.start(setup{sinks: []string{"slack"}, renotify: 300 * time.Millisecond})
	const inc = "node-a/web-1/crashed"
	h.publish("node-a", inc, success("web-1", "crashed"))
	eventually(t, 5*time.Second, func() bool { return len(h.slack.Messages()) == 1 })
	key := schema.NotifyDedupKey(inc, "remediated")
	eventually(t, 5*time.Second, func() bool { return h.st.Conn.Client().Exists(context.Background(), key).Val() == 0 })
	h.publish("node-a", inc, success("web-1", "crashed"))
	eventually(t, 5*time.Second, func() bool { return len(h.slack.Messages()) == 2 })
}

func TestRetriesHonourRetryAfterAndServerErrors(t *testing.T) {
	h := newHarness(t)
	h.start(setup{sinks: []string{"slack"}})
	h.slack.Fail(alerttest.Reply{Status: 429, RetryAfter: "1"}, alerttest.Reply{Status: 500})
	h.publish("node-a", "node-a/web-1/crashed", success("web-1", "crashed"))
	eventually(t, 10*time.Second, func() bool { return h.counters()["sent:slack"] == "1" }) // counted after delivery
	at := h.slack.Attempts()
	if len(at) != 3 {
		t.Fatalf("attempts = %d, want 3 (429, 500, ok)", len(at))
	}
	if gap := at[1].Sub(at[0]); gap < 900*time.Millisecond {
		t.Errorf("retried %s after a 429 with Retry-After: 1, want about 1s", gap)
	}
	c := h.counters()
	if diff := cmp.Diff([]string{"1", "2", ""}, []string{c["sent:slack"], c["retried:slack"], c["failed:slack"]}); diff != "" {
		t.Errorf("sent, retried, failed (-want +got):\n%s", diff)
	}
}

func TestFailedDeliveryIsCountedStoredAndRedacted(t *testing.T) {
	h := newHarness(t)
	h.start(setup{sinks: []string{"slack", "slack_bot", "webhook"}, delivery: alert.DeliveryOptions{MaxAttempts: 2}})
	h.slack.FailAlways(&alerttest.Reply{Status: 500})
	h.recv.Secret = "not-the-right-key" // every delivery is rejected 401: not retried
	h.publish("node-a", "node-a/web-1/crashed", success("web-1", "crashed"))
	eventually(t, 5*time.Second, func() bool {
		c := h.counters()
		return c["failed:slack"] == "1" && c["failed:slack_bot"] == "1" && c["failed:webhook"] == "1"
	})
	fails, err := h.st.Notify.Failures(context.Background(), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(fails) != 3 {
		t.Fatalf("stored failures = %d, want 3", len(fails))
	}
	for _, f := range fails {
		if f.Incident != "node-a/web-1/crashed" || f.State != "remediated" || f.Error == "" {
			t.Errorf("failure record %+v", f)
		}
	}
	if h.recv.Rejected() != 1 {
		t.Errorf("webhook rejected %d deliveries, want 1 (4xx is not retried)", h.recv.Rejected())
	}
	// The claim was released: the next repeat is sent rather than missed.
	h.slack.FailAlways(nil)
	h.publish("node-a", "node-a/web-1/crashed", success("web-1", "crashed"))
	eventually(t, 5*time.Second, func() bool { return len(h.slack.Messages()) == 2 }) // webhook + bot
}

// TestSecretsNeverLogged drives every sink into errors whose natural text contains the secrets
// (connection refused to the webhook URL, 500s, a 401) and checks logs and stored errors.
func TestSecretsNeverLogged(t *testing.T) {
	h := newHarness(t)
	h.slack.Close() // every Slack call fails with "connection refused" quoting the URL
	h.recv.Secret = "other"
	h.start(setup{sinks: []string{"slack", "slack_bot", "webhook"}, delivery: alert.DeliveryOptions{MaxAttempts: 2}})
	h.publish("node-a", "node-a/web-1/crashed", success("web-1", "crashed"))
	eventually(t, 5*time.Second, func() bool {
		c := h.counters()
		return c["failed:slack"] == "1" && c["failed:slack_bot"] == "1" && c["failed:webhook"] == "1"
	})
	fails, _ := h.st.Notify.Failures(context.Background(), 10)
	stored, _ := json.Marshal(fails)
	logs := h.logs.String()
	if !strings.Contains(logs, "notification failed") {
		t.Fatalf("expected failure logs, got:\n%s", logs)
	}
	for _, secret := range []string{hookSecret, botToken, webhookSecret} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains secret %q:\n%s", secret, logs)
		}
		if strings.Contains(string(stored), secret) {
			t.Errorf("stored failure contains secret %q: %s", secret, stored)
		}
	}
}

func TestSlowSinkStallsNeitherConsumerNorOtherSinks(t *testing.T) {
	h := newHarness(t)
	h.start(setup{sinks: []string{"slack", "webhook"}, delivery: alert.DeliveryOptions{SendTimeout: 3 * time.Second, MaxAttempts: 1, DrainTimeout: 100 * time.Millisecond}})
	h.slack.FailAlways(&alerttest.Reply{Delay: 3 * time.Second, Status: 200})
	start := time.Now()
	for i := range 5 {
		name := "web-" + string(rune('1'+i))
		h.publish("node-a", "node-a/"+name+"/crashed", success(name, "crashed"))
	}
	eventually(t, 2*time.Second, func() bool { return len(h.recv.Received()) == 5 })
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("5 events took %s with Slack hanging", d)
	}
	if n := len(h.slack.Messages()); n != 0 {
		t.Errorf("slack accepted %d messages while hanging", n)
	}
}

func TestBotRepliesInIncidentThread(t *testing.T) {
	h := newHarness(t)
	h.start(setup{sinks: []string{"slack_bot"}, notifyOnOpen: true})
	const a, b = "node-a/web-1/crashed", "node-a/web-2/oom_killed"
	h.publish("node-a", a, &event.ContainerUnhealthy{ContainerID: "id-web-1", ContainerName: "web-1", Class: "crashed", ExitCode: 137})
	eventually(t, 5*time.Second, func() bool { return len(h.slack.Messages()) == 1 })
	h.publish("node-a", b, &event.ContainerUnhealthy{ContainerID: "id-web-2", ContainerName: "web-2", Class: "oom_killed"})
	eventually(t, 5*time.Second, func() bool { return len(h.slack.Messages()) == 2 })
	h.publish("node-a", a, success("web-1", "crashed"))
	eventually(t, 5*time.Second, func() bool { return len(h.slack.Messages()) == 3 })
	h.publish("node-a", a, recovered("web-1", "crashed"))
	eventually(t, 5*time.Second, func() bool { return len(h.slack.Messages()) == 4 })
	h.publish("node-a", b, success("web-2", "oom_killed"))
	eventually(t, 5*time.Second, func() bool { return len(h.slack.Messages()) == 5 })

	m := h.slack.Messages()
	type post struct{ Text, Channel, ThreadTS, Token string }
	var got []post
	for _, x := range m {
		got = append(got, post{x.Text, x.Channel, x.ThreadTS, x.Token})
	}
	rootA, rootB := m[0].TS, m[1].TS
	want := []post{
		{"Incident opened: web-1 crashed", "C0ALERTS", "", botToken},
		{"Incident opened: web-2 oom_killed", "C0ALERTS", "", botToken},
		{"Remediated: web-1 (restart)", "C0ALERTS", rootA, botToken},
		{"Recovered: web-1", "C0ALERTS", rootA, botToken},
		{"Remediated: web-2 (restart)", "C0ALERTS", rootB, botToken},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("posts (-want +got):\n%s", diff)
	}
	// The recovery closed web-1's thread: its next occurrence starts a new one.
	if _, ts, _ := h.st.Notify.Thread(context.Background(), a); ts != "" {
		t.Errorf("thread of %s still stored after recovery: %q", a, ts)
	}
}

func TestWebhookIsSignedAndCarriesTheNotification(t *testing.T) {
	h := newHarness(t)
	h.start(setup{sinks: []string{"webhook"}})
	// What the analyzer wrote on the incident reaches the message.
	ctx := context.Background()
	h.st.Conn.Client().HSet(ctx, schema.IncidentKey("node-a/web-1/oom_killed"), schema.FieldRootCause, "heap grows without bound",
		schema.FieldEvidence, `["RSS 510MiB of 512MiB","OOM kill at 10:30"]`, schema.FieldSeverity, "critical")
	env := h.publish("node-a", "node-a/web-1/oom_killed", success("web-1", "oom_killed"))
	eventually(t, 5*time.Second, func() bool { return len(h.recv.Received()) == 1 })
	r := h.recv.Received()[0]
	conf := 0.95
	want := alert.WebhookPayload{Version: 1, Title: "Remediated: web-1 (restart)", Notification: alert.Notification{
		State: "remediated", Incident: "node-a/web-1/oom_killed", Host: "node-a", Container: "web-1", ContainerID: "id-web-1",
		Class: "oom_killed", Severity: "critical", Action: "restart", Result: "success", RootCause: "heap grows without bound",
		Evidence: []string{"RSS 510MiB of 512MiB", "OOM kill at 10:30"}, Confidence: &conf, Method: "rules", Verified: true,
		Time: env.Timestamp.UTC(), EventID: env.ID, EventType: "remediation_complete"}}
	if diff := cmp.Diff(want, r.Payload); diff != "" {
		t.Errorf("payload (-want +got):\n%s", diff)
	}
	if got := r.Headers.Get(alert.HeaderDelivery); got != env.ID {
		t.Errorf("delivery header = %q, want %q", got, env.ID)
	}
}

// failingClaims makes deduplication unreachable while the rest of Redis works.
type failingClaims struct{ alert.Store }

func (failingClaims) Claim(context.Context, string, string, time.Duration, ...string) (int64, error) {
	return 0, conn.ErrUnavailable
}

func TestDedupUnreachableFailsOpen(t *testing.T) {
	h := newHarness(t)
	h.start(setup{sinks: []string{"slack"}, storeWrap: func(s alert.Store) alert.Store { return failingClaims{s} }})
	h.publish("node-a", "node-a/web-1/crashed", success("web-1", "crashed"))
	h.publish("node-a", "node-a/web-1/crashed", success("web-1", "crashed"))
	eventually(t, 5*time.Second, func() bool { return len(h.slack.Messages()) == 2 })
}

func TestEventsStoredForViews(t *testing.T) {
	h := newHarness(t)
	h.start(setup{sinks: nil})
	ua := h.publish("node-a", "node-a/web-1/crashed", &event.ContainerUnhealthy{ContainerID: "id-1", ContainerName: "web-1", Class: "crashed"})
	h.publish("node-a", "node-a/web-1/crashed", success("web-1", "crashed"))
	ctx := context.Background()
	raw, err := h.st.Conn.Client().LRange(ctx, schema.EventsKey(event.TypeContainerUnhealthy), 0, -1).Result()
	if err != nil || len(raw) != 1 {
		t.Fatalf("health alerts stored: %d, %v", len(raw), err)
	}
	var se schema.StoredEvent
	if err := json.Unmarshal([]byte(raw[0]), &se); err != nil {
		t.Fatal(err)
	}
	got, err := event.Decode(se.Event)
	if err != nil {
		t.Fatal(err)
	}
	if se.EventType != event.TypeContainerUnhealthy || se.Timestamp != ua.Timestamp.UTC().Format(time.RFC3339Nano) || got.ID != ua.ID {
		t.Errorf("stored %+v", se)
	}
	if n := h.st.Conn.Client().LLen(ctx, schema.KeyEventsAll).Val(); n != 2 {
		t.Errorf("events:all has %d entries, want 2", n)
	}
}

func TestStopCutsRetryWaitsAndRecordsTheFailure(t *testing.T) {
	h := newHarness(t)
	h.start(setup{sinks: []string{"slack"}, delivery: alert.DeliveryOptions{MinBackoff: 20 * time.Second, MaxBackoff: time.Minute}})
	h.slack.FailAlways(&alerttest.Reply{Status: 500})
	h.publish("node-a", "node-a/web-1/crashed", success("web-1", "crashed"))
	eventually(t, 5*time.Second, func() bool { return h.counters()["retried:slack"] == "1" })
	start := time.Now()
	h.stop()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("stop took %s while a retry waited 20s", d)
	}
	if got := h.counters()["failed:slack"]; got != "1" {
		t.Errorf("failed:slack = %q, want 1", got)
	}
}
