package cgroup_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hemostat/hemostat/pkg/cgroup"
	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/testenv"
)

// eventually polls cond until it holds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, cond func() bool) bool {
	return testenv.Poll(timeout, cond)
}

// requireCgroup returns a reader of this machine's cgroups, skipping where they are not readable.
func requireCgroup(t testing.TB) *cgroup.Reader {
	t.Helper()
	r := cgroup.NewReader(cgroup.Options{})
	if err := r.Available(); err != nil {
		if testenv.InCI() {
			t.Fatalf("cgroup reader unavailable: %v", err)
		}
		t.Skipf("cgroup reader unavailable: %v", err)
	}
	return r
}

func containerPID(t testing.TB, c *docker.Client, id string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pid, err := c.PID(ctx, id)
	if err != nil {
		t.Fatalf("pid: %v", err)
	}
	return pid
}

// hostMemTotal reads MemTotal from /proc/meminfo, in bytes.
func hostMemTotal(t *testing.T) uint64 {
	t.Helper()
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(data)) {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
			kb, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb * 1024
		}
	}
	t.Fatal("no MemTotal in /proc/meminfo")
	return 0
}

func TestReadRealContainer(t *testing.T) {
	c := testenv.RequireDocker(t)
	r := requireCgroup(t)

	id, _ := testenv.RunContainer(t, c, docker.CreateOptions{Cmd: []string{"-cpu", "1"}, MemoryBytes: 64 << 20})
	pid := containerPID(t, c, id)

	var first cgroup.Stats
	if err := r.Read(pid, &first); err != nil {
		t.Fatalf("Read: %v", err)
	}
	if first.Version != r.Version() {
		t.Errorf("Version = %d, want the reader's %d", first.Version, r.Version())
	}
	if first.MemoryLimit != 64<<20 || first.MemoryUnlimited {
		t.Errorf("MemoryLimit = %d (unlimited %v), want %d", first.MemoryLimit, first.MemoryUnlimited, 64<<20)
	}
	if first.MemoryUsage == 0 {
		t.Error("MemoryUsage = 0, want > 0")
	}
	if first.MemoryWorkingSet > first.MemoryUsage {
		t.Errorf("MemoryWorkingSet %d > MemoryUsage %d", first.MemoryWorkingSet, first.MemoryUsage)
	}
	if first.PIDs == 0 {
		t.Error("PIDs = 0, want the spinning process's threads")
	}
	if first.NetRx != 0 || first.NetTx != 0 {
		t.Errorf("network mode none: NetRx/NetTx = %d/%d, want 0/0", first.NetRx, first.NetTx)
	}
	var next cgroup.Stats
	grew := eventually(t, 5*time.Second, func() bool {
		if err := r.Read(pid, &next); err != nil {
			t.Fatalf("Read: %v", err)
		}
		return next.CPUUsageNS > first.CPUUsageNS
	})
	if !grew {
		t.Errorf("CPUUsageNS did not grow: %d then %d", first.CPUUsageNS, next.CPUUsageNS)
	}

	// Once the container has stopped its pid reads as not existing.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.KillContainer(ctx, id, "KILL"); err != nil {
		t.Fatal(err)
	}
	var st cgroup.Stats
	if !eventually(t, 5*time.Second, func() bool { return errors.Is(r.Read(pid, &st), fs.ErrNotExist) }) {
		t.Errorf("Read after kill = %v, want fs.ErrNotExist", r.Read(pid, &st))
	}
}

func TestReadRealContainerUnlimited(t *testing.T) {
	c := testenv.RequireDocker(t)
	r := requireCgroup(t)
	id, _ := testenv.RunContainer(t, c, docker.CreateOptions{})
	pid := containerPID(t, c, id)
	var st cgroup.Stats
	if err := r.Read(pid, &st); err != nil {
		t.Fatalf("Read: %v", err)
	}
	if want := hostMemTotal(t); !st.MemoryUnlimited || st.MemoryLimit != want {
		t.Errorf("MemoryLimit = %d (unlimited %v), want the host's %d (unlimited)", st.MemoryLimit, st.MemoryUnlimited, want)
	}
}
