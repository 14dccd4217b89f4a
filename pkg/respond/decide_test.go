package respond

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/store/ledger"
	"github.com/hemostat/hemostat/pkg/store/schema"
	"strconv"
)

var t0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

func ms(t time.Time) int64 { return t.UnixMilli() }

func target(labels map[string]string) Target {
	return Target{Found: true, State: docker.TargetState{ID: "0123456789abcdef0123", Name: "web-1", Running: true, Labels: labels}}
}

func restartReq() Request {
	return Request{EventID: "e1", Host: "node-a", Container: "web-1", Action: event.ActionRestart}
}

// got summarises a decision for comparison.
type got struct {
	Step, Status, Decision string
	RetryAfter             time.Duration
	Opened, Closed, Reset  bool
}

func sum(d Decision) got {
	return got{d.Step, d.Status, d.Decision, d.RetryAfter, d.BreakerOpened, d.BreakerClosed, d.BackoffReset}
}

func TestDecide(t *testing.T) {
	cfg := Config{Host: "node-a", Protected: []string{"db-1"}}.WithDefaults()
	tests := []struct {
		name     string
		req      func(Request) Request
		target   Target
		snap     Snapshot
		simulate bool
		want     got
	}{
		{name: "healthy path executes", target: target(nil), want: got{Step: StepExecute, Decision: DecisionExecuted}},
		{name: "gone is skipped", target: Target{}, want: got{Step: StepGone, Status: event.StatusSkipped, Decision: DecisionSkipped}},
		{name: "action none escalates", target: target(nil), req: func(r Request) Request { r.Action = event.ActionNone; return r },
			want: got{Step: StepNone, Status: event.StatusEscalated, Decision: DecisionEscalated}},
		{name: "protected label", target: target(map[string]string{"hemostat.protected": "true"}),
			want: got{Step: StepProtected, Status: event.StatusDenied, Decision: DecisionDenied}},
		{name: "self label", target: target(map[string]string{"hemostat.self": "true"}),
			want: got{Step: StepProtected, Status: event.StatusDenied, Decision: DecisionDenied}},
		{name: "self name prefix", target: func() Target { t := target(nil); t.State.Name = "hemostat-respond"; return t }(),
			want: got{Step: StepProtected, Status: event.StatusDenied, Decision: DecisionDenied}},
		{name: "a name that merely starts with the prefix", target: func() Target { t := target(nil); t.State.Name = "hemostatic-app"; return t }(),
			want: got{Step: StepExecute, Decision: DecisionExecuted}},
		{name: "configured list", target: func() Target { t := target(nil); t.State.Name = "db-1"; return t }(),
			want: got{Step: StepProtected, Status: event.StatusDenied, Decision: DecisionDenied}},
		{name: "protected wins over everything after it", target: target(map[string]string{"hemostat.protected": "1"}),
			snap: Snapshot{Lease: "x", Load: Load{Unhealthy: 100}},
			want: got{Step: StepProtected, Status: event.StatusDenied, Decision: DecisionDenied}},
		{name: "cleanup not in the default set", target: target(nil), req: func(r Request) Request { r.Action = event.ActionCleanup; return r },
			want: got{Step: StepNotAllowed, Status: event.StatusDenied, Decision: DecisionDenied}},
		{name: "label narrows the set", target: target(map[string]string{"hemostat.actions": "stop"}),
			want: got{Step: StepNotAllowed, Status: event.StatusDenied, Decision: DecisionDenied}},
		{name: "label widens the set", target: target(map[string]string{"hemostat.actions": "restart,cleanup"}),
			req:  func(r Request) Request { r.Action = event.ActionCleanup; return r },
			want: got{Step: StepExecute, Decision: DecisionExecuted}},
		{name: "exec without declared commands", target: target(nil), req: func(r Request) Request { r.Action = event.ActionExec; return r },
			want: got{Step: StepNotAllowed, Status: event.StatusDenied, Decision: DecisionDenied}},
		{name: "exec of an undeclared command", target: target(map[string]string{"hemostat.exec": `[["/app","-probe","x"]]`}),
			req: func(r Request) Request {
				r.Action, r.Command = event.ActionExec, []string{"/bin/sh", "-c", "rm -rf /"}
				return r
			},
			want: got{Step: StepNotAllowed, Status: event.StatusDenied, Decision: DecisionDenied}},
		{name: "exec of a declared command", target: target(map[string]string{"hemostat.exec": `[["/app","-probe","x"]]`}),
			req: func(r Request) Request {
				r.Action, r.Command = event.ActionExec, []string{"/app", "-probe", "x"}
				return r
			},
			want: got{Step: StepExecute, Decision: DecisionExecuted}},
		{name: "scale outside swarm", target: target(map[string]string{"hemostat.actions": "scale"}),
			req:  func(r Request) Request { r.Action = event.ActionScale; return r },
			want: got{Step: StepNotAllowed, Status: event.StatusDenied, Decision: DecisionDenied}},
		{name: "lease held", target: target(nil), snap: Snapshot{Lease: "other-event r2 abc", LeaseLeft: 4 * time.Second},
			want: got{Step: StepBusy, Status: event.StatusSkipped, Decision: DecisionSkipped, RetryAfter: 4 * time.Second}},
		{name: "too many unhealthy: 4 of 6 watched (limit 3)", target: target(nil), snap: Snapshot{Load: Load{Unhealthy: 4, Watched: 6}},
			want: got{Step: StepBlastRadius, Status: event.StatusHeld, Decision: DecisionHeld}},
		{name: "half of 10 unhealthy is allowed", target: target(nil), snap: Snapshot{Load: Load{Unhealthy: 5, Watched: 10}},
			want: got{Step: StepExecute, Decision: DecisionExecuted}},
		{name: "host concurrency full", target: target(nil), snap: Snapshot{Active: 2},
			want: got{Step: StepBlastRadius, Status: event.StatusHeld, Decision: DecisionHeld}},
		{name: "host concurrency does not apply to simulation", target: target(nil), snap: Snapshot{Active: 2}, simulate: true,
			want: got{Step: StepSimulate, Status: event.StatusDryRun, Decision: DecisionDryRun}},
		{name: "breaker opens at the limit", target: target(nil),
			snap: Snapshot{Ledger: schema.Ledger{Breaker: schema.BreakerClosed, Attempts: []int64{ms(t0.Add(-50 * time.Minute)), ms(t0.Add(-20 * time.Minute)), ms(t0.Add(-5 * time.Minute))}}},
			want: got{Step: StepCircuitOpen, Status: event.StatusEscalated, Decision: DecisionEscalated, RetryAfter: time.Hour, Opened: true}},
		{name: "attempts older than the window do not count", target: target(nil),
			snap: Snapshot{Ledger: schema.Ledger{Attempts: []int64{ms(t0.Add(-70 * time.Minute)), ms(t0.Add(-20 * time.Minute)), ms(t0.Add(-5 * time.Minute))}}},
			want: got{Step: StepExecute, Decision: DecisionExecuted}},
		{name: "breaker open denies with time left", target: target(nil),
			snap: Snapshot{Ledger: schema.Ledger{Breaker: schema.BreakerOpen, BreakerUntilMS: ms(t0.Add(40 * time.Minute))}},
			want: got{Step: StepCircuitOpen, Status: event.StatusDenied, Decision: DecisionDenied, RetryAfter: 40 * time.Minute}},
		{name: "breaker closes after the cool-off", target: target(nil),
			snap: Snapshot{Ledger: schema.Ledger{Breaker: schema.BreakerOpen, BreakerUntilMS: ms(t0.Add(-time.Second)),
				Attempts: []int64{ms(t0.Add(-59 * time.Minute)), ms(t0.Add(-58 * time.Minute)), ms(t0.Add(-57 * time.Minute))}}},
			want: got{Step: StepExecute, Decision: DecisionExecuted, Closed: true}},
		{name: "cooldown denies with time left", target: target(nil),
			snap: Snapshot{Ledger: schema.Ledger{BackoffStep: 1, LastActionMS: ms(t0.Add(-10 * time.Second)), NextAllowedMS: ms(t0.Add(20 * time.Second))}},
			want: got{Step: StepCooldown, Status: event.StatusDenied, Decision: DecisionDenied, RetryAfter: 20 * time.Second}},
		{name: "cooldown over", target: target(nil),
			snap: Snapshot{Ledger: schema.Ledger{BackoffStep: 1, LastActionMS: ms(t0.Add(-40 * time.Second)), NextAllowedMS: ms(t0.Add(-10 * time.Second))}},
			want: got{Step: StepExecute, Decision: DecisionExecuted}},
		{name: "healthy for 10 minutes resets the backoff", target: target(nil),
			snap: Snapshot{Ledger: schema.Ledger{BackoffStep: 5, LastActionMS: ms(t0.Add(-11 * time.Minute)), HealthySinceMS: ms(t0.Add(-10*time.Minute - time.Second)),
				NextAllowedMS: ms(t0.Add(5 * time.Minute))}},
			want: got{Step: StepExecute, Decision: DecisionExecuted, Reset: true}},
		{name: "healthy for less than 10 minutes keeps the cooldown", target: target(nil),
			snap: Snapshot{Ledger: schema.Ledger{BackoffStep: 5, LastActionMS: ms(t0.Add(-6 * time.Minute)), HealthySinceMS: ms(t0.Add(-5 * time.Minute)),
				NextAllowedMS: ms(t0.Add(10 * time.Minute))}},
			want: got{Step: StepCooldown, Status: event.StatusDenied, Decision: DecisionDenied, RetryAfter: 10 * time.Minute}},
		{name: "dry run simulates", target: target(nil), simulate: true,
			want: got{Step: StepSimulate, Status: event.StatusDryRun, Decision: DecisionDryRun}},
		{name: "dry run still respects the cooldown", target: target(nil), simulate: true,
			snap: Snapshot{Ledger: schema.Ledger{BackoffStep: 1, LastActionMS: ms(t0), NextAllowedMS: ms(t0.Add(30 * time.Second))}},
			want: got{Step: StepCooldown, Status: event.StatusDenied, Decision: DecisionDenied, RetryAfter: 30 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := restartReq()
			if tt.req != nil {
				req = tt.req(req)
			}
			d := Decide(t0, cfg, req, tt.target, tt.snap, tt.simulate)
			if diff := cmp.Diff(tt.want, sum(d)); diff != "" {
				t.Errorf("Decide (-want +got):\n%s\ndetails: %s", diff, d.Details)
			}
		})
	}
}

func TestGapDoublesToTheCap(t *testing.T) {
	cfg := Config{}.WithDefaults()
	var got []time.Duration
	for step := range 9 {
		got = append(got, Gap(cfg, step))
	}
	want := []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute,
		16 * time.Minute, 32 * time.Minute, time.Hour, time.Hour}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("gaps (-want +got):\n%s", diff)
	}
}

func TestPlan(t *testing.T) {
	cfg := Config{}.WithDefaults()
	req := restartReq()
	tgt := target(nil)
	tests := []struct {
		name   string
		ledger schema.Ledger
		d      Decision
		want   map[string]string // a subset of the fields of the ledger left ("" for absent)
	}{
		{name: "first action", d: Decision{Step: StepExecute, Decision: DecisionExecuted},
			want: map[string]string{schema.FieldLedgerAttempts: "[" + itoa(ms(t0)) + "]", schema.FieldBackoffStep: "1", schema.FieldNextAllowedMS: itoa(ms(t0.Add(30 * time.Second))),
				schema.FieldLastAction: "restart", schema.FieldInflightEvent: "e1", schema.FieldHealthySinceMS: "", schema.FieldBreaker: schema.BreakerClosed}},
		{name: "third action waits 2 minutes next", ledger: schema.Ledger{Breaker: schema.BreakerClosed, BackoffStep: 2, Attempts: []int64{ms(t0.Add(-3 * time.Minute))}},
			d:    Decision{Step: StepExecute, Decision: DecisionExecuted},
			want: map[string]string{schema.FieldBackoffStep: "3", schema.FieldNextAllowedMS: itoa(ms(t0.Add(2 * time.Minute)))}},
		{name: "reset restarts the doubling", ledger: schema.Ledger{Breaker: schema.BreakerClosed, BackoffStep: 6},
			d:    Decision{Step: StepExecute, Decision: DecisionExecuted, BackoffReset: true},
			want: map[string]string{schema.FieldBackoffStep: "1", schema.FieldNextAllowedMS: itoa(ms(t0.Add(30 * time.Second)))}},
		{name: "simulation is assumed healthy and leaves no inflight marker", d: Decision{Step: StepSimulate, Status: event.StatusDryRun, Decision: DecisionDryRun},
			want: map[string]string{schema.FieldBackoffStep: "1", schema.FieldHealthySinceMS: itoa(ms(t0)), schema.FieldLastResult: event.StatusDryRun}},
		{name: "breaker opens for the cool-off", ledger: schema.Ledger{Breaker: schema.BreakerClosed}, d: Decision{Step: StepCircuitOpen, BreakerOpened: true},
			want: map[string]string{schema.FieldBreaker: schema.BreakerOpen, schema.FieldBreakerUntilMS: itoa(ms(t0.Add(time.Hour)))}},
		{name: "breaker closes and forgets the attempts", ledger: schema.Ledger{Breaker: schema.BreakerOpen, Attempts: []int64{ms(t0.Add(-time.Minute))}},
			d:    Decision{Step: StepCooldown, BreakerClosed: true},
			want: map[string]string{schema.FieldBreaker: schema.BreakerClosed, schema.FieldLedgerAttempts: "[]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := Plan(t0, cfg, req, tgt, tt.ledger, tt.d).Encode()
			got := map[string]string{}
			for k := range tt.want {
				got[k] = set[k]
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Plan (-want +got):\n%s", diff)
			}
			if tt.d.Step == StepSimulate {
				if _, ok := set[schema.FieldInflightEvent]; ok {
					t.Errorf("simulation wrote %s", schema.FieldInflightEvent)
				}
			}
		})
	}
}

func TestLedgerRoundTrip(t *testing.T) {
	got, err := schema.DecodeLedger(Plan(t0, Config{}.WithDefaults(), restartReq(), target(nil), schema.Ledger{}, Decision{Step: StepExecute, Decision: DecisionExecuted}).Encode())
	if err != nil {
		t.Fatal(err)
	}
	want := schema.Ledger{Attempts: []int64{ms(t0)}, BackoffStep: 1, NextAllowedMS: ms(t0.Add(30 * time.Second)), Breaker: schema.BreakerClosed,
		LastAction: "restart", LastActionMS: ms(t0), LastDecision: DecisionExecuted, InflightEvent: "e1", InflightAction: "restart", InflightMS: ms(t0),
		ContainerID: target(nil).State.ID, UpdatedMS: ms(t0)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("DecodeLedger(Plan().Encode()) (-want +got):\n%s", diff)
	}
}

func TestExecCommands(t *testing.T) {
	tests := []struct {
		label string
		want  [][]string
	}{
		{"", nil},
		{`[["/app","-probe","http://127.0.0.1:1/"],["/app","-x"]]`, [][]string{{"/app", "-probe", "http://127.0.0.1:1/"}, {"/app", "-x"}}},
		{`["/app","-probe","x"]`, [][]string{{"/app", "-probe", "x"}}},
		{`/app -probe x; /app -y`, [][]string{{"/app", "-probe", "x"}, {"/app", "-y"}}},
	}
	for _, tt := range tests {
		t.Run(tt.label, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, ExecCommands(tt.label)); diff != "" {
				t.Errorf("ExecCommands (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSettleWindow(t *testing.T) {
	cfg := Config{}.WithDefaults()
	tests := []struct {
		name string
		hc   *docker.Healthcheck
		want time.Duration
	}{
		{"no healthcheck", nil, 30 * time.Second},
		{"docker defaults", &docker.Healthcheck{Test: []string{"CMD", "x"}}, 150 * time.Second},
		{"long start period is capped", &docker.Healthcheck{StartPeriod: 5 * time.Minute}, 3 * time.Minute},
		{"fast check", &docker.Healthcheck{Interval: 200 * time.Millisecond, Timeout: time.Second, Retries: 2, StartPeriod: time.Second},
			time.Second + 600*time.Millisecond + time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SettleWindow(cfg, tt.hc); got != tt.want {
				t.Errorf("SettleWindow = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestStopTimeout(t *testing.T) {
	cfg := Config{}.WithDefaults()
	for _, tt := range []struct {
		label string
		want  time.Duration
	}{{"", 10 * time.Second}, {"3", 3 * time.Second}, {"1m", time.Minute}, {"junk", 10 * time.Second}} {
		if got := StopTimeout(cfg, map[string]string{"hemostat.stop_timeout": tt.label}); got != tt.want {
			t.Errorf("StopTimeout(%q) = %s, want %s", tt.label, got, tt.want)
		}
	}
}

func TestForLabels(t *testing.T) {
	base := Config{}.WithDefaults()
	tests := []struct {
		name   string
		labels map[string]string
		want   func(Config) Config
	}{
		{"no labels", nil, func(c Config) Config { return c }},
		{"all tuned", map[string]string{LabelMaxActionsPerHour: "5", LabelBackoff: "10s", LabelCooldown: "5m",
			LabelBreakerCooloff: "15m", LabelHealthyReset: "2m"}, func(c Config) Config {
			c.MaxActionsPerHour, c.BackoffBase, c.Cooldown, c.BreakerCooloff, c.HealthyReset = 5, 10*time.Second, 5*time.Minute, 15*time.Minute, 2*time.Minute
			return c
		}},
		{"bad values are ignored", map[string]string{LabelMaxActionsPerHour: "-1", LabelBackoff: "soon", LabelCooldown: "0s"},
			func(c Config) Config { return c }},
		{"a backoff above the cap raises the cap", map[string]string{LabelBackoff: "2h"}, func(c Config) Config {
			c.BackoffBase, c.Cooldown = 2*time.Hour, 2*time.Hour
			return c
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want(base), base.ForLabels(tt.labels)); diff != "" {
				t.Errorf("ForLabels (-want +got):\n%s", diff)
			}
		})
	}
}
func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// TestSnapshotForCountsTheRequestsOwnSlotAsItself: responders racing for one request each take a host
// slot before committing; a slot of the same request is the request being handled (Self), not another
// action filling the host, so the request is never held on its own account.
func TestSnapshotForCountsTheRequestsOwnSlotAsItself(t *testing.T) {
	raw := ledger.Snapshot{Slots: []string{"ev-1 r1 a", "ev-1 r2 b", "ev-2 r1 c"}}
	s := SnapshotFor(raw, Load{}, "ev-1")
	if !s.Self || s.Active != 1 {
		t.Errorf("snapshot for ev-1: self %v, active %d; want true, 1", s.Self, s.Active)
	}
	if s := SnapshotFor(raw, Load{}, "ev-3"); s.Self || s.Active != 3 {
		t.Errorf("snapshot for ev-3: self %v, active %d; want false, 3", s.Self, s.Active)
	}
	if s := SnapshotFor(raw, Load{}, "ev"); s.Self {
		t.Error("ev matched the slots of ev-1 by prefix")
	}
}
