package analyze

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hemostat/hemostat/pkg/event"
)

func alertOf(class string, mod ...func(*event.ContainerUnhealthy)) *event.ContainerUnhealthy {
	a := &event.ContainerUnhealthy{ContainerID: "c0ffee", ContainerName: "web-1", Image: "web:1", Status: "running",
		Class: class, ExitCode: 1, HealthStatus: "unhealthy"}
	for _, m := range mod {
		m(a)
	}
	return a
}

func labels(kv ...string) func(*event.ContainerUnhealthy) {
	return func(a *event.ContainerUnhealthy) {
		a.Labels = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			a.Labels[kv[i]] = kv[i+1]
		}
	}
}

func anomaly(typ string, threshold, actual float64) func(*event.ContainerUnhealthy) {
	return func(a *event.ContainerUnhealthy) {
		a.Anomalies = append(a.Anomalies, event.Anomaly{Type: typ, Severity: "warning", Threshold: threshold, Actual: actual})
	}
}

func TestRulesCoverEveryClass(t *testing.T) {
	var got []string
	for _, r := range Rules() {
		got = append(got, r.Class)
	}
	if diff := cmp.Diff(event.Classes, got); diff != "" {
		t.Errorf("Rules() classes mismatch (-want +got):\n%s", diff)
	}
	for _, r := range Rules() {
		d := Decide(alertOf(r.Class, anomaly("cpu", 85, 97), anomaly("memory", 80, 93)), Facts{})
		if d.Action != r.Action || d.Confidence != r.Confidence {
			t.Errorf("Decide(%s) = %s %.2f, table says %s %.2f", r.Class, d.Action, d.Confidence, r.Action, r.Confidence)
		}
	}
	md := RulesMarkdown()
	for _, c := range event.Classes {
		if !strings.Contains(md, "`"+c+"`") {
			t.Errorf("RulesMarkdown() lacks %s:\n%s", c, md)
		}
	}
}

func TestDecide(t *testing.T) {
	const swarm = "com.docker.swarm.service.name"
	tests := []struct {
		name       string
		alert      *event.ContainerUnhealthy
		facts      Facts
		action     string
		confidence float64
		falseAlarm bool
		reason     string // substring
	}{
		{"crashed", alertOf("crashed"), Facts{}, "restart", 0.9, false, "exited with code 1"},
		{"crashed exit 0 is a false alarm", alertOf("crashed", func(a *event.ContainerUnhealthy) { a.ExitCode = 0 }), Facts{}, "restart", 0.3, true, "below minimum 0.70"},
		{"unhealthy", alertOf("unhealthy"), Facts{}, "restart", 0.85, false, "healthcheck failing"},
		{"unhealthy but healthy again", alertOf("unhealthy", func(a *event.ContainerUnhealthy) { a.HealthStatus = "healthy" }), Facts{}, "restart", 0.4, true, "passes again"},
		{"oom first", alertOf("oom_killed"), Facts{}, "restart", 0.8, false, "restart once"},
		{"oom repeat", alertOf("oom_killed"), Facts{OOMRepeats: 1}, "none", 0.95, false, "raise the memory limit"},
		{"oom repeat window in reason", alertOf("oom_killed"), Facts{OOMRepeats: 3, OOMWindow: 30 * time.Minute}, "none", 0.95, false, "within 30m0s"},
		{"crash loop escalates", alertOf("crash_loop", func(a *event.ContainerUnhealthy) { a.RestartCount = 7 }), Facts{}, "none", 0.95, false, "7 restarts"},
		{"cpu", alertOf("cpu_saturated", anomaly("cpu", 85, 97)), Facts{}, "restart", 0.75, false, "cpu saturated"},
		{"cpu swarm scales", alertOf("cpu_saturated", labels(swarm, "shop_web"), anomaly("cpu", 85, 97)), Facts{}, "scale", 0.75, false, "swarm service shop_web"},
		{"cpu at threshold acts", alertOf("cpu_saturated", anomaly("cpu_percent", 85, 85)), Facts{}, "restart", 0.75, false, ""},
		{"cpu under threshold is transient", alertOf("cpu_saturated", anomaly("cpu_percent", 85, 84.9)), Facts{}, "restart", 0.5, true, "transient"},
		{"memory pressure", alertOf("memory_pressure", anomaly("memory", 80, 91)), Facts{}, "restart", 0.75, false, "memory saturated"},
		{"memory pressure swarm", alertOf("memory_pressure", labels(swarm, "api")), Facts{}, "scale", 0.75, false, ""},
		{"memory pressure transient", alertOf("memory_pressure", anomaly("memory", 80, 60)), Facts{}, "restart", 0.5, true, "under its threshold"},
		{"memory leak", alertOf("memory_leak"), Facts{}, "restart", 0.8, false, "grows steadily"},
		{"memory leak swarm", alertOf("memory_leak", labels(swarm, "api")), Facts{}, "scale", 0.8, false, ""},
		{"min confidence equal acts", alertOf("cpu_saturated"), Facts{MinConfidence: 0.75}, "restart", 0.75, false, ""},
		{"min confidence just above is false alarm", alertOf("cpu_saturated"), Facts{MinConfidence: 0.76}, "restart", 0.75, true, "confidence 0.75 below minimum 0.76"},
		{"min confidence applies to escalations", alertOf("crash_loop"), Facts{MinConfidence: 0.96}, "none", 0.95, true, "below minimum"},
		{"restart not allowed escalates", alertOf("crashed", labels("hemostat.actions", "stop, start")), Facts{}, "none", 0.9, false, `restart not allowed by hemostat.actions="stop, start"`},
		{"restart allowed by label", alertOf("crashed", labels("hemostat.actions", "Restart,stop")), Facts{}, "restart", 0.9, false, ""},
		{"swarm without scale falls back to restart", alertOf("cpu_saturated", labels(swarm, "api", "hemostat.actions", "restart")), Facts{}, "restart", 0.75, false, ""},
		{"swarm with neither escalates", alertOf("memory_leak", labels(swarm, "api", "hemostat.actions", "stop")), Facts{}, "none", 0.8, false, "scale not allowed"},
		{"empty actions label allows all", alertOf("crashed", labels("hemostat.actions", " ")), Facts{}, "restart", 0.9, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(tt.alert, tt.facts)
			if d.Action != tt.action || d.Confidence != tt.confidence || d.FalseAlarm != tt.falseAlarm {
				t.Errorf("Decide() = %s %.2f false_alarm=%v, want %s %.2f false_alarm=%v (reason %q)",
					d.Action, d.Confidence, d.FalseAlarm, tt.action, tt.confidence, tt.falseAlarm, d.Reason)
			}
			if !strings.Contains(d.Reason, tt.reason) {
				t.Errorf("Decide().Reason = %q, want it to contain %q", d.Reason, tt.reason)
			}
			if d.Method != MethodRules || d.Class != tt.alert.Class {
				t.Errorf("Decide() method %q class %q, want rules %q", d.Method, d.Class, tt.alert.Class)
			}
		})
	}
}

func TestAllowedActions(t *testing.T) {
	tests := []struct {
		name   string
		class  string
		labels map[string]string
		want   []string
	}{
		{"resource class", "cpu_saturated", nil, []string{"restart", "none"}},
		{"every class restarts at most", "crash_loop", nil, []string{"restart", "none"}},
		{"swarm service scales", "memory_leak", map[string]string{"com.docker.swarm.service.name": "api"}, []string{"restart", "scale", "none"}},
		{"no scale without swarm", "memory_leak", map[string]string{"hemostat.llm_actions": "scale"}, []string{"restart", "none"}},
		{"hemostat.actions narrows", "unhealthy", map[string]string{"hemostat.actions": "stop"}, []string{"none"}},
		{"llm_actions widens", "cpu_saturated", map[string]string{"hemostat.llm_actions": " Stop , exec,reboot"}, []string{"restart", "stop", "exec", "none"}},
		{"widened within hemostat.actions", "cpu_saturated", map[string]string{"hemostat.llm_actions": "stop,cleanup", "hemostat.actions": "restart,cleanup"},
			[]string{"restart", "cleanup", "none"}},
		{"unknown class escalates only", "gremlins", nil, []string{"none"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := AllowedActions(tt.class, tt.labels)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("AllowedActions() mismatch (-want +got):\n%s", diff)
			}
		})
	}
	// Without hemostat.llm_actions no class lets a model stop, start, clean up or exec.
	for _, class := range event.Classes {
		for _, l := range []map[string]string{nil, {"com.docker.swarm.service.name": "api"}} {
			for _, a := range AllowedActions(class, l) {
				if a == "stop" || a == "start" || a == "cleanup" || a == "exec" {
					t.Errorf("AllowedActions(%s, %v) offers %s to a model", class, l, a)
				}
			}
		}
	}
}

func BenchmarkDecide(b *testing.B) {
	alerts := []*event.ContainerUnhealthy{
		alertOf("crashed"), alertOf("oom_killed"), alertOf("cpu_saturated", anomaly("cpu", 85, 97)),
		alertOf("memory_leak", labels("com.docker.swarm.service.name", "api", "hemostat.actions", "scale,restart")),
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_ = Decide(alerts[i%len(alerts)], Facts{OOMRepeats: i % 2})
	}
}
