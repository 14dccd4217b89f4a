package store_test

import (
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/store"
	"github.com/hemostat/hemostat/pkg/testenv"
)

// scriptBackends runs fn against the test redis-server and against miniredis (the embedded store of
// `hemostat run`): the Lua scripts must behave the same on both.
func scriptBackends(t *testing.T, fn func(t *testing.T, st *store.Client, rdb *redis.Client)) {
	for _, name := range []string{"redis", "miniredis"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var url string
			if name == "redis" {
				url = testenv.RequireRedis(t)
			} else {
				url = "redis://" + miniredis.RunT(t).Addr() + "/0"
			}
			st, err := store.Open(store.Options{URL: url})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			fn(t, st, st.Redis())
		})
	}
}
