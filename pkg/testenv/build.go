package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// GoBuild builds the main package pkg (relative to dir) into out, the one way tests build a binary:
// static (CGO_ENABLED=0, so it also runs FROM scratch) and without flags that change how a package
// compiles (no -trimpath), so every such build shares one build cache entry per package. On a cold cache
// each configuration costs about 4 minutes on a 2-core machine. ldflags only link (e.g. "-s -w -X ...").
//
// Test processes build one at a time (a lock file): go test runs packages in parallel, and concurrent
// builds of the same packages on a cold cache would each compile them; in turn, the first compiles and the
// others find the cache filled.
func GoBuild(ctx context.Context, dir, pkg, out, ldflags string) error {
	unlock, err := lockFile(filepath.Join(os.TempDir(), "hemostat-test-gobuild.lock"))
	if err != nil {
		return err
	}
	defer unlock()
	args := []string{"build", "-o", out}
	if ldflags != "" {
		args = append(args, "-ldflags", ldflags)
	}
	cmd := exec.CommandContext(ctx, "go", append(args, pkg)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// lockFile takes an exclusive lock on path, waiting for it, and returns its release.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, fmt.Errorf("build lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("build lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil // closing the file releases the lock
}
