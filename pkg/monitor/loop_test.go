package monitor_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hemostat/hemostat/pkg/container"
	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/monitor"
	"github.com/hemostat/hemostat/pkg/monitor/monitortest"
	"github.com/hemostat/hemostat/pkg/testenv"
)

// TestRunKeepsItsScheduleAndJoinsItsGoroutines runs the monitor in a synctest bubble, on the fake clock:
// every source of the loop fires on schedule, and synctest.Test returns only when every goroutine started
// in the bubble has exited, so a worker that Run leaves behind fails the test.
func TestRunKeepsItsScheduleAndJoinsItsGoroutines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := monitortest.New()
		start := time.Now()
		rt.Set(docker.Details{ID: "c1", Name: "web", State: "running", StartedAt: start.Add(-time.Hour)})
		rt.SetSample("c1", container.Sample{Time: start, Metrics: event.Metrics{MemoryUsage: 1 << 20, MemoryLimit: 1 << 30}})
		st := newMemStore()
		out := &testenv.SyncBuffer{}
		m := monitor.New(monitor.Options{Host: "h", Interval: time.Second, ReconcileInterval: 5 * time.Second,
			Hysteresis: time.Second, Output: out, Format: monitor.FormatText}, rt, rt, monitor.Stores{Incidents: st, State: st}, st)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx) }()

		time.Sleep(10*time.Second + 500*time.Millisecond)
		synctest.Wait()
		// A round every second; a list at the first connection, then every 5 s.
		if got, want := m.Counters.Rounds.Load(), int64(10); got != want {
			t.Errorf("rounds after 10.5 s = %d, want %d", got, want)
		}
		if got, want := m.Counters.Reconciles.Load(), int64(3); got != want {
			t.Errorf("reconciles after 10.5 s = %d, want %d", got, want)
		}
		if n := m.Counters.SampleErrors.Load(); n != 0 {
			t.Errorf("sample errors: %d", n)
		}

		rt.Emit(dieEvent("c1", "web", 3, time.Now()))
		rt.Set(docker.Details{ID: "c1", Name: "web", State: "exited", ExitCode: 3, StartedAt: start.Add(-time.Hour), FinishedAt: time.Now()})
		time.Sleep(time.Second)
		synctest.Wait()
		if diff := cmp.Diff([]string{"container_unhealthy h/web/crashed"}, st.incidents()); diff != "" {
			t.Errorf("published (-want +got):\n%s", diff)
		}
		if calls := strings.Join(rt.Calls(), ","); !strings.Contains(calls, "inspect c1") {
			t.Errorf("the die was not followed by an inspect: %s", calls)
		}

		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v", err)
		}
		if got := out.String(); !strings.Contains(got, "opened") || !strings.Contains(got, "h/web") {
			t.Errorf("output at the stop: %q", got)
		}
	})
}

// TestNormalStopLogsNoWarning stops the monitor (Ctrl-C) while it runs, and while it is still trying to
// resume its open incidents from a Redis that does not answer: a stop is no outage, and nothing is logged
// at warn level.
func TestNormalStopLogsNoWarning(t *testing.T) {
	tests := []struct {
		name      string
		redisDown bool
	}{
		{"while running", false},
		{"while resuming the open incidents", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rt := monitortest.New()
				st := newMemStore()
				st.setDown(tt.redisDown)
				logs := &testenv.SyncBuffer{}
				log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
				m := monitor.New(monitor.Options{Host: "h", Logger: log}, rt, rt, monitor.Stores{Incidents: st, State: st}, st)
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- m.Run(ctx) }()
				time.Sleep(time.Second)
				synctest.Wait()
				if !tt.redisDown {
					rt.Emit(dieEvent("c1", "web", 3, time.Now()))
					time.Sleep(time.Second)
					synctest.Wait()
					if n := m.Counters.Published.Load(); n != 1 {
						t.Errorf("published %d notices, want 1", n)
					}
				}
				cancel()
				if err := <-done; err != nil {
					t.Fatalf("Run = %v", err)
				}
				if got := logs.String(); got != "" {
					t.Errorf("a normal stop logged:\n%s", got)
				}
			})
		})
	}
}

// TestRealertAtTheDefaultInterval: with the default options, an incident whose condition keeps failing
// alerts again after 30 minutes, not before, and only once per interval.
func TestRealertAtTheDefaultInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := monitortest.New()
		start := time.Now()
		rt.Set(docker.Details{ID: "c1", Name: "web", State: "running", StartedAt: start.Add(-time.Hour),
			Health: "unhealthy", Healthcheck: &docker.Healthcheck{Test: []string{"CMD", "true"}}})
		st := newMemStore()
		m := monitor.New(monitor.Options{Host: "h"}, rt, rt, monitor.Stores{Incidents: st, State: st}, st)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx) }()
		time.Sleep(time.Second)
		synctest.Wait()
		rt.Emit(docker.Event{ID: "c1", Name: "web", Action: "health_status: unhealthy", Health: "unhealthy",
			Time: time.Now(), TimeNano: time.Now().UnixNano()})
		time.Sleep(29 * time.Minute)
		synctest.Wait()
		if n := len(st.incidents()); n != 1 {
			t.Errorf("alerts after 29 min: %d, want the opening alone", n)
		}
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		if diff := cmp.Diff([]string{"container_unhealthy h/web/unhealthy", "container_unhealthy h/web/unhealthy"}, st.incidents()); diff != "" {
			t.Errorf("alerts after 31 min (-want +got):\n%s", diff)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v", err)
		}
	})
}
