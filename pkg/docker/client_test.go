package docker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/testenv"
)

func TestNegotiatesAPIVersion(t *testing.T) {
	c := testenv.RequireDocker(t)
	if c.APIVersion == "" || c.ServerVersion == "" {
		t.Fatalf("versions not recorded: api %q server %q", c.APIVersion, c.ServerVersion)
	}
}

func TestUnreachableEngineIsUnavailable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := docker.New(ctx, docker.Options{Host: "unix:///nonexistent/docker.sock"})
	if !errors.Is(err, docker.ErrUnavailable) {
		t.Fatalf("got %v, want ErrUnavailable", err)
	}
}

func TestTestImageRunsAndExits(t *testing.T) {
	c := testenv.RequireDocker(t)
	id, _ := testenv.RunContainer(t, c, docker.CreateOptions{Cmd: []string{"-exit-code", "3", "-exit-after", "10ms"}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.RemoveContainer(ctx, id); err != nil {
		t.Fatalf("remove: %v", err)
	}
	err := c.StartContainer(ctx, id)
	if !errors.Is(err, docker.ErrNotFound) {
		t.Fatalf("start removed container: got %v, want ErrNotFound", err)
	}
}
