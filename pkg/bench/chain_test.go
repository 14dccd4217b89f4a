package bench_test

import (
	"context"
	"testing"

	"github.com/hemostat/hemostat/pkg/bench"
	"github.com/hemostat/hemostat/pkg/docker"
)

// chainSections measures hemostat past sampling: detection latency, alert to restart request, throughput
// through analyze and respond, and the resident memory of hemostat run. Each is an extension point: a
// function that returns its section, or a TODO section saying what it will measure and why it does not yet.
func chainSections(ctx context.Context, t *testing.T, cfg config, dc *docker.Client) []bench.Section {
	return []bench.Section{
		detectionLatency(ctx, t, cfg, dc),
		alertToRestart(ctx, t, cfg),
		throughput(ctx, t, cfg),
		residentMemory(ctx, t, cfg, dc),
	}
}

// todo is the section of a measurement not implemented yet.
func todo(title, what, why string) bench.Section {
	return bench.Section{Title: title, Notes: []string{"TODO, not measured yet: " + what, why}}
}

// detectionLatency is Docker's event time to the health_alert entry on the bus, for a crash, an OOM kill
// and an unhealthy container (target p99 under 150 ms).
//
// TODO(issue 9): run pkg/monitor in-process against real containers with a bus on real Redis.
func detectionLatency(_ context.Context, _ *testing.T, _ config, _ *docker.Client) bench.Section {
	return todo("2. Detection latency (Docker event time → health_alert on the bus)",
		"crash, OOM kill and unhealthy, p50/p95/p99 against the target p99 < 150 ms.",
		"needs the monitor running in-process against real containers and a bus on real Redis.")
}

// alertToRestart is a health_alert on the bus to the restart request reaching the engine, through
// analyze (rules) and respond, Docker's own restart time excluded (target p99 under 25 ms).
//
// TODO(issue 9): analyze and respond in-process on real Redis, respond with a recording runtime.
func alertToRestart(_ context.Context, _ *testing.T, _ config) bench.Section {
	return todo("3. health_alert → restart request (analyze rules + respond)",
		"p50/p95/p99 from the health_alert entry to the recorded restart call, against the target p99 < 25 ms.",
		"needs the analyze and respond agents in-process with a recording runtime.")
}

// throughput is the sustained rate of health alerts through analyze and respond, none lost (target
// 20,000 events/s).
//
// TODO(issue 9): publish N alerts, count the remediation_complete entries and the dead letters.
func throughput(_ context.Context, _ *testing.T, _ config) bench.Section {
	return todo("4. Throughput through analyze and respond",
		"events/s from N published health_alerts to N remediation_complete, none lost, against 20,000 events/s.",
		"needs the analyze and respond agents in-process on real Redis.")
}

// residentMemory is the VmRSS of a `hemostat run` subprocess watching the fleet after HEMOSTAT_BENCH_SOAK
// (target under 35 MB at 100 containers).
//
// TODO(issue 9): build the binary, run `hemostat run --redis-url <test redis>`, read /proc/<pid>/status.
func residentMemory(_ context.Context, _ *testing.T, cfg config, _ *docker.Client) bench.Section {
	return todo("5. Resident memory of hemostat run",
		"VmRSS of `hemostat run` watching the fleet after "+cfg.soak.String()+" (HEMOSTAT_BENCH_SOAK), against 35 MB at 100 containers.",
		"`hemostat run` is not implemented yet (cmd/run.go is a stub).")
}
