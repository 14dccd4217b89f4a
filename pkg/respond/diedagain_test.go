package respond

import (
	"testing"
	"time"

	"github.com/hemostat/hemostat/pkg/docker"
)

func TestDiedAgain(t *testing.T) {
	prev := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	later := prev.Add(time.Second)
	tests := []struct {
		name string
		st   docker.TargetState
		prev time.Time
		want bool
	}{
		{"restarted and exited, no policy", docker.TargetState{Status: "exited", StartedAt: later}, prev, true},
		{"restarted and exited, policy no", docker.TargetState{Status: "exited", StartedAt: later, RestartPolicy: "no"}, prev, true},
		{"restarted and dead", docker.TargetState{Status: "dead", StartedAt: later}, prev, true},
		{"not restarted yet", docker.TargetState{Status: "exited", StartedAt: prev}, prev, false},
		{"policy will restart it", docker.TargetState{Status: "exited", StartedAt: later, RestartPolicy: "always"}, prev, false},
		{"restarting", docker.TargetState{Status: "restarting", StartedAt: later}, prev, false},
		{"start action (no previous start)", docker.TargetState{Status: "exited", StartedAt: later}, time.Time{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := diedAgain(tt.st, tt.prev); got != tt.want {
				t.Errorf("diedAgain = %v, want %v", got, tt.want)
			}
		})
	}
}
