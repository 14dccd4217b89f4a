package docker_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/testenv"
)

func actionsEventually(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestContainerStateAndRestart(t *testing.T) {
	t.Parallel()
	c := testenv.RequireDocker(t)
	ctx := context.Background()
	id, name := testenv.RunContainer(t, c, docker.CreateOptions{Name: "app",
		Cmd:    []string{"-health-addr", ":8080"},
		Labels: map[string]string{"com.docker.compose.project": "p", "com.docker.compose.service": "web"},
		Health: &docker.Healthcheck{Test: []string{"CMD", "/app", "-probe", "http://127.0.0.1:8080/health"},
			Interval: 200 * time.Millisecond, Timeout: time.Second, Retries: 2}})
	var st docker.TargetState
	actionsEventually(t, 10*time.Second, func() bool {
		var err error
		st, err = c.ContainerState(ctx, name)
		return err == nil && st.Health == "healthy"
	})
	if st.ID != id || st.Name != name || !st.Running || st.ComposeProject != "p" || st.ComposeService != "web" ||
		st.HealthConfig == nil || st.HealthConfig.Retries != 2 || st.Labels["hemostat.test"] != "1" {
		t.Errorf("state = %+v", st)
	}
	if err := c.RestartContainer(ctx, id, time.Second); err != nil {
		t.Fatal(err)
	}
	after, err := c.ContainerState(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !after.Running || !after.StartedAt.After(st.StartedAt) {
		t.Errorf("after restart: running %v, started %s (before %s)", after.Running, after.StartedAt, st.StartedAt)
	}
	if _, err := c.ContainerState(ctx, "hemostat-no-such-container"); !errors.Is(err, docker.ErrNotFound) {
		t.Errorf("missing container: %v, want ErrNotFound", err)
	}
}

func TestExecCommandRunsWithoutAShell(t *testing.T) {
	t.Parallel()
	c := testenv.RequireDocker(t)
	ctx := context.Background()
	id, _ := testenv.RunContainer(t, c, docker.CreateOptions{Name: "app", Cmd: []string{"-health-addr", ":8080"}})
	tests := []struct {
		name string
		cmd  []string
		code int
	}{
		{"probe succeeds", []string{"/app", "-probe", "http://127.0.0.1:8080/health"}, 0},
		{"probe of a closed port fails", []string{"/app", "-probe", "http://127.0.0.1:1/"}, 1},
		{"exit code passes through", []string{"/app", "-exit-code", "3", "-exit-after", "1ms"}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var res docker.ExecResult
			actionsEventually(t, 10*time.Second, func() bool { // the health server needs a moment
				ectx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				var err error
				res, err = c.ExecCommand(ectx, id, tt.cmd, 0)
				if err != nil {
					t.Fatal(err)
				}
				return res.ExitCode == tt.code
			})
		})
	}
	// No shell in the image: a shell command cannot run.
	ectx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res, err := c.ExecCommand(ectx, id, []string{"/bin/sh", "-c", "echo hi"}, 0)
	if err == nil && res.ExitCode == 0 {
		t.Errorf("a shell ran: %+v", res)
	}
	// Output is captured and capped.
	res, err = c.ExecCommand(ectx, id, []string{"/app", "-exit-after", "1ms", "-log-secrets"}, 20)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Output) != 20 || !res.Truncated {
		t.Errorf("output %q truncated %v", res.Output, res.Truncated)
	}
}

func TestScaleOutsideSwarmIsNotApplicable(t *testing.T) {
	t.Parallel()
	c := testenv.RequireDocker(t)
	_, err := c.ScaleService(context.Background(), "web", 3)
	if !errors.Is(err, docker.ErrNotApplicable) {
		t.Errorf("scale outside a swarm: %v, want ErrNotApplicable", err)
	}
	if _, err := c.ScaleService(context.Background(), "", 3); !errors.Is(err, docker.ErrNotApplicable) {
		t.Errorf("scale without a service: %v, want ErrNotApplicable", err)
	}
}

func TestCleanupRemovesOnlyOwnExitedReplicas(t *testing.T) {
	t.Parallel()
	c := testenv.RequireDocker(t)
	ctx := context.Background()
	project := "hemostat-test-" + strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "")
	compose := func(service string) map[string]string {
		return map[string]string{"com.docker.compose.project": project, "com.docker.compose.service": service}
	}
	exited := []string{"-exit-after", "1ms"}
	target, _ := testenv.RunContainer(t, c, docker.CreateOptions{Name: "app", Labels: compose("web")})
	replica, _ := testenv.RunContainer(t, c, docker.CreateOptions{Name: "app", Labels: compose("web"), Cmd: exited})
	running, _ := testenv.RunContainer(t, c, docker.CreateOptions{Name: "app", Labels: compose("web")})
	other, _ := testenv.RunContainer(t, c, docker.CreateOptions{Name: "app", Labels: compose("db"), Cmd: exited})
	plain, _ := testenv.RunContainer(t, c, docker.CreateOptions{Name: "app", Cmd: exited})
	for _, id := range []string{replica, other, plain} {
		actionsEventually(t, 10*time.Second, func() bool {
			st, err := c.ContainerState(ctx, id)
			return err == nil && st.Status == "exited"
		})
	}
	removed, err := c.CleanupReplicas(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(removed, []string{replica}) {
		t.Errorf("removed %v, want only the exited replica %s", removed, replica)
	}
	for _, id := range []string{target, running, other, plain} {
		if _, err := c.ContainerState(ctx, id); err != nil {
			t.Errorf("container %s was touched: %v", id[:12], err)
		}
	}
	if _, err := c.CleanupReplicas(ctx, plain); !errors.Is(err, docker.ErrNotApplicable) {
		t.Errorf("cleanup of a non-compose container: %v, want ErrNotApplicable", err)
	}
}
