package cgroup

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// target holds the resolved, NUL-terminated file paths of one container's counters, computed once per
// pid so a sample only opens and reads files.
type target struct {
	version  int
	cpu      []byte   // v1 cpuacct.usage (ns), v2 cpu.stat (usage_usec)
	memUsage []byte   // v1 memory.usage_in_bytes, v2 memory.current
	memLimit []byte   // v1 memory.limit_in_bytes, v2 memory.max
	memStat  []byte   // memory.stat
	oom      []byte   // v1 memory.oom_control, v2 memory.events
	blkio    [][]byte // v1: the io_service_bytes files in runc's order of preference; v2: io.stat
	pids     []byte   // pids.current, nil without the pids controller
	netDev   []byte   // /proc/<pid>/net/dev
}

// procCgroup is what /proc/<pid>/cgroup says about a process: the cgroup path per v1 controller, and the
// v2 path from the "0::" line.
type procCgroup struct {
	v1 map[string]string
	v2 string
	// hasV2 tells a "0::/" line from no line at all.
	hasV2 bool
}

// parseProcCgroup parses /proc/<pid>/cgroup: "hierarchy-id:controller[,controller]:path" lines (v1),
// and "0::path" (v2, or the empty unified hierarchy of a hybrid host).
func parseProcCgroup(data []byte) procCgroup {
	pc := procCgroup{v1: map[string]string{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			pc.v2, pc.hasV2 = parts[2], true
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			pc.v1[c] = parts[2]
		}
	}
	return pc
}

// resolve finds the directory of cgroup path cg in hierarchy m. When cg is outside what m shows (a
// cgroup namespace or a subtree mount), or resolves to a missing directory, or is the namespace root "/",
// it tries the process's own view instead: <proc>/<pid>/root/sys/fs/cgroup[/sub], which is its cgroup
// when the container has a private cgroup namespace or Docker's usual read-only cgroup mounts.
func (r *Reader) resolve(pid int, m mount, cg, sub string) (string, error) {
	var dir string
	switch {
	case cg == "/.." || strings.HasPrefix(cg, "/../"):
		// Outside our cgroup namespace: only the process's own view can show it.
	case m.root == "/":
		dir = filepath.Join(m.dir, cg)
	case cg == m.root || strings.HasPrefix(cg, m.root+"/"):
		dir = filepath.Join(m.dir, cg[len(m.root):])
	}
	if dir != "" && cg != "/" && exists(dir) {
		return dir, nil
	}
	own := filepath.Join(r.procRoot, strconv.Itoa(pid), "root", "sys", "fs", "cgroup", sub)
	if exists(own) {
		return own, nil
	}
	if dir != "" && exists(dir) {
		return dir, nil
	}
	if dir == "" {
		return "", fmt.Errorf("cgroup %s of pid %d is outside the hierarchy mounted at %s (root %s)", cg, pid, m.dir, m.root)
	}
	return "", fmt.Errorf("cgroup of pid %d: %w", pid, &os.PathError{Op: "stat", Path: dir, Err: os.ErrNotExist})
}

// optional resolves the directory of a v1 controller a target can do without (blkio, pids): false when
// it is not mounted, the process is not in it, or its directory cannot be found.
func (r *Reader) optional(pid int, l *layout, pc procCgroup, controller string) (string, bool) {
	m, ok := l.v1[controller]
	if !ok {
		return "", false
	}
	cg, ok := pc.v1[controller]
	if !ok {
		return "", false
	}
	dir, err := r.resolve(pid, m, cg, controller)
	return dir, err == nil
}

// newTarget reads /proc/<pid>/cgroup and resolves the counter files of the process's cgroup.
func (r *Reader) newTarget(pid int, l *layout) (*target, error) {
	p := filepath.Join(r.procRoot, strconv.Itoa(pid), "cgroup")
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	pc := parseProcCgroup(data)
	t := &target{netDev: cpath(filepath.Join(r.procRoot, strconv.Itoa(pid), "net", "dev"))}
	_, v1mem := pc.v1["memory"]
	_, v1cpu := pc.v1["cpuacct"]
	switch {
	case l.version() == 1 && v1mem && v1cpu:
		t.version = 1
		cpu, err := r.resolve(pid, l.v1["cpuacct"], pc.v1["cpuacct"], "cpuacct")
		if err != nil {
			return nil, err
		}
		mem, err := r.resolve(pid, l.v1["memory"], pc.v1["memory"], "memory")
		if err != nil {
			return nil, err
		}
		t.cpu = cpath(filepath.Join(cpu, "cpuacct.usage"))
		t.memUsage = cpath(filepath.Join(mem, "memory.usage_in_bytes"))
		t.memLimit = cpath(filepath.Join(mem, "memory.limit_in_bytes"))
		t.memStat = cpath(filepath.Join(mem, "memory.stat"))
		t.oom = cpath(filepath.Join(mem, "memory.oom_control"))
		if dir, ok := r.optional(pid, l, pc, "blkio"); ok {
			// runc's order (what Docker's stats API reports): BFQ, then CFQ, then the throttle policy,
			// which accounts all I/O; the first file with device entries wins. Files the kernel does not
			// have are left out once here rather than failing every sample.
			for _, name := range []string{"blkio.bfq.io_service_bytes_recursive",
				"blkio.io_service_bytes_recursive", "blkio.throttle.io_service_bytes_recursive",
				"blkio.throttle.io_service_bytes"} {
				if f := filepath.Join(dir, name); exists(f) {
					t.blkio = append(t.blkio, cpath(f))
				}
			}
		}
		if dir, ok := r.optional(pid, l, pc, "pids"); ok {
			t.pids = cpath(filepath.Join(dir, "pids.current"))
		}
	case l.version() == 2 && pc.hasV2:
		t.version = 2
		dir, err := r.resolve(pid, *l.v2, pc.v2, "")
		if err != nil {
			return nil, err
		}
		t.cpu = cpath(filepath.Join(dir, "cpu.stat"))
		t.memUsage = cpath(filepath.Join(dir, "memory.current"))
		t.memLimit = cpath(filepath.Join(dir, "memory.max"))
		t.memStat = cpath(filepath.Join(dir, "memory.stat"))
		t.oom = cpath(filepath.Join(dir, "memory.events"))
		t.blkio = [][]byte{cpath(filepath.Join(dir, "io.stat"))}
		t.pids = cpath(filepath.Join(dir, "pids.current"))
	default:
		return nil, fmt.Errorf("cgroup of pid %d: %w", pid, ErrNoCgroup)
	}
	return t, nil
}

// ErrNoCgroup means the process's cgroup could not be matched with a mounted hierarchy that has the
// needed controllers: the reader cannot serve it, the caller should use another sampler.
var ErrNoCgroup = errors.New("no readable cgroup hierarchy")
