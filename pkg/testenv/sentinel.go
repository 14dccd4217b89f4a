package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Sentinel is a private redis-sentinel process watching one master.
type Sentinel struct {
	Port int
	Dir  string
	cmd  *exec.Cmd
}

// Addr is the sentinel's host:port.
func (s *Sentinel) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

// SentinelTimings are how fast sentinels notice a dead master and how long a failover may take; low
// values make a test's failover take a few seconds.
type SentinelTimings struct {
	DownAfter       time.Duration // down-after-milliseconds
	FailoverTimeout time.Duration // failover-timeout
}

// StartSentinel starts a redis-sentinel watching the master named name at 127.0.0.1:masterPort with
// quorum, its configuration written in a temporary directory, stopped at cleanup. extra lines are added
// to its configuration (requirepass, TLS). It skips without redis-sentinel, but fails under CI=true.
func StartSentinel(t testing.TB, name string, masterPort, quorum int, tm SentinelTimings, extra ...string) *Sentinel {
	t.Helper()
	if _, err := exec.LookPath("redis-sentinel"); err != nil {
		unavailable(t, "redis-sentinel not installed: run the tests with scripts/test")
	}
	s := &Sentinel{Port: FreePort(t), Dir: t.TempDir()}
	conf := fmt.Sprintf(`port %d
bind 127.0.0.1
dir %s
logfile %s
sentinel monitor %s 127.0.0.1 %d %d
sentinel down-after-milliseconds %s %d
sentinel failover-timeout %s %d
sentinel parallel-syncs %s 1
`, s.Port, s.Dir, filepath.Join(s.Dir, "sentinel.log"), name, masterPort, quorum,
		name, tm.DownAfter.Milliseconds(), name, tm.FailoverTimeout.Milliseconds(), name)
	for _, l := range extra {
		conf += l + "\n"
	}
	path := filepath.Join(s.Dir, "sentinel.conf") // the sentinel rewrites it: it must be writable
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	s.cmd = exec.Command("redis-sentinel", path)
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start redis-sentinel: %v", err)
	}
	t.Cleanup(func() { _ = s.cmd.Process.Kill(); _ = s.cmd.Wait() })
	ok := Poll(10*time.Second, func() bool {
		c := redis.NewClient(&redis.Options{Addr: s.Addr()})
		defer c.Close()
		err := c.Ping(context.Background()).Err()
		return err == nil || strings.HasPrefix(err.Error(), "NOAUTH") // up, with a password
	})
	if !ok {
		b, _ := os.ReadFile(filepath.Join(s.Dir, "sentinel.log"))
		t.Fatalf("redis-sentinel on port %d did not answer within 10s; log:\n%s", s.Port, b)
	}
	return s
}

// Log is the sentinel's log so far.
func (s *Sentinel) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "sentinel.log"))
	return string(b)
}

// SentinelSet is a master, one replica and three sentinels (quorum 2) on loopback, with timings low
// enough for a failover within a few seconds.
type SentinelSet struct {
	Name            string // the master's name
	Master, Replica *RedisServer
	Sentinels       []*Sentinel
}

// StartSentinelSet starts a set whose master is called name. With a password, the master, the replica and
// the sentinels all require it. It returns once every sentinel knows the replica and the other two
// sentinels and the replica has synchronised, so that killing the master fails over.
func StartSentinelSet(t testing.TB, name, password string) *SentinelSet {
	t.Helper()
	var auth, sauth []string
	if password != "" {
		auth = []string{"--requirepass", password, "--masterauth", password}
		sauth = []string{"requirepass " + password, "sentinel auth-pass " + name + " " + password}
	}
	s := &SentinelSet{Name: name, Master: StartRedisWith(t, auth...)}
	s.Replica = StartRedisWith(t, append([]string{"--replicaof", "127.0.0.1", strconv.Itoa(s.Master.Port)}, auth...)...)
	// The replica is a copy only once its first full synchronisation is over (state online, link up).
	rc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(s.Replica.Port), Password: password})
	Eventually(t, 20*time.Second, "the replica's link to the master", func() bool {
		info, err := rc.Info(context.Background(), "replication").Result()
		return err == nil && strings.Contains(info, "master_link_status:up")
	})
	rc.Close()
	for range 3 {
		s.Sentinels = append(s.Sentinels, StartSentinel(t, name, s.Master.Port, 2,
			SentinelTimings{DownAfter: 500 * time.Millisecond, FailoverTimeout: 2 * time.Second}, sauth...))
	}
	for _, sn := range s.Sentinels {
		c := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr(), Password: password})
		Eventually(t, 20*time.Second, "sentinel "+sn.Addr()+" to know the replica and its peers", func() bool {
			r, err := c.Replicas(context.Background(), name).Result()
			if err != nil || len(r) == 0 {
				return false
			}
			p, err := c.Sentinels(context.Background(), name).Result()
			return err == nil && len(p) == 2
		})
		c.Close()
	}
	return s
}

// Addrs are the sentinels' host:port addresses.
func (s *SentinelSet) Addrs() []string {
	var out []string
	for _, sn := range s.Sentinels {
		out = append(out, sn.Addr())
	}
	return out
}
