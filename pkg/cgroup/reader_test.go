package cgroup

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const (
	idA = "aaaa1111aaaa1111aaaa1111aaaa1111aaaa1111aaaa1111aaaa1111aaaa1111"
	idB = "bbbb2222bbbb2222bbbb2222bbbb2222bbbb2222bbbb2222bbbb2222bbbb2222"
	// hostMem is MemTotal of the fixtures' meminfo.
	hostMem = 4030292 * 1024
)

// fixtureReader reads the fixture tree testdata/<tree> (or a copy of it at dir).
func fixtureReader(dir string) *Reader {
	return NewReader(Options{ProcRoot: filepath.Join(dir, "proc"), CgroupRoot: filepath.Join(dir, "cgroup")})
}

// copyTree copies testdata/<tree> to a temporary directory the test may change.
func copyTree(t *testing.T, tree string) string {
	t.Helper()
	dst := t.TempDir()
	src := filepath.Join("testdata", tree)
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
	return dst
}

func TestReadFixtures(t *testing.T) {
	tests := []struct {
		name string
		tree string
		pid  int
		want Stats
	}{
		{
			name: "v1 limited, cpu and cpuacct joined, throttle blkio after empty bfq",
			tree: "v1", pid: 1234,
			want: Stats{CPUUsageNS: 987654321, MemoryUsage: 52428800, MemoryWorkingSet: 52428800 - 12582912,
				MemoryLimit: 64 << 20, OOMEvents: 2, BlkioRead: 4096000 + 4000, BlkioWrite: 1024000 + 6000,
				PIDs: 7, NetRx: 123456 + 44, NetTx: 65432 + 66, Version: 1},
		},
		{
			name: "v1 unlimited, old kernel without oom_kill, no pids cgroup, only non-recursive blkio",
			tree: "v1", pid: 2345,
			want: Stats{CPUUsageNS: 5555, MemoryUsage: 3000000, MemoryWorkingSet: 0, MemoryLimit: hostMem,
				MemoryUnlimited: true, BlkioRead: 300, BlkioWrite: 700, Version: 1},
		},
		{
			name: "v2 limited",
			tree: "v2", pid: 4321,
			want: Stats{CPUUsageNS: 1500000 * 1000, MemoryUsage: 41943040, MemoryWorkingSet: 41943040 - 8388608,
				MemoryLimit: 64 << 20, OOMEvents: 3, BlkioRead: 1048586, BlkioWrite: 2097172, PIDs: 4,
				NetRx: 123456 + 44, NetTx: 65432 + 66, Version: 2},
		},
		{
			name: "v2 unlimited, no io.stat or pids.current, inactive file above usage",
			tree: "v2", pid: 5432,
			want: Stats{CPUUsageNS: 7000, MemoryUsage: 1000, MemoryWorkingSet: 0, MemoryLimit: hostMem,
				MemoryUnlimited: true, Version: 2},
		},
		{
			name: "v2 private cgroup namespace: path / read through the process's root",
			tree: "v2", pid: 6543,
			want: Stats{CPUUsageNS: 42000, MemoryUsage: 2048, MemoryWorkingSet: 1024, MemoryLimit: 1 << 20,
				OOMEvents: 1, BlkioRead: 5, BlkioWrite: 6, PIDs: 1, Version: 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := fixtureReader(filepath.Join("testdata", tt.tree))
			var got Stats
			if err := r.Read(tt.pid, &got); err != nil {
				t.Fatalf("Read(%d): %v", tt.pid, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Read(%d) mismatch (-want +got):\n%s", tt.pid, diff)
			}
			// A second read comes from the cached paths and gives the same figures.
			var again Stats
			if err := r.Read(tt.pid, &again); err != nil {
				t.Fatalf("second Read(%d): %v", tt.pid, err)
			}
			if diff := cmp.Diff(tt.want, again); diff != "" {
				t.Errorf("second Read(%d) mismatch (-want +got):\n%s", tt.pid, diff)
			}
		})
	}
}

func TestVersionAndAvailable(t *testing.T) {
	tests := []struct {
		tree string
		want int
	}{
		{"v1", 1},
		{"v2", 2},
	}
	for _, tt := range tests {
		t.Run(tt.tree, func(t *testing.T) {
			r := fixtureReader(filepath.Join("testdata", tt.tree))
			if got := r.Version(); got != tt.want {
				t.Errorf("Version() = %d, want %d", got, tt.want)
			}
			if err := r.Available(); err != nil {
				t.Errorf("Available() = %v, want nil", err)
			}
		})
	}
	t.Run("nothing mounted", func(t *testing.T) {
		dir := t.TempDir()
		r := NewReader(Options{ProcRoot: filepath.Join(dir, "proc"), CgroupRoot: filepath.Join(dir, "cgroup")})
		if got := r.Version(); got != 0 {
			t.Errorf("Version() = %d, want 0", got)
		}
		if err := r.Available(); !errors.Is(err, ErrNoCgroup) {
			t.Errorf("Available() = %v, want ErrNoCgroup", err)
		}
		var st Stats
		if err := r.Read(1, &st); err == nil {
			t.Error("Read without cgroups: nil error")
		}
	})
}

// Without mountinfo the reader assumes the standard layout under CgroupRoot.
func TestStandardLayoutFallback(t *testing.T) {
	tests := []struct {
		tree    string
		pid     int
		wantCPU uint64
	}{
		{"v1", 1234, 987654321},
		{"v2", 4321, 1500000 * 1000},
	}
	for _, tt := range tests {
		t.Run(tt.tree, func(t *testing.T) {
			dir := copyTree(t, tt.tree)
			if err := os.Remove(filepath.Join(dir, "proc", "self", "mountinfo")); err != nil {
				t.Fatal(err)
			}
			r := fixtureReader(dir)
			var st Stats
			if err := r.Read(tt.pid, &st); err != nil {
				t.Fatalf("Read: %v", err)
			}
			if st.CPUUsageNS != tt.wantCPU {
				t.Errorf("CPUUsageNS = %d, want %d", st.CPUUsageNS, tt.wantCPU)
			}
		})
	}
}

func TestReadErrors(t *testing.T) {
	cgA := filepath.Join("cgroup", "memory", "docker", idA)
	tests := []struct {
		name     string
		tree     string
		pid      int
		change   func(t *testing.T, dir string)
		wantFile string // the error names this file
		notExist bool   // errors.Is(err, fs.ErrNotExist)
	}{
		{
			name: "unknown pid", tree: "v1", pid: 99999,
			wantFile: "99999/cgroup", notExist: true,
		},
		{
			name: "required memory file missing", tree: "v1", pid: 1234,
			change:   func(t *testing.T, dir string) { remove(t, filepath.Join(dir, cgA, "memory.usage_in_bytes")) },
			wantFile: "memory.usage_in_bytes", notExist: true,
		},
		{
			name: "malformed cpu usage", tree: "v1", pid: 1234,
			change: func(t *testing.T, dir string) {
				write(t, filepath.Join(dir, "cgroup", "cpu,cpuacct", "docker", idA, "cpuacct.usage"), "lots\n")
			},
			wantFile: "cpuacct.usage",
		},
		{
			name: "v2 cpu.stat without usage_usec", tree: "v2", pid: 4321,
			change: func(t *testing.T, dir string) {
				write(t, filepath.Join(dir, "cgroup", "system.slice", "docker-"+idA+".scope", "cpu.stat"), "user_usec 1\n")
			},
			wantFile: "cpu.stat",
		},
		{
			name: "cgroup directory gone", tree: "v2", pid: 4321,
			change: func(t *testing.T, dir string) {
				if err := os.RemoveAll(filepath.Join(dir, "cgroup", "system.slice", "docker-"+idA+".scope")); err != nil {
					t.Fatal(err)
				}
			},
			wantFile: "docker-" + idA + ".scope", notExist: true,
		},
		{
			name: "process gone, cgroup still there", tree: "v1", pid: 1234,
			change:   func(t *testing.T, dir string) { remove(t, filepath.Join(dir, "proc", "1234", "net", "dev")) },
			wantFile: "1234/net/dev", notExist: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyTree(t, tt.tree)
			if tt.change != nil {
				tt.change(t, dir)
			}
			var st Stats
			err := fixtureReader(dir).Read(tt.pid, &st)
			if err == nil {
				t.Fatal("Read: nil error")
			}
			if !strings.Contains(err.Error(), tt.wantFile) {
				t.Errorf("error %q does not name %s", err, tt.wantFile)
			}
			if got := errors.Is(err, fs.ErrNotExist); got != tt.notExist {
				t.Errorf("errors.Is(%q, fs.ErrNotExist) = %v, want %v", err, got, tt.notExist)
			}
		})
	}
}

// A cached pid whose container is gone is resolved again once: a vanished pid is ErrNotExist and
// leaves the cache, a reused pid reads its new cgroup.
func TestCachedPidVanishesOrIsReused(t *testing.T) {
	t.Run("vanished", func(t *testing.T) {
		dir := copyTree(t, "v1")
		r := fixtureReader(dir)
		var st Stats
		if err := r.Read(1234, &st); err != nil {
			t.Fatal(err)
		}
		if got := r.cached(); got != 1 {
			t.Fatalf("cached pids = %d, want 1", got)
		}
		for _, p := range []string{filepath.Join("proc", "1234"), filepath.Join("cgroup", "memory", "docker", idA),
			filepath.Join("cgroup", "cpu,cpuacct", "docker", idA)} {
			if err := os.RemoveAll(filepath.Join(dir, p)); err != nil {
				t.Fatal(err)
			}
		}
		err := r.Read(1234, &st)
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Read of vanished pid = %v, want fs.ErrNotExist", err)
		}
		if got := r.cached(); got != 0 {
			t.Errorf("cached pids after vanishing = %d, want 0", got)
		}
	})
	t.Run("reused", func(t *testing.T) {
		dir := copyTree(t, "v1")
		r := fixtureReader(dir)
		var st Stats
		if err := r.Read(1234, &st); err != nil {
			t.Fatal(err)
		}
		// Container A is removed; pid 1234 now belongs to container B.
		for _, p := range []string{filepath.Join("cgroup", "memory", "docker", idA), filepath.Join("cgroup", "cpu,cpuacct", "docker", idA)} {
			if err := os.RemoveAll(filepath.Join(dir, p)); err != nil {
				t.Fatal(err)
			}
		}
		data, err := os.ReadFile(filepath.Join(dir, "proc", "2345", "cgroup"))
		if err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(dir, "proc", "1234", "cgroup"), string(data))
		if err := r.Read(1234, &st); err != nil {
			t.Fatalf("Read of reused pid: %v", err)
		}
		if st.CPUUsageNS != 5555 {
			t.Errorf("CPUUsageNS = %d, want 5555 (container B)", st.CPUUsageNS)
		}
	})
}

func TestForgetAndPrune(t *testing.T) {
	r := fixtureReader(filepath.Join("testdata", "v1"))
	var st Stats
	for _, pid := range []int{1234, 2345} {
		if err := r.Read(pid, &st); err != nil {
			t.Fatal(err)
		}
	}
	r.Forget(1234)
	if got := r.cached(); got != 1 {
		t.Errorf("after Forget: cached = %d, want 1", got)
	}
	r.Prune(func(pid int) bool { return pid != 2345 })
	if got := r.cached(); got != 0 {
		t.Errorf("after Prune: cached = %d, want 0", got)
	}
}

// Files larger than the pooled buffer are read whole.
func TestReadLargeFile(t *testing.T) {
	dir := copyTree(t, "v1")
	var b strings.Builder
	b.WriteString("Inter-| header\n face | header\n")
	for range 400 {
		b.WriteString("  vethxx:       1       0    0    0    0     0          0         0        2       0    0    0    0     0       0          0\n")
	}
	write(t, filepath.Join(dir, "proc", "1234", "net", "dev"), b.String())
	var st Stats
	if err := fixtureReader(dir).Read(1234, &st); err != nil {
		t.Fatal(err)
	}
	if st.NetRx != 400 || st.NetTx != 800 {
		t.Errorf("net = %d/%d, want 400/800", st.NetRx, st.NetTx)
	}
}

func TestReadConcurrent(t *testing.T) {
	r := fixtureReader(filepath.Join("testdata", "v2"))
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			var st Stats
			for range 50 {
				if err := r.Read(4321, &st); err != nil {
					errs <- err
					return
				}
				if st.CPUUsageNS != 1500000*1000 {
					errs <- errors.New("wrong cpu usage")
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestReadAllocations(t *testing.T) {
	r := fixtureReader(filepath.Join("testdata", "v1"))
	var st Stats
	if err := r.Read(1234, &st); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if err := r.Read(1234, &st); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0 {
		t.Errorf("Read allocates %.1f times per call, want 0", allocs)
	}
}

func remove(t *testing.T, p string) {
	t.Helper()
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"mnt/docker/abc", "proc/7/root/sys/fs/cgroup/memory", "mnt/sys/other"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mnt := filepath.Join(dir, "mnt")
	own := filepath.Join(dir, "proc/7/root/sys/fs/cgroup/memory")
	r := NewReader(Options{ProcRoot: filepath.Join(dir, "proc"), CgroupRoot: dir})
	tests := []struct {
		name    string
		m       mount
		cg      string
		want    string
		wantErr bool
	}{
		{"full hierarchy", mount{dir: mnt, root: "/"}, "/docker/abc", filepath.Join(mnt, "docker/abc"), false},
		{"subtree mount", mount{dir: filepath.Join(mnt, "docker"), root: "/docker"}, "/docker/abc", filepath.Join(mnt, "docker/abc"), false},
		{"outside the subtree mount: own view", mount{dir: filepath.Join(mnt, "docker"), root: "/docker"}, "/kubepods/x", own, false},
		{"outside the cgroup namespace: own view", mount{dir: filepath.Join(mnt, "docker"), root: "/"}, "/../sys/other", own, false},
		{"namespace root: own view", mount{dir: mnt, root: "/"}, "/", own, false},
		{"missing: own view", mount{dir: mnt, root: "/"}, "/docker/gone", own, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.resolve(7, tt.m, tt.cg, "memory")
			if (err != nil) != tt.wantErr {
				t.Fatalf("resolve error = %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("resolve = %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("no own view", func(t *testing.T) {
		for _, cg := range []string{"/docker/gone", "/../sys/other"} {
			if _, err := r.resolve(8, mount{dir: mnt, root: "/"}, cg, "memory"); err == nil {
				t.Errorf("resolve(%q) without a process view: nil error", cg)
			}
		}
		_, err := r.resolve(8, mount{dir: mnt, root: "/"}, "/docker/gone", "memory")
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("resolve of a removed cgroup = %v, want fs.ErrNotExist", err)
		}
	})
}
