package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
)

// OpenAI calls Chat Completions with a strict JSON schema response format. With a base URL it speaks to
// any OpenAI-compatible server (Ollama, vLLM, LM Studio).
type OpenAI struct {
	client openai.Client
	model  string
}

func newOpenAI(c Config) *OpenAI {
	opts := []option.RequestOption{
		option.WithHTTPClient(c.HTTPClient),
		option.WithMaxRetries(c.MaxRetries),
		// Local servers need no key, but the SDK always sends the header; a placeholder keeps it well formed.
		option.WithAPIKey(cmpOr(c.APIKey, "none")),
	}
	if c.BaseURL != "" {
		opts = append(opts, option.WithBaseURL(c.BaseURL))
	}
	return &OpenAI{client: openai.NewClient(opts...), model: c.Model}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Method implements Provider.
func (o *OpenAI) Method() string { return method(ProviderOpenAI, o.model) }

// Complete implements Provider.
func (o *OpenAI) Complete(ctx context.Context, req Request) (json.RawMessage, error) {
	js := shared.ResponseFormatJSONSchemaJSONSchemaParam{
		Name:   req.Tool,
		Schema: req.Schema,
		Strict: openai.Bool(true),
	}
	if req.ToolDescription != "" {
		js.Description = openai.String(req.ToolDescription)
	}
	resp, err := o.client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model: shared.ChatModel(o.model),
		Messages: []openai.ChatCompletionMessageParamUnion{
			openai.SystemMessage(req.System),
			openai.UserMessage(req.User),
		},
		// max_tokens, not max_completion_tokens: every OpenAI-compatible server (Ollama, vLLM, LM Studio)
		// reads it, and OpenAI still does for the chat models hemostat uses.
		MaxTokens:   openai.Int(maxTokens(req.MaxTokens)),
		Temperature: openai.Float(0),
		ResponseFormat: openai.ChatCompletionNewParamsResponseFormatUnion{
			OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{JSONSchema: js},
		},
	})
	if err != nil {
		var oe *openai.Error
		if errors.As(err, &oe) {
			msg := oe.Message
			if msg == "" {
				msg = errorMessage(oe.RawJSON())
			}
			return nil, &StatusError{Provider: ProviderOpenAI, Code: oe.StatusCode, Message: msg}
		}
		return nil, wrapContext(ctx, ProviderOpenAI, err)
	}
	if len(resp.Choices) == 0 {
		return nil, fmt.Errorf("%s: %w (no choices)", ProviderOpenAI, ErrNoAnswer)
	}
	m := resp.Choices[0].Message
	if m.Refusal != "" {
		return nil, fmt.Errorf("%s: %w (refused: %s)", ProviderOpenAI, ErrNoAnswer, m.Refusal)
	}
	if strings.TrimSpace(m.Content) == "" {
		return nil, fmt.Errorf("%s: %w (finish_reason %s)", ProviderOpenAI, ErrNoAnswer, resp.Choices[0].FinishReason)
	}
	return json.RawMessage(m.Content), nil
}
