// Package store owns hemostat's state in Redis: the connection, heartbeats, container and incident state,
// and the safety ledger's Lua scripts.
package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrUnavailable is returned when Redis cannot be reached.
var ErrUnavailable = errors.New("redis unavailable")

// Options configure the Redis connection.
type Options struct {
	URL      string // redis:// or rediss:// (TLS)
	Password string // overrides the URL's password when set
	PoolSize int
}

// Client is hemostat's Redis connection. Its zero value is not usable; call Open.
type Client struct {
	rdb  *redis.Client
	addr string
}

// Open parses the URL and builds a client. It does not dial: call Ping to check.
func Open(o Options) (*Client, error) {
	ro, err := redis.ParseURL(o.URL)
	if err != nil {
		return nil, fmt.Errorf("redis url %s: %w", Redact(o.URL), err)
	}
	if o.Password != "" {
		ro.Password = o.Password
	}
	if o.PoolSize > 0 {
		ro.PoolSize = o.PoolSize
	}
	ro.DialTimeout = 2 * time.Second
	ro.ReadTimeout = 5 * time.Second
	ro.WriteTimeout = 5 * time.Second
	ro.MaxRetries = 1
	ro.ContextTimeoutEnabled = true
	return &Client{rdb: redis.NewClient(ro), addr: ro.Addr}, nil
}

// Redis returns the underlying go-redis client, for pkg/bus.
func (c *Client) Redis() *redis.Client { return c.rdb }

// Addr is the host:port dialled.
func (c *Client) Addr() string { return c.addr }

// Close releases the connections.
func (c *Client) Close() error { return c.rdb.Close() }

// Ping checks that Redis answers, within the context's deadline.
func (c *Client) Ping(ctx context.Context) error {
	if err := c.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("%w at %s: %v", ErrUnavailable, c.addr, err)
	}
	return nil
}

// IsUnavailable reports whether err means Redis could not be reached (as opposed to a command error).
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrUnavailable) || errors.Is(err, redis.ErrClosed) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return true
	}
	s := err.Error()
	return strings.Contains(s, "connection refused") || strings.Contains(s, "EOF") ||
		strings.Contains(s, "broken pipe") || strings.Contains(s, "connection reset") ||
		strings.HasPrefix(s, "LOADING") || strings.Contains(s, "i/o timeout")
}

// Redact removes the password from a Redis URL so it can be logged.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		if err != nil {
			return "<invalid url>"
		}
		return raw
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
