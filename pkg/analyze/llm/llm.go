// Package llm owns hemostat's LLM providers: the Anthropic Messages API with tool use, and OpenAI Chat
// Completions with a JSON schema response format (also any OpenAI-compatible server). A provider turns
// a prompt and a schema into the model's raw structured answer; validating it is the caller's job.
package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Provider names.
const (
	ProviderNone      = "none"
	ProviderAnthropic = "anthropic"
	ProviderOpenAI    = "openai"
)

// Default models, used when Config.Model is empty.
const (
	DefaultAnthropicModel = "claude-haiku-4-5"
	DefaultOpenAIModel    = "gpt-4o-mini"
)

// DefaultMaxRetries is how often a 429 or 5xx answer is retried when Config.MaxRetries is zero.
const DefaultMaxRetries = 1

// Request is one structured completion.
type Request struct {
	System          string         // instructions
	User            string         // the case, with untrusted input fenced
	Tool            string         // name of the tool (Anthropic) or schema (OpenAI) carrying the answer
	ToolDescription string         // what the tool is for
	Schema          map[string]any // JSON schema of the answer, an object
	MaxTokens       int64          // default 1024
}

// Config selects and configures a provider.
type Config struct {
	Provider   string // anthropic or openai
	Model      string
	BaseURL    string // empty for the provider's own API
	APIKey     string
	MaxRetries int          // SDK retries of 429 and 5xx within the caller's deadline; default 1, -1 for none
	HTTPClient *http.Client // default: a client with no timeout of its own (the caller's context bounds it)
}

// Provider completes requests with one model.
type Provider interface {
	// Method is the analysis_method of its decisions: llm:<provider>:<model>.
	Method() string
	// Complete returns the model's answer: the JSON object that should match req.Schema.
	Complete(ctx context.Context, req Request) (json.RawMessage, error)
}

// ErrNoAnswer is returned when the reply carries no structured answer.
var ErrNoAnswer = errors.New("no structured answer in the reply")

// StatusError is an HTTP error answer from the provider.
type StatusError struct {
	Provider string
	Code     int
	Message  string
}

// Error implements error.
func (e *StatusError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("%s: http %d %s", e.Provider, e.Code, http.StatusText(e.Code))
	}
	return fmt.Sprintf("%s: http %d %s: %s", e.Provider, e.Code, http.StatusText(e.Code), e.Message)
}

// New returns the configured provider, or nil for provider none or "".
func New(c Config) (Provider, error) {
	if c.MaxRetries == 0 {
		c.MaxRetries = DefaultMaxRetries
	}
	if c.MaxRetries < 0 {
		c.MaxRetries = 0
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{}
	}
	switch c.Provider {
	case "", ProviderNone:
		return nil, nil
	case ProviderAnthropic:
		if c.Model == "" {
			c.Model = DefaultAnthropicModel
		}
		return newAnthropic(c), nil
	case ProviderOpenAI:
		if c.Model == "" {
			c.Model = DefaultOpenAIModel
		}
		return newOpenAI(c), nil
	}
	return nil, fmt.Errorf("llm provider %q: want anthropic, openai or none", c.Provider)
}

func method(provider, model string) string { return "llm:" + provider + ":" + model }

func maxTokens(n int64) int64 {
	if n <= 0 {
		return 1024
	}
	return n
}

// wrapContext turns deadline and cancellation into short, recordable errors.
func wrapContext(ctx context.Context, provider string, err error) error {
	if ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("%s: timed out: %w", provider, context.DeadlineExceeded)
		}
		return fmt.Errorf("%s: %w", provider, ctx.Err())
	}
	return fmt.Errorf("%s: %w", provider, err)
}
