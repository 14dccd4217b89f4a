// Package docker is hemostat's only door to the Docker engine: it wraps the Docker SDK (with API version
// negotiation), classifies its errors, and converts its types into hemostat's own.
package docker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/docker/docker/client"
	"github.com/docker/docker/errdefs"
)

// Classified errors; test with errors.Is.
var (
	ErrUnavailable = errors.New("docker unavailable")
	ErrNotFound    = errors.New("not found")
	ErrConflict    = errors.New("conflict")
)

// Client talks to one Docker engine.
type Client struct {
	api *client.Client
	// APIVersion is the negotiated API version.
	APIVersion string
	// ServerVersion is the engine's version, from the ping.
	ServerVersion string
}

// Options select the engine; empty means the environment (DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH,
// DOCKER_API_VERSION).
type Options struct {
	Host string
}

// New connects to the engine, negotiates the API version and pings it. An unreachable engine is an
// ErrUnavailable error that names what was tried.
func New(ctx context.Context, o Options) (*Client, error) {
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if o.Host != "" {
		opts = append(opts, client.WithHost(o.Host))
	}
	api, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	c := &Client{api: api}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.Ping(pctx); err != nil {
		api.Close()
		return nil, err
	}
	return c, nil
}

// Ping checks the engine answers and records its versions.
func (c *Client) Ping(ctx context.Context) error {
	p, err := c.api.Ping(ctx)
	if err != nil {
		return fmt.Errorf("%w at %s: %v", ErrUnavailable, c.api.DaemonHost(), err)
	}
	c.api.NegotiateAPIVersionPing(p)
	c.APIVersion = c.api.ClientVersion()
	if v, err := c.api.ServerVersion(ctx); err == nil {
		c.ServerVersion = v.Version
	}
	return nil
}

// Host is the engine address in use.
func (c *Client) Host() string { return c.api.DaemonHost() }

// Close releases the client's connections.
func (c *Client) Close() error { return c.api.Close() }

// classify wraps an SDK error with one of the package's sentinel errors where it applies.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	switch {
	case errdefs.IsNotFound(err):
		return fmt.Errorf("%s: %w: %v", op, ErrNotFound, err)
	case errdefs.IsConflict(err):
		return fmt.Errorf("%s: %w: %v", op, ErrConflict, err)
	case client.IsErrConnectionFailed(err) || errdefs.IsUnavailable(err) || isConnErr(err):
		return fmt.Errorf("%s: %w: %v", op, ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

func isConnErr(err error) bool {
	s := err.Error()
	return strings.Contains(s, "connection refused") || strings.Contains(s, "no such file or directory") ||
		strings.Contains(s, "Cannot connect to the Docker daemon") || strings.Contains(s, "EOF") ||
		strings.Contains(s, "connection reset")
}
