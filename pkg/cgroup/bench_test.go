package cgroup_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/hemostat/hemostat/pkg/cgroup"
	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/testenv"
)

// BenchmarkReadFixture reads the v1 fixture tree: the parsing and syscall cost on tmpfs/disk files,
// without the kernel's cgroup accounting.
func BenchmarkReadFixture(b *testing.B) {
	r := cgroup.NewReader(cgroup.Options{ProcRoot: "testdata/v1/proc", CgroupRoot: "testdata/v1/cgroup"})
	var st cgroup.Stats
	b.ReportAllocs()
	for b.Loop() {
		if err := r.Read(1234, &st); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRead reads one running container's cgroup per op, paths cached (the steady state of the
// monitor).
func BenchmarkRead(b *testing.B) {
	c := testenv.RequireDocker(b)
	r := requireCgroup(b)
	id, _ := testenv.RunContainer(b, c, docker.CreateOptions{Cmd: []string{"-exit-after", "0"}})
	pid := containerPID(b, c, id)
	var st cgroup.Stats
	if err := r.Read(pid, &st); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := r.Read(pid, &st); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadUncached is BenchmarkRead with the paths resolved again on every op: the first sample of a
// container that has just started.
func BenchmarkReadUncached(b *testing.B) {
	c := testenv.RequireDocker(b)
	r := requireCgroup(b)
	id, _ := testenv.RunContainer(b, c, docker.CreateOptions{Cmd: []string{"-exit-after", "0"}})
	pid := containerPID(b, c, id)
	var st cgroup.Stats
	b.ReportAllocs()
	for b.Loop() {
		r.Forget(pid)
		if err := r.Read(pid, &st); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSweep reads N idle running containers (HEMOSTAT_BENCH_CONTAINERS=N, skipped without it) per
// op with 1, 2 and 4 workers: one sampling round of the monitor.
func BenchmarkSweep(b *testing.B) {
	n, _ := strconv.Atoi(os.Getenv("HEMOSTAT_BENCH_CONTAINERS"))
	if n <= 0 {
		b.Skip("set HEMOSTAT_BENCH_CONTAINERS=N to sweep N real containers")
	}
	c := testenv.RequireDocker(b)
	r := requireCgroup(b)
	pids := startIdle(b, c, n)
	stats := make([]cgroup.Stats, n)
	if err := sweep(r, pids, 1, stats); err != nil { // resolve and cache the paths
		b.Fatal(err)
	}
	for _, workers := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("containers=%d/workers=%d", n, workers), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := sweep(r, pids, workers, stats); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ms/sweep")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/container")
		})
	}
}

// sweep reads every pid into stats with the given number of workers, which share the work through an
// index; the first error is returned once all workers are done.
func sweep(r *cgroup.Reader, pids []int, workers int, stats []cgroup.Stats) error {
	if workers <= 1 {
		for i, pid := range pids {
			if err := r.Read(pid, &stats[i]); err != nil {
				return err
			}
		}
		return nil
	}
	var (
		next   atomic.Int64
		wg     sync.WaitGroup
		errMu  sync.Mutex
		errOut error
	)
	for range workers {
		wg.Go(func() { // exits when the index passes the end
			for {
				i := int(next.Add(1)) - 1
				if i >= len(pids) {
					return
				}
				if err := r.Read(pids[i], &stats[i]); err != nil {
					errMu.Lock()
					if errOut == nil {
						errOut = err
					}
					errMu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return errOut
}

// startIdle starts n quiet test containers (network none), four at a time, and returns their init pids.
// All are force-removed at cleanup.
func startIdle(b *testing.B, c *docker.Client, n int) []int {
	b.Helper()
	image := testenv.TestImage(b, c)
	ids := make([]string, n)
	pids := make([]int, n)
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		var g errgroup.Group
		g.SetLimit(8)
		for _, id := range ids {
			if id == "" {
				continue
			}
			g.Go(func() error {
				if err := c.RemoveContainer(ctx, id); err != nil {
					b.Logf("remove %s: %v", id, err)
				}
				return nil
			})
		}
		g.Wait()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	stamp := time.Now().UnixNano() % 1e6
	for i := range n {
		g.Go(func() error {
			id, err := c.Create(gctx, docker.CreateOptions{
				Name:   fmt.Sprintf("hemostat-bench-sweep-%d-%d", stamp, i),
				Image:  image,
				Cmd:    []string{"-exit-after", "0"},
				Labels: map[string]string{"hemostat.test": "1"},
			})
			if err != nil {
				return err
			}
			ids[i] = id
			if err := c.StartContainer(gctx, id); err != nil {
				return err
			}
			pids[i], err = c.PID(gctx, id)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatalf("start %d containers: %v", n, err)
	}
	return pids
}
