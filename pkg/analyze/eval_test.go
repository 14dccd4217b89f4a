package analyze

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/hemostat/hemostat/pkg/analyze/llm"
	"github.com/hemostat/hemostat/pkg/analyze/llm/llmtest"
	"github.com/hemostat/hemostat/pkg/event"
)

func TestEvalRules(t *testing.T) {
	fixtures, err := LoadFixtures(os.DirFS("testdata"), "eval")
	if err != nil {
		t.Fatal(err)
	}
	if len(fixtures) < 20 {
		t.Fatalf("%d fixtures, want at least 20", len(fixtures))
	}
	classes := map[string]bool{}
	for _, f := range fixtures {
		classes[f.Alert.Class] = true
	}
	for _, c := range event.Classes {
		if !classes[c] {
			t.Errorf("no fixture for class %s", c)
		}
	}
	rep := Evaluate(context.Background(), fixtures, EvalOptions{})
	var out strings.Builder
	if err := rep.Write(&out); err != nil {
		t.Fatal(err)
	}
	t.Logf("evaluation with rules:\n%s", out.String())
	if rep.RulesPassed != rep.RulesTotal {
		for _, r := range rep.Results {
			if !r.Pass && !r.LLMOnly {
				t.Errorf("%s: expected %s, rules gave %s (%s)", r.Name, r.Expected, r.Got, r.Decision.Reason)
			}
		}
	}
	if rep.RulesTotal == rep.Total {
		t.Error("no LLM-only case: the set does not show what rules miss")
	}
}

func TestBuiltinFixturesMatchTestdata(t *testing.T) {
	b, err := BuiltinFixtures()
	if err != nil {
		t.Fatal(err)
	}
	d, err := LoadFixtures(os.DirFS("testdata"), "eval")
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != len(d) {
		t.Errorf("embedded %d fixtures, testdata has %d", len(b), len(d))
	}
}

func TestEvalWithLLM(t *testing.T) {
	srv := llmtest.New(t, llmtest.OpenAI)
	// The model answers the same for every case: a crashed container with a missing config escalates.
	srv.SetReply(llmtest.Reply{Answer: `{"root_cause":"config file missing","failure_class":"crashed","action":"none",` +
		`"confidence":0.9,"evidence":["FATAL: cannot read /etc/billing/config.yaml"],"is_false_alarm":false}`})
	p, err := llm.New(llm.Config{Provider: "openai", Model: "eval-model", BaseURL: srv.URL(), MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	fixtures, err := BuiltinFixtures()
	if err != nil {
		t.Fatal(err)
	}
	rep := Evaluate(context.Background(), fixtures, EvalOptions{LLM: p})
	if srv.Calls() != len(fixtures) {
		t.Errorf("LLM called %d times for %d cases", srv.Calls(), len(fixtures))
	}
	byName := map[string]CaseResult{}
	for _, r := range rep.Results {
		byName[r.Name] = r
	}
	if r := byName["crashed-missing-config"]; !r.Pass || r.Decision.Method != "llm:openai:eval-model" {
		t.Errorf("crashed-missing-config = %+v, want a pass by the model", r)
	}
	// exec-only: "none" is the only allowed action, so the model's answer passes validation.
	// restart-only swarm leak: "none" is allowed too; the case fails on the class.
	if r := byName["memory-leak-swarm-restart-only"]; r.Pass {
		t.Errorf("memory-leak-swarm-restart-only passed with a wrong answer: %+v", r)
	}
	if rep.Method != "llm:openai:eval-model" || rep.Passed == 0 || rep.Passed == rep.Total {
		t.Errorf("report = %d/%d by %s", rep.Passed, rep.Total, rep.Method)
	}
	for _, req := range srv.Requests() {
		for _, secret := range []string{"wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY", "0rd3rsPw", "L3gacyPass", "tok_live_9f8e7d6c5b4a", "c2lnbmF0dXJlX3NlY3JldA"} {
			if strings.Contains(string(req.Body), secret) {
				t.Errorf("a request carried the secret %q", secret)
			}
		}
	}
}
