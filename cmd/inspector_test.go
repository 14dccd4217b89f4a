package cmd

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/testenv"
)

func TestDockerInspectorGivesTheLLMItsContext(t *testing.T) {
	dc := testenv.RequireDocker(t)
	id, _ := testenv.RunContainer(t, dc, docker.CreateOptions{
		Cmd: []string{"-log-secrets", "-exit-code", "2", "-exit-after", "300ms"}, Env: []string{"API_KEY=sk-test-123"},
		MemoryBytes: 64 << 20, RestartPolicy: "on-failure", MaxRetries: 1,
	})
	in := dockerInspector{dc}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var lines []string
	deadline := time.Now().Add(20 * time.Second)
	for {
		s, err := in.Inspect(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if s.Status == "exited" {
			if s.ExitCode != 2 || s.MemoryLimitBytes != 64<<20 || s.RestartPolicy != "on-failure:1" {
				t.Errorf("summary = %+v", s)
			}
			if !strings.Contains(strings.Join(s.Env, " "), "API_KEY=sk-test-123") {
				t.Errorf("env not passed for redaction: %v", s.Env)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("container never exited: %+v", s)
		}
		time.Sleep(100 * time.Millisecond)
	}
	lines, err := in.Logs(ctx, id, 50)
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(lines, "\n")
	if !strings.Contains(all, "stdout: testapp started") || !strings.Contains(all, "stderr: error: database connection refused") {
		t.Errorf("logs = %q", all)
	}
}
