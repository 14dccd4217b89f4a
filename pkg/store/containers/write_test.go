package containers_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/container"
	"github.com/hemostat/hemostat/pkg/store"
	"github.com/hemostat/hemostat/pkg/store/containers"
	"github.com/hemostat/hemostat/pkg/store/schema"
	"github.com/hemostat/hemostat/pkg/store/storetest"
)

// recorder records the commands sent (its add is a storetest.OnCommand hook), as "hset f1 f2".
type recorder struct {
	mu   sync.Mutex
	cmds []string
}

func (r *recorder) add(c redis.Cmder) {
	args := c.Args()
	s := []string{strings.ToLower(c.Name())}
	switch s[0] {
	case "hello", "client", "select", "auth", "ping": // a new connection's handshake
		return
	}
	if s[0] == "hset" { // the fields, not the values
		for i := 2; i < len(args); i += 2 {
			s = append(s, fmt.Sprint(args[i]))
		}
	} else if s[0] == "hdel" {
		for _, a := range args[2:] {
			s = append(s, fmt.Sprint(a))
		}
	}
	r.mu.Lock()
	r.cmds = append(r.cmds, strings.Join(s, " "))
	r.mu.Unlock()
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.cmds
	r.cmds = nil
	return out
}

// TestWriteContainersSendsOnlyChanges: a write of an unchanged table sends nothing, a changed summary is
// the only one sent, a removed one is deleted, and the whole part is written again after refreshEvery.
func TestWriteContainersSendsOnlyChanges(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		now := t0
		cs := containers.New(st.Conn)
		containers.SetClock(cs, func() time.Time { return now })
		rec := &recorder{}
		rdb.AddHook(storetest.OnCommand(rec.add))
		a, b, c := summary("h1", "a", "running"), summary("h1", "b", "running"), summary("h1", "c", "running")
		write := func(sums ...container.Summary) []string {
			t.Helper()
			if err := cs.WriteContainers(ctx, "h1", sums); err != nil {
				t.Fatal(err)
			}
			return rec.take()
		}
		if got, want := write(a, b, c), []string{"hscan", "hset h1/a h1/b h1/c"}; !cmp.Equal(got, want) {
			t.Errorf("first write sent %q, want %q", got, want)
		}
		now = now.Add(10 * time.Second)
		if got := write(a, b, c); len(got) != 0 {
			t.Errorf("unchanged write sent %q, want nothing", got)
		}
		b2 := b
		b2.State, b2.ExitCode, b2.UpdatedAt = "exited", 1, now
		if got, want := write(a, b2), []string{"hdel h1/c", "hset h1/b"}; !cmp.Equal(got, want) {
			t.Errorf("write of b changed and c gone sent %q, want %q", got, want)
		}
		now = now.Add(containers.RefreshEvery)
		if got, want := write(a, b2), []string{"hset h1/a h1/b"}; !cmp.Equal(got, want) {
			t.Errorf("write after the refresh period sent %q, want %q", got, want)
		}
		// A failed write (here, a cancelled one) makes the next one whole, without scanning the table again.
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		if err := cs.WriteContainers(cancelled, "h1", []container.Summary{a, b2, c}); err == nil {
			t.Fatal("write with a cancelled context succeeded")
		}
		rec.take()
		if got, want := write(a, b2), []string{"hdel h1/c", "hset h1/a h1/b"}; !cmp.Equal(got, want) {
			t.Errorf("write after a failed one sent %q, want %q", got, want)
		}
		if got := write(a, b2); len(got) != 0 {
			t.Errorf("unchanged write after the whole one sent %q, want nothing", got)
		}
		got, _, err := cs.All(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(map[string]container.Summary{"h1/a": a, "h1/b": b2}, got); diff != "" {
			t.Errorf("table (-want +got):\n%s", diff)
		}
	})
}

// TestWriteContainersReadersSeeEveryWrite: over random rounds of several hosts (one whose name starts
// with another's, one with glob characters) adding, changing and removing containers, a reader sees after
// each write exactly what the hosts wrote last, as it did when every write sent the whole table; a store
// that starts over a table left by an earlier one deletes the containers gone meanwhile; a failed write
// makes the next one whole, so a table lost meanwhile is restored.
func TestWriteContainersReadersSeeEveryWrite(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		hosts := []string{"h1", "h10", "h[1]*"}
		rng := rand.New(rand.NewPCG(1, 2))
		want := map[string]container.Summary{}
		cur := map[string]map[string]container.Summary{} // host -> name -> summary
		writers := map[string]*containers.Store{}
		for _, h := range hosts {
			writers[h] = containers.New(st.Conn)
			cur[h] = map[string]container.Summary{}
		}
		check := func(step string) {
			t.Helper()
			got, problems, err := containers.New(st.Conn).All(ctx)
			if err != nil || problems != nil {
				t.Fatalf("%s: all: %v %v", step, problems, err)
			}
			if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
				t.Fatalf("%s: table (-want +got):\n%s", step, diff)
			}
		}
		write := func(h string) {
			t.Helper()
			var sums []container.Summary
			for _, s := range cur[h] {
				sums = append(sums, s)
			}
			if err := writers[h].WriteContainers(ctx, h, sums); err != nil {
				t.Fatal(err)
			}
			for k, s := range want {
				if s.Host == h {
					delete(want, k)
				}
			}
			for _, s := range sums {
				want[s.Target()] = s
			}
		}
		for round := range 40 {
			h := hosts[rng.IntN(len(hosts))]
			for range rng.IntN(4) {
				name := fmt.Sprintf("c%d", rng.IntN(8))
				switch rng.IntN(3) {
				case 0:
					delete(cur[h], name)
				default:
					s := summary(h, name, []string{"running", "exited", "restarting"}[rng.IntN(3)])
					s.RestartCount = rng.IntN(3)
					cur[h][name] = s
				}
			}
			write(h)
			check(fmt.Sprintf("round %d (%s)", round, h))
			if round == 20 { // a monitor restarts: a new store over the table its predecessor wrote
				writers[h] = containers.New(st.Conn)
				delete(cur[h], "c1")
				delete(cur[h], "c2")
				write(h)
				check("after a restart")
			}
		}
		// A write that fails is forgotten: the next one is whole, and restores a table lost meanwhile.
		h := hosts[0]
		cur[h]["x"] = summary(h, "x", "running")
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		var sums []container.Summary
		for _, s := range cur[h] {
			sums = append(sums, s)
		}
		if err := writers[h].WriteContainers(cancelled, h, sums); err == nil {
			t.Fatal("write with a cancelled context succeeded")
		}
		if err := rdb.Del(ctx, schema.KeyContainers).Err(); err != nil {
			t.Fatal(err)
		}
		for k, s := range want {
			if s.Host != h {
				delete(want, k)
			}
		}
		write(h)
		check("after a failed write and a lost table")
	})
}
