// Package storetest runs the store packages' tests against every Redis backend hemostat supports: the
// test command's redis-server, and the two embedded stores of `hemostat run`: its redis-server child and
// its in-process store (miniredis with a journal). Every Lua script must behave the same on all of them.
// It is test support: it may import go-redis directly.
package storetest

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/conn"
	"github.com/hemostat/hemostat/pkg/embedded"
	"github.com/hemostat/hemostat/pkg/store"
	"github.com/hemostat/hemostat/pkg/testenv"
)

// Backend names, the names of Backends' subtests.
const (
	Redis      = "redis"
	RedisChild = "embedded-redis-server"
	InProcess  = "embedded-in-process"
)

// names are the backends Backends runs on.
var names = []string{Redis, RedisChild, InProcess}

// Backends runs fn in a parallel subtest on each backend: a fresh database of the test redis-server
// (testenv.RequireRedis: skipped without one, failed under CI=true), the embedded store's redis-server
// child and its in-process store, each fresh in a temporary data directory. st is a Store over the
// backend; rdb is its go-redis client, for setting up and inspecting keys directly. After fn, an
// embedded store is restarted from its directory, and its state must be what fn left.
func Backends(t *testing.T, fn func(t *testing.T, st *store.Store, rdb *redis.Client)) {
	t.Helper()
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			st := Open(t, name)
			fn(t, st, st.Conn.Client())
		})
	}
}

// Open returns a Store over a fresh database of the named backend, closed at cleanup.
func Open(t testing.TB, backend string) *store.Store {
	t.Helper()
	var url string
	switch backend {
	case Redis:
		url = testenv.RequireRedis(t)
	case RedisChild, InProcess:
		o := embedded.Options{Kind: embedded.InProcess, Addr: "127.0.0.1:0", DataDir: t.TempDir(),
			TTLTick: 10 * time.Millisecond} // TTLs as close to the wall clock as the tests need
		if backend == RedisChild {
			o.Kind = embedded.RedisServer
			testenv.RequireRedisServer(t)
		}
		s, err := embedded.Start(o)
		if err != nil {
			t.Fatalf("start the embedded store (%s): %v", backend, err)
		}
		t.Cleanup(func() { checkRestart(t, s, o) })
		url = embedded.URL(s)
	default:
		t.Fatalf("storetest: unknown backend %q", backend)
	}
	st, err := store.Open(conn.Options{URL: url})
	if err != nil {
		t.Fatalf("open store on %s: %v", backend, err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}
