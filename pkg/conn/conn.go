// Package conn owns hemostat's connections to Redis: it parses the configuration (a redis:// or rediss://
// URL and a password), builds the go-redis client every other Redis package shares, tells an unreachable
// Redis from a failed command, and keeps passwords out of what is logged.
//
// Only pkg/conn, pkg/bus and the packages under pkg/store import go-redis: the bus reads and writes the
// streams, each store package owns one body of state. Agents depend on those, never on a Redis client.
package conn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrUnavailable is returned when Redis cannot be reached.
var ErrUnavailable = errors.New("redis unavailable")

// Connection defaults: a dial is quick on a LAN, commands are small, and a blocked read sets its own
// timeout. One retry covers a connection the server closed while it sat idle in the pool.
const (
	DialTimeout  = 2 * time.Second
	ReadTimeout  = 5 * time.Second
	WriteTimeout = 5 * time.Second
	MaxRetries   = 1
)

// Options configure a connection.
type Options struct {
	URL      string // redis:// or rediss:// (TLS)
	Password string // overrides the URL's password when set
	PoolSize int    // 0: go-redis's default (10 per CPU)
}

// Conn is a pool of connections to one Redis. Its zero value is not usable; call Open.
type Conn struct {
	rdb  *redis.Client
	addr string
}

// Open parses the options and builds the pool. It does not dial: call Ping to check.
func Open(o Options) (*Conn, error) {
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
	ro.DialTimeout = DialTimeout
	ro.ReadTimeout = ReadTimeout
	ro.WriteTimeout = WriteTimeout
	ro.MaxRetries = MaxRetries
	ro.ContextTimeoutEnabled = true
	return &Conn{rdb: redis.NewClient(ro), addr: ro.Addr}, nil
}

// Wrap makes a Conn of an existing go-redis client (tests, benchmarks).
func Wrap(rdb *redis.Client) *Conn { return &Conn{rdb: rdb, addr: rdb.Options().Addr} }

// Client is the go-redis client, for pkg/bus and the pkg/store packages only.
func (c *Conn) Client() *redis.Client { return c.rdb }

// Addr is the host:port dialled.
func (c *Conn) Addr() string { return c.addr }

// Close releases the connections.
func (c *Conn) Close() error { return c.rdb.Close() }

// Ping checks that Redis answers, within the context's deadline.
func (c *Conn) Ping(ctx context.Context) error {
	if err := c.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("%w at %s: %v", ErrUnavailable, c.addr, err)
	}
	return nil
}

// Follower returns a new one-connection pool to the same server for one long blocking reader. Closing
// it interrupts a blocking read at once, which cancelling the read's context does not; the caller closes it.
func (c *Conn) Follower() *Conn {
	o := *c.rdb.Options()
	o.PoolSize = 1
	o.MinIdleConns = 0
	return &Conn{rdb: redis.NewClient(&o), addr: c.addr}
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

// IsNoScript reports whether err is Redis's answer to EVALSHA of a script it has not cached.
func IsNoScript(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") }

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

// QuietDriverLogs sends the Redis driver's own log lines (dial failures while Redis is down, which it
// otherwise prints on stderr) to logger at debug level, or drops them when logger is nil. The driver's
// logger is process-wide: call it once, at start.
func QuietDriverLogs(logger *slog.Logger) {
	redis.SetLogger(driverLogger{logger})
}

type driverLogger struct{ l *slog.Logger }

// Printf implements the driver's logging interface.
func (d driverLogger) Printf(ctx context.Context, format string, v ...any) {
	if d.l != nil {
		d.l.DebugContext(ctx, "redis driver", "line", fmt.Sprintf(format, v...))
	}
}
