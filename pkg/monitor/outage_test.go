package monitor_test

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hemostat/hemostat/pkg/bus"
	"github.com/hemostat/hemostat/pkg/conn"
	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/monitor"
	"github.com/hemostat/hemostat/pkg/store"
	"github.com/hemostat/hemostat/pkg/testenv"
)

// socketProxy forwards a unix socket to the engine's socket and can be cut and restored, as a daemon
// restart or a vanished socket looks to a client.
type socketProxy struct {
	t      *testing.T
	path   string
	target string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

func newSocketProxy(t *testing.T, target string) *socketProxy {
	p := &socketProxy{t: t, path: filepath.Join(t.TempDir(), "docker.sock"), target: target, conns: map[net.Conn]struct{}{}}
	p.up()
	t.Cleanup(func() { p.down(); p.wg.Wait() })
	return p
}

func (p *socketProxy) up() {
	ln, err := net.Listen("unix", p.path)
	if err != nil {
		p.t.Fatalf("listen: %v", err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() { // accept loop: exits when the listener closes
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("unix", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[u] = struct{}{}, struct{}{}
			p.mu.Unlock()
			p.wg.Add(2)
			go func() { defer p.wg.Done(); io.Copy(u, c); u.Close() }() // exits when either side closes
			go func() { defer p.wg.Done(); io.Copy(c, u); c.Close() }()
		}
	}()
}

// down closes the socket and every connection through it.
func (p *socketProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]struct{}{}
}

func TestDockerOutageIsSurvived(t *testing.T) {
	t.Parallel()
	direct := testenv.RequireDocker(t)
	host := direct.Host()
	if !strings.HasPrefix(host, "unix://") {
		t.Skipf("engine at %s is not a unix socket", host)
	}
	proxy := newSocketProxy(t, strings.TrimPrefix(host, "unix://"))
	ctx := context.Background()
	dc, err := docker.New(ctx, docker.Options{Host: "unix://" + proxy.path})
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close()
	st, err := store.Open(conn.Options{URL: testenv.RequireRedis(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	b := bus.New(st.Conn, bus.Options{})
	o := fastOptions()
	o.Watch.Include = []string{"mon-dockerdown-*"}
	m := monitor.New(o, dc, monitor.APISampler{Client: dc}, monitor.Stores{Incidents: st.Incidents, State: st.Containers, Ledger: st.Ledger}, b)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- m.Run(rctx) }()
	defer func() { cancel(); <-done }()
	if !eventually(t, 10*time.Second, func() bool { return m.Counters.Reconciles.Load() > 0 }) {
		t.Fatal("no reconcile")
	}

	proxy.down() // the engine goes away; meanwhile a container crashes
	_, name := testenv.RunContainer(t, direct, docker.CreateOptions{Name: "mon-dockerdown", Cmd: []string{"-exit-code", "3", "-exit-after", "100ms"}})
	eventually(t, 10*time.Second, func() bool {
		ids, _ := direct.IDsByLabel(ctx, "hemostat.test", "1")
		for _, id := range ids {
			if d, err := direct.Inspect(ctx, id); err == nil && d.Name == name && d.State == "exited" {
				return true
			}
		}
		return false
	})
	time.Sleep(300 * time.Millisecond) // stay down across a few reconnect attempts
	proxy.up()

	var alerts []string
	if !eventually(t, 20*time.Second, func() bool {
		alerts = nil
		entries, _ := b.Range(ctx, event.StreamHealthAlert, "-", "+", 100)
		for _, e := range entries {
			env, _ := event.Decode(e.Raw)
			alerts = append(alerts, env.Incident)
		}
		return len(alerts) > 0
	}) {
		t.Fatal("the crash during the outage was never reported")
	}
	// The event stream reconnects too (its backoff may still be running when the reconcile caught the crash).
	if !eventually(t, 15*time.Second, func() bool { return m.Counters.Reconnects.Load() >= 1 }) {
		t.Errorf("the event stream never reconnected")
	}
	// A duplicate (the replay and the reconcile both see the crash) would show after another reconcile.
	lists := m.Counters.Reconciles.Load()
	eventually(t, 10*time.Second, func() bool { return m.Counters.Reconciles.Load() >= lists+1 })
	entries, _ := b.Range(ctx, event.StreamHealthAlert, "-", "+", 100)
	if len(entries) != 1 || alerts[0] != event.IncidentKey(testHost, name, event.ClassCrashed) {
		t.Errorf("alerts: %d, first %v", len(entries), alerts)
	}
}
