package store

import (
	"context"
	"fmt"
	"sort"

	"github.com/hemostat/hemostat/pkg/event"
)

// ContainerTargets returns the targets ("host/name") of hemostat:containers, sorted: every container a
// monitor watches. Shell completion and `hemostat respond reset` read it.
func (c *Client) ContainerTargets(ctx context.Context) ([]string, error) {
	ts, err := c.rdb.HKeys(ctx, event.KeyContainers).Result()
	if err != nil {
		return nil, fmt.Errorf("container targets: %w", err)
	}
	sort.Strings(ts)
	return ts, nil
}

// HasContainer reports whether a monitor watches the target ("host/name").
func (c *Client) HasContainer(ctx context.Context, target string) (bool, error) {
	ok, err := c.rdb.HExists(ctx, event.KeyContainers, target).Result()
	if err != nil {
		return false, fmt.Errorf("container %s: %w", target, err)
	}
	return ok, nil
}

// OpenIncidentKeys returns the keys ("host/name/class") of the open incidents, oldest first.
func (c *Client) OpenIncidentKeys(ctx context.Context) ([]string, error) {
	keys, err := c.rdb.ZRange(ctx, KeyIncidentsOpen, 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("open incidents: %w", err)
	}
	return keys, nil
}
