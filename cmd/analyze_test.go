package cmd_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hemostat/hemostat/cmd"
	"github.com/hemostat/hemostat/pkg/analyze"
	"github.com/hemostat/hemostat/pkg/analyze/llm/llmtest"
	"github.com/hemostat/hemostat/pkg/bus"
	"github.com/hemostat/hemostat/pkg/conn"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/store"
	"github.com/hemostat/hemostat/pkg/testenv"
)

func runHemostat(t *testing.T, ctx context.Context, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errw bytes.Buffer
	code = cmd.Run(ctx, cmd.NewDeps(strings.NewReader(""), &out, &errw), args)
	return code, out.String(), errw.String()
}

const evalAnswer = `{"root_cause":"config file missing","failure_class":"crashed","action":"none","confidence":0.9,` +
	`"evidence":["FATAL: cannot read /etc/billing/config.yaml"],"is_false_alarm":false}`

func TestAnalyzeEvalRules(t *testing.T) {
	code, out, errw := runHemostat(t, context.Background(), "analyze", "eval")
	if code != cmd.ExitOK {
		t.Fatalf("exit %d, stderr %s", code, errw)
	}
	fixtures, err := analyze.BuiltinFixtures()
	if err != nil {
		t.Fatal(err)
	}
	rulesCases := 0
	for _, f := range fixtures {
		if !f.LLMOnly {
			rulesCases++
		}
	}
	score := fmt.Sprintf("with rules; rules-expected cases %d/%d", rulesCases, rulesCases)
	for _, want := range []string{"pass    crashed-segfault", "FAIL    crashed-missing-config (llm)", score} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if code, _, errw := runHemostat(t, context.Background(), "analyze", "eval", "--min-score", "0.95"); code != cmd.ExitFailure || !strings.Contains(errw, "below --min-score") {
		t.Errorf("--min-score 0.95: exit %d, stderr %q; want 1", code, errw)
	}
}

func TestAnalyzeEvalJSONAndDir(t *testing.T) {
	dir := t.TempDir()
	src, err := os.ReadFile(filepath.Join("..", "pkg", "analyze", "testdata", "eval", "oom-repeat.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "case.json"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errw := runHemostat(t, context.Background(), "analyze", "eval", "--fixtures-dir", dir, "-o", "json")
	if code != cmd.ExitOK {
		t.Fatalf("exit %d, stderr %s", code, errw)
	}
	var rep analyze.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("output is not a JSON report: %v\n%s", err, out)
	}
	if rep.Total != 1 || rep.Passed != 1 || rep.Results[0].Got != "oom_killed/none" {
		t.Errorf("report = %+v", rep)
	}
	if code, _, _ := runHemostat(t, context.Background(), "analyze", "eval", "--fixtures-dir", filepath.Join(dir, "missing")); code != cmd.ExitNotFound {
		t.Errorf("missing --fixtures-dir: exit %d, want %d", code, cmd.ExitNotFound)
	}
	// --dir, the deprecated name of --fixtures-dir, still works and says so.
	code, _, errw = runHemostat(t, context.Background(), "analyze", "eval", "--dir", filepath.Join(dir, "missing"))
	if code != cmd.ExitNotFound || !strings.Contains(errw, "--dir is deprecated: use --fixtures-dir") {
		t.Errorf("missing --dir: exit %d (%s), want %d and a deprecation warning", code, errw, cmd.ExitNotFound)
	}
}

func TestAnalyzeEvalOpenAICompatible(t *testing.T) {
	srv := llmtest.New(t, llmtest.OpenAI)
	srv.SetReply(llmtest.Reply{Answer: evalAnswer})
	code, out, errw := runHemostat(t, context.Background(), "analyze", "eval",
		"--llm-provider", "openai", "--llm-base-url", srv.URL(), "--llm-model", "qwen2.5:7b", "--llm-timeout", "5s")
	if code != cmd.ExitOK {
		t.Fatalf("exit %d, stderr %s", code, errw)
	}
	fixtures, err := analyze.BuiltinFixtures()
	if err != nil {
		t.Fatal(err)
	}
	if srv.Calls() != len(fixtures) {
		t.Errorf("LLM got %d calls, want one per case (%d)", srv.Calls(), len(fixtures))
	}
	for _, want := range []string{"pass    crashed-missing-config (llm)", "llm:openai:qwen2.5:7b", "with llm:openai:qwen2.5:7b"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestAnalyzeEvalAnthropicKeyFromEnv(t *testing.T) {
	srv := llmtest.New(t, llmtest.Anthropic)
	srv.SetReply(llmtest.Reply{Status: 429})
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte("sk-ant-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ANTHROPIC_API_KEY", "")
	t.Setenv("ANTHROPIC_API_KEY_FILE", keyFile)
	t.Setenv("HEMOSTAT_LLM_PROVIDER", "anthropic")
	t.Setenv("HEMOSTAT_LLM_BASE_URL", srv.URL())
	code, out, errw := runHemostat(t, context.Background(), "analyze", "eval", "--llm-retries", "0", "--fixtures-dir", filepath.Join("..", "pkg", "analyze", "testdata", "eval"))
	if code != cmd.ExitOK {
		t.Fatalf("exit %d, stderr %s", code, errw)
	}
	reqs := srv.Requests()
	if len(reqs) == 0 || reqs[0].Header.Get("X-Api-Key") != "sk-ant-from-file" {
		t.Fatalf("requests = %d, x-api-key %q", len(reqs), reqs[0].Header.Get("X-Api-Key"))
	}
	// Every call failed with 429: the rules decided each case and the reason is shown.
	// Every call failed with 429: the rules decided each case, and the reason is shown.
	if !strings.Contains(out, "http 429") {
		t.Errorf("output lacks the reason:\n%s", out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "FAIL") && !strings.Contains(line, "(llm)") {
			t.Errorf("the rules' fallback failed a rules-expected case: %s", line)
		}
	}
	if strings.Contains(out+errw, "sk-ant-from-file") {
		t.Error("the API key reached the output")
	}
}

func TestAnalyzeUsageErrors(t *testing.T) {
	t.Setenv("ANTHROPIC_API_KEY", "")
	t.Setenv("OPENAI_API_KEY", "")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"mode", []string{"analyze", "eval", "--llm-mode", "yolo"}, "--llm-mode"},
		{"provider", []string{"analyze", "eval", "--llm-provider", "gemini"}, "gemini"},
		{"anthropic without key", []string{"analyze", "eval", "--llm-provider", "anthropic"}, "ANTHROPIC_API_KEY"},
		{"confidence", []string{"analyze", "eval", "--min-confidence", "1.5"}, "--min-confidence"},
		{"output", []string{"analyze", "eval", "-o", "yaml"}, "--output"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errw := runHemostat(t, context.Background(), tt.args...)
			if code != cmd.ExitUsage || !strings.Contains(errw, tt.want) {
				t.Errorf("exit %d, stderr %q; want %d mentioning %q", code, errw, cmd.ExitUsage, tt.want)
			}
		})
	}
}

func TestAnalyzeAgent(t *testing.T) {
	url := testenv.RequireRedis(t)
	st, err := store.Open(conn.Options{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	b := bus.New(st.Conn, bus.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	al := &event.ContainerUnhealthy{ContainerID: "abc", ContainerName: "web-1", Class: "crash_loop", RestartCount: 5}
	in, err := event.New("monitor", "node-a", "node-a/web-1/crash_loop", "", al)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(ctx, event.StreamHealthAlert, in); err != nil {
		t.Fatal(err)
	}
	done := make(chan int, 1)
	var out, errw bytes.Buffer
	go func() {
		done <- cmd.Run(ctx, cmd.NewDeps(strings.NewReader(""), &out, &errw), []string{"analyze", "--redis-url", url, "--host-name", "node-z"})
	}()
	deadline := time.Now().Add(10 * time.Second)
	var entries []bus.Entry
	for len(entries) == 0 && time.Now().Before(deadline) {
		entries, err = b.Range(ctx, event.RemediationNeededStream("node-a"), "-", "+", 10) // the alert's host's stream
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != cmd.ExitOK {
		t.Errorf("analyze exited %d: %s", code, errw.String())
	}
	if len(entries) != 1 {
		t.Fatalf("%d answers, want 1; stderr %s", len(entries), errw.String())
	}
	env, err := event.Decode(entries[0].Raw)
	if err != nil {
		t.Fatal(err)
	}
	rn, _ := event.DecodeData[event.RemediationNeeded](env)
	if env.CausationID != in.ID || env.Host != "node-a" || rn.Action != "none" || rn.AnalysisMethod != "rules" {
		t.Errorf("answer %+v %+v", env, rn)
	}
}
