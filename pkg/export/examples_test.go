package export_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hemostat/hemostat/pkg/store/schema"
	dto "github.com/prometheus/client_model/go"
)

const examples = "../../examples"

var metricName = regexp.MustCompile(`\bhemostat_[a-z0-9_]+`)

// exported runs the scripted sequence and returns the exporter's metric families by name.
func exported(t *testing.T) map[string]dto.MetricType {
	t.Helper()
	e := open(t)
	if err := e.st.Agents.Heartbeat(context.Background(), schema.Agent{Kind: "monitor", Instance: "m1", Version: "v1"}, time.Now(), time.Minute); err != nil {
		t.Fatal(err)
	}
	n := e.script()
	e.start()
	eventually(t, 5*time.Second, func() bool { return e.exp.Processed() == int64(n) })
	fams, err := e.exp.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]dto.MetricType{}
	for _, f := range fams {
		out[f.GetName()] = f.GetType()
	}
	return out
}

// resolve maps a name used in PromQL to the family that serves it (histogram series carry suffixes).
func resolve(name string, fams map[string]dto.MetricType) (string, bool) {
	if _, ok := fams[name]; ok {
		return name, true
	}
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		base := strings.TrimSuffix(name, suf)
		if typ, ok := fams[base]; ok && base != name && typ == dto.MetricType_HISTOGRAM {
			return base, true
		}
	}
	return "", false
}

type panel struct {
	Title   string  `json:"title"`
	Type    string  `json:"type"`
	Panels  []panel `json:"panels"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

func TestGrafanaDashboardQueriesExportedMetrics(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(examples, "grafana", "hemostat.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard is not valid JSON: %v", err)
	}
	fams := exported(t)
	used := map[string]bool{}
	check := func(where, expr string) {
		names := metricName.FindAllString(expr, -1)
		if len(names) == 0 {
			t.Errorf("%s: query %q uses no hemostat metric", where, expr)
		}
		for _, n := range names {
			base, ok := resolve(n, fams)
			if !ok {
				t.Errorf("%s: %s is not exported (query %q)", where, n, expr)
			}
			used[base] = true
		}
	}
	var walk func([]panel)
	count := 0
	walk = func(ps []panel) {
		for _, p := range ps {
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			count++
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				check("panel "+p.Title, tg.Expr)
			}
		}
	}
	walk(dash.Panels)
	if count < 10 {
		t.Errorf("dashboard has %d panels", count)
	}
	for _, v := range dash.Templating.List {
		if q, ok := v.Query.(map[string]any); ok {
			check("variable "+v.Name, q["query"].(string))
		}
	}
	// And the other way round: every hemostat metric is on the dashboard.
	var missing []string
	for name := range fams {
		if strings.HasPrefix(name, "hemostat_") && !used[name] {
			missing = append(missing, name)
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("metrics not shown on the dashboard: %v", missing)
	}
}

func TestPrometheusRulesUseExportedMetrics(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(examples, "prometheus", "rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	fams := exported(t)
	var exprs int
	for i, line := range strings.Split(string(raw), "\n") {
		if !strings.Contains(line, "expr:") {
			continue
		}
		exprs++
		names := metricName.FindAllString(line, -1)
		if len(names) == 0 {
			t.Errorf("rules.yml:%d: expression uses no hemostat metric", i+1)
		}
		for _, n := range names {
			if _, ok := resolve(n, fams); !ok {
				t.Errorf("rules.yml:%d: %s is not exported", i+1, n)
			}
		}
	}
	if exprs == 0 {
		t.Fatal("no rules found")
	}
}

func TestPromtoolCheckRulesAndConfig(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed")
	}
	dir := filepath.Join(examples, "prometheus")
	for _, args := range [][]string{{"check", "rules", "rules.yml"}, {"check", "config", "prometheus.yml"}, {"test", "rules", "rules_test.yml"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			cmd := exec.Command(promtool, args...)
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("promtool %v: %v\n%s", args, err, out)
			}
		})
	}
}
