package bench

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ClockTick is the unit of utime and stime in /proc/<pid>/stat (USER_HZ, 100 on every Linux architecture
// hemostat supports).
const ClockTick = 10 * time.Millisecond

// IsDaemonProcess reports whether a process named comm (/proc/<pid>/comm, at most 15 characters) belongs
// to the Docker daemon's side of a stats call: dockerd, containerd and every containerd-shim*.
func IsDaemonProcess(comm string) bool {
	return comm == "dockerd" || comm == "containerd" || strings.HasPrefix(comm, "containerd-shim")
}

// Stat is what the harness reads from one /proc/<pid>/stat line.
type Stat struct {
	PPID     int           // parent pid
	CPU      time.Duration // utime+stime
	ChildCPU time.Duration // cutime+cstime: the children it waited for
}

// ParseStat parses one /proc/<pid>/stat line. The command name (field 2) is in parentheses and may itself
// contain spaces and parentheses, so fields are counted after the last ')'.
func ParseStat(line []byte) (Stat, error) {
	i := bytes.LastIndexByte(line, ')')
	if i < 0 {
		return Stat{}, fmt.Errorf("parse stat: no command name")
	}
	f := strings.Fields(string(line[i+1:]))
	// After the name: state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17), so ppid is f[1],
	// utime f[11], stime f[12], cutime f[13], cstime f[14].
	if len(f) < 15 {
		return Stat{}, fmt.Errorf("parse stat: %d fields after the name, want at least 15", len(f))
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return Stat{}, fmt.Errorf("parse stat ppid: %w", err)
	}
	var ticks [4]uint64
	for i, name := range []string{"utime", "stime", "cutime", "cstime"} {
		if ticks[i], err = strconv.ParseUint(f[11+i], 10, 64); err != nil {
			return Stat{}, fmt.Errorf("parse stat %s: %w", name, err)
		}
	}
	return Stat{PPID: ppid, CPU: time.Duration(ticks[0]+ticks[1]) * ClockTick,
		ChildCPU: time.Duration(ticks[2]+ticks[3]) * ClockTick}, nil
}

// ReadStat reads and parses <procRoot>/<pid>/stat.
func ReadStat(procRoot string, pid int) (Stat, error) {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "stat"))
	if err != nil {
		return Stat{}, err
	}
	st, err := ParseStat(b)
	if err != nil {
		return Stat{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	return st, nil
}

// CPUSnapshot is the cumulative CPU time of a set of processes at one moment, by pid.
type CPUSnapshot map[int]time.Duration

// DaemonPIDs finds the Docker daemon's processes under procRoot (normally /proc): dockerd, containerd, and
// the containerd-shim* processes, either all of them (containers nil) or only the shims that are parents
// of the given container init pids, so that other containers' shims stay out of the account.
func DaemonPIDs(procRoot string, containers []int) ([]int, error) {
	dirs, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", procRoot, err)
	}
	var shims map[int]bool
	if containers != nil {
		shims = map[int]bool{}
		for _, pid := range containers {
			if st, err := ReadStat(procRoot, pid); err == nil {
				shims[st.PPID] = true
			}
		}
	}
	var out []int
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || !d.IsDir() {
			continue
		}
		comm, err := os.ReadFile(filepath.Join(procRoot, d.Name(), "comm"))
		if err != nil {
			continue
		}
		c := strings.TrimSpace(string(comm))
		if !IsDaemonProcess(c) || shims != nil && strings.HasPrefix(c, "containerd-shim") && !shims[pid] {
			continue
		}
		out = append(out, pid)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("scan %s: no dockerd, containerd or containerd-shim process", procRoot)
	}
	return out, nil
}

// ProcessCPU reads the cumulative CPU times of pids; processes that have gone are left out.
func ProcessCPU(procRoot string, pids []int) CPUSnapshot {
	out := make(CPUSnapshot, len(pids))
	for _, pid := range pids {
		if st, err := ReadStat(procRoot, pid); err == nil {
			out[pid] = st.CPU
		}
	}
	return out
}

// DaemonCPU is the cumulative CPU time of all the Docker daemon's processes (DaemonPIDs with every shim).
func DaemonCPU(procRoot string) (CPUSnapshot, error) {
	pids, err := DaemonPIDs(procRoot, nil)
	if err != nil {
		return nil, err
	}
	return ProcessCPU(procRoot, pids), nil
}

// Since is the CPU the processes of s spent after before: the growth of every pid in both snapshots plus
// the whole time of pids that appeared since (started during the interval). Pids that exited are lost.
func (s CPUSnapshot) Since(before CPUSnapshot) time.Duration {
	var d time.Duration
	for pid, cpu := range s {
		if b, ok := before[pid]; ok && cpu >= b {
			d += cpu - b
		} else if !ok {
			d += cpu
		}
	}
	return d
}

// ResidentBytes is the resident set size (VmRSS) of process pid under procRoot (normally /proc), in bytes.
func ResidentBytes(procRoot string, pid int) (uint64, error) {
	return StatusBytes(procRoot, pid, "VmRSS")
}

// StatusBytes is a size field of /proc/<pid>/status ("VmRSS", "RssAnon", "RssFile", ...), in bytes.
func StatusBytes(procRoot string, pid int, field string) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, fmt.Errorf("read status of %d: %w", pid, err)
	}
	for line := range strings.Lines(string(b)) {
		v, ok := strings.CutPrefix(line, field+":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("status of %d: %s %q: want \"<n> kB\"", pid, field, strings.TrimSpace(v))
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("status of %d: %s: %w", pid, field, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("status of %d: no %s (a kernel thread or a zombie)", pid, field)
}
