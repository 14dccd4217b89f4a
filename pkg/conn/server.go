package conn

import (
	"bufio"
	"context"
	"fmt"
	"strings"
	"time"
)

// ServerInfo returns the fields of INFO <section> (e.g. server, persistence, memory) as name to value.
func (c *Conn) ServerInfo(ctx context.Context, section string) (map[string]string, error) {
	s, err := c.rdb.Info(ctx, section).Result()
	if err != nil {
		return nil, fmt.Errorf("info %s: %w", section, err)
	}
	out := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			out[k] = v
		}
	}
	return out, nil
}

// ServerConfig returns CONFIG GET <param> as name to value; managed servers that rename or forbid CONFIG
// return an error.
func (c *Conn) ServerConfig(ctx context.Context, param string) (map[string]string, error) {
	m, err := c.rdb.ConfigGet(ctx, param).Result()
	if err != nil {
		return nil, fmt.Errorf("config get %s: %w", param, err)
	}
	return m, nil
}

// ServerTime is the server's clock (TIME).
func (c *Conn) ServerTime(ctx context.Context) (time.Time, error) {
	t, err := c.rdb.Time(ctx).Result()
	if err != nil {
		return time.Time{}, fmt.Errorf("time: %w", err)
	}
	return t, nil
}
