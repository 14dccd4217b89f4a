package monitor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sync/atomic"
	"time"

	"github.com/hemostat/hemostat/pkg/cgroup"
	"github.com/hemostat/hemostat/pkg/container"
	"github.com/hemostat/hemostat/pkg/docker"
)

// Runtime is the container engine as the monitor sees it; *docker.Client implements it, tests use
// monitortest.Runtime.
type Runtime interface {
	List(ctx context.Context) ([]docker.Container, error)
	Inspect(ctx context.Context, id string) (docker.Details, error)
	Events(ctx context.Context, o docker.EventsOptions) (<-chan docker.Event, <-chan error)
}

// ContainerRef names a running container to sample.
type ContainerRef struct {
	ID   string
	Name string
	Pid  int // host pid of its init process, 0 when unknown
}

// Sampler takes one resource sample of a running container. CPU percent is computed by the monitor from
// consecutive samples, so a sampler leaves it at zero.
type Sampler interface {
	Sample(ctx context.Context, c ContainerRef) (container.Sample, error)
}

// Sampler names for --sampler.
const (
	SamplerAuto   = "auto"
	SamplerCgroup = "cgroup"
	SamplerAPI    = "api"
)

// StatsClient is the part of *docker.Client the API sampler uses.
type StatsClient interface {
	Stats(ctx context.Context, id string) (container.Sample, error)
}

// APISampler samples through the Docker stats API (stream=false, one-shot).
type APISampler struct{ Client StatsClient }

// Sample implements Sampler.
func (s APISampler) Sample(ctx context.Context, c ContainerRef) (container.Sample, error) {
	return s.Client.Stats(ctx, c.ID)
}

// CgroupSampler reads the container's cgroup files directly (pkg/cgroup); it needs the container's pid.
type CgroupSampler struct{ Reader *cgroup.Reader }

// errNoPid is returned by CgroupSampler for a container whose pid is not known yet.
var errNoPid = errors.New("pid unknown")

// Sample implements Sampler.
func (s CgroupSampler) Sample(_ context.Context, c ContainerRef) (container.Sample, error) {
	if c.Pid <= 0 {
		return container.Sample{}, fmt.Errorf("cgroup sample %s: %w", c.Name, errNoPid)
	}
	var st cgroup.Stats
	if err := s.Reader.Read(c.Pid, &st); err != nil {
		return container.Sample{}, fmt.Errorf("cgroup sample %s: %w", c.Name, err)
	}
	out := container.Sample{Time: time.Now().UTC(), Source: SamplerCgroup, CPUTotalNS: st.CPUUsageNS}
	m := &out.Metrics
	m.MemoryUsage = st.MemoryWorkingSet
	m.MemoryLimit = st.MemoryLimit
	if m.MemoryLimit > 0 {
		m.MemoryPercent = 100 * float64(m.MemoryUsage) / float64(m.MemoryLimit)
	}
	m.NetworkRxBytes, m.NetworkTxBytes = st.NetRx, st.NetTx
	m.BlkioReadBytes, m.BlkioWriteBytes = st.BlkioRead, st.BlkioWrite
	m.PIDs = st.PIDs
	return out, nil
}

// Prune drops the reader's cached paths of every pid keep rejects (containers no longer running).
func (s CgroupSampler) Prune(keep func(pid int) bool) { s.Reader.Prune(keep) }

// usesAPI reports whether a sampler's calls mostly wait on the stats API.
func usesAPI(s Sampler) bool {
	switch x := s.(type) {
	case APISampler:
		return true
	case interface{ UsesAPI() bool }:
		return x.UsesAPI()
	}
	return false
}

// pruner is a sampler that caches per-container state to drop after each round.
type pruner interface{ Prune(keep func(pid int) bool) }

// AutoSampler reads cgroup files and falls back to the stats API for a container whose files cannot be
// read (unknown pid, another pid namespace, no hierarchy).
type AutoSampler struct {
	Cgroup    CgroupSampler
	API       APISampler
	Fallbacks atomic.Int64 // samples that fell back to the API
	cgroupOK  atomic.Int64 // samples read from cgroup files
}

// UsesAPI reports whether every sample so far came from the stats API (the cgroup files are not this
// process's to read, e.g. in a container without the host's pid namespace): the monitor then samples
// with the API's wider concurrency.
func (s *AutoSampler) UsesAPI() bool { return s.cgroupOK.Load() == 0 && s.Fallbacks.Load() > 0 }

// Sample implements Sampler.
func (s *AutoSampler) Sample(ctx context.Context, c ContainerRef) (container.Sample, error) {
	smp, err := s.Cgroup.Sample(ctx, c)
	if err == nil {
		s.cgroupOK.Add(1)
		return smp, nil
	}
	if errors.Is(err, fs.ErrNotExist) && c.Pid > 0 {
		// The process is gone: the container stopped between the round's snapshot and now.
		return container.Sample{}, err
	}
	s.Fallbacks.Add(1)
	return s.API.Sample(ctx, c)
}

// Prune implements pruner.
func (s *AutoSampler) Prune(keep func(pid int) bool) { s.Cgroup.Prune(keep) }

// NewSampler returns the sampler named by kind (auto, cgroup or api) and the name of the one in use:
// auto picks cgroup reads (with a per-container API fallback) when the cgroup files are readable here,
// the stats API otherwise.
func NewSampler(kind string, api StatsClient, reader *cgroup.Reader) (Sampler, string, error) {
	if reader == nil {
		reader = cgroup.NewReader(cgroup.Options{})
	}
	switch kind {
	case SamplerAPI:
		return APISampler{Client: api}, SamplerAPI, nil
	case SamplerCgroup:
		if err := reader.Available(); err != nil {
			return nil, "", fmt.Errorf("sampler cgroup: %w", err)
		}
		return CgroupSampler{Reader: reader}, SamplerCgroup, nil
	case SamplerAuto, "":
		if reader.Available() != nil {
			return APISampler{Client: api}, SamplerAPI, nil
		}
		return &AutoSampler{Cgroup: CgroupSampler{Reader: reader}, API: APISampler{Client: api}}, SamplerCgroup, nil
	}
	return nil, "", fmt.Errorf("sampler %q: want auto, cgroup or api", kind)
}
