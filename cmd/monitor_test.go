package cmd

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestConnectDockerStoppedLogsNoWarning stops the monitor (Ctrl-C) while it waits for an engine that
// accepts the connection but does not answer yet: the failed ping is the stop, not the engine being away.
func TestConnectDockerStoppedLogsNoWarning(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "docker.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	accepted := make(chan struct{}, 1)
	wg.Go(func() { // accept loop: exits when the listener closes
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			select {
			case accepted <- struct{}{}:
			default:
			}
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	t.Setenv("DOCKER_HOST", "unix://"+sock)

	var logs bytes.Buffer
	d := NewDeps(nil, &bytes.Buffer{}, &logs)
	d.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := connectDocker(ctx, d); done <- err }()
	select {
	case <-accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("the engine was never called")
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("connectDocker = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("connectDocker did not return at the stop")
	}
	if logs.Len() != 0 {
		t.Errorf("a normal stop logged:\n%s", logs.String())
	}
}
