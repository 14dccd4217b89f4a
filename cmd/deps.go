package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hemostat/hemostat/pkg/bus"
	"github.com/hemostat/hemostat/pkg/conn"
	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/store"
)

// GlobalOptions are the persistent flags every subcommand shares.
type GlobalOptions struct {
	Redis     RedisOptions
	HostName  string
	LogLevel  string
	LogFormat string
}

// Deps carries the IO streams, the logger and lazy constructors of the shared clients.
type Deps struct {
	In      io.Reader
	Out     io.Writer
	Err     io.Writer
	Global  GlobalOptions
	Signing SigningOptions
	Logger  *slog.Logger

	mu         sync.Mutex
	busWarning sync.Once
	store      *store.Store
	docker     *docker.Client
	closers    []func()
}

// NewDeps returns dependencies over the given streams.
func NewDeps(in io.Reader, out, errw io.Writer) *Deps {
	return &Deps{In: in, Out: out, Err: errw, Logger: slog.New(slog.NewTextHandler(errw, nil))}
}

func (d *Deps) init() error {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(d.Global.LogLevel)); err != nil {
		return UsageError("--log-level %q: want debug, info, warn or error", d.Global.LogLevel)
	}
	ho := &slog.HandlerOptions{Level: lvl}
	switch strings.ToLower(d.Global.LogFormat) {
	case "text":
		d.Logger = slog.New(slog.NewTextHandler(d.Err, ho))
	case "json":
		d.Logger = slog.New(slog.NewJSONHandler(d.Err, ho))
	default:
		return UsageError("--log-format %q: want text or json", d.Global.LogFormat)
	}
	// The Redis driver would print every failed dial; agents log each state change once instead.
	conn.QuietDriverLogs(d.Logger)
	if err := d.Signing.load(); err != nil {
		return err
	}
	if d.Global.HostName == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "localhost"
		}
		d.Global.HostName = h
	}
	return nil
}

// HostName is this Docker host's name in incident keys.
func (d *Deps) HostName() string { return d.Global.HostName }

// Instance is a unique name for this agent process within its consumer groups.
func (d *Deps) Instance() string { return fmt.Sprintf("%s-%d", d.Global.HostName, os.Getpid()) }

// Store opens the Redis connection once and checks it answers; an unreachable Redis is an
// ErrUnavailable error (exit 3) that says what was tried.
func (d *Deps) Store(ctx context.Context) (*store.Store, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.store != nil {
		return d.store, nil
	}
	c, err := conn.Open(d.redisOptions(32))
	if err != nil {
		return nil, UsageError("%v", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := c.Check(pctx); err != nil {
		c.Close()
		if errors.Is(err, conn.ErrCluster) {
			return nil, err
		}
		return nil, fmt.Errorf("%w (tried %s; %s)", err, d.redisTarget(), d.redisHint())
	}
	d.store = store.New(c)
	d.closers = append(d.closers, func() { c.Close() })
	return d.store, nil
}

// Bus returns a bus over the store.
func (d *Deps) Bus(ctx context.Context, o bus.Options) (*bus.Bus, error) {
	c, err := d.Store(ctx)
	if err != nil {
		return nil, err
	}
	if o.Logger == nil {
		o.Logger = d.Logger
	}
	o.Keys = d.Signing.Keys()
	d.busWarning.Do(func() {
		if o.Keys == nil {
			d.Logger.Warn("bus entries are not authenticated: anyone who can write to Redis can order a restart, stop or exec; set --signing-key (HEMOSTAT_SIGNING_KEY_FILE)")
			return
		}
		d.Logger.Info("bus entries are signed and verified", "signing_key", o.Keys.SigningKey(), "keys", o.Keys.KeyIDs())
	})
	return bus.New(c.Conn, o), nil
}

// OnClose registers cleanup to run after the command finishes.
func (d *Deps) OnClose(f func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closers = append(d.closers, f)
}

func (d *Deps) closeAll() {
	d.mu.Lock()
	cs := d.closers
	d.closers = nil
	d.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i]()
	}
}

// Docker connects to the engine once (DOCKER_HOST and friends), negotiating the API version; an
// unreachable engine is a docker.ErrUnavailable error (exit 3).
func (d *Deps) Docker(ctx context.Context) (*docker.Client, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.docker != nil {
		return d.docker, nil
	}
	c, err := docker.New(ctx, docker.Options{})
	if err != nil {
		return nil, fmt.Errorf("%w (set DOCKER_HOST to point at the engine)", err)
	}
	d.docker = c
	d.closers = append(d.closers, func() { c.Close() })
	return c, nil
}
