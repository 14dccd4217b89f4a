package monitor_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/hemostat/hemostat/pkg/cgroup"
	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/monitor"
	"github.com/hemostat/hemostat/pkg/testenv"
)

// idleContainers starts n idle test containers (in parallel) and returns their refs with pids.
func idleContainers(b *testing.B, dc *docker.Client, prefix string, n int) []monitor.ContainerRef {
	b.Helper()
	refs := make([]monitor.ContainerRef, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	sem := make(chan struct{}, 8)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			id, name := testenv.RunContainer(b, dc, docker.CreateOptions{Name: fmt.Sprintf("%s-%d", prefix, i)})
			d, err := dc.Inspect(context.Background(), id)
			if err != nil {
				b.Errorf("inspect: %v", err)
				return
			}
			mu.Lock()
			refs[i] = monitor.ContainerRef{ID: id, Name: name, Pid: d.Pid}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	return refs
}

// BenchmarkSampleRound measures one sampling round of N running containers with 8 workers.
//
//	go test -run '^$' -bench BenchmarkSampleRound -benchtime 5x ./pkg/monitor/
func BenchmarkSampleRound(b *testing.B) {
	dc := testenv.RequireDocker(b)
	reader := cgroup.NewReader(cgroup.Options{})
	samplers := []struct {
		name string
		s    monitor.Sampler
	}{{"api", monitor.APISampler{Client: dc}}}
	if reader.Available() == nil {
		samplers = append(samplers, struct {
			name string
			s    monitor.Sampler
		}{"cgroup", monitor.CgroupSampler{Reader: reader}})
	}
	all := idleContainers(b, dc, "bench-round", 50)
	for _, n := range []int{10, 50} {
		for _, sm := range samplers {
			for _, workers := range []int{8, 128} {
				b.Run(fmt.Sprintf("%s/containers=%d/workers=%d", sm.name, n, workers), func(b *testing.B) {
					refs := all[:n]
					for b.Loop() {
						res := monitor.SampleRound(context.Background(), sm.s, refs, workers, 30*time.Second)
						for _, r := range res {
							if r.Err != nil {
								b.Fatalf("sample %s: %v", r.Ref.Name, r.Err)
							}
						}
					}
				})
			}
		}
	}
}

// BenchmarkDetectionLatency measures Docker's event time to the health_alert on the bus (as a reader
// blocked on XREAD sees it) for a crash, an OOM kill and an unhealthy healthcheck, one container per
// iteration.
//
//	go test -run '^$' -bench BenchmarkDetectionLatency -benchtime 30x ./pkg/monitor/
func BenchmarkDetectionLatency(b *testing.B) {
	for _, tc := range []struct {
		name  string
		class string
		opts  docker.CreateOptions
	}{
		{"crash", event.ClassCrashed, docker.CreateOptions{Cmd: []string{"-exit-code", "3", "-exit-after", "200ms"}}},
		{"oom", event.ClassOOMKilled, docker.CreateOptions{MemoryBytes: 32 << 20, Cmd: []string{"-leak-mb-per-s", "200"}}},
		{"unhealthy", event.ClassUnhealthy, docker.CreateOptions{Cmd: []string{"-health-addr", ":8080", "-unhealthy-after", "100ms"},
			Health: &docker.Healthcheck{Test: probe, Interval: 300 * time.Millisecond, Timeout: time.Second, Retries: 1}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			o := fastOptions()
			o.Interval = time.Second
			h := newHarness(b, "bench-"+tc.name, "", o)
			ctx := context.Background()
			last := "$"
			var lat []time.Duration
			for b.Loop() {
				id, _ := h.run(tc.opts)
				var got bool
				deadline := time.Now().Add(30 * time.Second)
				for !got && time.Now().Before(deadline) {
					entries, err := h.bus.Follow(ctx, map[string]string{event.StreamHealthAlert: last}, time.Second)
					seen := time.Now()
					if err != nil {
						b.Fatalf("follow: %v", err)
					}
					for _, e := range entries {
						last = e.ID
						env, err := event.Decode(e.Raw)
						if err != nil {
							b.Fatal(err)
						}
						p, err := event.DecodeData[event.ContainerUnhealthy](env)
						if err != nil {
							b.Fatal(err)
						}
						if p.ContainerID == id && p.Class == tc.class {
							lat = append(lat, seen.Sub(p.EventTime))
							got = true
						}
					}
				}
				if !got {
					b.Fatalf("no %s alert for %s", tc.class, id)
				}
			}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			pct := func(p float64) float64 {
				return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
			}
			b.ReportMetric(pct(0.5), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
			b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
		})
	}
}
