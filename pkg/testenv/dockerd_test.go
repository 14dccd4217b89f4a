package testenv_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/testenv"
)

// TestSecondDockerd starts a second engine, runs the test image on it, restarts it, and (at cleanup)
// stops it and checks the first engine's networking is intact.
func TestSecondDockerd(t *testing.T) {
	host := testenv.RequireDocker(t)
	var dir string
	t.Cleanup(func() { // runs after the engine's stop (cleanups run last registered first)
		if _, err := os.Stat(dir); dir != "" && !os.IsNotExist(err) {
			t.Errorf("the second engine's directory %s is still there after its stop (%v)", dir, err)
		}
	})
	b := testenv.StartDockerd(t, host)
	dir = filepath.Dir(strings.TrimPrefix(b.Host, "unix://"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if got := b.Client.Host(); got == host.Host() || !strings.HasPrefix(got, "unix://"+os.TempDir()) {
		t.Fatalf("second engine at %s, host engine at %s: want a socket of its own", got, host.Host())
	}
	id, name := testenv.RunContainer(t, b.Client, docker.CreateOptions{Name: "hemostat-b", RestartPolicy: "always"})
	d, err := b.Client.Inspect(ctx, id)
	if err != nil || d.State != "running" {
		t.Fatalf("%s on the second engine: %s, %v; want running", name, d.State, err)
	}
	if _, err := host.Inspect(ctx, id); err == nil {
		t.Errorf("the host engine sees %s, a container of the second engine", name)
	}
	if err := b.Restart(); err != nil {
		t.Fatalf("restart the second engine: %v", err)
	}
	testenv.Eventually(t, time.Minute, name+" running again after the engine's restart", func() bool {
		d, err := b.Client.Inspect(ctx, id)
		return err == nil && d.State == "running"
	})
}
