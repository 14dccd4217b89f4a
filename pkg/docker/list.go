package docker

import (
	"context"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
)

// Container is one container as the list shows it: cheap, no inspect per container.
type Container struct {
	ID      string
	Name    string // without the leading slash
	Image   string
	State   string // created, running, restarting, paused, exited, removing, dead
	Status  string // human text, e.g. "Up 5 minutes (healthy)"
	Health  string // healthy, unhealthy, starting, or "" (parsed from Status)
	Labels  map[string]string
	Created time.Time
}

// List returns every container, running or not.
func (c *Client) List(ctx context.Context) ([]Container, error) {
	list, err := c.api.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil {
		return nil, classify("list containers", err)
	}
	out := make([]Container, 0, len(list))
	for _, s := range list {
		name := ""
		if len(s.Names) > 0 {
			name = strings.TrimPrefix(s.Names[0], "/")
		}
		out = append(out, Container{
			ID: s.ID, Name: name, Image: s.Image, State: string(s.State), Status: s.Status,
			Health: HealthFromStatus(s.Status), Labels: s.Labels, Created: time.Unix(s.Created, 0).UTC(),
		})
	}
	return out, nil
}

// HealthFromStatus extracts the health state from a list Status text such as "Up 3 seconds (health: starting)".
func HealthFromStatus(status string) string {
	switch {
	case strings.Contains(status, "(healthy)"):
		return "healthy"
	case strings.Contains(status, "(unhealthy)"):
		return "unhealthy"
	case strings.Contains(status, "(health: starting)"):
		return "starting"
	}
	return ""
}
