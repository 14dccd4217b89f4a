package alert

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Headers of the generic webhook.
const (
	HeaderSignature = "X-Hemostat-Signature" // "sha256=" + hex(HMAC-SHA256(secret, timestamp + "." + body))
	HeaderTimestamp = "X-Hemostat-Timestamp" // unix seconds, part of the signed material (replay protection)
	HeaderEvent     = "X-Hemostat-Event"     // the notification state
	HeaderDelivery  = "X-Hemostat-Delivery"  // the event id, stable across retries
)

// WebhookPayload is the JSON body of the generic webhook.
type WebhookPayload struct {
	Version      int          `json:"version"` // 1
	Title        string       `json:"title"`
	Notification Notification `json:"notification"`
}

// WebhookOptions configure the generic webhook.
type WebhookOptions struct {
	URL       string
	Secret    string // HMAC key; without one the body is sent unsigned
	Client    *http.Client
	UserAgent string
	Now       func() time.Time
}

// Webhook posts notifications as signed JSON to any HTTP endpoint.
type Webhook struct{ o WebhookOptions }

// NewWebhook returns a generic webhook notifier.
func NewWebhook(o WebhookOptions) *Webhook {
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if o.UserAgent == "" {
		o.UserAgent = "hemostat"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Webhook{o: o}
}

// Sign returns the signature header value for a body sent at the given unix timestamp.
func Sign(secret, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// ErrBadSignature is returned by Verify for a missing, stale or wrong signature.
var ErrBadSignature = errors.New("bad webhook signature")

// Verify checks a received webhook: the signature over timestamp and body, and that the timestamp is
// within tolerance of now (so a captured request cannot be replayed later). Receivers can copy it.
func Verify(secret string, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	ts, sig := h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if ts == "" || sig == "" {
		return fmt.Errorf("%w: missing header", ErrBadSignature)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp %q", ErrBadSignature, ts)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: timestamp off by %s", ErrBadSignature, d.Round(time.Second))
	}
	if !hmac.Equal([]byte(sig), []byte(Sign(secret, ts, body))) {
		return fmt.Errorf("%w: mismatch", ErrBadSignature)
	}
	return nil
}

// Notify implements Notifier. 2xx is success; 429 and 5xx and network errors are retried (429 after its
// Retry-After); other statuses are not. Errors never contain the URL.
func (w *Webhook) Notify(ctx context.Context, n Notification) (bool, error) {
	body, err := json.Marshal(WebhookPayload{Version: 1, Title: n.Title(), Notification: n})
	if err != nil {
		return false, fmt.Errorf("encode webhook body: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.o.URL, bytes.NewReader(body))
	if err != nil {
		return false, errors.New("build webhook request: invalid URL")
	}
	ts := strconv.FormatInt(w.o.Now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", w.o.UserAgent)
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderEvent, string(n.State))
	req.Header.Set(HeaderDelivery, n.EventID)
	if w.o.Secret != "" {
		req.Header.Set(HeaderSignature, Sign(w.o.Secret, ts, body))
	}
	resp, err := w.o.Client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) { // its message quotes the URL
			err = ue.Err
		}
		return true, fmt.Errorf("post webhook: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return false, nil
	case resp.StatusCode == http.StatusTooManyRequests:
		err := fmt.Errorf("post webhook: %s", resp.Status)
		if d, ok := ParseRetryAfter(resp.Header.Get("Retry-After"), w.o.Now()); ok {
			return true, &RetryAfterError{After: d, Err: err}
		}
		return true, err
	case resp.StatusCode >= 500:
		return true, fmt.Errorf("post webhook: %s", resp.Status)
	default:
		return false, fmt.Errorf("post webhook: %s", resp.Status)
	}
}

// ParseRetryAfter reads a Retry-After header: delay seconds or an HTTP date.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil && s >= 0 {
		return time.Duration(s * float64(time.Second)), true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}
