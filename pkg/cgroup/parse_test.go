package cgroup

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseUint(t *testing.T) {
	tests := []struct {
		in     string
		want   uint64
		wantOK bool
	}{
		{"0\n", 0, true},
		{" 987654321 \n", 987654321, true},
		{"18446744073709551615", 1<<64 - 1, true},
		{"18446744073709551616", 0, false},
		{"max\n", 0, false},
		{"", 0, false},
		{"12a", 0, false},
		{"-1", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := parseUint([]byte(tt.in))
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("parseUint(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestKeyValue(t *testing.T) {
	data := []byte("inactive_file 10\ntotal_inactive_file 20\noom_kill 3\noom_group_kill 9\nusage_usec\t77\n")
	tests := []struct {
		key    string
		want   uint64
		wantOK bool
	}{
		{"inactive_file", 10, true},
		{"total_inactive_file", 20, true},
		{"oom_kill", 3, true},
		{"oom_group_kill", 9, true},
		{"usage_usec", 77, true},
		{"oom", 0, false},
		{"file", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			got, ok := keyValue(data, tt.key)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("keyValue(%q) = %d, %v; want %d, %v", tt.key, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestParseBlkioV1(t *testing.T) {
	type result struct {
		Read, Write uint64
		Entries     int
	}
	tests := []struct {
		name string
		in   string
		want result
	}{
		{"kernel capitalised", "8:0 Read 100\n8:0 Write 200\n8:0 Sync 300\n8:0 Total 300\nTotal 300\n", result{100, 200, 4}},
		{"lower case as in docker's v2 translation", "8:0 read 100\n8:0 write 200\n", result{100, 200, 2}},
		{"summed over devices", "8:0 Read 1\n8:16 Read 2\n8:0 Write 3\n8:16 Write 4\n", result{3, 7, 4}},
		{"only total: no entries", "Total 0\n", result{0, 0, 0}},
		{"empty", "", result{0, 0, 0}},
		{"garbage ignored", "8:0 Read x\nnonsense\n8:0 Write 5\n", result{0, 5, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got result
			got.Read, got.Write, got.Entries = parseBlkioV1([]byte(tt.in))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseBlkioV1 mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseIOStatV2(t *testing.T) {
	in := "8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n259:0 rbytes=5 wbytes=6 rios=1 wios=1 dbytes=0 dios=0\n"
	r, w := parseIOStatV2([]byte(in))
	if r != 105 || w != 206 {
		t.Errorf("parseIOStatV2 = %d, %d; want 105, 206", r, w)
	}
	if r, w := parseIOStatV2(nil); r != 0 || w != 0 {
		t.Errorf("parseIOStatV2(empty) = %d, %d; want 0, 0", r, w)
	}
}

func TestParseNetDev(t *testing.T) {
	in := `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 9999999 10 0 0 0 0 0 0 9999999 10 0 0 0 0 0 0
  eth0:  123456     100    0    0    0     0          0         0    65432      80    0    0    0     0       0          0
veth1:10 1 0 0 0 0 0 0 20 1 0 0 0 0 0 0
`
	rx, tx := parseNetDev([]byte(in))
	if rx != 123466 || tx != 65452 {
		t.Errorf("parseNetDev = %d, %d; want 123466, 65452", rx, tx)
	}
}

func TestParseMemTotal(t *testing.T) {
	got, ok := parseMemTotal([]byte("MemTotal:        4030292 kB\nMemFree: 1 kB\n"))
	if !ok || got != 4030292*1024 {
		t.Errorf("parseMemTotal = %d, %v; want %d", got, ok, 4030292*1024)
	}
	if _, ok := parseMemTotal([]byte("MemFree: 1 kB\n")); ok {
		t.Error("parseMemTotal without MemTotal: ok, want not ok")
	}
}

func TestParseProcCgroup(t *testing.T) {
	pc := parseProcCgroup([]byte("12:pids:/docker/a\n4:cpu,cpuacct:/docker/a\n1:name=systemd:/docker/a\n0::/docker/a\n"))
	want := procCgroup{v1: map[string]string{"pids": "/docker/a", "cpu": "/docker/a", "cpuacct": "/docker/a",
		"name=systemd": "/docker/a"}, v2: "/docker/a", hasV2: true}
	if diff := cmp.Diff(want, pc, cmp.AllowUnexported(procCgroup{})); diff != "" {
		t.Errorf("parseProcCgroup mismatch (-want +got):\n%s", diff)
	}
}

func TestUnescapeMount(t *testing.T) {
	if got, want := unescapeMount(`/mnt/my\040cgroups\134x`), `/mnt/my cgroups\x`; got != want {
		t.Errorf("unescapeMount = %q, want %q", got, want)
	}
}
