package docker_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	dcontainer "github.com/docker/docker/api/types/container"
	"github.com/google/go-cmp/cmp"

	"github.com/hemostat/hemostat/pkg/container"
	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/testenv"
)

func eventually(t *testing.T, timeout time.Duration, cond func() bool) bool {
	return testenv.Poll(timeout, cond)
}

func TestHealthFromStatus(t *testing.T) {
	for _, tc := range []struct{ status, want string }{
		{"Up 3 seconds (health: starting)", "starting"},
		{"Up 5 minutes (healthy)", "healthy"},
		{"Up 5 minutes (unhealthy)", "unhealthy"},
		{"Exited (3) 2 seconds ago", ""},
	} {
		t.Run(tc.status, func(t *testing.T) {
			if got := docker.HealthFromStatus(tc.status); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSampleFromStats(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	v1 := &dcontainer.StatsResponse{Read: now}
	v1.CPUStats.CPUUsage.TotalUsage = 5e9
	v1.CPUStats.SystemUsage = 100e9
	v1.CPUStats.OnlineCPUs = 2
	v1.MemoryStats = dcontainer.MemoryStats{Usage: 100 << 20, Limit: 200 << 20,
		Stats: map[string]uint64{"total_inactive_file": 20 << 20, "inactive_file": 1}}
	v1.BlkioStats.IoServiceBytesRecursive = []dcontainer.BlkioStatEntry{
		{Op: "Read", Value: 10}, {Op: "Write", Value: 20}, {Op: "Total", Value: 30}}
	v1.Networks = map[string]dcontainer.NetworkStats{"eth0": {RxBytes: 1, TxBytes: 2}, "eth1": {RxBytes: 3, TxBytes: 4}}
	v1.PidsStats.Current = 7

	v2 := &dcontainer.StatsResponse{}
	v2.MemoryStats = dcontainer.MemoryStats{Usage: 50 << 20, Limit: 100 << 20,
		Stats: map[string]uint64{"inactive_file": 10 << 20}}
	v2.BlkioStats.IoServiceBytesRecursive = []dcontainer.BlkioStatEntry{{Op: "read", Value: 5}, {Op: "write", Value: 6}}
	v2.CPUStats.CPUUsage.PercpuUsage = []uint64{1, 2, 3}

	got1 := docker.SampleFromStats(v1, now.Add(time.Hour))
	if got1.Time != now || got1.Source != "api" || got1.CPUTotalNS != 5e9 || got1.SystemNS != 100e9 || got1.OnlineCPUs != 2 {
		t.Errorf("v1 header: %+v", got1)
	}
	m := got1.Metrics
	want1 := [8]uint64{80 << 20, 200 << 20, 4, 6, 10, 20, 7, 40}
	got := [8]uint64{m.MemoryUsage, m.MemoryLimit, m.NetworkRxBytes, m.NetworkTxBytes, m.BlkioReadBytes, m.BlkioWriteBytes, m.PIDs, uint64(m.MemoryPercent)}
	if diff := cmp.Diff(want1, got); diff != "" {
		t.Errorf("v1 metrics (-want +got):\n%s", diff)
	}
	got2 := docker.SampleFromStats(v2, now)
	m = got2.Metrics
	want2 := [5]uint64{40 << 20, 5, 6, 40, 3}
	gotv2 := [5]uint64{m.MemoryUsage, m.BlkioReadBytes, m.BlkioWriteBytes, uint64(m.MemoryPercent), uint64(got2.OnlineCPUs)}
	if diff := cmp.Diff(want2, gotv2); diff != "" {
		t.Errorf("v2 metrics (-want +got):\n%s", diff)
	}
	if got2.Time != now {
		t.Errorf("missing read time: got %v, want now %v", got2.Time, now)
	}
}

func TestWorkingSet(t *testing.T) {
	for _, tc := range []struct {
		name  string
		usage uint64
		stats map[string]uint64
		want  uint64
	}{
		{"v1", 100, map[string]uint64{"total_inactive_file": 30}, 70},
		{"v2", 100, map[string]uint64{"inactive_file": 40}, 60},
		{"no stats", 100, nil, 100},
		{"inactive above usage", 10, map[string]uint64{"inactive_file": 40}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := docker.WorkingSet(tc.usage, tc.stats); got != tc.want {
				t.Errorf("got %d, want %d", got, tc.want)
			}
		})
	}
}

func TestListInspectStatsLogs(t *testing.T) {
	t.Parallel()
	c := testenv.RequireDocker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	id, name := testenv.RunContainer(t, c, docker.CreateOptions{
		Name: "dk-read", Cmd: []string{"-log-secrets", "-hold-mb", "8"},
		MemoryBytes: 64 << 20, NanoCPUs: 5e8, RestartPolicy: "on-failure", MaxRetries: 2,
		Labels: map[string]string{"hemostat.enable": "true"},
		Health: &docker.Healthcheck{Test: []string{"CMD", "/app", "-probe", "http://127.0.0.1:8080/health"},
			Interval: time.Second, StartPeriod: 5 * time.Second, Retries: 2},
	})
	list, err := c.List(ctx)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	i := slices.IndexFunc(list, func(x docker.Container) bool { return x.ID == id })
	if i < 0 {
		t.Fatalf("list does not hold %s", name)
	}
	if got := list[i]; got.Name != name || got.State != "running" || got.Labels["hemostat.enable"] != "true" {
		t.Errorf("list entry: %+v", got)
	}
	d, err := c.Inspect(ctx, id)
	if err != nil {
		t.Fatalf("inspect: %v", err)
	}
	if d.Name != name || d.State != "running" || d.Pid == 0 || d.StartedAt.IsZero() || d.Health != "starting" {
		t.Errorf("inspect state: %+v", d)
	}
	if d.Healthcheck == nil || d.Healthcheck.StartPeriod != 5*time.Second || d.Healthcheck.Retries != 2 {
		t.Errorf("healthcheck: %+v", d.Healthcheck)
	}
	if d.MemoryLimit != 64<<20 || d.CPULimit() != 0.5 || d.RestartPolicy != "on-failure" || d.MaxRetries != 2 {
		t.Errorf("limits: mem %d cpu %v policy %s/%d", d.MemoryLimit, d.CPULimit(), d.RestartPolicy, d.MaxRetries)
	}
	var s container.Sample
	eventually(t, 10*time.Second, func() bool {
		s, err = c.Stats(ctx, id)
		return err == nil && s.Metrics.MemoryUsage >= 8<<20
	})
	if err != nil {
		t.Fatalf("stats: %v", err)
	}
	if s.Metrics.MemoryLimit != 64<<20 || s.Metrics.MemoryUsage < 8<<20 || s.CPUTotalNS == 0 || s.Metrics.PIDs == 0 {
		t.Errorf("stats sample: %+v", s)
	}
	var lines []docker.LogLine
	eventually(t, 10*time.Second, func() bool {
		lines, err = c.Logs(ctx, id, 50)
		return err == nil && len(lines) >= 6
	})
	if err != nil {
		t.Fatalf("logs: %v", err)
	}
	var stderr []string
	for _, l := range lines {
		if l.Stream == "stderr" {
			stderr = append(stderr, l.Text)
		}
	}
	if diff := cmp.Diff([]string{"error: database connection refused"}, stderr); diff != "" {
		t.Errorf("stderr lines (-want +got):\n%s", diff)
	}
	// stdout and stderr are separate pipes: their relative order is not guaranteed, only each one's.
	if i := slices.IndexFunc(lines, func(l docker.LogLine) bool { return l.Stream == "stdout" }); i < 0 ||
		!strings.HasPrefix(lines[i].Text, "testapp started") {
		t.Errorf("first stdout line is not the start banner: %+v", lines)
	}
	if _, err := c.Inspect(ctx, "hemostat-no-such-container"); !errors.Is(err, docker.ErrNotFound) {
		t.Errorf("inspect unknown: got %v, want ErrNotFound", err)
	}
}

func TestEventsStream(t *testing.T) {
	t.Parallel()
	c := testenv.RequireDocker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	since := time.Now()
	id, name := testenv.RunContainer(t, c, docker.CreateOptions{Name: "dk-events", Cmd: []string{"-exit-code", "3", "-exit-after", "200ms"}})
	evs, errs := c.Events(ctx, docker.EventsOptions{Since: since.Add(-time.Second), Actions: docker.ContainerActions})
	var die docker.Event
	var actions []string
	deadline := time.After(30 * time.Second)
	for die.ID == "" {
		select {
		case e := <-evs:
			if e.ID != id {
				continue
			}
			actions = append(actions, e.Action)
			if e.Action == "die" {
				die = e
			}
		case err := <-errs:
			t.Fatalf("events: %v", err)
		case <-deadline:
			t.Fatalf("no die event for %s; saw %v", name, actions)
		}
	}
	if diff := cmp.Diff([]string{"create", "start", "die"}, actions); diff != "" {
		t.Errorf("actions (-want +got):\n%s", diff)
	}
	if die.ExitCode != 3 || die.Name != name || die.Attributes["hemostat.test"] != "1" || die.Time.Before(since.Add(-time.Second)) {
		t.Errorf("die event: %+v", die)
	}
	cancel()
	select {
	case <-errs:
	case <-time.After(5 * time.Second):
		t.Fatal("event stream did not end after cancel")
	}
}

func TestEventsOverflowEndsTheStream(t *testing.T) {
	t.Parallel()
	c := testenv.RequireDocker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// A consumer that never reads: the one-event buffer fills and the stream must end, not stall the engine.
	_, errs := c.Events(ctx, docker.EventsOptions{Buffer: 1, Actions: docker.ContainerActions})
	testenv.RunContainer(t, c, docker.CreateOptions{Name: "dk-overflow", Cmd: []string{"-exit-after", "100ms"}})
	select {
	case err := <-errs:
		if !errors.Is(err, docker.ErrEventsOverflow) {
			t.Errorf("got %v, want ErrEventsOverflow", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("stream did not end on overflow")
	}
}
