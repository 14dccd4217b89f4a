package audit

import (
	"testing"
	"time"
)

func TestFilterMatch(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	e := Entry{Time: t0, Action: "restart", Result: "success", Incident: "h1/web/crashed"}
	tests := []struct {
		name string
		f    Filter
		want bool
	}{
		{"no filter", Filter{}, true},
		{"action", Filter{Action: "restart"}, true},
		{"other action", Filter{Action: "stop"}, false},
		{"result", Filter{Result: "failed"}, false},
		{"incident", Filter{Incident: "h1/web/crashed"}, true},
		{"other incident", Filter{Incident: "h1/web/oom_killed"}, false},
		{"since before", Filter{Since: t0.Add(-time.Minute)}, true},
		{"since after", Filter{Since: t0.Add(time.Minute)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.f.match(e); got != tt.want {
				t.Errorf("match = %v, want %v", got, tt.want)
			}
		})
	}
}
