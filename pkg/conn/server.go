package conn

import (
	"bufio"
	"context"
	"errors"
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

// ErrCluster is returned by Check for a Redis Cluster, which hemostat refuses (docs/architecture.md,
// "Redis: one server, or Sentinel").
var ErrCluster = errors.New("Redis Cluster is not supported")

// Check pings Redis and refuses a Redis Cluster node: hemostat's scripts and stream reads span keys of
// different slots. A server that does not answer INFO cluster (a managed service that renames it, an
// embedded store) is taken as not a cluster.
func (c *Conn) Check(ctx context.Context) error {
	if err := c.Ping(ctx); err != nil {
		return err
	}
	info, err := c.ServerInfo(ctx, "cluster")
	if err != nil {
		if IsUnavailable(err) {
			return fmt.Errorf("%w at %s: %v", ErrUnavailable, c.addr, err)
		}
		if isClusterReply(err) {
			return c.clusterError("it answered " + err.Error())
		}
		return nil
	}
	if info["cluster_enabled"] == "1" {
		return c.clusterError("INFO cluster says cluster_enabled:1")
	}
	return nil
}

func isClusterReply(err error) bool {
	s := err.Error()
	return strings.Contains(s, "MOVED ") || strings.Contains(s, "ASK ") || strings.Contains(s, "CROSSSLOT")
}

func (c *Conn) clusterError(why string) error {
	return fmt.Errorf("%w: %s is a Redis Cluster node (%s). hemostat's Lua scripts and stream reads use "+
		"several keys at once that Cluster would spread over different slots; use one Redis server, or Redis "+
		"Sentinel for failover (--redis-sentinels, --redis-master)", ErrCluster, c.addr, why)
}
