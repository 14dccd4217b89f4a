package embedded_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/embedded"
	"github.com/hemostat/hemostat/pkg/testenv"
)

// kinds are the backends every test runs on; redis-server is skipped (failed under CI=true) when not
// installed.
var kinds = []embedded.Kind{embedded.RedisServer, embedded.InProcess}

func requireKind(t testing.TB, k embedded.Kind) {
	t.Helper()
	if k == embedded.RedisServer {
		testenv.RequireRedisServer(t)
	}
}

func start(t *testing.T, k embedded.Kind, dir string, log *testenv.SyncBuffer) embedded.Server {
	t.Helper()
	s, err := embedded.Start(opts(k, dir, log))
	if err != nil {
		t.Fatalf("start %s: %v", k, err)
	}
	return s
}

func opts(k embedded.Kind, dir string, log *testenv.SyncBuffer) embedded.Options {
	var l *slog.Logger
	if log != nil {
		l = slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return embedded.Options{Kind: k, Addr: "127.0.0.1:0", DataDir: dir, Logger: l}
}

func client(t *testing.T, s embedded.Server) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr()})
	t.Cleanup(func() { c.Close() })
	return c
}

// TestRestartKeepsState: a clean stop and start keeps every kind of key, TTLs and consumer groups with
// their pending entries.
func TestRestartKeepsState(t *testing.T) {
	for _, k := range kinds {
		t.Run(string(k), func(t *testing.T) {
			requireKind(t, k)
			dir := t.TempDir()
			s := start(t, k, dir, nil)
			writeFixture(t, client(t, s))
			if err := s.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
			s = start(t, k, dir, nil)
			defer s.Close()
			checkFixture(t, client(t, s))
		})
	}
}

var fixtureScript = redis.NewScript(`redis.call('HSET', KEYS[1], 'by', ARGV[1]); return redis.call('HINCRBY', KEYS[1], 'n', 1)`)

// writeFixture writes one of each kind of state hemostat keeps; checkFixture checks it.
func writeFixture(t *testing.T, c *redis.Client) {
	t.Helper()
	ctx := context.Background()
	for i := range 3 {
		if err := c.XAdd(ctx, &redis.XAddArgs{Stream: "hemostat:audit", ID: fmt.Sprintf("%d-0", i+1), Values: []any{"entry", strconv.Itoa(i)}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	must(t, c.XGroupCreate(ctx, "hemostat:audit", "g", "0").Err())
	if _, err := c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "x", Streams: []string{"hemostat:audit", ">"}, Count: 3}).Result(); err != nil {
		t.Fatal(err)
	}
	must(t, c.XAck(ctx, "hemostat:audit", "g", "1-0").Err())
	must(t, c.HSet(ctx, "hemostat:ledger:{h/web}", "backoff_step", "2", "breaker", "open").Err())
	must(t, c.Set(ctx, "hemostat:done:x", "1", time.Hour).Err())
	must(t, c.Set(ctx, "hemostat:gone", "1", 0).Err())
	must(t, c.Del(ctx, "hemostat:gone").Err())
	must(t, c.ZAdd(ctx, "hemostat:incidents:open", redis.Z{Score: 1, Member: "h/web/crashed"}).Err())
	must(t, c.SAdd(ctx, "hemostat:set", "a", "b").Err())
	must(t, c.RPush(ctx, "hemostat:list", "a", "b").Err())
	must(t, fixtureScript.Run(ctx, c, []string{"hemostat:scripted"}, "lua").Err())
	pipe := c.TxPipeline()
	pipe.Set(ctx, "hemostat:tx", "1", 0)
	pipe.Incr(ctx, "hemostat:tx")
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
}

func checkFixture(t *testing.T, c *redis.Client) {
	t.Helper()
	ctx := context.Background()
	msgs, err := c.XRange(ctx, "hemostat:audit", "-", "+").Result()
	if err != nil || len(msgs) != 3 || msgs[2].ID != "3-0" {
		t.Errorf("audit = %v, %v; want the 3 entries", msgs, err)
	}
	p, err := c.XPending(ctx, "hemostat:audit", "g").Result()
	if err != nil || p.Count != 2 || p.Lower != "2-0" || p.Consumers["x"] != 2 {
		t.Errorf("pending = %+v, %v; want 2-0 and 3-0 pending for x", p, err)
	}
	// Nothing new for the group: its last delivered id was kept.
	if got, err := c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "x", Streams: []string{"hemostat:audit", ">"}, Block: -1}).Result(); err != redis.Nil {
		t.Errorf("new for the group = %v, %v; want none", got, err)
	}
	if v := c.HGet(ctx, "hemostat:ledger:{h/web}", "breaker").Val(); v != "open" {
		t.Errorf("ledger breaker = %q", v)
	}
	if ttl := c.TTL(ctx, "hemostat:done:x").Val(); ttl < 50*time.Minute || ttl > time.Hour {
		t.Errorf("done TTL = %v, want about an hour", ttl)
	}
	if n := c.Exists(ctx, "hemostat:gone").Val(); n != 0 {
		t.Error("a deleted key came back")
	}
	if m := c.ZScore(ctx, "hemostat:incidents:open", "h/web/crashed").Val(); m != 1 {
		t.Errorf("zset score = %v", m)
	}
	if m := c.SMembers(ctx, "hemostat:set").Val(); len(m) != 2 {
		t.Errorf("set = %v", m)
	}
	if m := c.LRange(ctx, "hemostat:list", 0, -1).Val(); strings.Join(m, ",") != "a,b" {
		t.Errorf("list = %v", m)
	}
	if m := c.HGetAll(ctx, "hemostat:scripted").Val(); m["by"] != "lua" || m["n"] != "1" {
		t.Errorf("scripted hash = %v", m)
	}
	if v := c.Get(ctx, "hemostat:tx").Val(); v != "2" {
		t.Errorf("tx = %q, want 2", v)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestHelperProcess is the subprocess of TestKillNineKeepsAcknowledgedWrites: it serves the store and
// prints its address, until it is killed.
func TestHelperProcess(t *testing.T) {
	if os.Getenv("HEMOSTAT_EMBEDDED_HELPER") != "1" {
		t.Skip("helper process")
	}
	flush, _ := time.ParseDuration(os.Getenv("HEMOSTAT_EMBEDDED_FLUSH"))
	s, err := embedded.Start(embedded.Options{Kind: embedded.Kind(os.Getenv("HEMOSTAT_EMBEDDED_KIND")), Addr: "127.0.0.1:0",
		DataDir: os.Getenv("HEMOSTAT_EMBEDDED_DIR"), FlushEvery: flush})
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	fmt.Println("ADDR", s.Addr())
	select {}
}

// startHelper runs the store in a subprocess and returns its address and process.
func startHelper(t *testing.T, k embedded.Kind, dir string, env ...string) (string, *exec.Cmd) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.v")
	cmd.Env = append(os.Environ(), "HEMOSTAT_EMBEDDED_HELPER=1", "HEMOSTAT_EMBEDDED_KIND="+string(k), "HEMOSTAT_EMBEDDED_DIR="+dir)
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.StdoutPipe()
	must(t, err)
	must(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "ADDR "); ok {
			go func() { // drains the rest until the process exits
				for sc.Scan() {
				}
			}()
			return a, cmd
		}
		if strings.HasPrefix(sc.Text(), "ERROR") {
			t.Fatalf("helper: %s", sc.Text())
		}
	}
	t.Fatal("helper exited without serving")
	return "", nil
}

// TestKillNineKeepsAcknowledgedWrites kills the process serving the store (for redis-server, hemostat and
// its child both) with SIGKILL, more than a second after the writes were acknowledged: they survive.
func TestKillNineKeepsAcknowledgedWrites(t *testing.T) {
	for _, k := range kinds {
		t.Run(string(k), func(t *testing.T) {
			requireKind(t, k)
			dir := t.TempDir()
			addr, cmd := startHelper(t, k, dir)
			c := redis.NewClient(&redis.Options{Addr: addr})
			writeFixture(t, c)
			childPID := childOf(t, k, c)
			c.Close()
			// The contract under test: acknowledged more than a second before the crash.
			time.Sleep(1200 * time.Millisecond)
			killNine(t, cmd, childPID)
			s := start(t, k, dir, nil)
			defer s.Close()
			checkFixture(t, client(t, s))
		})
	}
}

// childOf returns the pid of the redis-server child serving c, or 0 for the in-process store.
func childOf(t *testing.T, k embedded.Kind, c *redis.Client) int {
	t.Helper()
	if k != embedded.RedisServer {
		return 0
	}
	for l := range strings.Lines(c.Info(context.Background(), "server").Val()) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "process_id:"); ok {
			pid, _ := strconv.Atoi(v)
			return pid
		}
	}
	t.Fatal("no process_id in INFO server")
	return 0
}

// killNine kills the helper process and its redis-server child, if any, with SIGKILL.
func killNine(t *testing.T, helper *exec.Cmd, childPID int) {
	t.Helper()
	if childPID != 0 {
		// Freeze the child first, so the SIGTERM it gets when its parent dies cannot flush anything.
		must(t, syscall.Kill(childPID, syscall.SIGSTOP))
	}
	must(t, helper.Process.Kill())
	_ = helper.Wait()
	if childPID != 0 {
		must(t, syscall.Kill(childPID, syscall.SIGKILL))
		testenv.Eventually(t, 5*time.Second, "the child to be gone", func() bool {
			return syscall.Kill(childPID, 0) != nil
		})
	}
}

// TestAuditEntryOnDiskBeforeItIsRead: an audit entry a reader saw survives a SIGKILL right after the read,
// though the in-process store's periodic flush is an hour away.
func TestAuditEntryOnDiskBeforeItIsRead(t *testing.T) {
	for _, k := range kinds {
		t.Run(string(k), func(t *testing.T) {
			requireKind(t, k)
			dir := t.TempDir()
			addr, cmd := startHelper(t, k, dir, "HEMOSTAT_EMBEDDED_FLUSH=1h")
			c := redis.NewClient(&redis.Options{Addr: addr})
			defer c.Close()
			ctx := context.Background()
			// Something in the journal first, so that the file exists with an older record.
			must(t, c.Set(ctx, "before", "1", 0).Err())
			must(t, c.XAdd(ctx, &redis.XAddArgs{Stream: "hemostat:audit", ID: "5-0", Values: []any{"entry", "e"}}).Err())
			childPID := childOf(t, k, c)
			got, err := c.XRevRangeN(ctx, "hemostat:audit", "+", "-", 10).Result()
			if err != nil || len(got) != 1 {
				t.Fatalf("read the audit = %v, %v", got, err)
			}
			killNine(t, cmd, childPID)
			s := start(t, k, dir, nil)
			defer s.Close()
			after, err := client(t, s).XRange(ctx, "hemostat:audit", "-", "+").Result()
			if err != nil || len(after) != 1 || after[0].ID != "5-0" {
				t.Errorf("after the crash the audit = %v, %v; want the entry that was read", after, err)
			}
		})
	}
}

// TestReadOnlyDataDir: a data dir that cannot be written fails at start, naming it.
func TestReadOnlyDataDir(t *testing.T) {
	for _, k := range kinds {
		t.Run(string(k), func(t *testing.T) {
			requireKind(t, k)
			dir := t.TempDir()
			readOnly(t, dir)
			_, err := embedded.Start(opts(k, dir, nil))
			if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "not writable") {
				t.Fatalf("start on a read-only dir: %v; want an error naming %s", err, dir)
			}
		})
	}
}

// readOnly makes dir read-only, even for root (chattr +i), and undoes it at cleanup.
func readOnly(t *testing.T, dir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		must(t, os.Chmod(dir, 0o500))
		t.Cleanup(func() { os.Chmod(dir, 0o700) })
		return
	}
	if out, err := exec.Command("chattr", "+i", dir).CombinedOutput(); err != nil {
		t.Skipf("chattr +i %s: %v %s", dir, err, out)
	}
	t.Cleanup(func() { exec.Command("chattr", "-i", dir).Run() })
}

// TestFullDataDir: a full disk fails at start, naming the directory (needs root to mount a tiny tmpfs).
func TestFullDataDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	fill := bytes.Repeat([]byte{1}, 64*1024)
	_ = os.WriteFile(filepath.Join(dir, "fill"), fill, 0o600) // fails part way: the disk is full
	_, err := embedded.Start(opts(embedded.InProcess, dir, nil))
	if err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("start on a full dir: %v; want an error naming %s", err, dir)
	}
}

// journalFile is the file the backend appends writes to.
func journalFile(t *testing.T, k embedded.Kind, dir string) string {
	t.Helper()
	if k == embedded.InProcess {
		return filepath.Join(dir, embedded.JournalFile)
	}
	m, _ := filepath.Glob(filepath.Join(dir, "appendonlydir", "*.incr.aof"))
	if len(m) == 0 {
		t.Fatalf("no incr AOF in %s", dir)
	}
	return m[len(m)-1]
}

// waitWritten waits until the backend's file holds the writes so far, so that the next ones go to
// another record.
func waitWritten(t *testing.T, k embedded.Kind, dir string) {
	t.Helper()
	testenv.Eventually(t, 5*time.Second, "the writes in the journal", func() bool {
		m, _ := filepath.Glob(filepath.Join(dir, "appendonlydir", "*.incr.aof"))
		if k == embedded.InProcess {
			m = []string{filepath.Join(dir, embedded.JournalFile)}
		}
		if len(m) == 0 {
			return false
		}
		fi, err := os.Stat(m[len(m)-1])
		return err == nil && fi.Size() > 1000
	})
}

// stoppedWithFixture runs a store of the kind, writes the fixture and a last key, waits until they are on
// disk and stops it; it returns the data dir and the journal (or AOF) file, for a test to spoil.
func stoppedWithFixture(t *testing.T, k embedded.Kind) (dir, file string) {
	t.Helper()
	dir = t.TempDir()
	s := start(t, k, dir, nil)
	c := client(t, s)
	writeFixture(t, c)
	waitWritten(t, k, dir)
	must(t, c.Set(context.Background(), "hemostat:last", "1", 0).Err())
	must(t, s.Close())
	return dir, journalFile(t, k, dir)
}

// TestTornTailStartsWithWarning: a final record cut short (power loss) is dropped with a warning, and
// everything before it loads.
func TestTornTailStartsWithWarning(t *testing.T) {
	for _, k := range kinds {
		t.Run(string(k), func(t *testing.T) {
			requireKind(t, k)
			dir, f := stoppedWithFixture(t, k)
			fi, err := os.Stat(f)
			must(t, err)
			must(t, os.Truncate(f, fi.Size()-3))
			var log testenv.SyncBuffer
			s := start(t, k, dir, &log)
			defer s.Close()
			checkFixture(t, client(t, s))
			if !strings.Contains(log.String(), "WARN") || !strings.Contains(log.String(), "torn") {
				t.Errorf("log has no warning about the torn tail:\n%s", log.String())
			}
		})
	}
}

// TestCorruptJournalFailsNamingTheFile: a record spoiled in the middle stops the start with an error that
// names the file; the store does not start empty.
func TestCorruptJournalFailsNamingTheFile(t *testing.T) {
	for _, k := range kinds {
		t.Run(string(k), func(t *testing.T) {
			requireKind(t, k)
			dir, f := stoppedWithFixture(t, k)
			b, err := os.ReadFile(f)
			must(t, err)
			copy(b[len(b)/4:], "\x00garbage\x00") // in a record that others follow
			must(t, os.WriteFile(f, b, 0o600))
			s, err := embedded.Start(opts(k, dir, nil))
			if err == nil {
				s.Close()
				t.Fatal("started on a corrupt journal")
			}
			t.Logf("error: %v", err)
			if !strings.Contains(err.Error(), filepath.Base(f)) || !strings.Contains(err.Error(), dir) {
				t.Errorf("error %q does not name %s", err, f)
			}
		})
	}
}

// TestChildRestartsAfterCrash: when the redis-server child dies, it is restarted (and logged), with its
// state.
func TestChildRestartsAfterCrash(t *testing.T) {
	requireKind(t, embedded.RedisServer)
	var log testenv.SyncBuffer
	s := start(t, embedded.RedisServer, t.TempDir(), &log)
	defer s.Close()
	c := client(t, s)
	ctx := context.Background()
	must(t, c.Set(ctx, "k", "v", 0).Err())
	pid, err := c.Info(ctx, "server").Result()
	must(t, err)
	var childPID int
	for l := range strings.Lines(pid) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "process_id:"); ok {
			childPID, _ = strconv.Atoi(v)
		}
	}
	// Make the write durable now rather than within the second: a rewrite puts it in the AOF's base.
	must(t, c.BgRewriteAOF(ctx).Err())
	testenv.Eventually(t, 10*time.Second, "the AOF rewrite", func() bool {
		info := c.Info(ctx, "persistence").Val()
		return strings.Contains(info, "aof_rewrite_in_progress:0") && strings.Contains(info, "aof_rewrite_scheduled:0")
	})
	must(t, syscall.Kill(childPID, syscall.SIGKILL))
	testenv.Eventually(t, 10*time.Second, "the child to come back with its state", func() bool {
		return c.Get(ctx, "k").Val() == "v"
	})
	if !strings.Contains(log.String(), "exited; restarting") {
		t.Errorf("no restart in the log:\n%s", log.String())
	}
}

// TestLoadedReadsTheLoadingLine: readiness is the loading line, not async_loading (which follows it).
func TestLoadedReadsTheLoadingLine(t *testing.T) {
	for info, want := range map[string]bool{
		"# Persistence\r\nloading:0\r\nasync_loading:0\r\n": true,
		"# Persistence\r\nloading:1\r\nasync_loading:0\r\n": false,
		"# Persistence\r\nasync_loading:0\r\n":              false,
	} {
		if got := embedded.Loaded(info); got != want {
			t.Errorf("loaded(%q) = %v, want %v", info, got, want)
		}
	}
}
