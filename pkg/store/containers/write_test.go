package containers_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	case "info": // the test's own reading of INFO commandstats
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

// TestWriteContainersSendsOnlyChanges: the first write replaces the host's hash in one transaction and
// reads nothing but whether the legacy table exists, a write of an unchanged table sends nothing, a
// changed summary is the only one sent, a removed one is deleted, and the hash is replaced whole again
// after refreshEvery and after a failed write.
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
		whole := func(fields string) []string { return []string{"multi", "del", "hset " + fields, "sadd", "exec"} }
		if got, want := write(a, b, c), []string{"multi", "del", "hset h1/a h1/b h1/c", "sadd", "exists", "exec"}; !cmp.Equal(got, want) {
			t.Errorf("first write sent %q, want %q", got, want)
		}
		now = now.Add(10 * time.Second)
		if got := write(a, b, c); len(got) != 0 {
			t.Errorf("unchanged write sent %q, want nothing", got)
		}
		b2 := b
		b2.State, b2.ExitCode, b2.UpdatedAt = "exited", 1, now
		if got, want := write(a, b2), []string{"hdel h1/c", "hset h1/b", "sadd"}; !cmp.Equal(got, want) {
			t.Errorf("write of b changed and c gone sent %q, want %q", got, want)
		}
		now = now.Add(containers.RefreshEvery)
		if got, want := write(a, b2), whole("h1/a h1/b"); !cmp.Equal(got, want) {
			t.Errorf("write after the refresh period sent %q, want %q", got, want)
		}
		// A failed write (here, a cancelled one) makes the next one whole.
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		if err := cs.WriteContainers(cancelled, "h1", []container.Summary{a, b2, c}); err == nil {
			t.Fatal("write with a cancelled context succeeded")
		}
		rec.take()
		if got, want := write(a, b2), whole("h1/a h1/b"); !cmp.Equal(got, want) {
			t.Errorf("write after a failed one sent %q, want %q", got, want)
		}
		if got := write(a, b2); len(got) != 0 {
			t.Errorf("unchanged write after the whole one sent %q, want nothing", got)
		}
		// A host left with no containers: its hash deleted; when it is whole, a DEL only.
		if got, want := write(), []string{"hdel h1/a h1/b"}; !cmp.Equal(got, want) {
			t.Errorf("write of no containers sent %q, want %q", got, want)
		}
		now = now.Add(containers.RefreshEvery)
		if got, want := write(), []string{"del"}; !cmp.Equal(got, want) {
			t.Errorf("whole write of no containers sent %q, want %q", got, want)
		}
		if got, want := write(a, b2), []string{"hset h1/a h1/b", "sadd"}; !cmp.Equal(got, want) {
			t.Errorf("write of containers back sent %q, want %q", got, want)
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
// makes the next one whole, so a host's hash lost meanwhile, and its place in the set of hosts, are
// restored.
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
		if err := rdb.Del(ctx, schema.ContainersKey(h)).Err(); err != nil {
			t.Fatal(err)
		}
		if err := rdb.SRem(ctx, schema.KeyHosts, h).Err(); err != nil {
			t.Fatal(err)
		}
		write(h)
		check("after a failed write and a lost table")
	})
}

// commandCalls returns the calls of each command the server counted (INFO commandstats), by name.
func commandCalls(t *testing.T, rdb *redis.Client) map[string]int64 {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		calls, _, _ := strings.Cut(strings.TrimPrefix(rest, "calls="), ",")
		n, err := strconv.ParseInt(calls, 10, 64)
		if err != nil {
			t.Fatalf("commandstats line %q: %v", line, err)
		}
		out[strings.TrimPrefix(name, "cmdstat_")] = n
	}
	return out
}

// privateServer says the subtest's backend is a redis-server of its own, whose INFO commandstats count
// only the test's commands (the test redis-server is shared by the tests running meanwhile).
func privateServer(t *testing.T) bool { return path.Base(t.Name()) == storetest.RedisChild }

// TestWriteContainersFirstWriteReadsNothing: a fleet's first writes (a store per host, as monitors
// starting together) each replace the host's hash in one transaction and read nothing of what other
// hosts wrote (issue 17: each scanned the shared table): no HSCAN, HKEYS, HGETALL or SCAN reaches the
// server, only the EXISTS of the legacy table, in the write's round trip.
func TestWriteContainersFirstWriteReadsNothing(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		rec := &recorder{}
		rdb.AddHook(storetest.OnCommand(rec.add))
		var before map[string]int64
		if privateServer(t) {
			before = commandCalls(t, rdb)
		}
		want := map[string]container.Summary{}
		for i := range 50 {
			h := fmt.Sprintf("h%d", i)
			var sums []container.Summary
			for j := range 20 {
				s := summary(h, fmt.Sprintf("c%02d", j), "running")
				sums = append(sums, s)
				want[s.Target()] = s
			}
			if err := containers.New(st.Conn).WriteContainers(ctx, h, sums); err != nil {
				t.Fatal(err)
			}
			fields := make([]string, len(sums))
			for j, s := range sums {
				fields[j] = s.Target()
			}
			wantCmds := []string{"multi", "del", "hset " + strings.Join(fields, " "), "sadd", "exists", "exec"}
			if got := rec.take(); !cmp.Equal(got, wantCmds) {
				t.Fatalf("first write of %s sent %q, want %q", h, got, wantCmds)
			}
		}
		if before != nil {
			after := commandCalls(t, rdb)
			for _, c := range []string{"hscan", "hkeys", "hgetall", "scan", "keys"} {
				if after[c] != before[c] {
					t.Errorf("the first writes made %d %s calls, want none", after[c]-before[c], c)
				}
			}
			if n := after["exists"] - before["exists"]; n != 50 {
				t.Errorf("the first writes made %d exists calls, want 50", n)
			}
		}
		got, problems, err := containers.New(st.Conn).All(ctx)
		if err != nil || problems != nil {
			t.Fatalf("all: %v %v", problems, err)
		}
		if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
			t.Errorf("table (-want +got):\n%s", diff)
		}
	})
}

// TestWriteContainersWholeWriteIsAtomic: while a host's hash is replaced whole over and over (every write
// after refreshEvery, alternating two tables of different containers and sizes), a reader polling All
// sees either table, whole, never the hash empty or half written; another host's hash is untouched.
func TestWriteContainersWholeWriteIsAtomic(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		now := t0
		cs := containers.New(st.Conn)
		containers.SetClock(cs, func() time.Time { return now })
		// Two tables big enough that one write does not fit a read buffer of the server (16 KiB).
		tables := make([][]container.Summary, 2)
		for gen, n := range []int{400, 250} {
			for i := range n {
				s := summary("h1", fmt.Sprintf("c%03d-%d", i, gen), "running")
				s.RestartCount = gen
				s.Labels["padding"] = strings.Repeat("x", 200)
				tables[gen] = append(tables[gen], s)
			}
		}
		other := summary("h2", "db", "running")
		if err := containers.New(st.Conn).WriteContainers(ctx, "h2", []container.Summary{other}); err != nil {
			t.Fatal(err)
		}
		if err := cs.WriteContainers(ctx, "h1", tables[0]); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		var reads int
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			reader := containers.New(st.Conn)
			for {
				select {
				case <-done:
					return
				default:
				}
				got, problems, err := reader.All(ctx)
				if err != nil || problems != nil {
					t.Errorf("all: %v %v", problems, err)
					return
				}
				reads++
				if _, ok := got["h2/db"]; !ok {
					t.Errorf("read %d: h2/db missing", reads)
					return
				}
				count, gens := 0, map[int]int{}
				for _, s := range got {
					if s.Host == "h1" {
						count++
						gens[s.RestartCount]++
					}
				}
				if len(gens) != 1 || (gens[0] != 0 && gens[0] != len(tables[0])) || (gens[1] != 0 && gens[1] != len(tables[1])) {
					t.Errorf("read %d: h1 half written: %d containers, by table %v", reads, count, gens)
					return
				}
			}
		}()
		for i := range 60 {
			now = now.Add(containers.RefreshEvery)
			if err := cs.WriteContainers(ctx, "h1", tables[(i+1)%2]); err != nil {
				t.Error(err)
				break
			}
		}
		close(done)
		wg.Wait()
		if reads == 0 {
			t.Error("the reader read nothing while the table was written")
		}
	})
}

// failHook fails every HSCAN while fail is set.
type failHook struct{ fail atomic.Bool }

func (h *failHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *failHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, c redis.Cmder) error {
		if h.fail.Load() && c.Name() == "hscan" {
			c.SetErr(errors.New("injected failure"))
			return c.Err()
		}
		return next(ctx, c)
	}
}

func (h *failHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestWriteContainersLegacyUpgrade: over the shared table of an earlier version, a store's first write of
// a host removes the host's fields from it (HSCAN MATCH host/*, hosts whose names start with another's or
// hold glob characters included) and later writes do not look at it again; readers ignore it; once every
// host is written it is gone, and a first write scans nothing again. A failed removal is reported and
// done at the next write.
func TestWriteContainersLegacyUpgrade(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		legacy := func() []string {
			t.Helper()
			f, err := rdb.HKeys(ctx, schema.KeyContainersLegacy).Result()
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(f)
			return f
		}
		hscans := func() int64 {
			if !privateServer(t) {
				return 0
			}
			return commandCalls(t, rdb)["hscan"]
		}
		if err := rdb.HSet(ctx, schema.KeyContainersLegacy, "h1/a", "{}", "h1/old", "{}", "h10/x", "{}", "h[1]*/y", "{}",
			"h2/db", "{}").Err(); err != nil {
			t.Fatal(err)
		}
		rec := &recorder{}
		rdb.AddHook(storetest.OnCommand(rec.add))
		before := hscans()
		s1 := containers.New(st.Conn)
		a := summary("h1", "a", "running")
		if err := s1.WriteContainers(ctx, "h1", []container.Summary{a}); err != nil {
			t.Fatal(err)
		}
		if got, want := rec.take(), []string{"multi", "del", "hset h1/a", "sadd", "exists", "exec", "hscan", "hdel h1/a h1/old"}; !cmp.Equal(got, want) {
			t.Errorf("first write over the legacy table sent %q, want %q", got, want)
		}
		if privateServer(t) && hscans() == before {
			t.Error("no HSCAN counted by the server")
		}
		if got, want := legacy(), []string{"h10/x", "h2/db", "h[1]*/y"}; !cmp.Equal(got, want) {
			t.Errorf("legacy table after h1's first write: %q, want %q", got, want)
		}
		all, problems, err := s1.All(ctx)
		if err != nil || problems != nil {
			t.Fatalf("all: %v %v", problems, err)
		}
		if diff := cmp.Diff(map[string]container.Summary{"h1/a": a}, all); diff != "" {
			t.Errorf("readers see (-want +got):\n%s", diff)
		}
		rec.take() // the test's own reads
		b := summary("h1", "b", "running")
		if err := s1.WriteContainers(ctx, "h1", []container.Summary{a, b}); err != nil {
			t.Fatal(err)
		}
		if got, want := rec.take(), []string{"hset h1/b", "sadd"}; !cmp.Equal(got, want) {
			t.Errorf("second write sent %q, want %q", got, want)
		}
		// The other hosts upgrade; h2 has no containers left.
		for _, h := range []string{"h[1]*", "h10", "h2"} {
			var sums []container.Summary
			if h != "h2" {
				sums = append(sums, summary(h, "n", "running"))
			}
			if err := containers.New(st.Conn).WriteContainers(ctx, h, sums); err != nil {
				t.Fatal(err)
			}
		}
		if n := rdb.Exists(ctx, schema.KeyContainersLegacy).Val(); n != 0 {
			t.Errorf("legacy table still there with %q once every host was written", legacy())
		}
		rec.take()
		before = hscans()
		if err := containers.New(st.Conn).WriteContainers(ctx, "h3", []container.Summary{summary("h3", "c", "running")}); err != nil {
			t.Fatal(err)
		}
		if got, want := rec.take(), []string{"multi", "del", "hset h3/c", "sadd", "exists", "exec"}; !cmp.Equal(got, want) {
			t.Errorf("first write after the upgrade sent %q, want %q", got, want)
		}
		if after := hscans(); after != before {
			t.Errorf("first write after the upgrade: %d HSCAN calls, want none", after-before)
		}

		// A removal that fails: the write is done, the failure returned, the removal done at the next write.
		if err := rdb.HSet(ctx, schema.KeyContainersLegacy, "h4/z", "{}", "h5/z", "{}").Err(); err != nil {
			t.Fatal(err)
		}
		fh := &failHook{}
		rdb.AddHook(fh)
		fh.fail.Store(true)
		s4 := containers.New(st.Conn)
		z := summary("h4", "z", "running")
		if err := s4.WriteContainers(ctx, "h4", []container.Summary{z}); err == nil || !strings.Contains(err.Error(), "injected") {
			t.Errorf("write whose legacy removal failed: %v, want the failure", err)
		}
		fh.fail.Store(false)
		if ok, err := s4.Has(ctx, "h4/z"); !ok || err != nil {
			t.Errorf("h4/z after the write whose removal failed: %v %v, want written", ok, err)
		}
		rec.take()
		if err := s4.WriteContainers(ctx, "h4", []container.Summary{z}); err != nil {
			t.Fatal(err)
		}
		if got, want := rec.take(), []string{"exists", "hscan", "hdel h4/z"}; !cmp.Equal(got, want) {
			t.Errorf("write after a failed removal sent %q, want %q", got, want)
		}
		if got, want := legacy(), []string{"h5/z"}; !cmp.Equal(got, want) {
			t.Errorf("legacy table: %q, want %q", got, want)
		}
		rec.take()
		if err := s4.WriteContainers(ctx, "h4", []container.Summary{z}); err != nil {
			t.Fatal(err)
		}
		if got := rec.take(); len(got) != 0 {
			t.Errorf("unchanged write after the removal sent %q, want nothing", got)
		}
	})
}
