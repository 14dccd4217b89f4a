package event_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

func sampleAlert() *event.ContainerUnhealthy {
	return &event.ContainerUnhealthy{
		ContainerID: "abc123", ContainerName: "web-1", Image: "web:1", Status: "exited", Class: event.ClassCrashed,
		Metrics:   event.Metrics{CPUPercent: 12.5, MemoryPercent: 40, MemoryUsage: 1 << 20, MemoryLimit: 4 << 20},
		Anomalies: []event.Anomaly{{Type: "exit_code", Severity: event.SeverityCritical, Threshold: 0, Actual: 3}},
		ExitCode:  3, RestartCount: 1, EventTime: time.Date(2026, 11, 28, 10, 30, 45, 0, time.UTC),
	}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	want := sampleAlert()
	env, err := event.New("monitor", "node-a", event.IncidentKey("node-a", "web-1", event.ClassCrashed), "", want)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := event.Decode(raw)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if got.ID != env.ID || got.EventType != event.TypeContainerUnhealthy || got.Incident != "node-a/web-1/crashed" || got.Schema != event.Schema {
		t.Fatalf("envelope fields lost: %+v", got)
	}
	p, err := event.DecodeData[event.ContainerUnhealthy](got)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, p); diff != "" {
		t.Errorf("payload (-want +got):\n%s", diff)
	}
	if _, err := event.DecodeData[event.FalseAlarm](got); err == nil {
		t.Error("decoding a container_unhealthy as false_alarm succeeded")
	}
}

func TestIDsAreSortable(t *testing.T) {
	prev := event.NewID()
	for range 100 {
		id := event.NewID()
		if id <= prev {
			t.Fatalf("id %s not after %s", id, prev)
		}
		prev = id
	}
}

func TestDecodeErrors(t *testing.T) {
	valid := `{"id":"1","schema":1,"event_type":"container_unhealthy","timestamp":"2026-11-28T10:30:45Z","agent":"monitor","host":"h","incident":"h/web/crashed","data":{"container_id":"c","container_name":"web","class":"crashed","metrics":{"cpu_percent":1}}}`
	tests := []struct {
		name, in, field string
	}{
		{"not json", `hello`, ""},
		{"truncated", `{"id":"1"`, ""},
		{"array", `[1,2]`, ""},
		{"missing id", strings.Replace(valid, `"id":"1",`, "", 1), "id"},
		{"missing type", strings.Replace(valid, `"event_type":"container_unhealthy",`, "", 1), "event_type"},
		{"missing timestamp", strings.Replace(valid, `"timestamp":"2026-11-28T10:30:45Z",`, "", 1), "timestamp"},
		{"id wrong type", strings.Replace(valid, `"id":"1"`, `"id":1`, 1), "id"},
		{"schema from the future", strings.Replace(valid, `"schema":1`, `"schema":99`, 1), "schema"},
		{"missing data", `{"id":"1","event_type":"x","timestamp":"2026-11-28T10:30:45Z"}`, "data"},
		{"cpu as string", strings.Replace(valid, `"cpu_percent":1`, `"cpu_percent":"high"`, 1), "data.metrics.cpu_percent"},
		{"unknown class", strings.Replace(valid, `"class":"crashed"`, `"class":"sad"`, 1), "data.class"},
		{"missing container_name", strings.Replace(valid, `"container_name":"web",`, "", 1), "data.container_name"},
		{"confidence as string", `{"id":"1","event_type":"remediation_needed","timestamp":"2026-11-28T10:30:45Z","data":{"container":"web","action":"restart","confidence":"0.9"}}`, "data.confidence"},
		{"confidence out of range", `{"id":"1","event_type":"remediation_needed","timestamp":"2026-11-28T10:30:45Z","data":{"container":"web","action":"restart","confidence":1.5}}`, "data.confidence"},
		{"unknown action", `{"id":"1","event_type":"remediation_needed","timestamp":"2026-11-28T10:30:45Z","data":{"container":"web","action":"reboot","confidence":0.9}}`, "data.action"},
		{"bad status", `{"id":"1","event_type":"remediation_complete","timestamp":"2026-11-28T10:30:45Z","data":{"container":"web","action":"restart","result":{"status":"great"}}}`, "data.result.status"},
		{"huge field", strings.Replace(valid, `"container_name":"web"`, `"container_name":"`+strings.Repeat("w", event.MaxEnvelopeBytes)+`"`, 1), ""},
		{"deep JSON", strings.Replace(valid, `"metrics":{"cpu_percent":1}`, `"metrics":`+strings.Repeat(`{"a":`, 20000)+`1`+strings.Repeat(`}`, 20000), 1), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := event.Decode([]byte(tt.in))
			var de *event.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("got %v, want a *DecodeError", err)
			}
			if !errors.Is(err, event.ErrMalformed) {
				t.Errorf("errors.Is(err, ErrMalformed) = false")
			}
			if de.Field != tt.field {
				t.Errorf("field = %q, want %q (%v)", de.Field, tt.field, err)
			}
		})
	}
	t.Run("brackets in strings do not count as depth", func(t *testing.T) {
		in := strings.Replace(valid, `"container_name":"web"`, `"container_name":"`+strings.Repeat(`[{\"`, 100)+`"`, 1)
		if _, err := event.Decode([]byte(in)); err != nil {
			t.Fatalf("got %v, want nil", err)
		}
	})
	t.Run("invalid UTF-8 decodes as replacement characters", func(t *testing.T) {
		e, err := event.Decode([]byte(strings.Replace(valid, `"container_name":"web"`, "\"container_name\":\"w\xff\xfe\"", 1)))
		if err != nil {
			t.Fatal(err)
		}
		if p, _ := event.DecodeData[event.ContainerUnhealthy](e); p == nil || p.ContainerName != "w\uFFFD\uFFFD" {
			t.Errorf("name = %q, want the invalid bytes replaced", p.ContainerName)
		}
	})
	t.Run("unknown fields tolerated", func(t *testing.T) {
		in := strings.Replace(valid, `"agent":"monitor"`, `"agent":"monitor","future":{"x":1}`, 1)
		in = strings.Replace(in, `"class":"crashed"`, `"class":"crashed","new_field":[1]`, 1)
		if _, err := event.Decode([]byte(in)); err != nil {
			t.Fatalf("got %v, want nil", err)
		}
	})
	t.Run("unknown event type decodes", func(t *testing.T) {
		in := strings.Replace(valid, `"event_type":"container_unhealthy"`, `"event_type":"something_new"`, 1)
		env, err := event.Decode([]byte(in))
		if err != nil {
			t.Fatalf("got %v, want nil", err)
		}
		if _, err := env.Payload(); err == nil {
			t.Error("payload of an unknown type decoded")
		}
	})
}

func TestPayloadJSONFieldNames(t *testing.T) {
	// Tools written against hemostat rely on these names (docs/architecture.md, the envelope).
	tests := []struct {
		p    event.Payload
		want []string
	}{
		{sampleAlert(), []string{"container_id", "container_name", "image", "status", "class", "metrics", "anomalies", "health_status", "exit_code", "restart_count", "event_time"}},
		{&event.RemediationNeeded{Container: "w", Action: "restart", Command: []string{"x"}, RootCause: "r", Evidence: []string{"e"}}, []string{"container", "container_id", "action", "reason", "confidence", "analysis_method", "root_cause", "evidence", "command"}},
		{&event.FalseAlarm{Container: "w"}, []string{"container", "reason", "confidence", "analysis_method"}},
		{&event.RemediationComplete{Container: "w", Action: "restart", Result: event.Result{Status: "success"}}, []string{"container", "action", "result", "dry_run", "reason", "confidence", "analysis_method", "verified", "duration_ms"}},
		{&event.ContainerRecovered{ContainerName: "w", Class: "crashed"}, []string{"container_id", "container_name", "class"}},
	}
	for _, tt := range tests {
		t.Run(tt.p.EventType(), func(t *testing.T) {
			b, _ := json.Marshal(tt.p)
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			for _, k := range tt.want {
				if _, ok := m[k]; !ok {
					t.Errorf("field %q missing in %s", k, b)
				}
			}
		})
	}
	b, _ := json.Marshal(sampleAlert().Metrics)
	for _, k := range []string{"cpu_percent", "memory_percent", "memory_usage", "memory_limit", "network_rx_bytes", "network_tx_bytes", "blkio_read_bytes", "blkio_write_bytes", "pids"} {
		if !strings.Contains(string(b), `"`+k+`"`) {
			t.Errorf("metrics field %q missing in %s", k, b)
		}
	}
}

func TestStreamFor(t *testing.T) {
	for _, typ := range []string{event.TypeContainerUnhealthy, event.TypeRemediationNeeded, event.TypeFalseAlarm, event.TypeRemediationComplete, event.TypeContainerRecovered} {
		s, err := event.StreamFor(typ, "node-a")
		if err != nil || !strings.HasPrefix(s, "hemostat:") {
			t.Errorf("StreamFor(%s) = %q, %v", typ, s, err)
		}
	}
	if _, err := event.StreamFor("nope", "node-a"); err == nil {
		t.Error("unknown type accepted")
	}
	if _, err := event.StreamFor(event.TypeRemediationNeeded, ""); err == nil {
		t.Error("a request without a host was given a stream")
	}
	a, _ := event.StreamFor(event.TypeRemediationNeeded, "node-a")
	b, _ := event.StreamFor(event.TypeRemediationNeeded, "node-b")
	if a != "hemostat:remediation_needed:node-a" || a == b {
		t.Errorf("request streams: node-a %q, node-b %q", a, b)
	}
}

func TestRemediationNeededStreams(t *testing.T) {
	for _, h := range []string{"node-a", "a:b", "web*", "x"} {
		got, ok := event.RemediationNeededHost(event.RemediationNeededStream(h))
		if !ok || got != h {
			t.Errorf("host of the stream of %q = %q, %v", h, got, ok)
		}
	}
	for _, s := range []string{event.StreamRemediationNeeded, event.StreamRemediationNeeded + ":", event.StreamHealthAlert, "hemostat:remediation_needed_x"} {
		if h, ok := event.RemediationNeededHost(s); ok {
			t.Errorf("%q taken for a request stream of %q", s, h)
		}
	}
	got := event.WorkStreamsWith([]string{"b", "a", "b", ""})
	want := []string{event.StreamHealthAlert, "hemostat:remediation_needed:a", "hemostat:remediation_needed:b",
		event.StreamRemediationComplete, event.StreamFalseAlarm, event.StreamContainerRecovered}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("WorkStreamsWith = %v, want %v", got, want)
	}
}

func TestKeysShareHashTag(t *testing.T) {
	for _, k := range []string{schema.LedgerKey(schema.Target("h", "web")), schema.RespondKeys("h", "web", false).Lease, schema.StatsKey(schema.Target("h", "web"))} {
		if !strings.Contains(k, "{h/web}") {
			t.Errorf("%s lacks the {h/web} hash tag", k)
		}
	}
}

func TestMarshalMatchesEncodingJSON(t *testing.T) {
	type plain event.Envelope // no methods: the reflective encoding
	envs := []event.Envelope{}
	base, _ := event.New("monitor", "node-a", "node-a/web-1/crashed", "", sampleAlert())
	envs = append(envs, base)
	odd := base
	odd.Host, odd.Incident, odd.Agent = "nöde <&> \"q\"", "a\\b\n\tc", "\u2028"
	envs = append(envs, odd)
	empty := base
	empty.Data = nil
	envs = append(envs, empty)
	for i, e := range envs {
		got, err := e.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(plain(e))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("case %d:\n got %s\nwant %s", i, got, want)
		}
	}
	bad := base
	bad.Data = json.RawMessage(`{"x":`)
	if _, err := bad.Marshal(); err == nil {
		t.Error("invalid data marshalled without error")
	}
}
