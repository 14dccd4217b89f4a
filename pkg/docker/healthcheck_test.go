package docker

import (
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
)

func TestHealthcheckOf(t *testing.T) {
	for _, hc := range []*container.HealthConfig{nil, {}, {Test: []string{"NONE"}}} {
		if got := healthcheckOf(hc); got != nil {
			t.Errorf("healthcheckOf(%+v) = %+v, want none", hc, got)
		}
	}
	got := healthcheckOf(&container.HealthConfig{Test: []string{"CMD", "/app", "-probe"}, Interval: time.Second,
		Timeout: 2 * time.Second, StartPeriod: 3 * time.Second, Retries: 4})
	if got == nil || len(got.Test) != 3 || got.Interval != time.Second || got.Timeout != 2*time.Second ||
		got.StartPeriod != 3*time.Second || got.Retries != 4 {
		t.Errorf("healthcheckOf = %+v", got)
	}
}
