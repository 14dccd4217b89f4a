package event_test

import (
	"testing"
	"time"

	"github.com/hemostat/hemostat/pkg/event"
)

// benchAlert is a health alert as the monitor publishes it: a crash with labels and two anomalies.
func benchAlert(b *testing.B) []byte {
	b.Helper()
	p := &event.ContainerUnhealthy{ContainerID: "4f1c2a9b8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b", ContainerName: "web-1",
		Image: "registry.example.com/team/web:1.4.2", Status: "exited", Class: event.ClassCrashed, ExitCode: 1,
		Labels:    map[string]string{"com.docker.compose.project": "shop", "com.docker.compose.service": "web", "hemostat.actions": "restart,stop"},
		Anomalies: []event.Anomaly{{Type: "cpu", Severity: "warning", Threshold: 85, Actual: 97}, {Type: "memory", Severity: "warning", Threshold: 80, Actual: 90}},
		EventTime: time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)}
	env, err := event.New("monitor", "node-a", event.IncidentKey("node-a", "web-1", event.ClassCrashed), "", p)
	if err != nil {
		b.Fatal(err)
	}
	raw, err := env.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

// BenchmarkDecode is the consumers' cost per entry: the envelope and its typed, validated payload.
//
//	go test -run '^$' -bench Decode -benchmem ./pkg/event/
func BenchmarkDecode(b *testing.B) {
	raw := benchAlert(b)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		env, err := event.Decode(raw)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := event.DecodeData[event.ContainerUnhealthy](env); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNewMarshal is the producers' cost per entry: the payload encoded into an envelope and the
// envelope's JSON.
func BenchmarkNewMarshal(b *testing.B) {
	env, err := event.Decode(benchAlert(b))
	if err != nil {
		b.Fatal(err)
	}
	p, _ := env.Payload()
	b.ReportAllocs()
	for b.Loop() {
		e, err := event.New("monitor", "node-a", "node-a/web-1/crashed", "", p)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := e.Marshal(); err != nil {
			b.Fatal(err)
		}
	}
}
