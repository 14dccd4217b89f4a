package capacity_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hemostat/hemostat/pkg/capacity"
)

const infoBefore = "# CPU\r\nused_cpu_sys:1.500000\r\nused_cpu_user:0.250000\r\n\r\n# Memory\r\nused_memory:1048576\r\n" +
	"# Commandstats\r\ncmdstat_hset:calls=10,usec=60,usec_per_call=6.00,rejected_calls=0,failed_calls=0\r\n" +
	"cmdstat_hkeys:calls=2,usec=500,usec_per_call=250.00,rejected_calls=0,failed_calls=0\r\n"

const infoAfter = "# CPU\r\nused_cpu_sys:2.000000\r\nused_cpu_user:1.000000\r\n" +
	"# Commandstats\r\ncmdstat_hset:calls=30,usec=180,usec_per_call=6.00\r\n" +
	"cmdstat_hkeys:calls=2,usec=500,usec_per_call=250.00\r\ncmdstat_xack:calls=4,usec=16,usec_per_call=4.00\r\n"

func TestInfo(t *testing.T) {
	before, after := capacity.ParseInfo(infoBefore), capacity.ParseInfo(infoAfter)
	c0, err := before.CPU()
	if err != nil || c0 != 1750*time.Millisecond {
		t.Errorf("cpu before = %s %v, want 1.75s", c0, err)
	}
	if c1, _ := after.CPU(); c1-c0 != 1250*time.Millisecond {
		t.Errorf("cpu delta = %s, want 1.25s", c1-c0)
	}
	if m, err := before.Int("used_memory"); err != nil || m != 1<<20 {
		t.Errorf("used_memory = %d %v", m, err)
	}
	if _, err := after.Int("used_memory"); err == nil {
		t.Error("a missing field read as a number")
	}
	if _, err := capacity.ParseInfo("used_cpu_sys:x\r\n").CPU(); err == nil {
		t.Error("a CPU field that is not a number was accepted")
	}
	// The commands called in between, the most server time first; hkeys was not called.
	want := []capacity.CommandStat{{Command: "hset", Calls: 20, Usec: 120}, {Command: "xack", Calls: 4, Usec: 16}}
	if diff := cmp.Diff(want, capacity.CommandDelta(before.Commands(), after.Commands())); diff != "" {
		t.Errorf("delta (-want +got):\n%s", diff)
	}
}
