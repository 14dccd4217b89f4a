package bench_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/bench"
	"github.com/hemostat/hemostat/pkg/testenv"
)

// storeCandidate is one embedded store of `hemostat run` to measure.
type storeCandidate struct {
	name string
	bin  string
	args []string
}

// TestStoreBench measures the embedded store of an idle `hemostat run` holding 100,000 stream entries and
// 10,000 keys with TTLs: its CPU and resident memory (the process and its children) and the time a
// restart takes to serve the whole state again, for each candidate: the redis-server child, the
// in-process journal, and the miniredis snapshot it replaced (a binary built from before, when given).
// Run it with scripts/bench-store.
func TestStoreBench(t *testing.T) {
	if os.Getenv("HEMOSTAT_BENCH_STORE") != "1" {
		t.Skip("benchmark: run scripts/bench-store (or set HEMOSTAT_BENCH_STORE=1 and HEMOSTAT_BENCH_BIN)")
	}
	bin := os.Getenv("HEMOSTAT_BENCH_BIN")
	if bin == "" {
		t.Fatal("HEMOSTAT_BENCH_BIN: the hemostat binary to measure")
	}
	entries := envInt(t, "HEMOSTAT_BENCH_STORE_ENTRIES", 100_000)
	keys := envInt(t, "HEMOSTAT_BENCH_STORE_KEYS", 10_000)
	window := envDuration(t, "HEMOSTAT_BENCH_STORE_IDLE", 30*time.Second)
	cands := []storeCandidate{
		{"embedded redis-server child", bin, []string{"--embedded", "redis-server"}},
		{"embedded in-process (journal)", bin, []string{"--embedded", "in-process"}},
	}
	if base := os.Getenv("HEMOSTAT_BENCH_BASELINE_BIN"); base != "" {
		cands = append(cands, storeCandidate{"miniredis + JSON snapshot (before)", base, nil})
	}
	m := bench.ReadMachine("/proc")
	rep := bench.Report{Title: "The embedded store of an idle hemostat run"}
	rep.Machine = []string{fmt.Sprintf("CPU: %s × %d", m.CPUModel, m.CPUs), "kernel: " + m.Kernel,
		"date: " + time.Now().UTC().Format(time.RFC3339), "load average at start (1/5/15 min): " + m.Load}
	tab := &bench.Table{Header: []string{"store", "idle CPU (% of a core)", "resident (process + child)", "restore (start to whole state served)",
		"data dir", "targets: < 2 %, < 150 MB, < 2 s"}}
	for _, c := range cands {
		row := measureStore(t, c, entries, keys, window)
		t.Logf("%s", strings.Join(row, " | ")) // each row as it is measured: the baseline may take long
		tab.Rows = append(tab.Rows, row)
	}
	rep.Sections = append(rep.Sections, bench.Section{Title: "Idle cost and restore", Table: tab, Notes: []string{
		fmt.Sprintf("Each candidate: `hemostat run --dry-run` with no Redis answering, in a fresh --data-dir; %d entries of about 400 bytes "+
			"are added to one stream and %d keys with a 24 h TTL are set, then after 10 s to settle the CPU (utime+stime of hemostat "+
			"and its children, from /proc) is measured over %s (HEMOSTAT_BENCH_STORE_IDLE) and VmRSS summed; then hemostat is stopped "+
			"(SIGTERM) and started again, and the restore is the time from the start to the stream's whole length being served.",
			entries, keys, window),
		"All agents run (monitor against the local engine, respond in dry-run): the idle figure is the whole process, store included.",
	}})
	rep.Machine = append(rep.Machine, "load average at end (1/5/15 min): "+bench.LoadAverage("/proc"))
	md := rep.Markdown()
	fmt.Print("\n" + md)
	if out := os.Getenv("HEMOSTAT_BENCH_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(md), 0o644); err != nil {
			t.Error(err)
		}
	}
}

func measureStore(t *testing.T, c storeCandidate, entries, keys int, window time.Duration) []string {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	start := func() (*exec.Cmd, time.Time) {
		args := append([]string{"run", "--dry-run", "--embedded-addr", addr, "--data-dir", dir,
			"--listen", fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), "--log-level", "warn"}, c.args...)
		cmd := exec.Command(c.bin, args...)
		cmd.Env = append(os.Environ(), "HEMOSTAT_REDIS_URL=")
		cmd.Stderr = os.Stderr
		began := time.Now()
		if err := cmd.Start(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd, began
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, ReadTimeout: time.Minute})
	defer rdb.Close()
	served := func(want int64) bool {
		n, err := rdb.XLen(ctx, "hemostat:bench:history").Result()
		return err == nil && n >= want
	}
	cmd, _ := start()
	if !testenv.Poll(2*time.Minute, func() bool { return rdb.Ping(ctx).Err() == nil }) {
		t.Fatalf("%s: the store did not answer on %s", c.name, addr)
	}
	value := strings.Repeat("x", 380)
	// Pipelines of 100: miniredis (the baseline) does not read while its replies wait to be read.
	for i := 0; i < entries; i += 100 {
		pipe := rdb.Pipeline()
		for j := i; j < min(i+100, entries); j++ {
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: "hemostat:bench:history", Values: []any{"entry", value, "n", j}})
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatalf("%s: seed: %v", c.name, err)
		}
	}
	for i := 0; i < keys; i += 100 {
		pipe := rdb.Pipeline()
		for j := i; j < min(i+100, keys); j++ {
			pipe.Set(ctx, "hemostat:bench:ttl:"+strconv.Itoa(j), "1", 24*time.Hour)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatalf("%s: seed: %v", c.name, err)
		}
	}
	time.Sleep(10 * time.Second) // settle: the writes reach the disk; not a synchronisation
	pids := tree(cmd.Process.Pid)
	before := bench.ProcessCPU("/proc", pids)
	t0 := time.Now()
	time.Sleep(window) // the measuring window
	cpu := bench.ProcessCPU("/proc", pids).Since(before)
	elapsed := time.Since(t0)
	var rss uint64
	for _, p := range pids {
		if b, err := bench.ResidentBytes("/proc", p); err == nil {
			rss += b
		}
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
	size := dirSize(dir)

	_, began := start()
	if !testenv.Poll(2*time.Minute, func() bool { return served(int64(entries)) }) {
		t.Fatalf("%s: the state was not served again within 2 minutes", c.name)
	}
	restore := time.Since(began)
	pct := 100 * cpu.Seconds() / elapsed.Seconds()
	verdict := "met"
	if pct >= 2 || rss >= 150<<20 || restore >= 2*time.Second {
		verdict = "missed"
	}
	return []string{c.name, fmt.Sprintf("%.2f %%", pct), fmt.Sprintf("%.0f MB", float64(rss)/(1<<20)),
		bench.FormatDuration(restore.Round(time.Millisecond)), fmt.Sprintf("%.0f MB", float64(size)/(1<<20)), verdict}
}

// tree is pid and all its descendants (the redis-server child and its AOF-rewrite forks), from one scan
// of /proc.
func tree(pid int) []int {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := bench.ReadStat("/proc", p); err == nil {
			children[st.PPID] = append(children[st.PPID], p)
		}
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}
