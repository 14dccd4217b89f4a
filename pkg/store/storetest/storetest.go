// Package storetest runs the store packages' tests against both Redis backends hemostat supports: the
// test command's redis-server and miniredis, the embedded store of `hemostat run`. Every Lua script must
// behave the same on both. It is test support: it may import go-redis and miniredis directly.
package storetest

import (
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/conn"
	"github.com/hemostat/hemostat/pkg/store"
	"github.com/hemostat/hemostat/pkg/testenv"
)

// Backend names, the names of Backends' subtests.
const (
	Redis     = "redis"
	Miniredis = "miniredis"
)

// Backends runs fn in two parallel subtests: on a fresh database of the test redis-server
// (testenv.RequireRedis: skipped without one, failed under CI=true) and on a fresh miniredis whose TTLs
// follow the wall clock, as the embedded store's do. st is a Store over the backend; rdb is its go-redis
// client, for setting up and inspecting keys directly.
func Backends(t *testing.T, fn func(t *testing.T, st *store.Store, rdb *redis.Client)) {
	t.Helper()
	for _, name := range []string{Redis, Miniredis} {
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
	case Miniredis:
		m := miniredis.RunT(t)
		m.ClockTTL(true)
		url = "redis://" + m.Addr() + "/0"
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
