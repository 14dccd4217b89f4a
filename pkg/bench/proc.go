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

// ParseStatCPU returns utime+stime of one /proc/<pid>/stat line. The command name (field 2) is in
// parentheses and may itself contain spaces and parentheses, so fields are counted after the last ')'.
func ParseStatCPU(line []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(line, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse stat: no command name")
	}
	f := strings.Fields(string(line[i+1:]))
	// After the name: state(3) ppid(4) ... utime(14) stime(15), so utime is f[11], stime f[12].
	if len(f) < 13 {
		return 0, fmt.Errorf("parse stat: %d fields after the name, want at least 13", len(f))
	}
	u, err := strconv.ParseUint(f[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse stat utime: %w", err)
	}
	s, err := strconv.ParseUint(f[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse stat stime: %w", err)
	}
	return time.Duration(u+s) * ClockTick, nil
}

// CPUSnapshot is the cumulative CPU time of a set of processes at one moment, by pid.
type CPUSnapshot map[int]time.Duration

// DaemonCPU scans procRoot (normally /proc) for the Docker daemon's processes (IsDaemonProcess) and returns
// their cumulative CPU times. Processes that vanish during the scan are skipped.
func DaemonCPU(procRoot string) (CPUSnapshot, error) {
	dirs, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", procRoot, err)
	}
	out := CPUSnapshot{}
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || !d.IsDir() {
			continue
		}
		comm, err := os.ReadFile(filepath.Join(procRoot, d.Name(), "comm"))
		if err != nil || !IsDaemonProcess(strings.TrimSpace(string(comm))) {
			continue
		}
		stat, err := os.ReadFile(filepath.Join(procRoot, d.Name(), "stat"))
		if err != nil {
			continue
		}
		cpu, err := ParseStatCPU(stat)
		if err != nil {
			return nil, fmt.Errorf("pid %d: %w", pid, err)
		}
		out[pid] = cpu
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("scan %s: no dockerd, containerd or containerd-shim process", procRoot)
	}
	return out, nil
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
