package bench_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/monitor"
	"github.com/hemostat/hemostat/pkg/testenv"
)

// startConcurrency is how many containers are created and started at once: enough to fill the fleet
// quickly, few enough not to stall a 2-core engine.
const startConcurrency = 6

// fleet is the set of idle test containers the sampling benchmark grows step by step. Every container is
// labelled hemostat.test=1 and hemostat.bench=<run> (scripts/bench removes leftovers of its run by that
// label) and is removed when the test ends.
type fleet struct {
	t     testing.TB
	dc    *docker.Client
	image string
	run   string

	mu   sync.Mutex
	refs []monitor.ContainerRef // running containers with their pids, in creation order
	ids  []string               // every container created, for cleanup
}

func newFleet(t testing.TB, dc *docker.Client, run string) *fleet {
	f := &fleet{t: t, dc: dc, image: testenv.TestImage(t, dc), run: run}
	t.Cleanup(f.removeAll)
	return f
}

// grow creates and starts containers until n are running, startConcurrency at a time, and records each
// one's pid from inspect (the monitor keeps the same in its event-maintained table).
func (f *fleet) grow(ctx context.Context, n int) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(startConcurrency)
	for i := len(f.refs); i < n; i++ {
		g.Go(func() error {
			name := fmt.Sprintf("hemostat-bench-%s-%03d", f.run, i)
			cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			defer cancel()
			id, err := f.dc.Create(cctx, docker.CreateOptions{Name: name, Image: f.image, NetworkMode: "none",
				Labels: map[string]string{"hemostat.test": "1", "hemostat.bench": f.run}})
			if err != nil {
				return err
			}
			f.mu.Lock()
			f.ids = append(f.ids, id)
			f.mu.Unlock()
			if err := f.dc.StartContainer(cctx, id); err != nil {
				return err
			}
			pid, err := f.dc.PID(cctx, id)
			if err != nil {
				return err
			}
			f.mu.Lock()
			f.refs = append(f.refs, monitor.ContainerRef{ID: id, Name: name, Pid: pid})
			f.mu.Unlock()
			return nil
		})
	}
	return g.Wait()
}

// startEach creates and starts one container per name with the options opts gives for it,
// startConcurrency at a time, labelled and removed at cleanup like the fleet's own; they are not part of
// the idle fleet. It returns the ids of the containers created.
func (f *fleet) startEach(ctx context.Context, names []string, opts func(name string) docker.CreateOptions) ([]string, error) {
	var mu sync.Mutex
	var ids []string
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(startConcurrency)
	for _, name := range names {
		g.Go(func() error {
			o := opts(name)
			o.Name, o.Image = name, f.image
			o.Labels = map[string]string{"hemostat.test": "1", "hemostat.bench": f.run}
			cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			defer cancel()
			id, err := f.dc.Create(cctx, o)
			if err != nil {
				return err
			}
			f.mu.Lock()
			f.ids = append(f.ids, id)
			f.mu.Unlock()
			mu.Lock()
			ids = append(ids, id)
			mu.Unlock()
			return f.dc.StartContainer(cctx, id)
		})
	}
	err := g.Wait()
	return ids, err
}

// remove force-removes the given containers now, startConcurrency at a time (cleanup skips them later).
func (f *fleet) remove(ids []string) {
	f.mu.Lock()
	f.ids = slices.DeleteFunc(f.ids, func(id string) bool { return slices.Contains(ids, id) })
	f.mu.Unlock()
	f.removeIDs(ids)
}

// running returns the first n running containers.
func (f *fleet) running(n int) []monitor.ContainerRef {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]monitor.ContainerRef(nil), f.refs[:min(n, len(f.refs))]...)
}

// removeAll force-removes every container the fleet created, startConcurrency at a time.
func (f *fleet) removeAll() {
	f.mu.Lock()
	ids := append([]string(nil), f.ids...)
	f.mu.Unlock()
	f.removeIDs(ids)
}

// removeIDs force-removes containers, startConcurrency at a time, logging failures.
func (f *fleet) removeIDs(ids []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var g errgroup.Group
	g.SetLimit(startConcurrency)
	for _, id := range ids {
		g.Go(func() error {
			if err := f.dc.RemoveContainer(ctx, id); err != nil {
				f.t.Logf("remove %s: %v", id, err)
			}
			return nil
		})
	}
	_ = g.Wait()
}
