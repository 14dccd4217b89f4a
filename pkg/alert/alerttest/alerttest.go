// Package alerttest provides local stand-ins for the systems the alert agent notifies: a Slack server that
// speaks the incoming-webhook and chat.postMessage wire formats and can be told to fail, and a generic
// webhook receiver that verifies the HMAC signature. Tests only.
package alerttest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hemostat/hemostat/pkg/alert"
)

// Reply is a scripted failure: the status to answer, and a Retry-After header when not empty.
type Reply struct {
	Status     int
	RetryAfter string
	Delay      time.Duration // wait before answering (a slow Slack)
}

// Message is one message Slack received, by webhook or by chat.postMessage.
type Message struct {
	Time     time.Time
	Path     string
	Channel  string
	ThreadTS string
	TS       string // the ts Slack answered (chat.postMessage)
	Token    string
	Text     string
	Blocks   []map[string]any
	Raw      string
}

// Slack is a fake Slack: POST /services/... is an incoming webhook, POST /api/chat.postMessage the Web API.
type Slack struct {
	*httptest.Server
	mu       sync.Mutex
	script   []Reply
	always   *Reply
	messages []Message
	attempts []time.Time
	seq      int
}

// NewSlack starts a fake Slack, closed at cleanup.
func NewSlack(t testing.TB) *Slack {
	s := &Slack{}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

// WebhookURL is an incoming-webhook URL on the fake; secret is its last path element.
func (s *Slack) WebhookURL(secret string) string { return s.URL + "/services/T0001/B0001/" + secret }

// APIURL is the Web API base on the fake.
func (s *Slack) APIURL() string { return s.URL + "/api" }

// Fail queues failures answered before the next successes, in order.
func (s *Slack) Fail(r ...Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script = append(s.script, r...)
}

// FailAlways answers every request with r (nil restores success).
func (s *Slack) FailAlways(r *Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.always = r
}

// Messages returns the messages accepted so far.
func (s *Slack) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.messages...)
}

// Attempts returns the time of every request, failed ones included.
func (s *Slack) Attempts() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.attempts...)
}

func (s *Slack) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.attempts = append(s.attempts, time.Now())
	var fail *Reply
	if s.always != nil {
		f := *s.always
		fail = &f
	} else if len(s.script) > 0 {
		fail = &s.script[0]
		s.script = s.script[1:]
	}
	s.mu.Unlock()
	if fail != nil {
		if fail.Delay > 0 {
			select {
			case <-time.After(fail.Delay):
			case <-r.Context().Done():
				return
			}
		}
		if fail.Status != 0 {
			if fail.RetryAfter != "" {
				w.Header().Set("Retry-After", fail.RetryAfter)
			}
			http.Error(w, http.StatusText(fail.Status), fail.Status)
			return
		}
	}
	m := Message{Time: time.Now(), Path: r.URL.Path, Raw: string(body)}
	switch {
	case strings.HasPrefix(r.URL.Path, "/services/"):
		var wm struct {
			Text     string           `json:"text"`
			Blocks   []map[string]any `json:"blocks"`
			ThreadTS string           `json:"thread_ts"`
		}
		if err := json.Unmarshal(body, &wm); err != nil {
			http.Error(w, "invalid_payload", http.StatusBadRequest)
			return
		}
		m.Text, m.Blocks, m.ThreadTS = wm.Text, wm.Blocks, wm.ThreadTS
		s.record(m)
		_, _ = io.WriteString(w, "ok")
	case r.URL.Path == "/api/chat.postMessage":
		v, err := url.ParseQuery(string(body))
		if err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		m.Channel, m.ThreadTS, m.Text, m.Token = v.Get("channel"), v.Get("thread_ts"), v.Get("text"), v.Get("token")
		if m.Token == "" {
			m.Token = strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		}
		_ = json.Unmarshal([]byte(v.Get("blocks")), &m.Blocks)
		s.mu.Lock()
		s.seq++
		m.TS = fmt.Sprintf("1700000000.%06d", s.seq)
		s.mu.Unlock()
		s.record(m)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": m.Channel, "ts": m.TS})
	default:
		http.NotFound(w, r)
	}
}

func (s *Slack) record(m Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.messages = append(s.messages, m)
}

// Received is one verified delivery of the generic webhook.
type Received struct {
	Headers http.Header
	Payload alert.WebhookPayload
}

// Receiver is a generic webhook endpoint that verifies the HMAC signature; bad ones are answered 401
// and counted.
type Receiver struct {
	*httptest.Server
	Secret   string
	mu       sync.Mutex
	got      []Received
	rejected int
}

// NewReceiver starts a webhook receiver for the given secret, closed at cleanup.
func NewReceiver(t testing.TB, secret string) *Receiver {
	rc := &Receiver{Secret: secret}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := alert.Verify(rc.Secret, r.Header, body, time.Now(), 5*time.Minute); err != nil {
			rc.mu.Lock()
			rc.rejected++
			rc.mu.Unlock()
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var p alert.WebhookPayload
		if err := json.Unmarshal(body, &p); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rc.mu.Lock()
		rc.got = append(rc.got, Received{Headers: r.Header.Clone(), Payload: p})
		rc.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.Close)
	return rc
}

// Received returns the verified deliveries so far.
func (rc *Receiver) Received() []Received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]Received(nil), rc.got...)
}

// Rejected counts deliveries whose signature did not verify.
func (rc *Receiver) Rejected() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.rejected
}
