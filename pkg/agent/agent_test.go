package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hemostat/hemostat/pkg/agent"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

// fakeHB records heartbeats and can fail on demand.
type fakeHB struct {
	mu      sync.Mutex
	beats   int
	removed bool
	err     error
	ttl     time.Duration
}

func (f *fakeHB) Heartbeat(_ context.Context, _ schema.Agent, _ time.Time, ttl time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.beats++
	f.ttl = ttl
	return f.err
}

func (f *fakeHB) Remove(context.Context, string, string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = true
	return nil
}

func (f *fakeHB) setErr(err error) { f.mu.Lock(); f.err = err; f.mu.Unlock() }

func TestRunHeartbeatsAndStopsGracefully(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hb := &fakeHB{}
		ctx, cancel := context.WithCancel(context.Background())
		finished := false
		done := make(chan error)
		go func() {
			done <- agent.Run(ctx, agent.Options{Kind: "analyze", Instance: "i1", Interval: time.Second}, hb,
				func(ctx context.Context) error {
					<-ctx.Done()
					time.Sleep(500 * time.Millisecond) // finishing the work in flight
					finished = true
					return nil
				})
		}()
		time.Sleep(3500 * time.Millisecond)
		synctest.Wait()
		hb.mu.Lock()
		beats, ttl := hb.beats, hb.ttl
		hb.mu.Unlock()
		if beats != 4 {
			t.Errorf("heartbeats after 3.5s at 1s = %d, want 4", beats)
		}
		if ttl != 3*time.Second {
			t.Errorf("ttl = %s, want 3 intervals", ttl)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v", err)
		}
		if !finished {
			t.Error("Run returned before the agent finished its work")
		}
		if !hb.removed {
			t.Error("heartbeat not removed at a graceful stop")
		}
	})
}

func TestRunGivesUpAfterStopDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		release := make(chan struct{})
		done := make(chan error)
		go func() {
			done <- agent.Run(ctx, agent.Options{Kind: "respond", Instance: "i1", StopDeadline: 2 * time.Second}, &fakeHB{},
				func(ctx context.Context) error { <-release; return nil })
		}()
		cancel()
		err := <-done
		if !errors.Is(err, agent.ErrStopTimeout) {
			t.Fatalf("got %v, want ErrStopTimeout", err)
		}
		close(release)
	})
}

func TestStateLogsOnlyChanges(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	s := agent.NewState(log, "redis")
	down := errors.New("connection refused")
	for _, err := range []error{nil, nil, down, down, down, nil, nil, down} {
		s.Set(err)
	}
	got := strings.Count(buf.String(), "\n")
	// connected (debug, not shown), lost, back, lost
	if got != 3 {
		t.Errorf("%d log lines, want 3:\n%s", got, buf.String())
	}
	if !strings.Contains(buf.String(), "redis lost") || !strings.Contains(buf.String(), "redis back") {
		t.Errorf("log = %s", buf.String())
	}
}

func TestStateIgnoresCancellations(t *testing.T) {
	down := errors.New("connection refused")
	stopped := fmt.Errorf("heartbeat hemostat:agent:x: %w", context.Canceled)
	tests := []struct {
		name string
		errs []error
		want []string // the messages logged at warn level and above
	}{
		{"stopped before the first answer", []error{stopped}, nil},
		{"stopped while up", []error{nil, stopped, stopped}, nil},
		{"stopped while down", []error{down, stopped}, []string{"redis unreachable; retrying"}},
		{"a cancellation between failures counts neither way", []error{nil, down, stopped, down, nil},
			[]string{"redis lost; retrying"}},
		{"an outage still logs", []error{nil, down, nil, down}, []string{"redis lost; retrying", "redis lost; retrying"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			s := agent.NewState(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn})), "redis")
			for _, err := range tt.errs {
				s.Set(err)
			}
			if diff := cmp.Diff(tt.want, messages(t, &buf)); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
			if got := s.Set(stopped); got {
				t.Error("Set(cancelled) reported the dependency up")
			}
		})
	}
}

// messages returns the msg of each JSON log line in buf.
func messages(t *testing.T, buf *bytes.Buffer) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var rec struct{ Msg string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, rec.Msg)
	}
	return out
}

// stallHB is a Redis that does not answer: a heartbeat waits until its context is cancelled.
type stallHB struct{}

func (stallHB) Heartbeat(ctx context.Context, a schema.Agent, _ time.Time, _ time.Duration) error {
	<-ctx.Done()
	return fmt.Errorf("heartbeat %s/%s: %w", a.Kind, a.Instance, ctx.Err())
}

func (stallHB) Remove(context.Context, string, string) error { return nil }

// TestNormalStopLogsNoWarning stops an agent (Ctrl-C) while a heartbeat is in flight: the heartbeat fails
// with context canceled, which is the stop, not Redis going away.
func TestNormalStopLogsNoWarning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf bytes.Buffer
		log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() {
			done <- agent.Run(ctx, agent.Options{Kind: "alert", Instance: "i1", Interval: time.Second, Logger: log}, stallHB{},
				func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
		}()
		time.Sleep(500 * time.Millisecond)
		synctest.Wait()
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v", err)
		}
		if got := messages(t, &buf); len(got) != 0 {
			t.Errorf("a normal stop logged %q", got)
		}
	})
}

func TestBackoffCaps(t *testing.T) {
	b := agent.Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	var got []time.Duration
	for range 6 {
		got = append(got, b.Next())
	}
	want := []time.Duration{100e6, 200e6, 400e6, 800e6, 1e9, 1e9}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("backoff = %v, want %v", got, want)
		}
	}
	b.Reset()
	if d := b.Next(); d != 100*time.Millisecond {
		t.Errorf("after reset = %s", d)
	}
}

func TestHeartbeatFailureDoesNotStopAgent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hb := &fakeHB{}
		hb.setErr(errors.New("redis down"))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ran := false
		err := agent.Run(ctx, agent.Options{Kind: "monitor", Instance: "i1", Interval: time.Second}, hb,
			func(ctx context.Context) error { <-ctx.Done(); ran = true; return ctx.Err() })
		if err != nil || !ran {
			t.Fatalf("Run = %v, ran = %v", err, ran)
		}
	})
}
