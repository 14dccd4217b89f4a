// Package testenv gives tests real dependencies: the redis-server the test command started, private
// redis-server processes, and the Docker engine. It is test support: it may import go-redis directly.
package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisURLEnv names the variable holding the test command's redis-server URL.
const RedisURLEnv = "HEMOSTAT_TEST_REDIS_URL"

// InCI reports whether the tests run in CI, where a missing dependency fails instead of skipping.
func InCI() bool { v := os.Getenv("CI"); return v != "" && v != "false" && v != "0" }

func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// RequireRedis returns a URL to a database of the test redis-server that no other test uses, flushed
// before and after the test. It skips without a server, but fails under CI=true.
func RequireRedis(t testing.TB) string {
	t.Helper()
	if os.Getenv(RedisURLEnv) == "" {
		unavailable(t, "%s is not set: run the tests with scripts/test", RedisURLEnv)
	}
	url, release, err := NewRedisDB()
	if errors.Is(err, errNoRedis) {
		unavailable(t, "%v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(release)
	return url
}

var errNoRedis = errors.New("no test redis-server")

// NewRedisDB allocates a database of the test redis-server ($HEMOSTAT_TEST_REDIS_URL) that no other test
// uses, flushed, and returns its URL and a release that flushes it again. It is RequireRedis for callers
// without a testing.TB, such as testscript's setup.
func NewRedisDB() (url string, release func(), err error) {
	base := os.Getenv(RedisURLEnv)
	if base == "" {
		return "", nil, fmt.Errorf("%w: %s is not set (run the tests with scripts/test)", errNoRedis, RedisURLEnv)
	}
	opt, err := redis.ParseURL(base)
	if err != nil {
		return "", nil, fmt.Errorf("parse %s: %w", RedisURLEnv, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	opt.DB = 0
	admin := redis.NewClient(opt)
	defer admin.Close()
	if err := admin.Ping(ctx).Err(); err != nil {
		return "", nil, fmt.Errorf("%w: redis at %s: %v", errNoRedis, opt.Addr, err)
	}
	dbs := 16
	if v, err := admin.ConfigGet(ctx, "databases").Result(); err == nil {
		if n, err := strconv.Atoi(v["databases"]); err == nil {
			dbs = n
		}
	}
	n, err := admin.Incr(ctx, "testenv:next_db").Result()
	if err != nil {
		return "", nil, fmt.Errorf("allocate test database: %w", err)
	}
	db := int(1 + (n-1)%int64(dbs-1))
	opt.DB = db
	c := redis.NewClient(opt)
	if err := c.FlushDB(ctx).Err(); err != nil {
		c.Close()
		return "", nil, fmt.Errorf("flush db %d: %w", db, err)
	}
	release = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.FlushDB(ctx)
		c.Close()
	}
	return urlFor(opt.Addr, db), release, nil
}

func urlFor(addr string, db int) string { return fmt.Sprintf("redis://%s/%d", addr, db) }

// FreePort returns a loopback TCP port that was free a moment ago and that it never returned before in
// this process: a server a test stops and starts again keeps its port, and another test of the binary must
// not take it meanwhile.
func FreePort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !portsGiven[port] {
			portsGiven[port] = true
			return port
		}
	}
	t.Fatal("free port: the system kept offering ports given out before")
	return 0
}

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

// RedisServer is a private redis-server process a test can stop and start again.
type RedisServer struct {
	t    testing.TB
	Port int
	Dir  string
	Args []string // more redis-server arguments (--replicaof, --tls-port, ...), given at every start
	cmd  *exec.Cmd
}

// URL is the server's address as a redis:// URL, database 0.
func (s *RedisServer) URL() string { return urlFor("127.0.0.1:"+strconv.Itoa(s.Port), 0) }

// RequireRedisServer skips the test when no redis-server binary is installed, but fails under CI=true.
func RequireRedisServer(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		unavailable(t, "redis-server not installed: run the tests with scripts/test")
	}
}

// StartRedis starts a private redis-server with append-only persistence (so a restart keeps the data),
// stopped at cleanup. It skips without redis-server, but fails under CI=true.
func StartRedis(t testing.TB) *RedisServer { t.Helper(); return StartRedisWith(t) }

// StartRedisWith is StartRedis with more redis-server arguments, given at every start after the defaults,
// which they override (--replicaof, --tls-port; benchmarks use "--appendfsync", "everysec", as a
// production server would run).
func StartRedisWith(t testing.TB, args ...string) *RedisServer {
	t.Helper()
	RequireRedisServer(t)
	s := &RedisServer{t: t, Port: FreePort(t), Dir: t.TempDir(), Args: args}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// Start starts the server (again) and waits until it answers.
func (s *RedisServer) Start() {
	s.t.Helper()
	s.cmd = exec.Command("redis-server", "--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1",
		"--dir", s.Dir, "--appendonly", "yes", "--appendfsync", "always", "--save", "",
		"--logfile", filepath.Join(s.Dir, "redis.log"))
	s.cmd.Args = append(s.cmd.Args, s.Args...)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(s.Port)})
		err := c.Ping(context.Background()).Err()
		var pid string
		if err == nil {
			pid = c.InfoMap(context.Background(), "server").Item("Server", "process_id")
		}
		c.Close()
		if err == nil && pid != "" && pid != strconv.Itoa(s.cmd.Process.Pid) {
			s.t.Fatalf("another process (pid %s) answers on redis-server's port %d (see %s)", pid, s.Port, filepath.Join(s.Dir, "redis.log"))
		}
		if err == nil || strings.HasPrefix(err.Error(), "NOAUTH") { // up, with a password
			return
		}
		if !strings.Contains(err.Error(), "refused") && !strings.HasPrefix(err.Error(), "LOADING") {
			s.t.Logf("waiting for redis-server: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("redis-server on port %d did not answer within 10s", s.Port)
}

// PID is the server process's id, 0 while it is stopped.
func (s *RedisServer) PID() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Stop kills the server abruptly (as a crash would) and waits for it to exit.
func (s *RedisServer) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}
