package cmd

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/hemostat/hemostat/pkg/agent"
	"github.com/hemostat/hemostat/pkg/analyze"
	"github.com/hemostat/hemostat/pkg/analyze/llm"
	"github.com/hemostat/hemostat/pkg/bus"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

// analyzeOptions are the flags of hemostat analyze: the analyzer's settings, whose defaults are
// analyze.DefaultOptions(), the LLM's, and how many alerts it handles at once.
type analyzeOptions struct {
	Analyze      analyze.Options // LLM, Inspector, Consumer and Logger are set at run time
	Provider     string
	Model        string
	BaseURL      string
	AnthropicKey string
	OpenAIKey    string
	LLMRetries   int
	Concurrency  int
	Bus          bus.Options
}

// defaultAnalyzeConcurrency is how many alerts one analyzer handles at once.
const defaultAnalyzeConcurrency = 8

// llmProviders are the choices of --llm-provider.
var llmProviders = []string{llm.ProviderNone, llm.ProviderAnthropic, llm.ProviderOpenAI}

type analyzeEvalOptions struct {
	FixturesDir string
	MinScore    float64
	Output      string
}

func newAnalyzeCmd(d *Deps, runF func(context.Context, *Deps, analyzeOptions) error) *cobra.Command {
	if runF == nil {
		runF = analyzeRun
	}
	opts := analyzeOptions{Analyze: analyze.DefaultOptions(), Provider: llm.ProviderNone, LLMRetries: llm.DefaultMaxRetries,
		Concurrency: defaultAnalyzeConcurrency, Bus: bus.DefaultOptions()}
	a := &opts.Analyze
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
		Example: `  hemostat analyze
  OPENAI_API_KEY_FILE=/run/secrets/openai hemostat analyze --llm-provider openai
  hemostat analyze --llm-provider openai --llm-base-url http://localhost:11434/v1 --llm-model qwen2.5:7b --llm-mode decide`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runF(cmd.Context(), d, opts)
		},
	}
	c.Annotations = map[string]string{annAgent: "true"}
	pf := c.PersistentFlags()
	pf.Float64Var(&a.MinConfidence, "min-confidence", a.MinConfidence, "below this confidence an alert is a false alarm")
	pf.DurationVar(&a.OOMWindow, "oom-window", a.OOMWindow, "a second OOM kill within this window escalates (\"raise the memory limit\")")
	choiceVar(pf, &opts.Provider, "llm-provider", "", opts.Provider, "LLM provider: anthropic, openai (or any OpenAI-compatible server) or none", llmProviders...)
	pf.StringVar(&opts.Model, "llm-model", "", fmt.Sprintf("LLM model (default %s for anthropic, %s for openai)", llm.DefaultAnthropicModel, llm.DefaultOpenAIModel))
	pf.StringVar(&opts.BaseURL, "llm-base-url", "", "base URL of the LLM API, e.g. http://localhost:11434/v1 for Ollama")
	pf.DurationVar(&a.LLMTimeout, "llm-timeout", a.LLMTimeout, "time allowed for one incident's LLM diagnosis, context included")
	pf.IntVar(&opts.LLMRetries, "llm-retries", opts.LLMRetries, "retries of a 429 or 5xx answer within --llm-timeout")
	choiceVar(pf, &a.LLMMode, "llm-mode", "", a.LLMMode, "advisory (rules decide, the LLM enriches) or decide (the LLM decides when in time)",
		analyze.ModeAdvisory, analyze.ModeDecide)
	pf.StringVar(&opts.AnthropicKey, "anthropic-api-key", "", "Anthropic API key (also ANTHROPIC_API_KEY, ANTHROPIC_API_KEY_FILE)")
	markSecret(pf, "anthropic-api-key", "ANTHROPIC_API_KEY")
	pf.StringVar(&opts.OpenAIKey, "openai-api-key", "", "OpenAI API key (also OPENAI_API_KEY, OPENAI_API_KEY_FILE)")
	markSecret(pf, "openai-api-key", "OPENAI_API_KEY")
	f := c.Flags()
	f.IntVar(&a.LLMConcurrency, "llm-concurrency", a.LLMConcurrency, "advisory LLM calls in flight at once; more incidents go without enrichment")
	f.IntVar(&opts.Concurrency, "concurrency", opts.Concurrency, "alerts handled at once")
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
With an LLM the model's validated answer is used for every class, as in decide mode.

Exit codes: 0 the score reaches --min-score, 1 it does not, 2 usage, 5 --fixtures-dir does not exist.`,
		Example: `  hemostat analyze eval
  hemostat analyze eval --llm-provider openai --min-score 0.9
  hemostat analyze eval --fixtures-dir ./cases -o json --llm-provider anthropic`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return analyzeEvalRun(cmd.Context(), d, *opts, eo)
		},
	}
	f := c.Flags()
	f.StringVar(&eo.FixturesDir, "fixtures-dir", "", "directory of *.json fixtures (default: the built-in set)")
	deprecatedAlias(f, "dir", "fixtures-dir")
	f.Float64Var(&eo.MinScore, "min-score", 0, "exit 1 when the score (0..1) is below this")
	addOutputFlag(f, &eo.Output, formatTable, formatJSON, formatJSONL)
	perInvocation(f, "min-score")
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
	if o.Analyze.MinConfidence < 0 || o.Analyze.MinConfidence > 1 {
		return UsageError("--min-confidence %v: want 0..1", o.Analyze.MinConfidence)
	}
	if o.LLMRetries < 0 {
		return UsageError("--llm-retries %d: want 0 or more", o.LLMRetries)
	}
	if o.Analyze.LLMTimeout <= 0 {
		return UsageError("--llm-timeout %s: want more than 0", o.Analyze.LLMTimeout)
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
	o := opts.Analyze
	o.LLM, o.Inspector, o.Consumer, o.Logger = p, analyzeInspector(ctx, d, p != nil), d.Instance(), d.Logger
	a := analyze.New(o, analyze.Stores{Incidents: st.Incidents, Stats: st.Containers, Ledger: st.Ledger}, b)
	method := analyze.MethodRules
	if p != nil {
		method = p.Method()
	}
	return agent.Run(ctx, agent.Options{Kind: analyze.AgentName, Instance: d.Instance(), Version: Build().Version,
		Record: schema.Agent{Host: d.HostName(), LLM: method, LLMMode: o.LLMMode}, Logger: d.Logger},
		st.Agents, a.Run)
}

func analyzeEvalRun(ctx context.Context, d *Deps, opts analyzeOptions, eo analyzeEvalOptions) error {
	if err := opts.validate(); err != nil {
		return err
	}
	p, err := opts.llmProvider()
	if err != nil {
		return err
	}
	var fixtures []analyze.Fixture
	if eo.FixturesDir == "" {
		fixtures, err = analyze.BuiltinFixtures()
	} else {
		if _, serr := os.Stat(eo.FixturesDir); serr != nil {
			return &ExitError{Code: ExitNotFound, Err: fmt.Errorf("eval fixtures: %w", serr)}
		}
		fixtures, err = analyze.LoadFixtures(os.DirFS(eo.FixturesDir), ".")
	}
	if err != nil {
		return err
	}
	rep := analyze.Evaluate(ctx, fixtures, analyze.EvalOptions{LLM: p, Timeout: opts.Analyze.LLMTimeout,
		MinConfidence: opts.Analyze.MinConfidence, OOMWindow: opts.Analyze.OOMWindow})
	if eo.Output != formatTable {
		if err := writeJSON(d.Out, eo.Output, rep); err != nil {
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
