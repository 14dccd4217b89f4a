package cmd

import (
	"bytes"
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hemostat/hemostat/pkg/alert"
	"github.com/hemostat/hemostat/pkg/analyze"
	"github.com/hemostat/hemostat/pkg/analyze/llm"
	"github.com/hemostat/hemostat/pkg/bus"
	"github.com/hemostat/hemostat/pkg/dash"
	"github.com/hemostat/hemostat/pkg/export"
	"github.com/hemostat/hemostat/pkg/monitor"
	"github.com/hemostat/hemostat/pkg/respond"
)

func testDeps() *Deps {
	return NewDeps(strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{})
}

// flagDefaults runs an agent's command with no flags and returns the options its run function receives.
func flagDefaults[O any](t *testing.T, build func(*Deps, func(context.Context, *Deps, O) error) *cobra.Command) O {
	t.Helper()
	var got O
	c := build(testDeps(), func(_ context.Context, _ *Deps, o O) error { got = o; return nil })
	c.SetArgs([]string{})
	if err := c.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	return got
}

// TestFlagDefaultsAreTheAgentsDefaults: every agent's flags start from the agent's own defaults, so a
// default is changed in one place (the agent's package) and the help shows it.
func TestFlagDefaultsAreTheAgentsDefaults(t *testing.T) {
	// Unexported fields of collaborators' types are not the flags' business.
	opts := cmpopts.EquateEmpty()
	t.Run("monitor", func(t *testing.T) {
		got := flagDefaults(t, newMonitorCmd)
		if d := cmp.Diff(monitor.DefaultOptions(), got.Monitor, opts, cmpopts.IgnoreFields(monitor.Options{}, "Watch.Exclude")); d != "" {
			t.Errorf("monitor flags differ from monitor.DefaultOptions() (-agent +flags):\n%s", d)
		}
		if !slices.Equal(got.Monitor.Watch.Exclude, defaultExclude) || got.Sampler != monitor.SamplerAuto || got.Output != formatText {
			t.Errorf("monitor's own defaults: exclude %v, sampler %q, output %q", got.Monitor.Watch.Exclude, got.Sampler, got.Output)
		}
		if d := cmp.Diff(bus.DefaultOptions(), got.Bus, opts); d != "" {
			t.Errorf("bus flags differ from bus.DefaultOptions() (-bus +flags):\n%s", d)
		}
	})
	t.Run("respond", func(t *testing.T) {
		got := flagDefaults(t, newRespondCmd)
		if d := cmp.Diff(respond.Config{}.WithDefaults(), got.Config, opts); d != "" {
			t.Errorf("respond flags differ from respond.Config{}.WithDefaults() (-agent +flags):\n%s", d)
		}
		if got.Workers != respond.DefaultWorkers {
			t.Errorf("--respond-workers defaults to %d, respond.DefaultWorkers is %d", got.Workers, respond.DefaultWorkers)
		}
		if d := cmp.Diff(bus.DefaultOptions(), got.Bus, opts); d != "" {
			t.Errorf("bus flags differ from bus.DefaultOptions() (-bus +flags):\n%s", d)
		}
	})
	t.Run("analyze", func(t *testing.T) {
		got := flagDefaults(t, newAnalyzeCmd)
		if d := cmp.Diff(analyze.DefaultOptions(), got.Analyze, opts); d != "" {
			t.Errorf("analyze flags differ from analyze.DefaultOptions() (-agent +flags):\n%s", d)
		}
		if got.LLMRetries != llm.DefaultMaxRetries || got.Provider != llm.ProviderNone {
			t.Errorf("--llm-retries %d, --llm-provider %q; want %d, %q", got.LLMRetries, got.Provider, llm.DefaultMaxRetries, llm.ProviderNone)
		}
	})
	t.Run("alert", func(t *testing.T) {
		got := flagDefaults(t, newAlertCmd)
		if d := cmp.Diff(alert.DefaultOptions(), got.Alert, opts, cmpopts.IgnoreFields(alert.Options{}, "Report")); d != "" {
			t.Errorf("alert flags differ from alert.DefaultOptions() (-agent +flags):\n%s", d)
		}
	})
	t.Run("export", func(t *testing.T) {
		got := flagDefaults(t, newExportCmd)
		if d := cmp.Diff(export.DefaultOptions(), got.Export, opts); d != "" {
			t.Errorf("export flags differ from export.DefaultOptions() (-agent +flags):\n%s", d)
		}
	})
	t.Run("dash", func(t *testing.T) {
		got := flagDefaults(t, newDashCmd)
		if d := cmp.Diff(dash.DefaultOptions(), got.Dash, opts, cmpopts.IgnoreFields(dash.Options{}, "Now")); d != "" {
			t.Errorf("dash flags differ from dash.DefaultOptions() (-agent +flags):\n%s", d)
		}
	})
}

// perInvocationFlags are the names of flags that say what one invocation does. Each must carry the
// per-invocation mark wherever it appears, and nothing else may: adding a name here is a decision that
// the flag has no environment twin.
var perInvocationFlags = []string{"output", "follow", "limit", "since", "action", "result", "incident", "jq",
	"filter", "min-score", "no-descriptions"}

// oneShotConfig are flags of one-shot commands that are configuration all the same: where the evaluation
// set lives, like the LLM settings analyze eval shares with analyze.
var oneShotConfig = []string{"fixtures-dir"}

// TestEnvTwinsOnlyForConfiguration walks the whole tree: per-invocation flags have no environment twin (a
// leftover HEMOSTAT_FOLLOW=true must not make a later `hemostat audit` wait forever), and one-shot
// commands (audit, version, analyze eval, respond reset, ...) have no configuration of their own.
func TestEnvTwinsOnlyForConfiguration(t *testing.T) {
	root := NewRootCmd(testDeps())
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		agent := c.Annotations[annAgent] == "true" || c.Annotations[annAgentConfig] == "true"
		check := func(f *pflag.Flag) {
			if replacedBy(f) != "" || f.Name == "help" {
				return
			}
			_, marked := f.Annotations[annPerInvocation]
			named := slices.Contains(perInvocationFlags, f.Name)
			switch {
			case named && !marked:
				t.Errorf("%s --%s says what one invocation does but has the environment twin %s: mark it with perInvocation",
					c.CommandPath(), f.Name, envName(f.Name))
			case marked && !named:
				t.Errorf("%s --%s is marked per invocation: add it to perInvocationFlags, or drop the mark", c.CommandPath(), f.Name)
			case c != root && !agent && !marked && !slices.Contains(oneShotConfig, f.Name):
				t.Errorf("%s runs once, yet its --%s has the environment twin %s: mark it with perInvocation",
					c.CommandPath(), f.Name, envName(f.Name))
			}
			if marked && noEnv(f) == false {
				t.Errorf("%s --%s: marked, yet noEnv says it has a twin", c.CommandPath(), f.Name)
			}
		}
		c.LocalNonPersistentFlags().VisitAll(check)
		c.PersistentFlags().VisitAll(check)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

func TestApplyEnvSkipsPerInvocationFlags(t *testing.T) {
	t.Setenv("HEMOSTAT_FOLLOW", "true")
	t.Setenv("HEMOSTAT_LIMIT", "abc")
	t.Setenv("HEMOSTAT_OUTPUT", "yaml")
	c := newAuditCmd(testDeps())
	if err := applyEnv(c, &bytes.Buffer{}); err != nil {
		t.Fatalf("applyEnv: %v", err)
	}
	for _, name := range []string{"follow", "limit", "output"} {
		if f := c.Flags().Lookup(name); f.Value.String() != f.DefValue {
			t.Errorf("--%s = %s from the environment, want its default %s", name, f.Value, f.DefValue)
		}
	}
}

// sharedMeaning are the flags several agents define with one meaning: hemostat run sets each on all of them.
var sharedMeaning = []string{"claim-idle", "max-deliveries", "stream-max-len"}

// TestRunFlagsHaveOneMeaning lists every flag of run: a name several agents define must mean the same in
// each (listed in sharedMeaning, same usage and default); anything else is two settings behind one name.
func TestRunFlagsHaveOneMeaning(t *testing.T) {
	run := newRunCmd(testDeps())
	found := map[string]bool{}
	run.Flags().VisitAll(func(f *pflag.Flag) {
		if replacedBy(f) != "" {
			t.Errorf("run has --%s, a deprecated alias: its meaning differs between agents", f.Name)
		}
		fo, ok := f.Value.(*fanout)
		if !ok {
			return
		}
		found[f.Name] = true
		if !slices.Contains(sharedMeaning, f.Name) {
			t.Errorf("--%s feeds a setting of each of %v: give each agent's its own name, or add it to sharedMeaning if it means the same",
				f.Name, fo.owners)
			return
		}
		for i, other := range fo.flags[1:] {
			first := fo.flags[0]
			if other.Usage != first.Usage || other.DefValue != first.DefValue || other.Value.Type() != first.Value.Type() {
				t.Errorf("--%s means %q (default %s) in %s but %q (default %s) in %s", f.Name, first.Usage, first.DefValue,
					fo.owners[0], other.Usage, other.DefValue, fo.owners[i+1])
			}
		}
	})
	for _, name := range sharedMeaning {
		if !found[name] {
			t.Errorf("--%s is no longer shared by several agents: drop it from sharedMeaning", name)
		}
	}
	// The two pools --workers used to set both of, each with its own name and its own default in the help.
	for name, want := range map[string]int{"sample-workers": monitor.DefaultOptions().Workers, "respond-workers": respond.DefaultWorkers} {
		f := run.Flags().Lookup(name)
		if f == nil || f.DefValue != strconv.Itoa(want) {
			t.Errorf("run --%s = %v, want a flag defaulting to %d", name, f, want)
		}
	}
	if run.Flags().Lookup("workers") != nil {
		t.Error("run still has --workers")
	}
}

// TestEveryCommandHasExamples: every command shows how it is used, like gh's and kubectl's.
func TestEveryCommandHasExamples(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.IsAdditionalHelpTopicCommand() {
			return
		}
		if strings.TrimSpace(c.Example) == "" {
			t.Errorf("%s has no Example", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(NewRootCmd(testDeps()))
}

func TestIndentWriter(t *testing.T) {
	var b bytes.Buffer
	w := &indentWriter{w: &b}
	for _, p := range []string{`{"a":1}` + "\n" + `{"b":`, `[2]}` + "\n", "not json\n"} {
		if _, err := w.Write([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	want := "{\n  \"a\": 1\n}\n{\n  \"b\": [\n    2\n  ]\n}\nnot json\n"
	if got := b.String(); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestOutputFormatsAreTheSameEverywhere: every -o offers the same names, text or table by default, then
// json and jsonl (the README's promise), so a script can ask any command for JSON the same way.
func TestOutputFormatsAreTheSameEverywhere(t *testing.T) {
	n := 0
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if f := c.LocalFlags().Lookup("output"); f != nil {
			n++
			got := f.Annotations[annChoices]
			if len(got) != 3 || (got[0] != formatText && got[0] != formatTable) || got[1] != formatJSON || got[2] != formatJSONL {
				t.Errorf("%s -o offers %v, want [text|table json jsonl]", c.CommandPath(), got)
			}
			if f.Shorthand != "o" || f.DefValue != got[0] {
				t.Errorf("%s --output: shorthand %q, default %q", c.CommandPath(), f.Shorthand, f.DefValue)
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(NewRootCmd(testDeps()))
	if n < 10 {
		t.Errorf("only %d commands have -o: the walk is broken", n)
	}
}
