package docker

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	dcontainer "github.com/docker/docker/api/types/container"

	"github.com/hemostat/hemostat/pkg/container"
)

// Stats takes one sample of a container through the stats API (stream=false, one-shot where the engine
// supports it). CPU percent is left at zero: the monitor computes it from its own consecutive samples.
func (c *Client) Stats(ctx context.Context, id string) (container.Sample, error) {
	r, err := c.api.ContainerStatsOneShot(ctx, id)
	if err != nil {
		return container.Sample{}, classify("stats "+id, err)
	}
	defer r.Body.Close()
	var s dcontainer.StatsResponse
	if err := json.NewDecoder(r.Body).Decode(&s); err != nil {
		return container.Sample{}, fmt.Errorf("stats %s: decode: %w", id, err)
	}
	return SampleFromStats(&s, time.Now()), nil
}

// SampleFromStats converts a stats API response into a sample: memory as working set (usage minus
// inactive file: total_inactive_file on cgroup v1, inactive_file on v2) against the limit, network summed
// over interfaces, block I/O from both cgroup v1 ("Read") and v2 ("read") entries. now stands in for a
// missing read time.
func SampleFromStats(s *dcontainer.StatsResponse, now time.Time) container.Sample {
	out := container.Sample{
		Time:       s.Read.UTC(),
		Source:     "api",
		CPUTotalNS: s.CPUStats.CPUUsage.TotalUsage,
		SystemNS:   s.CPUStats.SystemUsage,
		OnlineCPUs: int(s.CPUStats.OnlineCPUs),
	}
	if s.Read.IsZero() || s.Read.Year() <= 1 {
		out.Time = now.UTC()
	}
	if out.OnlineCPUs == 0 {
		out.OnlineCPUs = len(s.CPUStats.CPUUsage.PercpuUsage)
	}
	m := &out.Metrics
	m.MemoryUsage = WorkingSet(s.MemoryStats.Usage, s.MemoryStats.Stats)
	m.MemoryLimit = s.MemoryStats.Limit
	if m.MemoryLimit > 0 {
		m.MemoryPercent = 100 * float64(m.MemoryUsage) / float64(m.MemoryLimit)
	}
	for _, n := range s.Networks {
		m.NetworkRxBytes += n.RxBytes
		m.NetworkTxBytes += n.TxBytes
	}
	for _, e := range s.BlkioStats.IoServiceBytesRecursive {
		switch strings.ToLower(e.Op) {
		case "read":
			m.BlkioReadBytes += e.Value
		case "write":
			m.BlkioWriteBytes += e.Value
		}
	}
	m.PIDs = s.PidsStats.Current
	return out
}

// WorkingSet is memory usage minus inactive page cache, as cgroup v1 (total_inactive_file) and v2
// (inactive_file) report it, never below zero.
func WorkingSet(usage uint64, stats map[string]uint64) uint64 {
	inactive, ok := stats["total_inactive_file"]
	if !ok {
		inactive = stats["inactive_file"]
	}
	if inactive > usage {
		return 0
	}
	return usage - inactive
}
