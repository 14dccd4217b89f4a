package cmd

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hemostat/hemostat/pkg/agent"
	"github.com/hemostat/hemostat/pkg/alert"
	alertslack "github.com/hemostat/hemostat/pkg/alert/slack"
	"github.com/hemostat/hemostat/pkg/bus"
	"github.com/hemostat/hemostat/pkg/redact"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

// alertOptions are the flags of hemostat alert: the alerter's settings, whose defaults are
// alert.DefaultOptions(), and its sinks.
type alertOptions struct {
	Alert           alert.Options // Instance and Logger are set at run time
	SlackWebhookURL string
	SlackToken      string
	SlackChannel    string
	SlackAPIURL     string
	WebhookURL      string
	WebhookSecret   string
	Timezone        string
	Bus             bus.Options
}

func newAlertCmd(d *Deps, runF func(context.Context, *Deps, alertOptions) error) *cobra.Command {
	if runF == nil {
		runF = alertRun
	}
	opts := alertOptions{Alert: alert.DefaultOptions(), Bus: bus.DefaultOptions()}
	c := &cobra.Command{
		Use:   "alert",
		Short: "Notify Slack and webhooks once per incident state change",
		Long: `alert consumes remediation results, false alarms and recoveries (and, with --notify-on-open, new
incidents) and sends one notification per incident state change: opened, remediated, failed, escalated,
gave up (circuit breaker open), held, dry run, false alarm, recovered. Repeats of the same incident state
within --renotify are counted, not sent; cooldown denials and skips are counted, never sent.

Sinks: a Slack incoming webhook (Block Kit), a Slack bot token with --slack-channel (one thread per
incident), and a generic JSON webhook signed with HMAC-SHA256:
  X-Hemostat-Timestamp: <unix seconds>
  X-Hemostat-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>
Receivers should recompute the HMAC and reject timestamps older than a few minutes.

Every event consumed is also stored in the capped lists hemostat:events:<type> and hemostat:events:all.
Webhook URLs and tokens never appear in logs; secrets can be read from files (HEMOSTAT_<FLAG>_FILE).`,
		Example: `  HEMOSTAT_SLACK_WEBHOOK_URL_FILE=/run/secrets/slack hemostat alert
  hemostat alert --slack-token "$(cat token)" --slack-channel C0123456 --notify-on-open
  HEMOSTAT_WEBHOOK_SECRET_FILE=/run/secrets/hook hemostat alert --webhook-url https://ops.example.com/hemostat --timezone Europe/Paris`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runF(cmd.Context(), d, opts)
		},
	}
	c.Annotations = map[string]string{annAgent: "true"}
	f := c.Flags()
	f.StringVar(&opts.SlackWebhookURL, "slack-webhook-url", "", "Slack incoming webhook URL (Block Kit messages)")
	markSecret(f, "slack-webhook-url", "SLACK_WEBHOOK_URL")
	f.StringVar(&opts.SlackToken, "slack-token", "", "Slack bot token (xoxb-...) for one thread per incident; needs --slack-channel")
	markSecret(f, "slack-token", "SLACK_BOT_TOKEN")
	f.StringVar(&opts.SlackChannel, "slack-channel", "", "Slack channel ID or name for --slack-token")
	f.StringVar(&opts.SlackAPIURL, "slack-api-url", "https://slack.com/api", "Slack Web API base URL")
	_ = f.MarkHidden("slack-api-url")
	f.StringVar(&opts.WebhookURL, "webhook-url", "", "generic webhook URL: JSON body signed with HMAC-SHA256")
	markSecret(f, "webhook-url")
	f.StringVar(&opts.WebhookSecret, "webhook-secret", "", "HMAC-SHA256 key that signs the generic webhook")
	markSecret(f, "webhook-secret")
	f.DurationVar(&opts.Alert.Renotify, "renotify", opts.Alert.Renotify, "repeats of an incident state within this window are counted, not sent")
	f.BoolVar(&opts.Alert.NotifyOnOpen, "notify-on-open", opts.Alert.NotifyOnOpen, "also notify when an incident opens (before any remediation)")
	f.StringVar(&opts.Timezone, "timezone", "UTC", "time zone of the times shown in messages (IANA name, e.g. Europe/Paris)")
	addBusFlags(c, &opts.Bus)
	return c
}

// alertValidate checks the options before anything connects; it returns the time zone of messages.
func alertValidate(opts alertOptions) (*time.Location, error) {
	if opts.SlackToken != "" && opts.SlackChannel == "" {
		return nil, UsageError("--slack-token needs --slack-channel")
	}
	if opts.WebhookSecret != "" && opts.WebhookURL == "" {
		return nil, UsageError("--webhook-secret needs --webhook-url")
	}
	if opts.Alert.Renotify <= 0 {
		return nil, UsageError("--renotify must be positive, got %s", opts.Alert.Renotify)
	}
	for name, raw := range map[string]string{"--slack-webhook-url": opts.SlackWebhookURL, "--webhook-url": opts.WebhookURL,
		"--slack-api-url": opts.SlackAPIURL} {
		if raw == "" {
			continue
		}
		// The value is a secret: say what is wrong, never what it is.
		if u, err := url.Parse(raw); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, UsageError("%s: want an http(s) URL", name)
		}
	}
	loc, err := time.LoadLocation(opts.Timezone)
	if err != nil {
		return nil, UsageError("--timezone %q: not a known time zone", opts.Timezone)
	}
	return loc, nil
}

// alertSinks builds the sinks and the redactor of their secrets.
func alertSinks(d *Deps, opts alertOptions, loc *time.Location, threads alertslack.ThreadStore) ([]alert.Sink, *redact.Redactor) {
	red := redact.New(nil).WithSecrets(opts.SlackWebhookURL, opts.SlackToken, opts.WebhookURL, opts.WebhookSecret)
	client := &http.Client{Timeout: 10 * time.Second}
	var sinks []alert.Sink
	if opts.SlackWebhookURL != "" {
		sinks = append(sinks, alert.Sink{Name: "slack", Notifier: alertslack.NewWebhook(alertslack.WebhookOptions{
			URL: opts.SlackWebhookURL, Client: client, Location: loc})})
	}
	if opts.SlackToken != "" {
		sinks = append(sinks, alert.Sink{Name: "slack_bot", Notifier: alertslack.NewBot(alertslack.BotOptions{
			Token: opts.SlackToken, Channel: opts.SlackChannel, APIURL: opts.SlackAPIURL, Client: client,
			Location: loc, Threads: threads})})
	}
	if opts.WebhookURL != "" {
		if opts.WebhookSecret == "" {
			d.Logger.Warn("--webhook-url without --webhook-secret: the webhook is sent unsigned")
		}
		sinks = append(sinks, alert.Sink{Name: "webhook", Notifier: alert.NewWebhook(alert.WebhookOptions{
			URL: opts.WebhookURL, Secret: opts.WebhookSecret, Client: client, UserAgent: "hemostat/" + Build().Version})})
	}
	return sinks, red
}

func alertRun(ctx context.Context, d *Deps, opts alertOptions) error {
	loc, err := alertValidate(opts)
	if err != nil {
		return err
	}
	st, err := d.Store(ctx)
	if err != nil {
		return err
	}
	sinks, red := alertSinks(d, opts, loc, st.Notify)
	// Every logger of this agent, the bus's included, passes through the redactor.
	log := slog.New(red.Handler(d.Logger.Handler()))
	opts.Bus.Logger = log
	b, err := d.Bus(ctx, opts.Bus)
	if err != nil {
		return err
	}
	names := make([]string, len(sinks))
	for i, s := range sinks {
		names[i] = s.Name
	}
	log.Info("alert sinks", "sinks", strings.Join(names, ","), "renotify", opts.Alert.Renotify, "notify_on_open", opts.Alert.NotifyOnOpen)
	o := opts.Alert
	o.Instance, o.Logger = d.Instance(), log
	a := alert.New(o, alert.Stores{Notify: st.Notify, Incidents: st.Incidents}, sinks, red)
	return agent.Run(ctx, agent.Options{Kind: "alert", Instance: d.Instance(), Version: Build().Version,
		Record: schema.Agent{Host: d.HostName()}, Logger: log},
		st.Agents, func(ctx context.Context) error { return a.Run(ctx, b) })
}
