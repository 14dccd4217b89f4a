package storetest

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/embedded"
)

// State reads every key of the database into comparable text: its type, content and, for a stream, its
// groups and their pending entries (without idle times). Keys that expire within minTTL are left out:
// they may be gone by the time the state is read again.
func State(ctx context.Context, c *redis.Client, minTTL time.Duration) (map[string]string, error) {
	keys, err := c.Keys(ctx, "*").Result()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, k := range keys {
		ttl := c.PTTL(ctx, k).Val()
		if ttl > 0 && ttl < minTTL || ttl == -2 {
			continue
		}
		typ := c.Type(ctx, k).Val()
		var v any
		switch typ {
		case "string":
			v = c.Get(ctx, k).Val()
		case "hash":
			v = c.HGetAll(ctx, k).Val()
		case "list":
			v = c.LRange(ctx, k, 0, -1).Val()
		case "set":
			m := c.SMembers(ctx, k).Val()
			sort.Strings(m)
			v = m
		case "zset":
			v = c.ZRangeWithScores(ctx, k, 0, -1).Val()
		case "stream":
			var b strings.Builder
			for _, m := range c.XRange(ctx, k, "-", "+").Val() {
				fmt.Fprintf(&b, "%s=%v ", m.ID, m.Values)
			}
			for _, g := range c.XInfoGroups(ctx, k).Val() {
				fmt.Fprintf(&b, "| group %s last %s:", g.Name, g.LastDeliveredID)
				for _, p := range c.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: k, Group: g.Name, Start: "-", End: "+", Count: 1 << 20}).Val() {
					fmt.Fprintf(&b, " %s@%s#%d", p.ID, p.Consumer, p.RetryCount)
				}
			}
			v = b.String()
		}
		t := ""
		if ttl > 0 {
			t = " ttl"
		}
		out[k] = fmt.Sprintf("%s%s %v", typ, t, v)
	}
	return out, nil
}

// checkRestart closes the embedded store, starts it again from its data directory and compares its state
// with the one it had: whatever a test did must survive a restart.
func checkRestart(t interface {
	Helper()
	Errorf(string, ...any)
}, s embedded.Server, o embedded.Options) {
	t.Helper()
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: s.Addr()})
	want, err := State(ctx, c, 10*time.Second)
	c.Close()
	if err != nil {
		t.Errorf("read the state before the restart: %v", err)
		return
	}
	if err := s.Close(); err != nil {
		t.Errorf("close the embedded store: %v", err)
		return
	}
	o.Addr = "127.0.0.1:0"
	s2, err := embedded.Start(o)
	if err != nil {
		t.Errorf("restart the embedded store: %v", err)
		return
	}
	defer s2.Close()
	c = redis.NewClient(&redis.Options{Addr: s2.Addr()})
	defer c.Close()
	got, err := State(ctx, c, 10*time.Second)
	if err != nil {
		t.Errorf("read the state after the restart: %v", err)
		return
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("the embedded store (%s) lost or changed state across a restart (-before +after):\n%s", o.Kind, diff)
	}
}
