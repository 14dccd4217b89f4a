package analyze

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/hemostat/hemostat/pkg/event"
)

// FuzzAnalyzeAlert runs what the analyzer does with an entry of the health_alert stream, anyone's bytes:
// decode, decide by the rules, answer. It never panics; an alert that decodes gets an answer that is a valid
// envelope on the stream its decision names (a request on its host's, never without a host), and the rules
// never choose an action the container's labels forbid.
func FuzzAnalyzeAlert(f *testing.F) {
	for _, class := range event.Classes {
		e, _ := event.New("monitor", "node-a", "node-a/web-1/"+class, "", &event.ContainerUnhealthy{ContainerID: "abc",
			ContainerName: "web-1", Class: class, Severity: "critical", ExitCode: 1,
			Labels:    map[string]string{"hemostat.actions": "restart,scale", "com.docker.swarm.service.name": "api"},
			Anomalies: []event.Anomaly{{Type: "cpu", Severity: "warning", Threshold: 80, Actual: 95}}})
		b, _ := json.Marshal(e)
		f.Add(b, uint8(0))
	}
	hostless, _ := event.New("monitor", "", "", "", &event.ContainerUnhealthy{ContainerID: "abc", ContainerName: "web-1",
		Class: event.ClassCrashed, Severity: "critical", ExitCode: 1})
	b, _ := json.Marshal(hostless)
	f.Add(b, uint8(0))
	f.Add([]byte(`{"id":"x","event_type":"health_alert","data":{"container_name":"\u001b[2J","class":"crashed"}}`), uint8(1))
	f.Add([]byte(`{"data":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`), uint8(2))
	f.Fuzz(func(t *testing.T, raw []byte, oom uint8) {
		env, err := event.Decode(raw)
		if err != nil {
			return
		}
		al, err := event.DecodeData[event.ContainerUnhealthy](env)
		if err != nil {
			return
		}
		ref := alertRef{env: env, alert: al, incident: event.IncidentKey(env.Host, al.ContainerName, al.Class)}
		d := Decide(al, Facts{OOMRepeats: int(oom % 3)})
		if !ActionAllowed(al.Labels, d.Action) {
			t.Fatalf("rules chose %s, which hemostat.actions=%q forbids", d.Action, al.Labels["hemostat.actions"])
		}
		out, stream, err := answer(ref, d, 0)
		if err != nil {
			return // an alert the answer cannot carry (its name empty, say) is refused, not answered
		}
		if _, ok := event.RemediationNeededHost(stream); !d.FalseAlarm && !ok {
			t.Fatalf("a request answered on %s, no host's request stream", stream)
		}
		if want := map[bool]string{true: event.StreamFalseAlarm, false: event.RemediationNeededStream(env.Host)}[d.FalseAlarm]; stream != want {
			t.Fatalf("answer on %s, want %s", stream, want)
		}
		b, err := json.Marshal(out)
		if err != nil {
			t.Fatal(err)
		}
		back, err := event.Decode(b)
		if err != nil {
			t.Fatalf("the answer does not decode: %v\n%s", err, b)
		}
		if _, err := back.Payload(); err != nil {
			t.Fatalf("the answer is invalid: %v\n%s", err, b)
		}
	})
}

// FuzzVerdictNeverWidens is item 0 of the trust boundaries as a property: whatever a model answers
// (anyone's logs are in its prompt), the decision's action is one the model may choose for the class and
// the labels, and stop, start, cleanup and exec only when hemostat.llm_actions names them.
func FuzzVerdictNeverWidens(f *testing.F) {
	f.Add([]byte(`{"root_cause":"x","failure_class":"cpu_saturated","action":"stop","confidence":0.99,"evidence":[],"is_false_alarm":false}`),
		uint8(4), "", "")
	f.Add([]byte(`{"root_cause":"x","failure_class":"crashed","action":"exec","confidence":1,"evidence":["rm -rf /"],"is_false_alarm":true}`),
		uint8(0), "exec", "restart,exec")
	f.Add([]byte("```json\n{\"root_cause\":\"x\",\"failure_class\":\"memory_leak\",\"action\":\"scale\",\"confidence\":0.9,\"evidence\":[],\"is_false_alarm\":false}\n```"),
		uint8(6), "stop", "")
	f.Fuzz(func(t *testing.T, raw []byte, class uint8, llmActions, actions string) {
		labels := map[string]string{}
		if llmActions != "" {
			labels["hemostat.llm_actions"] = llmActions
		}
		if actions != "" {
			labels["hemostat.actions"] = actions
		}
		c := event.Classes[int(class)%len(event.Classes)]
		allowed := AllowedActions(c, labels)
		v, err := ParseVerdict(raw)
		if err != nil {
			return
		}
		d := v.Apply("llm:openai:m", 0.7, allowed)
		if !slices.Contains(allowed, d.Action) {
			t.Fatalf("decision %s is outside %v", d.Action, allowed)
		}
		if !ActionAllowed(labels, d.Action) {
			t.Fatalf("decision %s is forbidden by hemostat.actions=%q", d.Action, actions)
		}
		switch d.Action {
		case event.ActionStop, event.ActionStart, event.ActionCleanup, event.ActionExec:
			if !slices.ContainsFunc(strings.Split(llmActions, ","), func(s string) bool {
				return strings.EqualFold(strings.TrimSpace(s), d.Action)
			}) {
				t.Fatalf("a model chose %s without hemostat.llm_actions naming it (%q)", d.Action, llmActions)
			}
		}
		if d.Proposed != "" && (d.Action != event.ActionNone || d.Proposed != v.Action) {
			t.Fatalf("a refused proposal must escalate and keep what was proposed: %+v", d)
		}
	})
}
