package bench

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	tests := []struct {
		name string
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one value", ms(7), 95, 7 * time.Millisecond},
		{"median of odd count", ms(5, 1, 3), 50, 3 * time.Millisecond},
		{"median of even count is the lower middle", ms(4, 1, 3, 2), 50, 2 * time.Millisecond},
		{"p95 of 20 values is the 19th", ms(20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1), 95, 19 * time.Millisecond},
		{"p100 is the maximum", ms(3, 9, 1), 100, 9 * time.Millisecond},
		{"p0 is the minimum", ms(3, 9, 1), 0, 1 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]time.Duration(nil), tt.in...)
			if got := Percentile(tt.in, tt.p); got != tt.want {
				t.Errorf("Percentile(%v, %v) = %v, want %v", tt.in, tt.p, got, tt.want)
			}
			if diff := cmp.Diff(in, tt.in); diff != "" {
				t.Errorf("input modified (-before +after):\n%s", diff)
			}
		})
	}
	if got, want := Mean([]time.Duration{time.Second, 3 * time.Second}), 2*time.Second; got != want {
		t.Errorf("Mean = %v, want %v", got, want)
	}
}

func TestFormatDuration(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{0, "-"},
		{-time.Second, "-"},
		{812 * time.Microsecond, "812µs"},
		{1500 * time.Nanosecond, "1.50µs"},
		{4213 * time.Microsecond, "4.21ms"},
		{45678 * time.Microsecond, "45.7ms"},
		{1984 * time.Millisecond, "1.98s"},
		{20 * time.Second, "20.0s"},
		{200 * time.Second, "3m20s"},
		{2*time.Minute + 59700*time.Millisecond, "3m00s"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := FormatDuration(tt.in); got != tt.want {
				t.Errorf("FormatDuration(%v) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestFormatRatio(t *testing.T) {
	tests := []struct {
		base, x float64
		want    string
	}{
		{200, 0.004, "×50000"},
		{2, 1, "×2.00"},
		{1, 3, "×0.333"},
		{24100, 1, "×24100"},
		{0, 1, "-"},
		{1, 0, "-"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := FormatRatio(tt.base, tt.x); got != tt.want {
				t.Errorf("FormatRatio(%v, %v) = %q, want %q", tt.base, tt.x, got, tt.want)
			}
		})
	}
}

func TestParseStat(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		want    Stat
		wantErr bool
	}{
		{"plain", "42 (dockerd) S 1 42 42 0 -1 4194560 1 0 0 0 150 50 0 0 20 0", Stat{PPID: 1, CPU: 2 * time.Second}, false},
		{"name with spaces and parens", "7 (a b) c)) R 3 7 7 0 -1 0 0 0 0 0 3 4 0 0", Stat{PPID: 3, CPU: 70 * time.Millisecond}, false},
		{"children", "9 (redis-server) S 1 9 9 0 -1 0 0 0 0 0 10 20 300 100 20 0", Stat{PPID: 1, CPU: 300 * time.Millisecond, ChildCPU: 4 * time.Second}, false},
		{"short", "7 (x) R 1 2", Stat{}, true},
		{"no cutime and cstime", "7 (x) R 1 7 7 0 -1 0 0 0 0 0 3 4", Stat{}, true},
		{"no name", "7 x R", Stat{}, true},
		{"bad number", "7 (x) R 1 7 7 0 -1 0 0 0 0 0 zz 4 0 0", Stat{}, true},
		{"bad child number", "7 (x) R 1 7 7 0 -1 0 0 0 0 0 3 4 0 zz", Stat{}, true},
		{"bad ppid", "7 (x) R p 7 7 0 -1 0 0 0 0 0 1 4 0 0", Stat{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStat([]byte(tt.line))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDaemonPIDs(t *testing.T) {
	// testdata/proc: 100 dockerd, 200 containerd-shim, 300 bash (child of 200: a container's init),
	// 400 containerd, 500 containerd-shim-runc-v2 (no container of ours).
	tests := []struct {
		name       string
		containers []int
		want       []int
	}{
		{"every shim", nil, []int{100, 200, 400, 500}},
		{"shims of our containers only", []int{300}, []int{100, 200, 400}},
		{"no container of ours running", []int{}, []int{100, 400}},
		{"vanished container", []int{999}, []int{100, 400}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DaemonPIDs("testdata/proc", tt.containers)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("DaemonPIDs (-want +got):\n%s", diff)
			}
		})
	}
	if got := ProcessCPU("testdata/proc", []int{100, 999}); !cmp.Equal(got, CPUSnapshot{100: 2 * time.Second}) {
		t.Errorf("ProcessCPU = %v, want only pid 100 with 2s", got)
	}
}

func TestIsDaemonProcess(t *testing.T) {
	for comm, want := range map[string]bool{
		"dockerd": true, "containerd": true, "containerd-shim": true, "containerd-shim-runc-v2": true,
		"docker": false, "docker-proxy": false, "runc": false, "bash": false,
	} {
		if got := IsDaemonProcess(comm); got != want {
			t.Errorf("IsDaemonProcess(%q) = %v, want %v", comm, got, want)
		}
	}
}

func TestDaemonCPU(t *testing.T) {
	got, err := DaemonCPU("testdata/proc")
	if err != nil {
		t.Fatal(err)
	}
	want := CPUSnapshot{100: 2 * time.Second, 200: 100 * time.Millisecond, 400: 400 * time.Millisecond, 500: 10 * time.Millisecond}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("DaemonCPU (-want +got):\n%s", diff)
	}
	if _, err := DaemonCPU(t.TempDir()); err == nil {
		t.Error("DaemonCPU of an empty procfs: no error")
	}
}

func TestSnapshotSince(t *testing.T) {
	before := CPUSnapshot{1: time.Second, 2: 500 * time.Millisecond, 3: time.Second}
	after := CPUSnapshot{1: 1500 * time.Millisecond, 2: 500 * time.Millisecond, 4: 30 * time.Millisecond}
	// pid 1 grew 500ms, pid 2 not at all, pid 3 exited (lost), pid 4 is new (counted whole).
	if got, want := after.Since(before), 530*time.Millisecond; got != want {
		t.Errorf("Since = %v, want %v", got, want)
	}
}

func TestSelfCPUGrows(t *testing.T) {
	a, err := SelfCPU()
	if err != nil {
		t.Skip(err)
	}
	x := 0
	for b := a; b-a < 5*time.Millisecond; b, _ = SelfCPU() {
		x++
	}
	if x == 0 {
		t.Error("SelfCPU never grew")
	}
}

func TestReadMachine(t *testing.T) {
	got := ReadMachine("testdata/proc")
	want := Machine{CPUModel: "Test CPU @ 2.0GHz", CPUs: 2, Kernel: "6.1.0-test", Load: "0.50 1.25 2.00"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ReadMachine (-want +got):\n%s", diff)
	}
	if got := ReadMachine(t.TempDir()); got != (Machine{}) {
		t.Errorf("ReadMachine of an empty procfs = %+v, want zero", got)
	}
}

func TestReportMarkdown(t *testing.T) {
	r := Report{
		Title:   "Bench",
		Machine: []string{"CPU: x"},
		Sections: []Section{
			{Title: "Sampling", Table: &Table{Header: []string{"N", "sampler"}, Rows: [][]string{{"10", "a|b"}, {"100"}}},
				Notes: []string{"note"}},
			{Title: "Later", Notes: []string{"TODO"}},
		},
	}
	want := strings.Join([]string{
		"## Bench",
		"",
		"- CPU: x",
		"",
		"### Sampling",
		"",
		"| N   | sampler |",
		"|-----|---------|",
		"| 10  | a\\|b    |",
		"| 100 |         |",
		"",
		"- note",
		"",
		"### Later",
		"",
		"- TODO",
		"",
	}, "\n")
	if diff := cmp.Diff(want, r.Markdown()); diff != "" {
		t.Errorf("Markdown (-want +got):\n%s", diff)
	}
}

func TestResidentBytes(t *testing.T) {
	tests := []struct {
		pid     int
		want    uint64
		wantErr bool
	}{
		{100, 23456 << 10, false},
		{200, 0, true}, // not in kB
		{300, 0, true}, // no VmRSS
		{999, 0, true}, // no such process
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.pid), func(t *testing.T) {
			got, err := ResidentBytes("testdata/proc", tt.pid)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
	if _, err := ResidentBytes("/proc", os.Getpid()); err != nil && runtime.GOOS == "linux" {
		t.Errorf("own VmRSS: %v", err)
	}
	anon, err1 := StatusBytes("testdata/proc", 100, "RssAnon")
	file, err2 := StatusBytes("testdata/proc", 100, "RssFile")
	if err1 != nil || err2 != nil || anon != 5456<<10 || file != 18000<<10 {
		t.Errorf("RssAnon %d (%v), RssFile %d (%v); want 5456 kB and 18000 kB", anon, err1, file, err2)
	}
}
