package slack

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/hemostat/hemostat/pkg/alert"
)

// WebhookOptions configure the incoming-webhook sink.
type WebhookOptions struct {
	URL      string // the webhook URL: a credential, never logged
	Client   *http.Client
	Location *time.Location // for the time shown; UTC when nil
}

// Webhook posts Block Kit messages to a Slack incoming webhook.
type Webhook struct{ o WebhookOptions }

// NewWebhook returns an incoming-webhook notifier.
func NewWebhook(o WebhookOptions) *Webhook {
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 10 * time.Second}
	}
	return &Webhook{o: o}
}

// Notify implements alert.Notifier.
func (w *Webhook) Notify(ctx context.Context, n alert.Notification) (bool, error) {
	msg := &slack.WebhookMessage{Text: Text(n), Blocks: &slack.Blocks{BlockSet: Blocks(n, w.o.Location)}}
	err := slack.PostWebhookCustomHTTPContext(ctx, w.o.URL, w.o.Client, msg)
	if err != nil {
		retry, err := classify(stripURL(err))
		return retry, fmt.Errorf("slack webhook: %w", err)
	}
	return false, nil
}

// stripURL drops the URL that net/http quotes in its errors; the rest of the chain is kept.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		msg := strings.Replace(err.Error(), ue.Error(), ue.Op+": "+ue.Err.Error(), 1)
		return &strippedError{msg: msg, err: ue.Err}
	}
	return err
}

type strippedError struct {
	msg string
	err error
}

func (e *strippedError) Error() string { return e.msg }
func (e *strippedError) Unwrap() error { return e.err }

// ThreadStore remembers the first message of each incident's thread; *notify.Store (pkg/store/notify)
// implements it.
type ThreadStore interface {
	Thread(ctx context.Context, incident string) (channel, ts string, err error)
	SetThread(ctx context.Context, incident, channel, ts string) error
	ClearThread(ctx context.Context, incident string) error
}

// BotOptions configure the bot-token sink.
type BotOptions struct {
	Token    string // xoxb-...: a credential, never logged
	Channel  string
	APIURL   string // Slack's Web API base, e.g. https://slack.com/api (tests point it at a local server)
	Client   *http.Client
	Location *time.Location
	Threads  ThreadStore
}

// Bot posts with chat.postMessage: the first message of an incident opens a thread, later state changes
// reply in it. A recovery is the thread's last reply: the next occurrence opens a new thread.
type Bot struct {
	o   BotOptions
	api *slack.Client
}

// NewBot returns a bot-token notifier.
func NewBot(o BotOptions) *Bot {
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 10 * time.Second}
	}
	opts := []slack.Option{slack.OptionHTTPClient(o.Client)}
	if o.APIURL != "" {
		opts = append(opts, slack.OptionAPIURL(strings.TrimSuffix(o.APIURL, "/")+"/"))
	}
	return &Bot{o: o, api: slack.New(o.Token, opts...)}
}

// Notify implements alert.Notifier. Without a stored thread (or when the thread store is unreachable) the
// message starts a new thread: a message outside its thread beats no message.
func (b *Bot) Notify(ctx context.Context, n alert.Notification) (bool, error) {
	var threadTS string
	if b.o.Threads != nil && n.Incident != "" {
		if ch, ts, err := b.o.Threads.Thread(ctx, n.Incident); err == nil && ch == b.o.Channel {
			threadTS = ts
		}
	}
	opts := []slack.MsgOption{slack.MsgOptionText(Text(n), false), slack.MsgOptionBlocks(Blocks(n, b.o.Location)...)}
	if threadTS != "" {
		opts = append(opts, slack.MsgOptionTS(threadTS))
	}
	_, ts, err := b.api.PostMessageContext(ctx, b.o.Channel, opts...)
	if err != nil {
		retry, err := classify(stripURL(err))
		return retry, fmt.Errorf("slack chat.postMessage: %w", err)
	}
	if b.o.Threads == nil || n.Incident == "" {
		return false, nil
	}
	switch {
	case n.State == alert.StateRecovered:
		// Best effort: a stale thread only means the next occurrence replies in the old thread.
		_ = b.o.Threads.ClearThread(ctx, n.Incident)
	case threadTS == "" && ts != "":
		_ = b.o.Threads.SetThread(ctx, n.Incident, b.o.Channel, ts)
	}
	return false, nil
}
