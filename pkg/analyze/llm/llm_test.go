package llm_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hemostat/hemostat/pkg/analyze/llm"
	"github.com/hemostat/hemostat/pkg/analyze/llm/llmtest"
)

var schema = map[string]any{
	"type":                 "object",
	"properties":           map[string]any{"action": map[string]any{"type": "string", "enum": []string{"restart", "none"}}},
	"required":             []string{"action"},
	"additionalProperties": false,
}

func request() llm.Request {
	return llm.Request{System: "you diagnose containers", User: "web-1 crashed", Tool: "report_diagnosis",
		ToolDescription: "report it", Schema: schema, MaxTokens: 256}
}

func TestAnthropicWire(t *testing.T) {
	srv := llmtest.New(t, llmtest.Anthropic)
	srv.SetReply(llmtest.Reply{Answer: `{"action":"restart"}`})
	p, err := llm.New(llm.Config{Provider: "anthropic", Model: "claude-test", BaseURL: srv.URL(), APIKey: "sk-ant-test-key", MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Method(), "llm:anthropic:claude-test"; got != want {
		t.Errorf("Method() = %q, want %q", got, want)
	}
	got, err := p.Complete(context.Background(), request())
	if err != nil {
		t.Fatalf("Complete() error = %v", err)
	}
	if string(got) != `{"action":"restart"}` {
		t.Errorf("Complete() = %s", got)
	}
	reqs := srv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("server got %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.Method != "POST" || r.Path != "/v1/messages" {
		t.Errorf("request %s %s, want POST /v1/messages", r.Method, r.Path)
	}
	if got := r.Header.Get("X-Api-Key"); got != "sk-ant-test-key" {
		t.Errorf("x-api-key = %q", got)
	}
	body := r.JSON()
	if body["model"] != "claude-test" || body["max_tokens"] != float64(256) {
		t.Errorf("model/max_tokens = %v/%v", body["model"], body["max_tokens"])
	}
	sys, _ := body["system"].([]any)
	if len(sys) != 1 || sys[0].(map[string]any)["text"] != "you diagnose containers" {
		t.Errorf("system = %v", body["system"])
	}
	if diff := cmp.Diff(map[string]any{"type": "tool", "name": "report_diagnosis"}, body["tool_choice"]); diff != "" {
		t.Errorf("tool_choice mismatch (-want +got):\n%s", diff)
	}
	tools, _ := body["tools"].([]any)
	if len(tools) != 1 {
		t.Fatalf("tools = %v", body["tools"])
	}
	tool := tools[0].(map[string]any)
	in := tool["input_schema"].(map[string]any)
	if tool["name"] != "report_diagnosis" || in["type"] != "object" || in["additionalProperties"] != false {
		t.Errorf("tool = %v", tool)
	}
	if diff := cmp.Diff([]any{"action"}, in["required"]); diff != "" {
		t.Errorf("input_schema.required mismatch (-want +got):\n%s", diff)
	}
	msgs, _ := body["messages"].([]any)
	if len(msgs) != 1 || !strings.Contains(string(r.Body), "web-1 crashed") {
		t.Errorf("messages = %v", body["messages"])
	}
}

func TestOpenAIWire(t *testing.T) {
	srv := llmtest.New(t, llmtest.OpenAI)
	srv.SetReply(llmtest.Reply{Answer: `{"action":"none"}`})
	p, err := llm.New(llm.Config{Provider: "openai", Model: "qwen2.5:7b", BaseURL: srv.URL(), APIKey: "sk-openai-test", MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.Complete(context.Background(), request())
	if err != nil {
		t.Fatalf("Complete() error = %v", err)
	}
	if string(got) != `{"action":"none"}` {
		t.Errorf("Complete() = %s", got)
	}
	r := srv.Requests()[0]
	if r.Path != "/v1/chat/completions" {
		t.Errorf("path = %s, want /v1/chat/completions", r.Path)
	}
	if got := r.Header.Get("Authorization"); got != "Bearer sk-openai-test" {
		t.Errorf("Authorization = %q", got)
	}
	body := r.JSON()
	if body["model"] != "qwen2.5:7b" || body["max_tokens"] != float64(256) || body["temperature"] != float64(0) {
		t.Errorf("model/max_tokens/temperature = %v/%v/%v", body["model"], body["max_tokens"], body["temperature"])
	}
	msgs := body["messages"].([]any)
	if len(msgs) != 2 || msgs[0].(map[string]any)["role"] != "system" || msgs[0].(map[string]any)["content"] != "you diagnose containers" ||
		msgs[1].(map[string]any)["role"] != "user" {
		t.Errorf("messages = %v", msgs)
	}
	rf := body["response_format"].(map[string]any)
	js := rf["json_schema"].(map[string]any)
	if rf["type"] != "json_schema" || js["name"] != "report_diagnosis" || js["strict"] != true {
		t.Errorf("response_format = %v", rf)
	}
	if js["schema"].(map[string]any)["additionalProperties"] != false {
		t.Errorf("schema = %v", js["schema"])
	}
}

func TestErrors(t *testing.T) {
	for _, wire := range []string{llmtest.Anthropic, llmtest.OpenAI} {
		tests := []struct {
			name  string
			reply llmtest.Reply
			want  string
			is    error
		}{
			{"429", llmtest.Reply{Status: 429}, "http 429 Too Many Requests: Rate limit exceeded", nil},
			{"500", llmtest.Reply{Status: 500}, "http 500 Internal Server Error", nil},
			{"slow", llmtest.Reply{Answer: `{}`, Delay: 5 * time.Second}, "timed out", context.DeadlineExceeded},
		}
		for _, tt := range tests {
			t.Run(wire+"/"+tt.name, func(t *testing.T) {
				srv := llmtest.New(t, wire)
				srv.SetReply(tt.reply)
				p, _ := llm.New(llm.Config{Provider: wire, Model: "m", BaseURL: srv.URL(), MaxRetries: -1})
				ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
				defer cancel()
				start := time.Now()
				_, err := p.Complete(ctx, request())
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("Complete() error = %v, want it to contain %q", err, tt.want)
				}
				if tt.is != nil && !errors.Is(err, tt.is) {
					t.Errorf("Complete() error = %v, want errors.Is %v", err, tt.is)
				}
				if time.Since(start) > 2*time.Second {
					t.Errorf("Complete() took %s past a 200ms deadline", time.Since(start))
				}
				if srv.Calls() != 1 {
					t.Errorf("server got %d calls, want 1 (retries disabled)", srv.Calls())
				}
			})
		}
	}
}

func TestAnthropicNoToolUse(t *testing.T) {
	srv := llmtest.New(t, llmtest.Anthropic)
	srv.SetReply(llmtest.Reply{Answer: "Sure! I would restart it."})
	p, _ := llm.New(llm.Config{Provider: "anthropic", Model: "m", BaseURL: srv.URL(), MaxRetries: -1})
	_, err := p.Complete(context.Background(), request())
	if !errors.Is(err, llm.ErrNoAnswer) {
		t.Errorf("Complete() error = %v, want ErrNoAnswer", err)
	}
}

func TestRetriesBounded(t *testing.T) {
	srv := llmtest.New(t, llmtest.OpenAI)
	srv.SetReply(llmtest.Reply{Status: 500})
	p, _ := llm.New(llm.Config{Provider: "openai", Model: "m", BaseURL: srv.URL(), MaxRetries: 1})
	if _, err := p.Complete(context.Background(), request()); err == nil {
		t.Fatal("Complete() succeeded against a failing server")
	}
	if got := srv.Calls(); got != 2 {
		t.Errorf("server got %d calls, want 2 (one retry)", got)
	}
}

func TestNew(t *testing.T) {
	if p, err := llm.New(llm.Config{Provider: "none"}); p != nil || err != nil {
		t.Errorf("New(none) = %v, %v; want nil, nil", p, err)
	}
	if _, err := llm.New(llm.Config{Provider: "gemini"}); err == nil {
		t.Error("New(gemini) succeeded")
	}
	p, _ := llm.New(llm.Config{Provider: "anthropic"})
	if p.Method() != "llm:anthropic:"+llm.DefaultAnthropicModel {
		t.Errorf("default model method = %s", p.Method())
	}
}
