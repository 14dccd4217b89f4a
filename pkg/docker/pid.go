package docker

import (
	"context"
	"fmt"
)

// PID returns the host pid of a running container's init process, the entry point for reading its cgroup
// directly. A container that is not running is an error.
func (c *Client) PID(ctx context.Context, id string) (int, error) {
	info, err := c.api.ContainerInspect(ctx, id)
	if err != nil {
		return 0, classify("inspect "+id, err)
	}
	if info.State == nil || !info.State.Running || info.State.Pid <= 0 {
		return 0, fmt.Errorf("pid of %s: container is not running", id)
	}
	return info.State.Pid, nil
}
