package alert

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hemostat/hemostat/pkg/event"
)

func mustEnv(t *testing.T, incident string, p event.Payload) event.Envelope {
	t.Helper()
	env, err := event.New("test", "node-a", incident, "", p)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func rc(action, status, details string) *event.RemediationComplete {
	return &event.RemediationComplete{Container: "web-1", Action: action, Result: event.Result{Status: status, Details: details},
		Confidence: 0.9, AnalysisMethod: "rules", Class: event.ClassCrashed}
}

func TestDecide(t *testing.T) {
	tests := []struct {
		name         string
		p            event.Payload
		notifyOnOpen bool
		wantState    State
		wantSend     bool
		wantSuppress string
	}{
		{"open without flag", &event.ContainerUnhealthy{ContainerID: "c1", ContainerName: "web-1", Class: event.ClassCrashed}, false, StateOpened, false, ""},
		{"open with flag", &event.ContainerUnhealthy{ContainerID: "c1", ContainerName: "web-1", Class: event.ClassCrashed}, true, StateOpened, true, ""},
		{"success", rc("restart", "success", ""), false, StateRemediated, true, ""},
		{"failed", rc("restart", "failed", "verification failed"), false, StateFailed, true, ""},
		{"escalated", rc("restart", "escalated", ""), false, StateEscalated, true, ""},
		{"action none", rc("none", "success", ""), false, StateEscalated, true, ""},
		{"circuit open", rc("restart", "denied", "circuit_open: 3 actions in the last hour"), false, StateGaveUp, true, ""},
		{"circuit open in error", &event.RemediationComplete{Container: "web-1", Action: "restart", Result: event.Result{Status: "denied", Error: "circuit_open"}}, false, StateGaveUp, true, ""},
		{"circuit open as reason prefix", &event.RemediationComplete{Container: "web-1", Action: "restart", Result: event.Result{Status: "denied"}, Reason: "circuit_open until 11:00"}, false, StateGaveUp, true, ""},
		{"cooldown", rc("restart", "denied", "cooldown: 25s left"), false, "", false, "cooldown"},
		{"cooldown word inside llm reason is not a code", &event.RemediationComplete{Container: "web-1", Action: "restart", Result: event.Result{Status: "denied", Details: "protected"}, Reason: "after the cooldown it crashed"}, false, StateEscalated, true, ""},
		{"protected", rc("restart", "denied", "protected"), false, StateEscalated, true, ""},
		{"action not allowed", rc("exec", "denied", "action_not_allowed"), false, StateEscalated, true, ""},
		{"held", rc("restart", "held", "blast_radius: 4 of 6 unhealthy"), false, StateHeld, true, ""},
		{"skipped gone", rc("restart", "skipped", "gone"), false, "", false, "skipped"},
		{"skipped busy", rc("restart", "skipped", "busy"), false, "", false, "skipped"},
		{"dry run", rc("restart", "dry_run", ""), false, StateDryRun, true, ""},
		{"false alarm", &event.FalseAlarm{Container: "web-1", Reason: "one spike", Confidence: 0.8, AnalysisMethod: "rules", Class: event.ClassCPUSaturated}, false, StateFalseAlarm, true, ""},
		{"recovered", &event.ContainerRecovered{ContainerID: "c1", ContainerName: "web-1", Class: event.ClassCrashed}, false, StateRecovered, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Decide(mustEnv(t, "node-a/web-1/crashed", tt.p), tt.notifyOnOpen)
			if err != nil {
				t.Fatal(err)
			}
			got := []any{d.Send, d.Suppressed}
			want := []any{tt.wantSend, tt.wantSuppress}
			if tt.wantState != "" {
				got, want = append(got, d.Notification.State), append(want, tt.wantState)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("decision (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecideDerivesIncident(t *testing.T) {
	env := mustEnv(t, "", &event.ContainerRecovered{ContainerID: "c1", ContainerName: "web-1", Class: event.ClassOOMKilled})
	d, err := Decide(env, false)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := d.Notification.Incident, "node-a/web-1/oom_killed"; got != want {
		t.Errorf("incident = %q, want %q", got, want)
	}
}

func TestTitles(t *testing.T) {
	tests := []struct {
		n    Notification
		want string
	}{
		{Notification{State: StateDryRun, Action: "restart", Container: "web-1"}, "Dry run: would have restarted web-1"},
		{Notification{State: StateRemediated, Action: "restart", Container: "web-1"}, "Remediated: web-1 (restart)"},
		{Notification{State: StateGaveUp, Container: "web-1", DryRun: true}, "Gave up on web-1: circuit breaker open (dry run)"},
		{Notification{State: StateOpened, Container: "web-1", Class: "oom_killed"}, "Incident opened: web-1 oom_killed"},
	}
	for _, tt := range tests {
		t.Run(string(tt.n.State), func(t *testing.T) {
			if got := tt.n.Title(); got != tt.want {
				t.Errorf("Title() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFormatTime(t *testing.T) {
	ts := time.Date(2026, 11, 28, 10, 30, 0, 0, time.UTC)
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Skip("no tzdata")
	}
	if got, want := FormatTime(ts, nil), "2026-11-28 10:30:00 UTC"; got != want {
		t.Errorf("UTC: got %q, want %q", got, want)
	}
	if got, want := FormatTime(ts, paris), "2026-11-28 11:30:00 CET"; got != want {
		t.Errorf("Paris: got %q, want %q", got, want)
	}
}
