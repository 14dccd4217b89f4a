// Package cgroup reads a container's resource counters straight from its cgroup files (v1 and v2) and its
// network counters from /proc/<pid>/net/dev, the cheap alternative to the Docker stats API: about a
// tenth of a millisecond per container instead of a second or two of waiting on the daemon.
//
// The container is found from its init process (the pid from inspect): /proc/<pid>/cgroup names its
// cgroup, which is resolved under the hierarchies listed in /proc/self/mountinfo. The figures are the ones
// Docker's stats API reports for the same container, so the two samplers agree.
package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// Stats are one container's cumulative counters and gauges read from its cgroup.
type Stats struct {
	// CPUUsageNS is the cumulative CPU time of all its tasks (v1 cpuacct.usage, v2 cpu.stat usage_usec).
	CPUUsageNS uint64
	// MemoryUsage is the memory charged to the cgroup in bytes (v1 memory.usage_in_bytes, v2
	// memory.current), page cache included.
	MemoryUsage uint64
	// MemoryWorkingSet is usage minus inactive file cache (v1 total_inactive_file, v2 inactive_file),
	// floored at 0: what docker stats shows.
	MemoryWorkingSet uint64
	// MemoryLimit is the memory limit in bytes, capped at the host's memory like the Docker stats API
	// does: a container without a limit reports the host's MemTotal (and MemoryUnlimited is set), or 0
	// when the host's memory could not be read.
	MemoryLimit uint64
	// MemoryUnlimited is set when the cgroup has no memory limit (v1 the kernel's maximum, v2 "max").
	MemoryUnlimited bool
	// OOMEvents counts the OOM kills in the cgroup (v1 memory.oom_control oom_kill, kernel 4.13 and
	// later; v2 memory.events oom_kill).
	OOMEvents uint64
	// BlkioRead and BlkioWrite are cumulative block I/O bytes: v1 the first of the BFQ, CFQ and throttle
	// io_service_bytes files that has device entries (runc's order, so the same as the stats API), v2
	// io.stat rbytes/wbytes, summed over devices.
	BlkioRead, BlkioWrite uint64
	// PIDs is the number of tasks (pids.current); 0 without the pids controller.
	PIDs uint64
	// NetRx and NetTx are the bytes received and sent on all interfaces but lo of the process's network
	// namespace (/proc/<pid>/net/dev): 0 for network mode none, the host's traffic for network mode host.
	NetRx, NetTx uint64
	// Version is the cgroup version read: 1 or 2.
	Version int
}

// Options locate the proc and cgroup file systems; empty fields mean the defaults, tests point them at
// fixture trees.
type Options struct {
	// ProcRoot is where procfs is mounted (default /proc): <ProcRoot>/self/mountinfo lists the cgroup
	// mounts, <ProcRoot>/<pid>/cgroup and <ProcRoot>/<pid>/net/dev describe a container, and
	// <ProcRoot>/meminfo gives the host's memory.
	ProcRoot string
	// CgroupRoot is where the cgroup hierarchies are mounted (default /sys/fs/cgroup). Mount points of
	// mountinfo under the default root are moved under it.
	CgroupRoot string
}

// Reader reads containers' cgroup counters. It is safe for concurrent use: the resolved paths are cached
// per pid behind a lock and every Read takes its buffer from a pool, so a sample allocates nothing.
type Reader struct {
	procRoot string
	cgRoot   string

	layoutOnce sync.Once
	layout     *layout

	hostMemOnce sync.Once
	hostMem     uint64

	mu      sync.RWMutex
	targets map[int]*target

	bufs sync.Pool // *buffer
}

// buffer is one Read's scratch space; it grows when a file does not fit and goes back to the pool.
type buffer struct{ data []byte }

// NewReader returns a Reader for the file systems in o. It touches no file until first used.
func NewReader(o Options) *Reader {
	if o.ProcRoot == "" {
		o.ProcRoot = "/proc"
	}
	if o.CgroupRoot == "" {
		o.CgroupRoot = defaultCgroupRoot
	}
	r := &Reader{procRoot: filepath.Clean(o.ProcRoot), cgRoot: filepath.Clean(o.CgroupRoot), targets: map[int]*target{}}
	r.bufs.New = func() any { return &buffer{data: make([]byte, 8<<10)} }
	return r
}

func (r *Reader) getLayout() *layout {
	r.layoutOnce.Do(func() { r.layout = detectLayout(r.procRoot, r.cgRoot) })
	return r.layout
}

// Version is the cgroup version containers are read with here: 1, 2, or 0 when no usable hierarchy is
// mounted.
func (r *Reader) Version() int { return r.getLayout().version() }

// Available reports whether cgroup files can be read here: nil when a v1 (memory and cpuacct) or v2
// (unified, with controllers) hierarchy is mounted and readable and procfs is readable. It cannot tell
// whether the pids the engine reports belong to this procfs (hemostat in a container without the host's
// pid namespace): a caller should still fall back when the first Read of a running container fails.
func (r *Reader) Available() error {
	l := r.getLayout()
	var probe string
	switch l.version() {
	case 1:
		probe = filepath.Join(l.v1["memory"].dir, "memory.usage_in_bytes")
	case 2:
		probe = filepath.Join(l.v2.dir, "cgroup.controllers")
	default:
		return fmt.Errorf("cgroup under %s: %w", r.cgRoot, ErrNoCgroup)
	}
	if _, err := os.ReadFile(probe); err != nil {
		return fmt.Errorf("cgroup v%d: %w", l.version(), err)
	}
	self := filepath.Join(r.procRoot, "self", "cgroup")
	if _, err := os.ReadFile(self); err != nil {
		return fmt.Errorf("procfs: %w", err)
	}
	return nil
}

// Read fills st with the counters of the container whose init process is pid (the host pid from
// inspect). Every field of st is overwritten. The cgroup's paths are resolved on a pid's first Read and
// cached; a cached pid whose cgroup has gone is resolved again once (the pid may have been reused). A pid
// that no longer exists is an error that matches errors.Is(err, fs.ErrNotExist); errors name the file.
func (r *Reader) Read(pid int, st *Stats) error {
	if pid <= 0 {
		return fmt.Errorf("cgroup stats: invalid pid %d", pid)
	}
	l := r.getLayout()
	b := r.bufs.Get().(*buffer)
	defer r.bufs.Put(b)

	r.mu.RLock()
	t, cached := r.targets[pid]
	r.mu.RUnlock()
	for attempt := 0; ; attempt++ {
		if t == nil {
			var err error
			if t, err = r.newTarget(pid, l); err != nil {
				return err
			}
			r.mu.Lock()
			r.targets[pid] = t
			r.mu.Unlock()
		}
		err := r.read(t, b, st)
		if err == nil {
			return nil
		}
		if errors.Is(err, fs.ErrNotExist) {
			r.Forget(pid)
			if cached && attempt == 0 {
				t = nil
				continue
			}
		}
		return err
	}
}

// Forget drops the cached paths of pid; the monitor calls it when a container stops or is removed, so
// the cache holds only live containers.
func (r *Reader) Forget(pid int) {
	r.mu.Lock()
	delete(r.targets, pid)
	r.mu.Unlock()
}

// Prune drops the cached paths of every pid for which keep returns false.
func (r *Reader) Prune(keep func(pid int) bool) {
	r.mu.Lock()
	for pid := range r.targets {
		if !keep(pid) {
			delete(r.targets, pid)
		}
	}
	r.mu.Unlock()
}

// cached is the number of pids whose paths are cached.
func (r *Reader) cached() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.targets)
}

// hostMemory is the host's MemTotal in bytes, read once; 0 when unreadable.
func (r *Reader) hostMemory() uint64 {
	r.hostMemOnce.Do(func() {
		if data, err := os.ReadFile(filepath.Join(r.procRoot, "meminfo")); err == nil {
			r.hostMem, _ = parseMemTotal(data)
		}
	})
	return r.hostMem
}
