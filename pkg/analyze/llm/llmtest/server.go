// Package llmtest runs local servers that speak the Anthropic Messages and OpenAI Chat Completions wire
// formats, record the requests they get, and answer what a test tells them to.
package llmtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// Wire formats.
const (
	Anthropic = "anthropic"
	OpenAI    = "openai"
)

// Reply is what the server answers.
type Reply struct {
	Status int             // HTTP status; 0 is 200
	Answer string          // the structured answer: tool input (Anthropic) or message content (OpenAI)
	Delay  time.Duration   // wait this long first (the wait ends early if the client gives up)
	Hold   <-chan struct{} // when set, wait until it is closed first (or the client gives up)
	Body   string          // raw body, overriding the rest
	// Obey, when set, computes the answer from the request body: a model that does what its prompt says.
	Obey func(request []byte) string
}

// Request is one request the server got.
type Request struct {
	Method string
	Path   string
	Header http.Header
	Body   []byte
}

// JSON decodes the request body.
func (r Request) JSON() map[string]any {
	var m map[string]any
	_ = json.Unmarshal(r.Body, &m)
	return m
}

// Server is a fake LLM API.
type Server struct {
	Wire string
	srv  *httptest.Server

	mu       sync.Mutex
	reply    Reply
	requests []Request
}

// New starts a server speaking the wire format; it stops at cleanup.
func New(t testing.TB, wire string) *Server {
	t.Helper()
	s := &Server{Wire: wire, reply: Reply{Status: 200}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

// URL is the base URL to give the SDK (option.WithBaseURL).
func (s *Server) URL() string {
	if s.Wire == OpenAI {
		return s.srv.URL + "/v1/"
	}
	return s.srv.URL
}

// SetReply sets the answer to every following request.
func (s *Server) SetReply(r Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reply = r
}

// Requests returns the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Calls is the number of requests received.
func (s *Server) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.requests)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body})
	rep := s.reply
	s.mu.Unlock()
	if rep.Hold != nil {
		select {
		case <-r.Context().Done():
			return
		case <-rep.Hold:
		}
	}
	if rep.Delay > 0 {
		select {
		case <-r.Context().Done():
			return
		case <-time.After(rep.Delay):
		}
	}
	status := rep.Status
	if status == 0 {
		status = http.StatusOK
	}
	w.Header().Set("Content-Type", "application/json")
	if status != http.StatusOK {
		w.WriteHeader(status)
		if rep.Body != "" {
			io.WriteString(w, rep.Body)
			return
		}
		io.WriteString(w, s.errorBody(status))
		return
	}
	if rep.Body != "" {
		io.WriteString(w, rep.Body)
		return
	}
	var model string
	var req struct {
		Model string `json:"model"`
		Tools []struct {
			Name string `json:"name"`
		} `json:"tools"`
	}
	_ = json.Unmarshal(body, &req)
	model = req.Model
	if rep.Obey != nil {
		rep.Answer = rep.Obey(body)
	}
	switch s.Wire {
	case Anthropic:
		tool := "report_diagnosis"
		if len(req.Tools) > 0 {
			tool = req.Tools[0].Name
		}
		var content []map[string]any
		stop := "tool_use"
		if json.Valid([]byte(rep.Answer)) {
			content = []map[string]any{{"type": "tool_use", "id": "toolu_01", "name": tool, "input": json.RawMessage(rep.Answer)}}
		} else {
			content = []map[string]any{{"type": "text", "text": rep.Answer}}
			stop = "end_turn"
		}
		writeJSON(w, map[string]any{
			"id": "msg_01", "type": "message", "role": "assistant", "model": model, "content": content,
			"stop_reason": stop, "stop_sequence": nil, "usage": map[string]any{"input_tokens": 812, "output_tokens": 96},
		})
	default:
		writeJSON(w, map[string]any{
			"id": "chatcmpl-01", "object": "chat.completion", "created": time.Now().Unix(), "model": model,
			"choices": []map[string]any{{"index": 0, "finish_reason": "stop", "logprobs": nil,
				"message": map[string]any{"role": "assistant", "content": rep.Answer, "refusal": nil}}},
			"usage": map[string]any{"prompt_tokens": 812, "completion_tokens": 96, "total_tokens": 908},
		})
	}
}

func (s *Server) errorBody(status int) string {
	typ, msg := "api_error", "Internal server error"
	switch status {
	case http.StatusTooManyRequests:
		typ, msg = "rate_limit_error", "Rate limit exceeded"
	case http.StatusUnauthorized:
		typ, msg = "authentication_error", "invalid x-api-key"
	case http.StatusBadRequest:
		typ, msg = "invalid_request_error", "bad request"
	}
	if s.Wire == Anthropic {
		return fmt.Sprintf(`{"type":"error","error":{"type":%q,"message":%q}}`, typ, msg)
	}
	return fmt.Sprintf(`{"error":{"message":%q,"type":%q,"param":null,"code":null}}`, msg, typ)
}

func writeJSON(w http.ResponseWriter, v any) {
	b, _ := json.Marshal(v)
	w.Write(b)
}
