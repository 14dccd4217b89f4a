// Package conn owns hemostat's connections to Redis: it parses the configuration (a redis:// or rediss://
// URL and a password, or the sentinels that know the master; TLS certificates), refuses a Redis Cluster,
// builds the go-redis client every other Redis package shares, tells an unreachable
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

// Modes of a connection: one server, or a master found through Redis Sentinel.
const (
	ModeStandalone = "standalone"
	ModeSentinel   = "sentinel"
)

// Options configure a connection.
type Options struct {
	// URL is redis:// or rediss:// (TLS). With Sentinels, its host is not dialled: only its scheme (rediss://
	// turns TLS on), user, password and database number apply.
	URL      string
	Password string // overrides the URL's password when set; with Sentinels, the sentinels' password too
	// Sentinels are the host:port addresses of Redis Sentinels; when set, the master named MasterName is
	// found through them, and found again after a failover.
	Sentinels  []string
	MasterName string
	TLS        TLSFiles // certificates; setting any of them turns TLS on
	PoolSize   int      // 0: go-redis's default (10 per CPU)
}

// Mode is ModeSentinel when the options name sentinels, else ModeStandalone.
func (o Options) Mode() string {
	if len(o.Sentinels) > 0 {
		return ModeSentinel
	}
	return ModeStandalone
}

// Conn is a pool of connections to one Redis. Its zero value is not usable; call Open.
type Conn struct {
	rdb  *redis.Client
	addr string
	o    Options // as opened, for Follower; nil-able fields of Wrap'd conns stay empty
	tls  bool
}

// Open parses the options and builds the pool. It does not dial: call Check (or Ping) to check.
func Open(o Options) (*Conn, error) {
	ro, err := redis.ParseURL(o.URL)
	if err != nil {
		return nil, fmt.Errorf("redis url %s: %w", Redact(o.URL), err)
	}
	if o.Password != "" {
		ro.Password = o.Password
	}
	tc, err := o.tlsConfig(ro)
	if err != nil {
		return nil, err
	}
	ro.TLSConfig = tc
	if o.PoolSize > 0 {
		ro.PoolSize = o.PoolSize
	}
	ro.DialTimeout = DialTimeout
	ro.ReadTimeout = ReadTimeout
	ro.WriteTimeout = WriteTimeout
	ro.MaxRetries = MaxRetries
	ro.ContextTimeoutEnabled = true
	if o.Mode() == ModeStandalone {
		if o.MasterName != "" {
			return nil, fmt.Errorf("--redis-master %s needs --redis-sentinels: the master is found through them", o.MasterName)
		}
		return &Conn{rdb: redis.NewClient(ro), addr: ro.Addr, o: o, tls: tc != nil}, nil
	}
	if o.MasterName == "" {
		return nil, fmt.Errorf("--redis-sentinels %s needs --redis-master: the name of the master in the sentinels' configuration", strings.Join(o.Sentinels, ","))
	}
	for _, a := range o.Sentinels {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, fmt.Errorf("--redis-sentinels: %q is not host:port", a)
		}
	}
	fo := &redis.FailoverOptions{
		MasterName: o.MasterName, SentinelAddrs: o.Sentinels,
		SentinelUsername: ro.Username, SentinelPassword: ro.Password,
		Username: ro.Username, Password: ro.Password, DB: ro.DB, TLSConfig: tc,
		PoolSize: ro.PoolSize, DialTimeout: ro.DialTimeout, ReadTimeout: ro.ReadTimeout, WriteTimeout: ro.WriteTimeout,
		MaxRetries: ro.MaxRetries, ContextTimeoutEnabled: true,
	}
	addr := fmt.Sprintf("master %s via sentinels %s", o.MasterName, strings.Join(o.Sentinels, ","))
	return &Conn{rdb: redis.NewFailoverClient(fo), addr: addr, o: o, tls: tc != nil}, nil
}

// Wrap makes a Conn of an existing go-redis client (tests, benchmarks).
func Wrap(rdb *redis.Client) *Conn {
	return &Conn{rdb: rdb, addr: rdb.Options().Addr, tls: rdb.Options().TLSConfig != nil}
}

// Client is the go-redis client, for pkg/bus and the pkg/store packages only.
func (c *Conn) Client() *redis.Client { return c.rdb }

// Addr is the host:port dialled, or for Sentinel the master's name and the sentinels.
func (c *Conn) Addr() string { return c.addr }

// Mode is ModeStandalone or ModeSentinel.
func (c *Conn) Mode() string { return c.o.Mode() }

// TLS reports whether the connection is encrypted.
func (c *Conn) TLS() bool { return c.tls }

// MutualTLS reports whether the connection presents a client certificate.
func (c *Conn) MutualTLS() bool { return c.tls && c.o.TLS.Cert != "" }

// Sentinels are the sentinels' addresses, in ModeSentinel.
func (c *Conn) Sentinels() []string { return c.o.Sentinels }

// Close releases the connections.
func (c *Conn) Close() error { return c.rdb.Close() }

// Ping checks that Redis answers, within the context's deadline.
func (c *Conn) Ping(ctx context.Context) error {
	if err := c.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("%w at %s: %v%s", ErrUnavailable, c.addr, err, c.o.explainTLS(err))
	}
	return nil
}

// Follower returns a new one-connection pool to the same server for one long blocking reader. Closing
// it interrupts a blocking read at once, which cancelling the read's context does not; the caller closes it.
// Through Sentinel it finds the master itself, so it follows a failover like its parent.
func (c *Conn) Follower() *Conn {
	if c.o.URL != "" {
		o := c.o
		o.PoolSize = 1
		if f, err := Open(o); err == nil { // c was opened with these options: they parse
			return f
		}
	}
	o := *c.rdb.Options()
	o.PoolSize = 1
	o.MinIdleConns = 0
	return &Conn{rdb: redis.NewClient(&o), addr: c.addr, tls: c.tls}
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
	// READONLY and MASTERDOWN come from a server that is, or just became, a replica during a failover:
	// the request waits for the new master as it would for a restart.
	return strings.Contains(s, "connection refused") || strings.Contains(s, "EOF") ||
		strings.Contains(s, "broken pipe") || strings.Contains(s, "connection reset") ||
		strings.HasPrefix(s, "LOADING") || strings.Contains(s, "i/o timeout") ||
		strings.HasPrefix(s, "READONLY") || strings.HasPrefix(s, "MASTERDOWN") ||
		strings.Contains(s, "all sentinels specified in configuration are unreachable")
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
