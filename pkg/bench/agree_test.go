package bench_test

import (
	"context"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/hemostat/hemostat/pkg/cgroup"
	"github.com/hemostat/hemostat/pkg/container"
	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/monitor"
	"github.com/hemostat/hemostat/pkg/testenv"
)

// bracket is one API sample with the cgroup samples taken just before the API call and just after it
// returned, and the cgroup sample taken nearest to the API sample's own read time.
type bracket struct {
	api, before, after, nearest container.Sample
}

// sampleBoth takes an API sample while the cgroup sampler reads the same container every few milliseconds.
func sampleBoth(t *testing.T, ctx context.Context, api, cg monitor.Sampler, ref monitor.ContainerRef) bracket {
	t.Helper()
	var (
		mu      sync.Mutex
		cgs     []container.Sample
		cgErr   error
		stop    = make(chan struct{})
		wg      sync.WaitGroup
		b       bracket
		apiErr  error
		readOne = func() {
			s, err := cg.Sample(ctx, ref)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				cgErr = err
				return
			}
			cgs = append(cgs, s)
		}
	)
	readOne()
	wg.Go(func() { // exits when the API call has returned (stop is closed)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				readOne()
			}
		}
	})
	b.api, apiErr = api.Sample(ctx, ref)
	close(stop)
	wg.Wait()
	readOne()
	if apiErr != nil {
		t.Fatalf("api sample: %v", apiErr)
	}
	if cgErr != nil {
		t.Fatalf("cgroup sample: %v", cgErr)
	}
	b.before, b.after, b.nearest = cgs[0], cgs[len(cgs)-1], cgs[0]
	for _, s := range cgs {
		if s.Time.Sub(b.api.Time).Abs() < b.nearest.Time.Sub(b.api.Time).Abs() {
			b.nearest = s
		}
	}
	return b
}

// TestSamplersAgree samples a busy container (one spinning goroutine, 40 MiB held, 128 MiB limit) through
// the stats API and through its cgroup files at about the same time, and checks that the two samplers
// report the same container: the API's cumulative CPU lies between the cgroup readings taken around the
// call, CPU % over the same interval agrees, working set within 5 %, limit, I/O and network equal or close.
func TestSamplersAgree(t *testing.T) {
	dc := testenv.RequireDocker(t)
	reader := cgroup.NewReader(cgroup.Options{})
	if err := reader.Available(); err != nil {
		t.Skipf("cgroup files not readable here, nothing to compare the API with: %v", err)
	}
	ctx := t.Context()
	const limit = 128 << 20
	id, name := testenv.RunContainer(t, dc, docker.CreateOptions{Name: "agree",
		Cmd: []string{"-cpu", "1", "-hold-mb", "40"}, MemoryBytes: limit})
	pid, err := dc.PID(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	ref := monitor.ContainerRef{ID: id, Name: name, Pid: pid}
	api, cg := monitor.APISampler{Client: dc}, monitor.CgroupSampler{Reader: reader}
	if !eventually(t, 15*time.Second, func() bool {
		s, err := cg.Sample(ctx, ref)
		return err == nil && s.Metrics.MemoryUsage >= 40<<20 && s.CPUTotalNS > 2e8
	}) {
		t.Fatal("the container never held 40 MiB and spun for 200 ms")
	}

	first := sampleBoth(t, ctx, api, cg, ref)
	// The measuring interval for CPU %: not synchronisation, just time for the counters to move.
	time.Sleep(2 * time.Second)
	second := sampleBoth(t, ctx, api, cg, ref)

	for i, b := range []bracket{first, second} {
		if b.api.CPUTotalNS < b.before.CPUTotalNS || b.api.CPUTotalNS > b.after.CPUTotalNS {
			t.Errorf("sample %d: API cumulative CPU %d ns outside the cgroup readings around the call [%d, %d]",
				i+1, b.api.CPUTotalNS, b.before.CPUTotalNS, b.after.CPUTotalNS)
		}
		am, cm := b.api.Metrics, b.nearest.Metrics
		if d := relDiff(float64(am.MemoryUsage), float64(cm.MemoryUsage)); d > 0.05 {
			t.Errorf("sample %d: working set api %d, cgroup %d: %.1f %% apart, want within 5 %%", i+1, am.MemoryUsage, cm.MemoryUsage, 100*d)
		}
		if am.MemoryLimit != limit || cm.MemoryLimit != limit {
			t.Errorf("sample %d: memory limit api %d, cgroup %d, want %d", i+1, am.MemoryLimit, cm.MemoryLimit, limit)
		}
		for _, c := range []struct {
			what     string
			api, cgr uint64
			slack    uint64
		}{
			{"blkio read bytes", am.BlkioReadBytes, cm.BlkioReadBytes, 1 << 20},
			{"blkio write bytes", am.BlkioWriteBytes, cm.BlkioWriteBytes, 1 << 20},
			{"network rx bytes", am.NetworkRxBytes, cm.NetworkRxBytes, 0},
			{"network tx bytes", am.NetworkTxBytes, cm.NetworkTxBytes, 0},
			{"pids", am.PIDs, cm.PIDs, 2},
		} {
			if diff := max(c.api, c.cgr) - min(c.api, c.cgr); diff > c.slack {
				t.Errorf("sample %d: %s api %d, cgroup %d: differ by %d, want at most %d", i+1, c.what, c.api, c.cgr, diff, c.slack)
			}
		}
	}
	apiCPU := cpuPercent(first.api, second.api)
	cgCPU := cpuPercent(first.nearest, second.nearest)
	t.Logf("CPU %%: api %.1f, cgroup %.1f; working set: api %d, cgroup %d", apiCPU, cgCPU,
		second.api.Metrics.MemoryUsage, second.nearest.Metrics.MemoryUsage)
	if cgCPU < 10 {
		t.Errorf("cgroup CPU %.1f %%: the busy container hardly ran, nothing to compare", cgCPU)
	}
	if math.Abs(apiCPU-cgCPU) > 15 && relDiff(apiCPU, cgCPU) > 0.20 {
		t.Errorf("CPU %%: api %.1f, cgroup %.1f: want within 15 points or 20 %%", apiCPU, cgCPU)
	}
}

// relDiff is |a-b| relative to the larger of the two, 0 when both are 0.
func relDiff(a, b float64) float64 {
	m := math.Max(math.Abs(a), math.Abs(b))
	if m == 0 {
		return 0
	}
	return math.Abs(a-b) / m
}
