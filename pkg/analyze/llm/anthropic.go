package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/anthropics/anthropic-sdk-go"
	"github.com/anthropics/anthropic-sdk-go/option"
)

// Anthropic calls the Messages API and forces one tool call whose input is the structured answer.
type Anthropic struct {
	client anthropic.Client
	model  string
}

func newAnthropic(c Config) *Anthropic {
	opts := []option.RequestOption{
		option.WithoutEnvironmentDefaults(), // credentials and base URL come from Config only
		option.WithHTTPClient(c.HTTPClient),
		option.WithMaxRetries(c.MaxRetries),
	}
	if c.APIKey != "" {
		opts = append(opts, option.WithAPIKey(c.APIKey))
	}
	if c.BaseURL != "" {
		opts = append(opts, option.WithBaseURL(c.BaseURL))
	}
	return &Anthropic{client: anthropic.NewClient(opts...), model: c.Model}
}

// Method implements Provider.
func (a *Anthropic) Method() string { return method(ProviderAnthropic, a.model) }

// Complete implements Provider.
func (a *Anthropic) Complete(ctx context.Context, req Request) (json.RawMessage, error) {
	schema := anthropic.ToolInputSchemaParam{
		Properties: req.Schema["properties"],
	}
	if r, ok := req.Schema["required"].([]string); ok {
		schema.Required = r
	}
	extra := map[string]any{}
	for k, v := range req.Schema {
		if k != "type" && k != "properties" && k != "required" {
			extra[k] = v
		}
	}
	if len(extra) > 0 {
		schema.ExtraFields = extra
	}
	tool := anthropic.ToolUnionParamOfTool(schema, req.Tool)
	if req.ToolDescription != "" {
		tool.OfTool.Description = anthropic.String(req.ToolDescription)
	}
	msg, err := a.client.Messages.New(ctx, anthropic.MessageNewParams{
		Model:      anthropic.Model(a.model),
		MaxTokens:  maxTokens(req.MaxTokens),
		System:     []anthropic.TextBlockParam{{Text: req.System}},
		Messages:   []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(req.User))},
		Tools:      []anthropic.ToolUnionParam{tool},
		ToolChoice: anthropic.ToolChoiceParamOfTool(req.Tool),
	})
	if err != nil {
		var ae *anthropic.Error
		if errors.As(err, &ae) {
			return nil, &StatusError{Provider: ProviderAnthropic, Code: ae.StatusCode, Message: errorMessage(ae.RawJSON())}
		}
		return nil, wrapContext(ctx, ProviderAnthropic, err)
	}
	for _, block := range msg.Content {
		if block.Type == "tool_use" && block.Name == req.Tool {
			return block.Input, nil
		}
	}
	return nil, fmt.Errorf("%s: %w (stop_reason %s)", ProviderAnthropic, ErrNoAnswer, msg.StopReason)
}

// errorMessage extracts error.message from an API error body, either provider's shape.
func errorMessage(raw string) string {
	var body struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
		Message string `json:"message"`
	}
	if json.Unmarshal([]byte(raw), &body) != nil {
		return ""
	}
	m := body.Error.Message
	if m == "" {
		m = body.Message
	}
	if len(m) > 200 {
		m = m[:200]
	}
	return m
}
