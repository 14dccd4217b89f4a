package dash

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/exp/teatest/v2"

	"github.com/hemostat/hemostat/pkg/event"
)

// waitScreen waits until the program's output contains every string.
func waitScreen(t *testing.T, tm *teatest.TestModel, want ...string) {
	t.Helper()
	var seen bytes.Buffer
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool {
		seen.Write(b)
		s := seen.String()
		for _, w := range want {
			if !strings.Contains(s, w) {
				return false
			}
		}
		return true
	}, teatest.WithDuration(5*time.Second), teatest.WithCheckInterval(10*time.Millisecond))
}

// TestProgram runs the whole Bubble Tea program over a fake source: first read, live events from the
// channel, keys, and quit.
func TestProgram(t *testing.T) {
	f := newFixture(t0)
	src := &fakeSource{snap: f.snapshot()}
	ch := make(chan EventBatch, 4)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o := testOptions()
	o.Refresh = 50 * time.Millisecond
	tm := teatest.NewTestModel(t, New(ctx, src, ch, o), teatest.WithInitialTermSize(120, 40))

	waitScreen(t, tm, "worker-1", "Open incidents (2)", "agents 3/4")

	ch <- EventBatch{Events: f.streamEvents(), Backfill: true}
	tm.Send(tea.KeyPressMsg{Code: tea.KeyTab})
	waitScreen(t, tm, "[Events]", "remediation_complete", "container_recovered")

	live, _ := event.New("monitor", "node-a", "node-a/api-1/crashed", "", &event.ContainerUnhealthy{ContainerID: "x", ContainerName: "api-1", Class: "crashed"})
	ch <- EventBatch{Events: []Event{{Stream: event.StreamHealthAlert, ID: "1-1", Time: t0, Type: live.EventType, Container: "api-1", Incident: live.Incident, Raw: mustJSON(live)}}}
	waitScreen(t, tm, "node-a/api-1/crashed")

	tm.Type("1")
	tm.Type("/web")
	tm.Send(tea.KeyPressMsg{Code: tea.KeyEnter})
	tm.Send(tea.KeyPressMsg{Code: tea.KeyEnter})
	waitScreen(t, tm, "› node-a/web-1", "cooling down")

	// Redis goes away: the program keeps running and says so.
	src.set(Snapshot{}, errRefused)
	waitScreen(t, tm, "unreachable")
	src.set(f.snapshot(), nil)
	waitScreen(t, tm, "connected")

	tm.Type("q")
	tm.WaitFinished(t, teatest.WithFinalTimeout(5*time.Second))
	final := tm.FinalModel(t).(Model)
	if final.view != viewDetail || final.detail != "node-a/web-1" || len(final.evs) != len(f.events)+1 {
		t.Errorf("final model: view %d detail %q events %d", final.view, final.detail, len(final.evs))
	}
	src.mu.Lock()
	reads := src.reads
	src.mu.Unlock()
	if reads < 2 {
		t.Errorf("the source was read %d times; the refresh timer does not run", reads)
	}
}

// followSource is a fake whose Follow runs until its context ends, recording that it did.
type followSource struct {
	fakeSource
	mu      sync.Mutex
	started bool
	stopped bool
}

func (f *followSource) Follow(ctx context.Context, out chan<- EventBatch) error {
	f.mu.Lock()
	f.started = true
	f.mu.Unlock()
	<-ctx.Done()
	f.mu.Lock()
	f.stopped = true
	f.mu.Unlock()
	return nil
}

// TestRunJoinsFollow runs Run to its end through q: the follow goroutine has stopped when Run returns.
func TestRunJoinsFollow(t *testing.T) {
	src := &followSource{}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- Run(context.Background(), src, testOptions(), tea.WithInput(pr), tea.WithOutput(io.Discard),
			tea.WithWindowSize(80, 24), tea.WithoutSignals())
	}()
	if !eventually(t, 5*time.Second, func() bool { src.mu.Lock(); defer src.mu.Unlock(); return src.started }) {
		t.Fatal("Follow never started")
	}
	if _, err := pw.Write([]byte("q")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after q")
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	if !src.stopped {
		t.Error("Run returned before Follow stopped")
	}
	pw.Close()
}

// TestRunStopsOnCancel: a signal (context cancelled) ends Run without an error.
func TestRunStopsOnCancel(t *testing.T) {
	src := &followSource{}
	pr, pw := io.Pipe()
	defer pw.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, src, testOptions(), tea.WithInput(pr), tea.WithOutput(io.Discard), tea.WithWindowSize(80, 24), tea.WithoutSignals())
	}()
	if !eventually(t, 5*time.Second, func() bool { src.mu.Lock(); defer src.mu.Unlock(); return src.started }) {
		t.Fatal("Follow never started")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after cancel: %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
