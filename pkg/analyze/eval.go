package analyze

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hemostat/hemostat/pkg/analyze/llm"
	"github.com/hemostat/hemostat/pkg/event"
)

// builtinFixtures is the evaluation set shipped in the binary (the same files the tests replay).
//
//go:embed testdata/eval/*.json
var builtinFixtures embed.FS

// Fixture is one recorded incident with the answer an analyzer should give.
type Fixture struct {
	Name        string                   `json:"name"`
	Description string                   `json:"description"`
	Host        string                   `json:"host"`
	Alert       event.ContainerUnhealthy `json:"alert"`
	Inspect     *InspectSummary          `json:"inspect,omitempty"`
	Samples     []Sample                 `json:"samples,omitempty"`
	Logs        []string                 `json:"logs,omitempty"`
	History     struct {
		OOMKillsWithinWindow int `json:"oom_kills_within_window"`
	} `json:"history"`
	Expected struct {
		Class      string `json:"class"`
		Action     string `json:"action"`
		FalseAlarm bool   `json:"false_alarm"`
	} `json:"expected"`
	// LLMOnly marks cases the rules cannot get right (the answer is in the logs): they are scored but
	// do not fail a rules run.
	LLMOnly bool `json:"llm_only"`
}

// LoadFixtures reads every *.json fixture in dir of fsys, sorted by file name, validating each alert.
func LoadFixtures(fsys fs.FS, dir string) ([]Fixture, error) {
	names, err := fs.Glob(fsys, path.Join(dir, "*.json"))
	if err != nil {
		return nil, fmt.Errorf("list fixtures in %s: %w", dir, err)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no *.json fixtures in %s", dir)
	}
	slices.Sort(names)
	out := make([]Fixture, 0, len(names))
	for _, n := range names {
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, fmt.Errorf("read fixture %s: %w", n, err)
		}
		var f Fixture
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			return nil, fmt.Errorf("decode fixture %s: %w", n, err)
		}
		if err := f.Alert.Validate(); err != nil {
			return nil, fmt.Errorf("fixture %s: alert: %w", n, err)
		}
		if f.Name == "" {
			f.Name = strings.TrimSuffix(path.Base(n), ".json")
		}
		if f.Host == "" {
			f.Host = "eval"
		}
		if !slices.Contains(event.Classes, f.Expected.Class) || !slices.Contains(event.Actions, f.Expected.Action) {
			return nil, fmt.Errorf("fixture %s: expected class %q and action %q must be known", n, f.Expected.Class, f.Expected.Action)
		}
		out = append(out, f)
	}
	return out, nil
}

// BuiltinFixtures returns the evaluation set shipped in the binary.
func BuiltinFixtures() ([]Fixture, error) { return LoadFixtures(builtinFixtures, "testdata/eval") }

// EvalOptions configure an evaluation run.
type EvalOptions struct {
	LLM           llm.Provider  // nil: rules only
	Timeout       time.Duration // per case; default 10s
	MinConfidence float64
	OOMWindow     time.Duration
}

// CaseResult is the outcome of one fixture.
type CaseResult struct {
	Name     string        `json:"name"`
	LLMOnly  bool          `json:"llm_only,omitempty"`
	Expected string        `json:"expected"` // class/action or class/false_alarm
	Got      string        `json:"got"`
	Decision Decision      `json:"decision"`
	Pass     bool          `json:"pass"`
	Duration time.Duration `json:"duration_ns"`
}

// Report is the outcome of an evaluation run.
type Report struct {
	Method  string       `json:"method"`
	Results []CaseResult `json:"results"`
	Passed  int          `json:"passed"`
	Total   int          `json:"total"`
	// RulesPassed and RulesTotal count the cases that are not LLM-only.
	RulesPassed int `json:"rules_passed"`
	RulesTotal  int `json:"rules_total"`
}

// Score is the fraction of cases passed.
func (r Report) Score() float64 {
	if r.Total == 0 {
		return 0
	}
	return float64(r.Passed) / float64(r.Total)
}

// Evaluate replays the fixtures through the rules or, with an LLM, through the model (the rules decide
// when its answer is invalid or late, as in decide mode, but for every class).
func Evaluate(ctx context.Context, fixtures []Fixture, o EvalOptions) Report {
	if o.Timeout <= 0 {
		o.Timeout = defaultLLMTimeout
	}
	rep := Report{Method: MethodRules}
	if o.LLM != nil {
		rep.Method = o.LLM.Method()
	}
	for _, f := range fixtures {
		start := time.Now()
		al := f.Alert
		d := Decide(&al, Facts{OOMRepeats: f.History.OOMKillsWithinWindow, OOMWindow: o.OOMWindow, MinConfidence: o.MinConfidence})
		if o.LLM != nil {
			d = evalLLM(ctx, o, f, d)
		}
		res := CaseResult{Name: f.Name, LLMOnly: f.LLMOnly, Expected: outcome(f.Expected.Class, f.Expected.Action, f.Expected.FalseAlarm),
			Got: outcome(d.Class, d.Action, d.FalseAlarm), Decision: d, Duration: time.Since(start)}
		res.Pass = res.Expected == res.Got
		rep.Total++
		if res.Pass {
			rep.Passed++
		}
		if !f.LLMOnly {
			rep.RulesTotal++
			if res.Pass {
				rep.RulesPassed++
			}
		}
		rep.Results = append(rep.Results, res)
	}
	return rep
}

func evalLLM(ctx context.Context, o EvalOptions, f Fixture, rules Decision) Decision {
	al := f.Alert
	c := Case{Host: f.Host, Incident: event.IncidentKey(f.Host, al.ContainerName, al.Class), Alert: &al,
		Inspect: f.Inspect, Samples: f.Samples, Rules: rules}
	if f.History.OOMKillsWithinWindow > 0 {
		c.History = map[string]string{"oom_kills_within_window": fmt.Sprint(f.History.OOMKillsWithinWindow)}
	}
	r := Redactor(f.Inspect)
	c.Logs = r.Lines(f.Logs)
	cctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	v, err := Ask(cctx, o.LLM, c, r)
	if err != nil {
		rules.LLMError = err.Error()
		return rules
	}
	return v.Apply(o.LLM.Method(), o.MinConfidence, AllowedActions(al.Class, al.Labels))
}

func outcome(class, action string, falseAlarm bool) string {
	if falseAlarm {
		return class + "/false_alarm"
	}
	return class + "/" + action
}

// Write prints the per-case results and the score as a table.
func (r Report) Write(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RESULT\tCASE\tEXPECTED\tGOT\tMETHOD\tCONFIDENCE\tNOTE")
	for _, c := range r.Results {
		res := "pass"
		if !c.Pass {
			res = "FAIL"
		}
		name := c.Name
		if c.LLMOnly {
			name += " (llm)"
		}
		note := c.Decision.LLMError
		if note == "" && !c.Pass {
			note = c.Decision.Reason
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.2f\t%s\n", res, name, c.Expected, c.Got, c.Decision.Method, c.Decision.Confidence, clip(note, 80))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\nscore %d/%d (%.1f%%) with %s; rules-expected cases %d/%d\n",
		r.Passed, r.Total, 100*r.Score(), r.Method, r.RulesPassed, r.RulesTotal)
	return err
}
