package cmd

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/hemostat/hemostat/pkg/agent"
	"github.com/hemostat/hemostat/pkg/analyze"
	"github.com/hemostat/hemostat/pkg/analyze/llm"
	"github.com/hemostat/hemostat/pkg/bus"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

type analyzeOptions struct {
	MinConfidence  float64
	OOMWindow      time.Duration
	Provider       string
	Model          string
	BaseURL        string
	AnthropicKey   string
	OpenAIKey      string
	LLMTimeout     time.Duration
	LLMRetries     int
	LLMMode        string
	LLMConcurrency int
	Concurrency    int
	Bus            bus.Options
}

type analyzeEvalOptions struct {
	Dir      string
	MinScore float64
	Output   string
}

func newAnalyzeCmd(d *Deps) *cobra.Command {
	var opts analyzeOptions
	c := &cobra.Command{
		Use:   "analyze",
		Short: "Diagnose health alerts with rules and an optional LLM",
		Long: `analyze consumes hemostat:health_alert (consumer group "analyze") and answers every alert with a
remediation_needed (an action, or "none" to escalate to a human) or a false_alarm.

Rules decide every failure class within microseconds. An LLM (--llm-provider anthropic or openai; any
OpenAI-compatible server with --llm-base-url) is asked once per incident, with a timeout, and its answer
must validate against a schema with an action from the container's allowed set (label hemostat.actions).
With --llm-mode advisory (default) the rules decide at once and the LLM's root cause and evidence are added
to the incident; with --llm-mode decide its decision is used when it comes in time, for crash_loop and the
resource classes only: crashed, oom_killed and unhealthy are never held up by an LLM. Container logs go
to the model with secrets redacted and fenced as untrusted input.

'hemostat analyze eval' replays the evaluation set against the configured LLM, or the rules.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return analyzeRun(cmd.Context(), d, opts)
		},
	}
	pf := c.PersistentFlags()
	pf.Float64Var(&opts.MinConfidence, "min-confidence", analyze.DefaultMinConfidence, "below this confidence an alert is a false alarm")
	pf.DurationVar(&opts.OOMWindow, "oom-window", analyze.DefaultOOMWindow, "a second OOM kill within this window escalates (\"raise the memory limit\")")
	pf.StringVar(&opts.Provider, "llm-provider", llm.ProviderNone, "LLM provider: anthropic, openai (or any OpenAI-compatible server) or none")
	pf.StringVar(&opts.Model, "llm-model", "", fmt.Sprintf("LLM model (default %s for anthropic, %s for openai)", llm.DefaultAnthropicModel, llm.DefaultOpenAIModel))
	pf.StringVar(&opts.BaseURL, "llm-base-url", "", "base URL of the LLM API, e.g. http://localhost:11434/v1 for Ollama")
	pf.DurationVar(&opts.LLMTimeout, "llm-timeout", 10*time.Second, "time allowed for one incident's LLM diagnosis, context included")
	pf.IntVar(&opts.LLMRetries, "llm-retries", 1, "retries of a 429 or 5xx answer within --llm-timeout")
	pf.StringVar(&opts.LLMMode, "llm-mode", analyze.ModeAdvisory, "advisory (rules decide, the LLM enriches) or decide (the LLM decides when in time)")
	pf.StringVar(&opts.AnthropicKey, "anthropic-api-key", "", "Anthropic API key (also ANTHROPIC_API_KEY, ANTHROPIC_API_KEY_FILE)")
	markSecret(pf, "anthropic-api-key", "ANTHROPIC_API_KEY")
	pf.StringVar(&opts.OpenAIKey, "openai-api-key", "", "OpenAI API key (also OPENAI_API_KEY, OPENAI_API_KEY_FILE)")
	markSecret(pf, "openai-api-key", "OPENAI_API_KEY")
	f := c.Flags()
	f.IntVar(&opts.LLMConcurrency, "llm-concurrency", 4, "advisory LLM calls in flight at once; more incidents go without enrichment")
	f.IntVar(&opts.Concurrency, "concurrency", 8, "alerts handled at once")
	addBusFlags(c, &opts.Bus)
	c.AddCommand(newAnalyzeEvalCmd(d, &opts))
	return c
}

func newAnalyzeEvalCmd(d *Deps, opts *analyzeOptions) *cobra.Command {
	var eo analyzeEvalOptions
	c := &cobra.Command{
		Use:   "eval",
		Short: "Replay the evaluation set against the configured LLM (or the rules) and print the score",
		Long: `eval replays recorded incidents (alert, inspect, samples, logs, expected class and action) through
the configured LLM, or through the rules with --llm-provider none, and prints per-case results and the
score. Without --dir it uses the set built into the binary (pkg/analyze/testdata/eval). Cases marked
llm_only need the logs to be answered right; the rules are expected to pass every other case.
With an LLM the model's validated answer is used for every class, as in decide mode.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return analyzeEvalRun(cmd.Context(), d, *opts, eo)
		},
	}
	f := c.Flags()
	f.StringVar(&eo.Dir, "dir", "", "directory of *.json fixtures (default: the built-in set)")
	f.Float64Var(&eo.MinScore, "min-score", 0, "exit 1 when the score (0..1) is below this")
	f.StringVarP(&eo.Output, "output", "o", "table", "output format: table or json")
	return c
}

// llmProvider builds the configured provider; nil for none.
func (o analyzeOptions) llmProvider() (llm.Provider, error) {
	cfg := llm.Config{Provider: o.Provider, Model: o.Model, BaseURL: o.BaseURL, MaxRetries: o.LLMRetries}
	if o.LLMRetries == 0 {
		cfg.MaxRetries = -1 // llm.Config reads 0 as its default
	}
	switch o.Provider {
	case llm.ProviderAnthropic:
		cfg.APIKey = o.AnthropicKey
		if cfg.APIKey == "" && o.BaseURL == "" {
			return nil, UsageError("--llm-provider anthropic needs --anthropic-api-key or ANTHROPIC_API_KEY")
		}
	case llm.ProviderOpenAI:
		cfg.APIKey = o.OpenAIKey
		if cfg.APIKey == "" && o.BaseURL == "" {
			return nil, UsageError("--llm-provider openai needs --openai-api-key or OPENAI_API_KEY (or --llm-base-url for a local server)")
		}
	}
	p, err := llm.New(cfg)
	if err != nil {
		return nil, UsageError("%v", err)
	}
	return p, nil
}

func (o analyzeOptions) validate() error {
	if o.MinConfidence < 0 || o.MinConfidence > 1 {
		return UsageError("--min-confidence %v: want 0..1", o.MinConfidence)
	}
	if o.LLMMode != analyze.ModeAdvisory && o.LLMMode != analyze.ModeDecide {
		return UsageError("--llm-mode %q: want advisory or decide", o.LLMMode)
	}
	if o.LLMRetries < 0 {
		return UsageError("--llm-retries %d: want 0 or more", o.LLMRetries)
	}
	if o.LLMTimeout <= 0 {
		return UsageError("--llm-timeout %s: want more than 0", o.LLMTimeout)
	}
	return nil
}

func analyzeRun(ctx context.Context, d *Deps, opts analyzeOptions) error {
	if err := opts.validate(); err != nil {
		return err
	}
	p, err := opts.llmProvider()
	if err != nil {
		return err
	}
	st, err := d.Store(ctx)
	if err != nil {
		return err
	}
	opts.Bus.Concurrency = max(opts.Concurrency, 1)
	b, err := d.Bus(ctx, opts.Bus)
	if err != nil {
		return err
	}
	inspector := analyzeInspector(ctx, d, p != nil)
	a := analyze.New(analyze.Options{
		MinConfidence: opts.MinConfidence, OOMWindow: opts.OOMWindow,
		LLM: p, LLMMode: opts.LLMMode, LLMTimeout: opts.LLMTimeout, LLMConcurrency: opts.LLMConcurrency,
		Inspector: inspector, Consumer: d.Instance(), Logger: d.Logger,
	}, analyze.Stores{Incidents: st.Incidents, Stats: st.Containers, Ledger: st.Ledger}, b)
	method := analyze.MethodRules
	if p != nil {
		method = p.Method()
	}
	return agent.Run(ctx, agent.Options{Kind: analyze.AgentName, Instance: d.Instance(), Version: Build().Version,
		Record: schema.Agent{Host: d.HostName(), LLM: method, LLMMode: opts.LLMMode}, Logger: d.Logger},
		st.Agents, a.Run)
}

func analyzeEvalRun(ctx context.Context, d *Deps, opts analyzeOptions, eo analyzeEvalOptions) error {
	if err := opts.validate(); err != nil {
		return err
	}
	if eo.Output != "table" && eo.Output != "json" {
		return UsageError("--output %q: want table or json", eo.Output)
	}
	p, err := opts.llmProvider()
	if err != nil {
		return err
	}
	var fixtures []analyze.Fixture
	if eo.Dir == "" {
		fixtures, err = analyze.BuiltinFixtures()
	} else {
		if _, serr := os.Stat(eo.Dir); serr != nil {
			return &ExitError{Code: ExitNotFound, Err: fmt.Errorf("eval fixtures: %w", serr)}
		}
		fixtures, err = analyze.LoadFixtures(os.DirFS(eo.Dir), ".")
	}
	if err != nil {
		return err
	}
	rep := analyze.Evaluate(ctx, fixtures, analyze.EvalOptions{LLM: p, Timeout: opts.LLMTimeout,
		MinConfidence: opts.MinConfidence, OOMWindow: opts.OOMWindow})
	if eo.Output == "json" {
		enc := json.NewEncoder(d.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else if err := rep.Write(d.Out); err != nil {
		return err
	}
	if rep.Score() < eo.MinScore {
		return fmt.Errorf("eval score %.3f is below --min-score %.3f", rep.Score(), eo.MinScore)
	}
	return nil
}
