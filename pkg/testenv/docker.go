package testenv

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hemostat/hemostat/pkg/docker"
)

// RequireDocker connects to the Docker engine. It skips without one, but fails under CI=true.
func RequireDocker(t testing.TB) *docker.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := docker.New(ctx, docker.Options{})
	if err != nil {
		unavailable(t, "docker: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var (
	imageOnce sync.Once
	imageRef  string
	imageErr  error
)

// TestImage returns the reference of the offline test image (testapp FROM scratch, at /app), building it
// once per test process when the engine does not have it yet. Its tag is a hash of testapp's source.
func TestImage(t testing.TB, c *docker.Client) string {
	t.Helper()
	imageOnce.Do(func() { imageRef, imageErr = buildTestImage(c) })
	if imageErr != nil {
		t.Fatalf("test image: %v", imageErr)
	}
	return imageRef
}

func testappDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "testapp")
}

func buildTestImage(c *docker.Client) (string, error) {
	// The build may first wait for another test process's build of hemostat (the build lock), about 4
	// minutes on a cold cache of a 2-core machine.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir := testappDir()
	src, err := os.ReadFile(filepath.Join(dir, "main.go"))
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(src)
	ref := "hemostat-test-app:" + hex.EncodeToString(sum[:6])
	if ok, err := c.ImageExists(ctx, ref); err != nil {
		return "", err
	} else if ok {
		return ref, nil
	}
	tmp, err := os.MkdirTemp("", "hemostat-testapp")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "app")
	if err := GoBuildLinux(ctx, dir, ".", bin, "-s -w"); err != nil {
		return "", err
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return "", err
	}
	files := map[string]docker.File{
		"Dockerfile": {Data: []byte("FROM scratch\nCOPY app /app\nENTRYPOINT [\"/app\"]\n")},
		"app":        {Data: data, Mode: 0o755},
	}
	if err := c.BuildImage(ctx, ref, files, map[string]string{"hemostat.test": "1"}); err != nil {
		return "", err
	}
	return ref, nil
}

// RunContainer creates and starts a container from opts (image defaults to the test image), labelled
// hemostat.test=1 and force-removed at cleanup. The name gets a unique suffix unless it is empty.
func RunContainer(t testing.TB, c *docker.Client, o docker.CreateOptions) (id, name string) {
	t.Helper()
	id, name = CreateContainer(t, c, o)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.StartContainer(ctx, id); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	return id, name
}

// CreateContainer is RunContainer without the start.
func CreateContainer(t testing.TB, c *docker.Client, o docker.CreateOptions) (id, name string) {
	t.Helper()
	if o.Image == "" {
		o.Image = TestImage(t, c)
	}
	if o.Labels == nil {
		o.Labels = map[string]string{}
	}
	o.Labels["hemostat.test"] = "1"
	if o.Name == "" {
		o.Name = "hemostat-test"
	}
	o.Name = fmt.Sprintf("%s-%s-%d", o.Name, sanitize(t.Name()), time.Now().UnixNano()%1e6)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id, err := c.Create(ctx, o)
	if err != nil {
		t.Fatalf("create %s: %v", o.Name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.RemoveContainer(ctx, id); err != nil {
			t.Logf("remove %s: %v", o.Name, err)
		}
	})
	return id, o.Name
}

func sanitize(s string) string {
	s = strings.ToLower(s)
	b := []byte(s)
	for i, ch := range b {
		if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_' || ch == '.') {
			b[i] = '-'
		}
	}
	if len(b) > 40 {
		b = b[len(b)-40:]
	}
	return strings.Trim(string(b), "-.")
}
