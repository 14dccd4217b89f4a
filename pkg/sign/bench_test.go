package sign_test

import (
	"testing"

	"github.com/hemostat/hemostat/pkg/event"
)

// BenchmarkSignVerify measures what signing costs one envelope end to end: the publisher's Sign and the
// consumer's Verify of a typical remediation request (about 500 bytes).
func BenchmarkSignVerify(b *testing.B) {
	kr := mustParse(b, "new:"+secretB+",old:"+secretA)
	env, err := event.New("analyze", "node-a", "node-a/web-1/crashed", "0193a1b2-0000-7000-8000-000000000000", &event.RemediationNeeded{
		Container: "web-1", ContainerID: "4f1c0e3a9b2d", Action: event.ActionRestart, Reason: "exit code 137 three times in five minutes",
		Confidence: 0.92, AnalysisMethod: "rules", RootCause: "the process is killed at start", Class: event.ClassCrashed,
		Evidence: []string{"exit code 137", "restart_count 4", "oom_killed false"}})
	if err != nil {
		b.Fatal(err)
	}
	raw, err := env.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		mac := kr.Sign(event.StreamRemediationNeeded, raw)
		if err := kr.Verify(event.StreamRemediationNeeded, raw, mac); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(raw)), "envelope_bytes")
}
