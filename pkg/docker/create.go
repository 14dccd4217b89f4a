package docker

import (
	"context"
	"errors"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
)

// CreateOptions describe a container to create: used by tests and the benchmark harness.
type CreateOptions struct {
	Name          string
	Image         string
	Cmd           []string
	Env           []string
	Labels        map[string]string
	MemoryBytes   int64
	NanoCPUs      int64
	RestartPolicy string // "", no, always, on-failure, unless-stopped
	MaxRetries    int
	Health        *Healthcheck
	NetworkMode   string // default "none": test containers need no network
}

// Healthcheck mirrors the HEALTHCHECK settings.
type Healthcheck struct {
	Test        []string // e.g. ["CMD", "/app", "-probe", "http://127.0.0.1:8080/health"]
	Interval    time.Duration
	Timeout     time.Duration
	StartPeriod time.Duration
	Retries     int
}

// Create creates a container and returns its id.
func (c *Client) Create(ctx context.Context, o CreateOptions) (string, error) {
	cfg := &container.Config{Image: o.Image, Cmd: o.Cmd, Env: o.Env, Labels: o.Labels}
	if o.Health != nil {
		cfg.Healthcheck = &container.HealthConfig{Test: o.Health.Test, Interval: o.Health.Interval,
			Timeout: o.Health.Timeout, StartPeriod: o.Health.StartPeriod, Retries: o.Health.Retries}
	}
	nm := o.NetworkMode
	if nm == "" {
		nm = "none"
	}
	hc := &container.HostConfig{NetworkMode: container.NetworkMode(nm)}
	hc.Memory = o.MemoryBytes
	if o.MemoryBytes > 0 {
		hc.MemorySwap = o.MemoryBytes // no swap: a leak ends in an OOM kill
	}
	hc.NanoCPUs = o.NanoCPUs
	if o.RestartPolicy != "" {
		hc.RestartPolicy = container.RestartPolicy{Name: container.RestartPolicyMode(o.RestartPolicy), MaximumRetryCount: o.MaxRetries}
	}
	resp, err := c.api.ContainerCreate(ctx, cfg, hc, nil, nil, o.Name)
	if err != nil {
		return "", classify("create "+o.Name, err)
	}
	return resp.ID, nil
}

// StartContainer starts a created or stopped container.
func (c *Client) StartContainer(ctx context.Context, id string) error {
	return classify("start "+id, c.api.ContainerStart(ctx, id, container.StartOptions{}))
}

// RemoveContainer force-removes a container and its anonymous volumes.
func (c *Client) RemoveContainer(ctx context.Context, id string) error {
	err := c.api.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true})
	return classify("remove "+id, err)
}

// StopContainer stops a container, sending SIGKILL after timeout.
func (c *Client) StopContainer(ctx context.Context, id string, timeout time.Duration) error {
	secs := int(timeout.Seconds())
	return classify("stop "+id, c.api.ContainerStop(ctx, id, container.StopOptions{Timeout: &secs}))
}

// KillContainer sends a signal to a container's main process.
func (c *Client) KillContainer(ctx context.Context, id, signal string) error {
	return classify("kill "+id, c.api.ContainerKill(ctx, id, signal))
}

// IDsByLabel lists the ids of all containers (running or not) that carry label key=value (or just key when
// value is empty).
func (c *Client) IDsByLabel(ctx context.Context, key, value string) ([]string, error) {
	f := filters.NewArgs()
	if value == "" {
		f.Add("label", key)
	} else {
		f.Add("label", key+"="+value)
	}
	list, err := c.api.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return nil, classify("list", err)
	}
	ids := make([]string, len(list))
	for i, s := range list {
		ids[i] = s.ID
	}
	return ids, nil
}

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
