// Package embedded owns the store `hemostat run` serves when no Redis is configured or answering: a
// supervised redis-server child when one is installed, else an in-process Redis-protocol store (miniredis)
// with an append-only journal. Either way it listens on loopback only, keeps its state in a data directory,
// and answers nothing until that state is restored ("ready means restored").
//
// It is a store backend, like pkg/store: it may import go-redis (to wait for the child and to read the
// in-process store's state for its journal).
package embedded

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// Kind names a backend of the embedded store.
type Kind string

// The backends. Auto runs a redis-server child when one is found, else the in-process store.
const (
	Auto        Kind = "auto"
	RedisServer Kind = "redis-server"
	InProcess   Kind = "in-process"
)

// Kinds are the accepted values of Options.Kind, for flags and docs.
var Kinds = []string{string(Auto), string(RedisServer), string(InProcess)}

// Options configure the embedded store.
type Options struct {
	Kind    Kind   // default Auto
	Addr    string // loopback address to serve on, e.g. 127.0.0.1:6379; port 0 picks a free one
	DataDir string // where the state lives; "" keeps nothing on disk (in-process only, for tests)
	// RedisServerPath is the redis-server binary; "" looks it up on PATH.
	RedisServerPath string
	// FlushEvery is how often the in-process journal is written and fsynced (default 500ms, so a write
	// acknowledged more than a second before a crash is on disk).
	FlushEvery time.Duration
	// TTLTick is how often the in-process store expires keys (default 1s): a key may outlive its TTL by up
	// to this much.
	TTLTick time.Duration
	// DurableReads are keys whose writes reach the journal before a read of the key is answered (default:
	// the audit trail), so that `hemostat audit` never shows an entry a crash could take back. The
	// redis-server child needs none: it writes and fsyncs its AOF before it answers anyone.
	DurableReads []string
	Logger       *slog.Logger
}

// Server is a running embedded store.
type Server interface {
	// Kind says which backend runs.
	Kind() Kind
	// Addr is the address the store serves on.
	Addr() string
	// Close stops serving after making every acknowledged write durable.
	Close() error
}

// URL is the redis:// URL of a running store, database 0.
func URL(s Server) string { return "redis://" + s.Addr() + "/0" }

// ErrNoRedisServer is returned for Kind RedisServer when no redis-server binary is found.
var ErrNoRedisServer = errors.New("no redis-server binary found")

// Start restores the state from DataDir and starts serving on Addr. It returns once the state is loaded
// and the store answers; an error names the directory, file or address at fault.
func Start(o Options) (Server, error) {
	if o.Kind == "" {
		o.Kind = Auto
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if err := checkLoopback(o.Addr); err != nil {
		return nil, err
	}
	if o.DataDir != "" {
		if err := checkDataDir(o.DataDir); err != nil {
			return nil, err
		}
	}
	switch o.Kind {
	case Auto, RedisServer:
		path, err := lookRedisServer(o.RedisServerPath)
		if err == nil {
			if o.DataDir == "" {
				return nil, fmt.Errorf("embedded redis-server needs a data directory")
			}
			c, err := startChild(o, path)
			if err != nil {
				return nil, err
			}
			return c, nil
		}
		if o.Kind == RedisServer {
			return nil, err
		}
		o.Logger.Info("no redis-server installed: serving the in-process store", "reason", err)
		fallthrough
	case InProcess:
		p, err := startInProcess(o)
		if err != nil {
			return nil, err
		}
		return p, nil
	default:
		return nil, fmt.Errorf("embedded store kind %q: want one of auto, redis-server, in-process", o.Kind)
	}
}

func lookRedisServer(path string) (string, error) {
	if path == "" {
		p, err := exec.LookPath("redis-server")
		if err != nil {
			return "", fmt.Errorf("%w on PATH", ErrNoRedisServer)
		}
		return p, nil
	}
	p, err := exec.LookPath(path)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %v", ErrNoRedisServer, path, err)
	}
	return p, nil
}

// checkLoopback refuses an address beyond loopback: the store has no password.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("embedded store address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("embedded store address %q: must be a loopback address (it has no password)", addr)
	}
	return nil
}

// checkDataDir creates dir and proves a file can be written and synced there, so a read-only or full
// disk fails at start with the directory's name rather than at the first write.
func checkDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data dir %s: %w", dir, err)
	}
	probe := filepath.Join(dir, ".hemostat-write-test")
	f, err := os.OpenFile(probe, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("data dir %s is not writable: %w", dir, err)
	}
	_, werr := f.Write(make([]byte, 4096))
	serr := f.Sync()
	cerr := f.Close()
	os.Remove(probe)
	if err := errors.Join(werr, serr, cerr); err != nil {
		return fmt.Errorf("data dir %s is not writable (full disk?): %w", dir, err)
	}
	return nil
}
