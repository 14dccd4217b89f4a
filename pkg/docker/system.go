package docker

import (
	"context"
	"fmt"
	"time"
)

// SystemTime is the engine's clock, from GET /info.
func (c *Client) SystemTime(ctx context.Context) (time.Time, error) {
	info, err := c.api.Info(ctx)
	if err != nil {
		return time.Time{}, classify("info", err)
	}
	t, err := time.Parse(time.RFC3339Nano, info.SystemTime)
	if err != nil {
		return time.Time{}, fmt.Errorf("info: system time %q: %w", info.SystemTime, err)
	}
	return t, nil
}
