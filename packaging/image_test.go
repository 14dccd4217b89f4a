// Package packaging_test checks the release artefacts that are not Go code: the container image built from
// the Dockerfile exactly as goreleaser lays out its context, the systemd unit and the package scripts.
package packaging_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/testenv"
)

const root = ".."

// buildStatic builds the hemostat binary as the release does (CGO_ENABLED=0, version stamped; the release's
// -trimpath is left out so the build shares the suite's build cache)
// into dir/linux/<arch>/hemostat, goreleaser's layout of a dockers_v2 context.
func buildStatic(t *testing.T, dir, version string) string {
	t.Helper()
	out := filepath.Join(dir, "linux", runtime.GOARCH, "hemostat")
	if err := testenv.GoBuildLinux(context.Background(), root, ".", out, "-s -w -X github.com/hemostat/hemostat/cmd.version="+version); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestImageBuildsOfflineAndRuns builds the release Dockerfile offline (FROM scratch, the classic builder,
// goreleaser's context layout and TARGETPLATFORM) and runs `hemostat version` in it.
func TestImageBuildsOfflineAndRuns(t *testing.T) {
	dk := testenv.RequireDocker(t)
	bin := buildStatic(t, t.TempDir(), "v0.0.0-imagetest")
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	dockerfile, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	keep, err := os.ReadFile(filepath.Join(root, "packaging/image/state/.keep"))
	if err != nil {
		t.Fatal(err)
	}
	platform := "linux/" + runtime.GOARCH
	tag := "hemostat-imagetest:" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")) + "-" + time.Now().Format("150405.000000")
	tag = strings.ReplaceAll(tag, ".", "")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	err = dk.Build(ctx, docker.BuildOptions{
		Tag: tag,
		Files: map[string]docker.File{
			"Dockerfile":                  {Data: dockerfile},
			platform + "/hemostat":        {Data: data, Mode: 0o755},
			"packaging/image/state/.keep": {Data: keep},
		},
		Labels: map[string]string{"hemostat.test": "1"},
		Args:   map[string]string{"TARGETPLATFORM": platform},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := dk.RemoveImage(ctx, tag); err != nil {
			t.Logf("remove image %s: %v", tag, err)
		}
	})

	cfg, err := dk.ImageConfigOf(ctx, tag)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.User == "" || cfg.User == "0" || strings.HasPrefix(cfg.User, "0:") || cfg.User == "root" {
		t.Errorf("image runs as %q, want a non-root user", cfg.User)
	}
	if cfg.Labels["hemostat.self"] != "true" {
		t.Errorf("label hemostat.self = %q, want true", cfg.Labels["hemostat.self"])
	}
	if !slices.Equal(cfg.Entrypoint, []string{"/usr/bin/hemostat"}) || !slices.Equal(cfg.Cmd, []string{"run"}) {
		t.Errorf("entrypoint %q cmd %q, want /usr/bin/hemostat run", cfg.Entrypoint, cfg.Cmd)
	}
	if !slices.Contains(cfg.ExposedPorts, "4366/tcp") {
		t.Errorf("exposed ports %q, want the exporter's default 4366/tcp", cfg.ExposedPorts)
	}

	id, name := testenv.CreateContainer(t, dk, docker.CreateOptions{Name: "imagetest", Image: tag, Cmd: []string{"version", "-o", "json"}})
	if err := dk.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	var st docker.TargetState
	for deadline := time.Now().Add(30 * time.Second); ; {
		if st, err = dk.ContainerState(ctx, id); err != nil {
			t.Fatal(err)
		}
		if !st.Running && st.Status == "exited" || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	lines, err := dk.Logs(ctx, id, 50)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for _, l := range lines {
		out.WriteString(l.Text + "\n")
	}
	if st.Status != "exited" || st.ExitCode != 0 {
		t.Fatalf("%s: status %s exit %d, output:\n%s", name, st.Status, st.ExitCode, out.String())
	}
	for _, want := range []string{`"version": "v0.0.0-imagetest"`, `"platform": "` + platform + `"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("hemostat version in the image printed:\n%s\nwant it to contain %s", out.String(), want)
		}
	}
}
