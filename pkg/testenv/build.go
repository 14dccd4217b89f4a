package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// GoBuild builds the main package pkg (relative to dir) into out, for this machine, the one way tests
// build a binary: static (CGO_ENABLED=0) and without flags that change how a package compiles (no
// -trimpath), so every such build shares one build cache entry per package. On a cold cache each
// configuration costs about 4 minutes on a 2-core machine. ldflags only link (e.g. "-s -w -X ...").
//
// Test processes build one at a time (a lock file, waited for until ctx is done): go test runs packages
// in parallel, and concurrent builds of the same packages on a cold cache would each compile them; in
// turn, the first compiles and the others find the cache filled.
func GoBuild(ctx context.Context, dir, pkg, out, ldflags string) error {
	return goBuild(ctx, dir, pkg, out, ldflags, "")
}

// GoBuildLinux is GoBuild for a Linux container image (FROM scratch): the same build on a Linux machine,
// and a Linux binary on any other.
func GoBuildLinux(ctx context.Context, dir, pkg, out, ldflags string) error {
	return goBuild(ctx, dir, pkg, out, ldflags, "linux")
}

func goBuild(ctx context.Context, dir, pkg, out, ldflags, goos string) error {
	unlock, err := lockFile(ctx, filepath.Join(os.TempDir(), "hemostat-test-gobuild.lock"))
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
	if goos != "" {
		cmd.Env = append(cmd.Env, "GOOS="+goos)
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// lockPoll is how often a test process waiting for the build lock tries it again.
const lockPoll = 100 * time.Millisecond

// lockFile takes an exclusive lock on path, waiting for it until ctx is done, and returns its release.
func lockFile(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o666) // flock needs no write access
	if err != nil {
		return nil, fmt.Errorf("build lock: %w", err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil // closing the file releases the lock
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("build lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("build lock %s: another test process is building: %w", path, ctx.Err())
		case <-time.After(lockPoll):
		}
	}
}
