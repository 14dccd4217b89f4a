package dash

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/audit"
	"github.com/hemostat/hemostat/pkg/bus"
	"github.com/hemostat/hemostat/pkg/container"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/respond"
	"github.com/hemostat/hemostat/pkg/store/schema"
	"slices"
	"strings"
)

// t0 is the fixed "now" of the golden tests.
var t0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// fixture is a small but complete hemostat installation: two hosts, six containers, two open incidents,
// ledgers in every state, an audit trail, heartbeats and events. It is written to Redis exactly as the
// shared data contracts say (seed) and also turned into a Snapshot directly (snapshot) for view tests.
type fixture struct {
	now        time.Time
	containers []container.Summary
	samples    map[string]container.Sample
	histories  map[string]container.History
	ledgers    map[string]map[string]string
	shadows    map[string]map[string]string
	incidents  []fixtureIncident
	audit      []audit.Entry // oldest first, hash-chained
	agents     []fixtureAgent
	events     []event.Envelope // oldest first
}

// fixtureIncident is an open incident as the monitor and the analyzer write it: its key, its opening time
// (the open set's score) and its hash.
type fixtureIncident struct {
	ID       string
	OpenedMS int64
	Fields   map[string]string
}

// fixtureAgent is a heartbeat hash.
type fixtureAgent struct {
	Kind, Instance string
	Fields         map[string]string
}

func ms(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

func series(start, step float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		v := start + step*float64(i)
		v = min(max(v, 0), 100)
		out[i] = v
	}
	return out
}

func newFixture(now time.Time) fixture {
	f := fixture{
		now:       now,
		samples:   map[string]container.Sample{},
		histories: map[string]container.History{},
		ledgers:   map[string]map[string]string{},
		shadows:   map[string]map[string]string{},
	}
	type c struct {
		host, name, image, state, health, mode string
		cpu, mem                               float64
		watched                                bool
		labels                                 map[string]string
		exit, restarts                         int
		incidents                              []string
	}
	list := []c{
		{"node-a", "web-1", "nginx:1.27", "running", "unhealthy", "auto", 93.4, 41.2, true, nil, 0, 3, []string{"unhealthy"}},
		{"node-a", "api-1", "ghcr.io/acme/api:2.4", "running", "healthy", "auto", 12.5, 35.0, true, nil, 0, 0, nil},
		{"node-a", "worker-1", "acme/worker:7", "exited", "", "auto", 0, 0, true, nil, 137, 5, []string{"oom_killed"}},
		{"node-a", "db-1", "postgres:17", "running", "healthy", "observe", 22.0, 61.5, true, map[string]string{container.LabelMode: "observe"}, 0, 0, nil},
		{"node-b", "cache-1", "redis:7", "running", "", "suggest", 3.1, 12.0, true, map[string]string{container.LabelMode: "suggest"}, 0, 1, nil},
		{"node-b", "proxy-1", "traefik:3", "running", "healthy", "auto", 1.0, 5.5, false, map[string]string{container.LabelEnable: "false"}, 0, 0, nil},
	}
	for i, x := range list {
		s := container.Summary{
			ID: fmt.Sprintf("%02d3f9a8b7c6d5e4f30112233445566778899aabbccddeeff0011223344556677", i), Name: x.name, Host: x.host,
			Image: x.image, State: x.state, Health: x.health, ExitCode: x.exit, RestartCount: x.restarts,
			OOMKilled: x.name == "worker-1", StartedAt: now.Add(-2 * time.Hour), Labels: x.labels, Mode: x.mode,
			Watched: x.watched, Incidents: x.incidents, UpdatedAt: now.Add(-3 * time.Second),
		}
		f.containers = append(f.containers, s)
		target := s.Target()
		if x.state == "running" {
			f.samples[target] = container.Sample{
				Time: now.Add(-3 * time.Second), Source: "cgroup",
				Metrics: event.Metrics{CPUPercent: x.cpu, MemoryPercent: x.mem, MemoryUsage: uint64(x.mem / 100 * 512 * 1024 * 1024),
					MemoryLimit: 512 * 1024 * 1024, NetworkRxBytes: 123456789, NetworkTxBytes: 2345678, PIDs: 12},
			}
			f.histories[target] = container.History{
				CPU:    series(x.cpu-float64(i*5)-40, 2.5, 20),
				Memory: series(x.mem-10, 0.5, 20),
			}
		}
	}
	f.ledgers["node-a/web-1"] = map[string]string{
		"attempts": fmt.Sprintf("[%s,%s]", ms(now.Add(-20*time.Minute)), ms(now.Add(-5*time.Minute))), "backoff_step": "2",
		"next_allowed_ms": ms(now.Add(90 * time.Second)), "breaker": "closed", "breaker_until_ms": "0",
		"last_action": "restart", "last_action_ms": ms(now.Add(-5 * time.Minute)), "last_decision": "executed",
		"last_result": "success", "last_reason": "health check failing 3 times in a row", "healthy_since_ms": "0",
	}
	f.ledgers["node-a/worker-1"] = map[string]string{
		"attempts":     fmt.Sprintf("[%s,%s,%s]", ms(now.Add(-50*time.Minute)), ms(now.Add(-30*time.Minute)), ms(now.Add(-10*time.Minute))),
		"backoff_step": "3", "next_allowed_ms": ms(now.Add(-time.Minute)), "breaker": "open", "breaker_until_ms": ms(now.Add(40 * time.Minute)),
		"last_action": "restart", "last_action_ms": ms(now.Add(-10 * time.Minute)), "last_decision": "denied",
		"last_result": "denied", "last_reason": "circuit_open: 3 actions in the last hour",
	}
	f.shadows["node-b/cache-1"] = map[string]string{
		"attempts": fmt.Sprintf("[%s]", ms(now.Add(-15*time.Minute))), "backoff_step": "1",
		"next_allowed_ms": ms(now.Add(15 * time.Second)), "breaker": "closed", "last_action": "restart",
		"last_action_ms": ms(now.Add(-15 * time.Minute)), "last_decision": "dry_run", "last_result": "dry_run",
		"last_reason": "mode suggest: would restart",
	}
	web := event.IncidentKey("node-a", "web-1", event.ClassUnhealthy)
	worker := event.IncidentKey("node-a", "worker-1", event.ClassOOMKilled)
	f.incidents = []fixtureIncident{
		{ID: web, OpenedMS: now.Add(-6 * time.Minute).UnixMilli(), Fields: map[string]string{
			"state": "open", "class": event.ClassUnhealthy, "host": "node-a", "container": "web-1",
			"container_id": f.containers[0].ID, "opened_at": now.Add(-6 * time.Minute).Format(time.RFC3339Nano),
			"alert_id": "0193a1b2-web1-alert", "severity": event.SeverityCritical, "action": event.ActionRestart,
			"confidence": "0.9", "analysis_method": "rules", "reason": "health check failing 3 times in a row",
			"root_cause": "upstream timeout makes /healthz fail", "evidence": `["healthz: 503 x3","last restart 5m ago"]`,
			"decided_at": now.Add(-6*time.Minute + 40*time.Millisecond).Format(time.RFC3339Nano),
			// Restarted and verified 5 minutes ago; unhealthy again 4s later (a relapse): the follow-up waits
			// for the backoff.
			"condition": schema.ConditionFailing, "condition_since": now.Add(-5*time.Minute + 4*time.Second).Format(time.RFC3339Nano),
			"relapses": "1", "relapsed_at": now.Add(-5*time.Minute + 4*time.Second).Format(time.RFC3339Nano), "relapse_after_ms": "4000",
			"attempts": "1", "last_attempt_at": now.Add(-5 * time.Minute).Format(time.RFC3339Nano), "last_outcome": "success",
			"last_details": "restarted; running and healthy after 4s", "errors": "[]",
			"next_at": now.Add(90 * time.Second).Format(time.RFC3339Nano), "next_reason": "cooldown: next action allowed in 1m30s (backoff step 2)",
		}},
		{ID: worker, OpenedMS: now.Add(-2 * time.Minute).UnixMilli(), Fields: map[string]string{
			"state": "open", "class": event.ClassOOMKilled, "host": "node-a", "container": "worker-1",
			"container_id": f.containers[2].ID, "opened_at": now.Add(-2 * time.Minute).Format(time.RFC3339Nano),
			"alert_id": "0193a1b2-worker1-alert", "severity": event.SeverityCritical,
		}},
	}

	type a struct {
		ago                                         time.Duration
		host, name, class, action, decision, result string
		reason, method, err                         string
		conf                                        float64
		dry                                         bool
	}
	trail := []a{
		{50 * time.Minute, "node-a", "worker-1", "oom_killed", "restart", "executed", "success", "container exited with code 137 (OOM killed)", "rules", "", 0.95, false},
		{30 * time.Minute, "node-a", "worker-1", "oom_killed", "restart", "executed", "failed", "container exited with code 137 (OOM killed)", "rules", "verify: not running after 30s", 0.95, false},
		{20 * time.Minute, "node-a", "web-1", "unhealthy", "restart", "executed", "success", "health check failing 3 times in a row", "rules", "", 0.9, false},
		{15 * time.Minute, "node-b", "cache-1", "cpu_saturated", "restart", "dry_run", "dry_run", "mode suggest: would restart", "llm:anthropic:claude-haiku-4-5", "", 0.7, true},
		{10 * time.Minute, "node-a", "worker-1", "oom_killed", "restart", "denied", "denied", "circuit_open: 3 actions in the last hour", "rules", "", 0.95, false},
		{5 * time.Minute, "node-a", "web-1", "unhealthy", "restart", "executed", "success", "health check failing 3 times in a row", "rules", "", 0.9, false},
		{26 * time.Hour, "node-b", "cache-1", "cpu_saturated", "restart", "executed", "success", "an old one, outside the last 24 hours", "rules", "", 0.8, false},
	}
	// oldest first
	order := []int{6, 0, 1, 2, 3, 4, 5}
	prev := ""
	for n, i := range order {
		x := trail[i]
		e := audit.Entry{
			ID: fmt.Sprintf("0193a1b2-audit-%02d", n), Time: now.Add(-x.ago), Host: x.host, Container: x.name,
			Incident: event.IncidentKey(x.host, x.name, x.class), Action: x.action, Decision: x.decision, Result: x.result,
			Error: x.err, Reason: x.reason, Confidence: x.conf, AnalysisMethod: x.method, Actor: x.method,
			DurationMS: 1250, Verified: x.result == "success", DryRun: x.dry, PrevHash: prev, Seq: int64(n + 1),
		}
		if x.decision == "denied" {
			e.RetryAfterMS = (40 * time.Minute).Milliseconds()
		}
		if x.result == "success" {
			e.Details = "restarted; running and healthy after 4s"
		}
		e.Hash = e.ComputeHash()
		prev = e.Hash
		f.audit = append(f.audit, e)
	}

	f.agents = heartbeats(now, "node-a", "node-a-1", respond.Config{Host: "node-a"}.WithDefaults())

	env := func(at time.Time, agentKind, incident, cause string, p event.Payload) event.Envelope {
		e, err := event.New(agentKind, "node-a", incident, cause, p)
		if err != nil {
			panic(err)
		}
		e.Timestamp = at
		e.ID = fmt.Sprintf("0193a1b2-ev-%s-%d", p.EventType(), at.Unix()%1000)
		return e
	}
	alert := env(now.Add(-6*time.Minute), "monitor", web, "", &event.ContainerUnhealthy{
		ContainerID: f.containers[0].ID, ContainerName: "web-1", Image: "nginx:1.27", Status: "running", Class: event.ClassUnhealthy,
		Severity: event.SeverityCritical, HealthStatus: "unhealthy", RestartCount: 3, EventTime: now.Add(-6 * time.Minute),
		Metrics: event.Metrics{CPUPercent: 93.4, MemoryPercent: 41.2},
	})
	need := env(now.Add(-6*time.Minute+40*time.Millisecond), "analyze", web, alert.ID, &event.RemediationNeeded{
		Container: "web-1", ContainerID: f.containers[0].ID, Action: event.ActionRestart, Reason: "health check failing 3 times in a row",
		Confidence: 0.9, AnalysisMethod: "rules", Class: event.ClassUnhealthy,
	})
	done := env(now.Add(-5*time.Minute), "respond", web, need.ID, &event.RemediationComplete{
		Container: "web-1", Action: event.ActionRestart, Result: event.Result{Status: event.StatusSuccess, Details: "restarted, healthy after 4s"},
		Reason: "health check failing 3 times in a row", Confidence: 0.9, AnalysisMethod: "rules", Verified: true, DurationMS: 4200,
	})
	fa := env(now.Add(-4*time.Minute), "analyze", "node-a/api-1/cpu_saturated", "", &event.FalseAlarm{
		Container: "api-1", Reason: "CPU burst during a scheduled batch, back under the threshold", Confidence: 0.8, AnalysisMethod: "rules",
	})
	oom := env(now.Add(-2*time.Minute), "monitor", worker, "", &event.ContainerUnhealthy{
		ContainerID: f.containers[2].ID, ContainerName: "worker-1", Image: "acme/worker:7", Status: "exited", Class: event.ClassOOMKilled,
		Severity: event.SeverityCritical, ExitCode: 137, OOMKilled: true, RestartCount: 5, EventTime: now.Add(-2 * time.Minute),
	})
	rec := env(now.Add(-1*time.Minute), "monitor", "node-b/cache-1/cpu_saturated", "", &event.ContainerRecovered{
		ContainerID: f.containers[4].ID, ContainerName: "cache-1", Class: event.ClassCPUSaturated,
	})
	f.events = []event.Envelope{alert, need, done, fa, oom, rec}
	return f
}

// heartbeats are the monitor's, the analyzer's and the responder's heartbeats of one host; the responder
// publishes its policy.
func heartbeats(now time.Time, host, instance string, policy respond.Config) []fixtureAgent {
	var out []fixtureAgent
	for _, k := range []string{"monitor", "analyze", "respond"} {
		fields := map[string]string{
			"kind": k, "instance": instance, "version": "v0.1.0", "host": host,
			"started_at": now.Add(-time.Hour).Format(time.RFC3339), "last_heartbeat": now.Add(-2 * time.Second).Format(time.RFC3339Nano),
		}
		if k == "respond" {
			fields[schema.FieldPolicy] = respond.EncodePolicy(policy)
		}
		out = append(out, fixtureAgent{Kind: k, Instance: instance, Fields: fields})
	}
	return out
}

// newHealingFixture is one host whose open incidents are each at another point of the healing loop, as the
// responder records them: web-2 waits for its next attempt (a failed verification; its hemostat.backoff
// label shortens the backoff to 20s), api-2 is held by the blast radius, worker-2 gave up at the breaker,
// and cache-2 is healthy again and waits out the monitor's recovery hysteresis.
func newHealingFixture(now time.Time) fixture {
	f := fixture{now: now, samples: map[string]container.Sample{}, histories: map[string]container.History{},
		ledgers: map[string]map[string]string{}, shadows: map[string]map[string]string{}}
	at := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339Nano) }
	type c struct {
		name, state, health, class string
		exit                       int
		labels                     map[string]string
		opened                     time.Duration
		ledger, incident           map[string]string
	}
	const breakerOpened = "circuit_open: breaker opened after 3 actions within 1h0m0s; closed again in 1h0m0s or by `hemostat respond reset`"
	const held = "blast_radius: 2 actions already running on the host (max 2)"
	list := []c{
		{name: "web-2", state: "running", health: "unhealthy", class: event.ClassUnhealthy, labels: map[string]string{respond.LabelBackoff: "20s"},
			opened: -time.Minute,
			ledger: map[string]string{"attempts": fmt.Sprintf("[%s]", ms(now.Add(-8*time.Second))), "backoff_step": "1",
				"next_allowed_ms": ms(now.Add(12 * time.Second)), "breaker": "closed", "last_action": "restart",
				"last_action_ms": ms(now.Add(-8 * time.Second)), "last_decision": "executed", "last_result": "failed",
				"last_reason": "restarted; not running and healthy within 3s"},
			incident: map[string]string{"condition": schema.ConditionFailing, "condition_since": at(-time.Minute),
				"attempts": "1", "last_attempt_at": at(-8 * time.Second), "last_outcome": "failed",
				"last_details": "restarted; not running and healthy within 3s", "errors": `["restarted; not running and healthy within 3s"]`,
				"next_at": at(12 * time.Second), "next_reason": "verify"}},
		{name: "api-2", state: "running", health: "unhealthy", class: event.ClassUnhealthy, opened: -30 * time.Second,
			ledger: map[string]string{"attempts": "[]", "breaker": "closed", "last_decision": "held", "last_result": "held",
				"last_reason": held, "updated_ms": ms(now.Add(-time.Second))},
			incident: map[string]string{"condition": schema.ConditionFailing, "condition_since": at(-30 * time.Second),
				"attempts": "0", "last_outcome": "held", "last_details": held + " (paging once for this hold period)", "errors": "[]",
				"next_at": at(5 * time.Second), "next_reason": held}},
		{name: "worker-2", state: "exited", class: event.ClassCrashed, exit: 1, opened: -40 * time.Minute,
			ledger: map[string]string{"attempts": fmt.Sprintf("[%s,%s,%s]", ms(now.Add(-40*time.Minute)), ms(now.Add(-25*time.Minute)), ms(now.Add(-10*time.Minute))),
				"backoff_step": "3", "next_allowed_ms": ms(now.Add(-6 * time.Minute)), "breaker": "open", "breaker_until_ms": ms(now.Add(58 * time.Minute)),
				"last_action": "restart", "last_action_ms": ms(now.Add(-10 * time.Minute)), "last_decision": "escalated",
				"last_result": "escalated", "last_reason": breakerOpened, "updated_ms": ms(now.Add(-2 * time.Minute))},
			incident: map[string]string{"condition": schema.ConditionFailing, "condition_since": at(-10*time.Minute + 2*time.Second),
				"attempts": "3", "last_attempt_at": at(-10 * time.Minute), "last_outcome": "escalated", "last_details": breakerOpened,
				"errors":     `["restarted; exited with code 1 within 3s","restarted; exited with code 1 within 3s","restarted; exited with code 1 within 3s"]`,
				"gave_up_at": at(-2 * time.Minute), "breaker_until": at(58 * time.Minute),
				"next_at": at(58 * time.Minute), "next_reason": "circuit_open: breaker open until " + now.Add(58*time.Minute).Format(time.RFC3339) + " (or `hemostat respond reset`)"}},
		{name: "cache-2", state: "running", health: "healthy", class: event.ClassUnhealthy, opened: -3 * time.Minute,
			ledger: map[string]string{"attempts": fmt.Sprintf("[%s]", ms(now.Add(-time.Minute))), "backoff_step": "1",
				"next_allowed_ms": ms(now.Add(-30 * time.Second)), "breaker": "closed", "last_action": "restart",
				"last_action_ms": ms(now.Add(-time.Minute)), "last_decision": "executed", "last_result": "success",
				"last_reason": "restarted; running and healthy after 10s", "healthy_since_ms": ms(now.Add(-50 * time.Second))},
			incident: map[string]string{"condition": schema.ConditionClear, "condition_since": at(-50 * time.Second),
				"attempts": "1", "last_attempt_at": at(-time.Minute), "last_outcome": "success",
				"last_details": "restarted; running and healthy after 10s", "errors": "[]"}},
	}
	for i, x := range list {
		s := container.Summary{
			ID: fmt.Sprintf("%02d7e6d5c4b3a29180112233445566778899aabbccddeeff0011223344556677", i), Name: x.name, Host: "node-a",
			Image: "acme/" + x.name + ":1", State: x.state, Health: x.health, ExitCode: x.exit, StartedAt: now.Add(-20 * time.Second),
			Labels: x.labels, Mode: "auto", Watched: true, Incidents: []string{x.class}, UpdatedAt: now.Add(-time.Second),
		}
		f.containers = append(f.containers, s)
		f.ledgers[s.Target()] = x.ledger
		key := event.IncidentKey("node-a", x.name, x.class)
		fields := map[string]string{"state": "open", "class": x.class, "host": "node-a", "container": x.name,
			"container_id": s.ID, "opened_at": at(x.opened), "alert_id": "alert-" + x.name, "severity": event.SeverityCritical,
			"action": event.ActionRestart, "confidence": "0.85", "analysis_method": "rules", "reason": "rule: " + x.class,
			"decided_at": at(x.opened + 50*time.Millisecond)}
		for k, v := range x.incident {
			fields[k] = v
		}
		f.incidents = append(f.incidents, fixtureIncident{ID: key, OpenedMS: now.Add(x.opened).UnixMilli(), Fields: fields})
	}
	slices.SortFunc(f.incidents, func(a, b fixtureIncident) int { return int(a.OpenedMS - b.OpenedMS) })
	f.agents = heartbeats(now, "node-a", "node-a-1", respond.Config{Host: "node-a"}.WithDefaults())
	return f
}

// snapshot is the fixture as the model sees it: its records decoded as the Redis source decodes them.
func (f fixture) snapshot() Snapshot {
	s := Snapshot{Time: f.now}
	for _, c := range f.containers {
		t := c.Target()
		v := Container{Summary: c}
		if smp, ok := f.samples[t]; ok {
			v.Sample, v.History = &smp, f.histories[t]
		}
		if m, ok := f.ledgers[t]; ok {
			l, _ := schema.DecodeLedger(m)
			v.Ledger = &l
		}
		if m, ok := f.shadows[t]; ok {
			l, _ := schema.DecodeLedger(m)
			v.Shadow = &l
		}
		s.Containers = append(s.Containers, v)
	}
	slices.SortFunc(s.Containers, func(a, b Container) int { return strings.Compare(a.Target(), b.Target()) })
	for _, in := range f.incidents {
		rec, _ := schema.DecodeIncident(in.ID, in.Fields)
		s.Incidents = append(s.Incidents, incidentView(rec))
	}
	for _, a := range f.agents {
		rec, _ := schema.DecodeAgent(schema.AgentKey(a.Kind, a.Instance), a.Fields)
		v, _ := agentView(rec)
		s.Agents = append(s.Agents, v)
	}
	slices.SortFunc(s.Agents, func(a, b Agent) int { return strings.Compare(a.Kind+":"+a.Instance, b.Kind+":"+b.Instance) })
	for i := len(f.audit) - 1; i >= 0; i-- {
		s.Audit = append(s.Audit, f.audit[i])
	}
	for _, e := range f.events {
		if e.EventType == event.TypeFalseAlarm && e.Timestamp.After(f.now.Add(-24*time.Hour)) {
			s.FalseAlarms++
		}
	}
	return s
}

// streamEvents are the fixture's events as Follow delivers them.
func (f fixture) streamEvents() []Event {
	var out []Event
	for i, e := range f.events {
		stream, _ := event.StreamFor(e.EventType, e.Host)
		out = append(out, decodeEvent(bus.Entry{
			Stream: stream, ID: fmt.Sprintf("%d-%d", e.Timestamp.UnixMilli(), i), Raw: []byte(mustJSON(e)),
		}))
	}
	return out
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// seed writes the fixture to Redis following the shared data contracts, as monitor, analyze, respond,
// alert and agent.Run would. Stream entry ids carry the fixture's times, so the last-24h counts hold.
func (f fixture) seed(t testing.TB, url string) {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx := context.Background()
	p := rdb.Pipeline()
	for _, c := range f.containers {
		target := c.Target()
		p.HSet(ctx, schema.ContainersKey(c.Host), target, mustJSON(c))
		p.SAdd(ctx, schema.KeyHosts, c.Host)
		if s, ok := f.samples[target]; ok {
			k := schema.StatsKey(schema.Target(c.Host, c.Name))
			p.HSet(ctx, k, "sample", mustJSON(s), "history", mustJSON(f.histories[target]))
			p.Expire(ctx, k, time.Hour)
		}
		if l, ok := f.ledgers[target]; ok {
			p.HSet(ctx, schema.LedgerKey(schema.Target(c.Host, c.Name)), l)
		}
		if l, ok := f.shadows[target]; ok {
			p.HSet(ctx, schema.RespondKeys(c.Host, c.Name, true).Ledger, l)
		}
	}
	for _, in := range f.incidents {
		p.HSet(ctx, schema.IncidentKey(in.ID), in.Fields)
		p.ZAdd(ctx, "hemostat:incidents:open", redis.Z{Score: float64(in.OpenedMS), Member: in.ID})
	}
	for i, e := range f.audit {
		id := fmt.Sprintf("%d-%d", e.Time.UnixMilli(), i)
		p.XAdd(ctx, &redis.XAddArgs{Stream: event.StreamAudit, ID: id, Values: []any{"entry", mustJSON(e)}})
		p.XAdd(ctx, &redis.XAddArgs{Stream: "hemostat:audit:idx:{" + e.Host + "/" + e.Container + "}", ID: id, Values: []any{"id", id}})
	}
	for _, a := range f.agents {
		k := schema.AgentKey(a.Kind, a.Instance)
		p.HSet(ctx, k, a.Fields)
		p.Expire(ctx, k, time.Hour)
	}
	for i, e := range f.events {
		stream, _ := event.StreamFor(e.EventType, e.Host)
		raw := mustJSON(e)
		p.XAdd(ctx, &redis.XAddArgs{Stream: stream, ID: fmt.Sprintf("%d-%d", e.Timestamp.UnixMilli(), i), Values: []any{event.Field, raw}})
		if h, ok := event.RemediationNeededHost(stream); ok {
			p.SAdd(ctx, schema.KeyRequestHosts, h) // as the bus registers a request's host
		}
		item := fmt.Sprintf(`{"timestamp":%q,"event_type":%q,"event":%s}`, e.Timestamp.Format(time.RFC3339Nano), e.EventType, raw)
		p.LPush(ctx, schema.KeyEventsAll, item)
		p.LPush(ctx, schema.EventsKey(e.EventType), item)
	}
	p.LTrim(ctx, schema.KeyEventsAll, 0, 999)
	if _, err := p.Exec(ctx); err != nil {
		t.Fatalf("seed redis: %v", err)
	}
}

// publish appends one more event to its stream (and mirrors it), as a live agent would.
func publish(t testing.TB, url string, e event.Envelope) {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	stream, err := event.StreamFor(e.EventType, e.Host)
	if err != nil {
		t.Fatal(err)
	}
	raw := mustJSON(e)
	ctx := context.Background()
	if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{event.Field, raw}}).Err(); err != nil {
		t.Fatalf("publish: %v", err)
	}
	if h, ok := event.RemediationNeededHost(stream); ok {
		rdb.SAdd(ctx, schema.KeyRequestHosts, h) // as the bus registers a request's host
	}
	rdb.Publish(ctx, stream, raw)
}
