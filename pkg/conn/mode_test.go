package conn_test

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/conn"
	"github.com/hemostat/hemostat/pkg/testenv"
)

// TestClusterRefused: a real one-node Redis Cluster, every slot assigned, is refused by Check with a
// message that says why and what to use instead; a plain server and the embedded store are not.
func TestClusterRefused(t *testing.T) {
	dir := t.TempDir()
	srv := testenv.StartRedisWith(t, "--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"))
	admin := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(srv.Port)})
	defer admin.Close()
	ctx := context.Background()
	if err := admin.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", 0, 16383).Err(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "cluster_state:ok", func() bool {
		s, _ := admin.ClusterInfo(ctx).Result()
		return strings.Contains(s, "cluster_state:ok")
	})
	c, err := conn.Open(conn.Options{URL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Check(ctx)
	if !errors.Is(err, conn.ErrCluster) {
		t.Fatalf("Check = %v, want ErrCluster", err)
	}
	for _, s := range []string{"cluster_enabled:1", "127.0.0.1:" + strconv.Itoa(srv.Port), "Lua scripts", "--redis-sentinels"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("the refusal does not say %q: %v", s, err)
		}
	}

	plain := testenv.StartRedis(t)
	for name, url := range map[string]string{"plain": plain.URL(), "embedded": "redis://" + miniredis.RunT(t).Addr() + "/0"} {
		c, err := conn.Open(conn.Options{URL: url})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Check(ctx); err != nil {
			t.Errorf("%s: Check = %v", name, err)
		}
		c.Close()
	}
}

const masterName = "hemostat-test"

// TestSentinelFollowsFailover: through the sentinels, with one password for them and the data nodes, the
// connection finds the master; after the master is killed it finds the promoted replica by itself, with
// the data written before, and so does a Follower.
func TestSentinelFollowsFailover(t *testing.T) {
	s := testenv.StartSentinelSet(t, masterName, "s3cret")
	c, err := conn.Open(conn.Options{URL: "redis://127.0.0.1:1/0", Password: "s3cret", Sentinels: s.Addrs(), MasterName: masterName})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if err := c.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if c.Mode() != conn.ModeSentinel || c.TLS() || !strings.Contains(c.Addr(), masterName) {
		t.Errorf("mode %s TLS %v addr %s", c.Mode(), c.TLS(), c.Addr())
	}
	rdb := c.Client()
	if err := rdb.Set(ctx, "before", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Wait(ctx, 1, time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	f := c.Follower()
	defer f.Close()
	s.Master.Stop() // kill -9
	start := time.Now()
	testenv.Eventually(t, 30*time.Second, "a write through the sentinels after the failover", func() bool {
		return rdb.Set(ctx, "after", "1", 0).Err() == nil
	})
	t.Logf("writes resumed %s after the master was killed", time.Since(start).Round(time.Millisecond))
	info, err := c.ServerInfo(ctx, "server")
	if err != nil || info["tcp_port"] != strconv.Itoa(s.Replica.Port) {
		t.Errorf("now on port %s (err %v), want the promoted replica's %d", info["tcp_port"], err, s.Replica.Port)
	}
	if got := rdb.Get(ctx, "before").Val(); got != "1" {
		t.Errorf("the write acknowledged by the replica before the failover is gone: %q", got)
	}
	testenv.Eventually(t, 10*time.Second, "the follower on the new master", func() bool {
		return f.Client().Get(ctx, "after").Val() == "1"
	})

	// A wrong password is refused by the sentinels, and says where.
	bad, err := conn.Open(conn.Options{URL: "redis://127.0.0.1:1/0", Password: "wrong", Sentinels: s.Addrs(), MasterName: masterName})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := bad.Check(cctx); err == nil || !strings.Contains(err.Error(), "via sentinels") {
		t.Errorf("wrong password: %v", err)
	}
}
