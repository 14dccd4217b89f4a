package bus_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hemostat/hemostat/pkg/bus"
	"github.com/hemostat/hemostat/pkg/testenv"
)

// stalledRedis accepts connections and reads what they send but answers nothing, until cut closes every
// connection (and any later one at once): a call in flight then fails.
type stalledRedis struct {
	ln       net.Listener
	received chan struct{} // closed when the first bytes arrive
	once     sync.Once
	mu       sync.Mutex
	conns    []net.Conn
	cutOff   bool
	wg       sync.WaitGroup
}

func newStalledRedis(t *testing.T) *stalledRedis {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &stalledRedis{ln: ln, received: make(chan struct{})}
	s.wg.Go(func() { // accept loop: exits when the listener closes
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			if s.cutOff {
				c.Close()
				s.mu.Unlock()
				continue
			}
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Go(func() { // reader: exits when the connection closes
				buf := make([]byte, 512)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						s.once.Do(func() { close(s.received) })
					}
					if err != nil {
						return
					}
				}
			})
		}
	})
	t.Cleanup(func() { ln.Close(); s.cut(); s.wg.Wait() })
	return s
}

func (s *stalledRedis) url() string { return "redis://" + s.ln.Addr().String() }

func (s *stalledRedis) cut() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cutOff = true
	for _, c := range s.conns {
		c.Close()
	}
	s.conns = nil
}

// TestNormalStopLogsNoWarning stops a consumer (Ctrl-C) while its call to Redis is in flight; the call
// then fails, which is the stop and not an outage: nothing is logged at warn level.
func TestNormalStopLogsNoWarning(t *testing.T) {
	srv := newStalledRedis(t)
	logs := &testenv.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(logs, testWriter{t}), &slog.HandlerOptions{Level: slog.LevelWarn}))
	b, _ := newBus(t, srv.url(), bus.Options{Block: 50 * time.Millisecond, Logger: log})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Consume(ctx, group("a"), newRecorder().handle) }()
	select {
	case <-srv.received:
	case <-time.After(10 * time.Second):
		t.Fatal("the consumer never called Redis")
	}
	cancel()
	srv.cut()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Consume = %v, want nil at a normal stop", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the consumer did not stop")
	}
	if got := logs.String(); got != "" {
		t.Errorf("a normal stop logged:\n%s", got)
	}
}

// testWriter shows the log lines in the test's output.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }
