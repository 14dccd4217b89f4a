package bench_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/bench"
	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/store/schema"
	"github.com/hemostat/hemostat/pkg/testenv"
)

// The churn soak of the embedded store (issue 14's 10-minute scenario): `hemostat run` with no Redis, on
// each embedded store in turn or side by side, while a container that crashes once is started every 4 s.
// Every minute it samples hemostat's CPU and resident memory (the process and its children: the
// redis-server child), the number of keys in the store, and how many containers crashed and were healed.
// Run it with scripts/soak-embedded; it is not part of the test suite.

// esoakContainer is one churn container and what the engine said about it.
type esoakContainer struct {
	id, name string
	created  time.Time
	crashed  bool      // a die event with exit code 3
	started  bool      // a start or restart event after the crash (hemostat's restart)
	healed   time.Time // when an inspect saw it running again after the restart; zero until then
	removed  bool
}

// esoakRow is one minute of one store.
type esoakRow struct {
	minute          int
	cpu             float64 // % of one core over the minute
	rss             uint64  // bytes, the process and its children
	keys            int64   // DBSIZE; -1 when it did not answer
	disk            int64   // bytes in the data dir (the AOF, or the journal)
	crashed, healed int     // cumulative
	alive           int     // churn containers not yet removed
	warns, errs     int     // cumulative log lines at WARN and ERROR
}

// esoakResult is one store's soak.
type esoakResult struct {
	kind      string
	rows      []esoakRow
	started   int // churn containers created (and started, or their start failed)
	failed    int // churn containers whose create failed (not in started)
	crashed   int
	healed    int
	unhealed  []string
	logCounts map[string]int // "LEVEL msg" → lines
	failures  []string
	load      string // load average at the end
}

// TestEmbeddedSoak is the churn soak of the embedded store; HEMOSTAT_SOAK=1 runs it (scripts/soak-embedded).
// HEMOSTAT_SOAK_DURATION sets how long the churn lasts (default 10m), HEMOSTAT_SOAK_STORES which embedded
// stores (default "redis-server,in-process"), HEMOSTAT_SOAK_SERIAL=1 runs them one after the other instead
// of side by side, HEMOSTAT_SOAK_EVERY the churn period (default 4s), HEMOSTAT_SOAK_OUT where the report goes.
// HEMOSTAT_SOAK_PREFILL=1 fills the capped event lists (hemostat:events:*, schema.EventsCap entries each)
// before the churn, as on a host that has run for a while: the state the in-process journal then rewrites.
func TestEmbeddedSoak(t *testing.T) {
	if os.Getenv("HEMOSTAT_SOAK") != "1" {
		t.Skip("embedded-store churn soak: run scripts/soak-embedded (or set HEMOSTAT_SOAK=1)")
	}
	dur := envDuration(t, "HEMOSTAT_SOAK_DURATION", 10*time.Minute)
	every := envDuration(t, "HEMOSTAT_SOAK_EVERY", 4*time.Second)
	stores := strings.Split(os.Getenv("HEMOSTAT_SOAK_STORES"), ",")
	if os.Getenv("HEMOSTAT_SOAK_STORES") == "" {
		stores = []string{"redis-server", "in-process"}
	}
	serial := os.Getenv("HEMOSTAT_SOAK_SERIAL") == "1"
	prefill := os.Getenv("HEMOSTAT_SOAK_PREFILL") == "1"
	if _, err := exec.LookPath("redis-server"); err != nil && slices.Contains(stores, "redis-server") {
		t.Fatalf("the redis-server store needs redis-server on PATH: %v", err)
	}
	host := testenv.RequireDocker(t)
	image := testenv.TestImage(t, host)
	dir := t.TempDir()
	bin := os.Getenv("HEMOSTAT_SOAK_BIN")
	if bin == "" {
		bin = filepath.Join(dir, "hemostat")
		if err := testenv.GoBuild(context.Background(), "../..", ".", bin, ""); err != nil {
			t.Fatal(err)
		}
	}
	m := bench.ReadMachine("/proc")
	startLoad := m.Load
	began := time.Now().UTC()
	results := make([]*esoakResult, len(stores))
	t.Run("stores", func(t *testing.T) {
		for i, kind := range stores {
			t.Run(kind, func(t *testing.T) {
				if !serial {
					t.Parallel()
				}
				results[i] = soakEmbedded(t, bin, image, host, kind, filepath.Join(dir, kind), dur, every, prefill)
			})
		}
	})

	var b strings.Builder
	mode := "side by side (two `hemostat run`, each with its own store, data dir, host name and containers)"
	if serial || len(stores) == 1 {
		mode = "one after the other"
	}
	fmt.Fprintf(&b, "Embedded-store churn soak, %s: %s of churn per store, a container crashing once (exit 3, 2 s after its start) started every %s, stores run %s.\n\n",
		began.Format(time.RFC3339), dur, every, mode)
	if prefill {
		fmt.Fprintf(&b, "Before the churn the capped event lists (hemostat:events:all and the three of the churn's event types) were filled to their cap, %d entries of about 1 KB each (HEMOSTAT_SOAK_PREFILL=1).\n\n", schema.EventsCap)
	}
	fmt.Fprintf(&b, "Machine: %d x %s, kernel %s; load average (1/5/15 min) at the start %s, at the end %s.\n\n",
		m.CPUs, m.CPUModel, m.Kernel, startLoad, bench.LoadAverage("/proc"))
	for _, r := range results {
		if r == nil {
			continue
		}
		fmt.Fprintf(&b, "### `--embedded %s`\n\n", r.kind)
		b.WriteString("| minute | CPU (% of a core) | RSS (MB) | keys | data dir (MB) | crashed | healed | containers alive | log WARN / ERROR |\n|---|---|---|---|---|---|---|---|---|\n")
		for _, row := range r.rows {
			keys := strconv.FormatInt(row.keys, 10)
			if row.keys < 0 {
				keys = "-"
			}
			label := strconv.Itoa(row.minute)
			if row.minute == 0 {
				label = "settle"
			}
			fmt.Fprintf(&b, "| %s | %.1f | %.0f | %s | %.1f | %d | %d | %d | %d / %d |\n", label, row.cpu, float64(row.rss)/(1<<20), keys,
				float64(row.disk)/(1<<20), row.crashed, row.healed, row.alive, row.warns, row.errs)
		}
		fmt.Fprintf(&b, "\n%d containers started (%d creates failed), %d crashed, %d healed; not healed: %v. Load average at the end: %s.\n",
			r.started, r.failed, r.crashed, r.healed, r.unhealed, r.load)
		if len(r.logCounts) > 0 {
			b.WriteString("\nhemostat's WARN and ERROR log lines, by message:\n\n")
			for _, k := range slices.Sorted(maps.Keys(r.logCounts)) {
				fmt.Fprintf(&b, "- %d × %s\n", r.logCounts[k], k)
			}
		}
		if len(r.failures) > 0 {
			fmt.Fprintf(&b, "\nFAILED: %s\n", strings.Join(r.failures, "; "))
		}
		b.WriteString("\n")
	}
	report := b.String()
	fmt.Print("\n" + report)
	if out := os.Getenv("HEMOSTAT_SOAK_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(report), 0o644); err != nil {
			t.Error(err)
		}
	}
}

// soakEmbedded runs one `hemostat run` on one embedded store through the churn and returns its figures.
// It fails the test (after measuring) when CPU grew or a crashed container was not healed.
func soakEmbedded(t *testing.T, bin, image string, dc *docker.Client, kind, dir string, dur, every time.Duration, prefill bool) *esoakResult {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res := &esoakResult{kind: kind, logCounts: map[string]int{}}
	prefix := "esoak-" + kind + "-"
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "hemostat.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	// No Redis configured: hemostat probes the default address and, when nothing answers there, serves
	// the embedded store (checked below from its notice).
	proc := &soakProc{name: "hemostat run", env: []string{"HEMOSTAT_REDIS_URL="}, log: logf,
		args: []string{bin, "run", "--embedded", kind, "--embedded-addr", addr, "--data-dir", filepath.Join(dir, "data"),
			"--host-name", "esoak-" + kind, "--include", prefix + "*", "--listen", fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))}}
	proc.start(t)
	defer proc.kill(syscall.SIGINT) // a no-op after the explicit stop below
	pid := proc.pid()
	logTail := func() string { b, _ := os.ReadFile(logPath); return lastLines(b, 40) }

	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer rdb.Close()
	notice := fmt.Sprintf("serving an embedded store (%s) on %s", kind, addr)
	if !testenv.Poll(2*time.Minute, func() bool {
		b, _ := os.ReadFile(logPath)
		if !bytes.Contains(b, []byte(notice)) {
			return false
		}
		n, _ := rdb.Keys(ctx, schema.AgentKeyPattern).Result()
		return len(n) >= 4
	}) {
		t.Fatalf("%s: hemostat did not serve its embedded store with its agents heartbeating within 2 minutes (want %q):\n%s", kind, notice, logTail())
	}
	t.Logf("%s: hemostat run (pid %d) serves its embedded store on %s", kind, pid, addr)
	if prefill {
		if err := prefillEvents(ctx, rdb, "esoak-"+kind); err != nil {
			t.Fatalf("%s: prefill the event lists: %v", kind, err)
		}
	}

	// The engine's die, start and restart events of this store's containers.
	var mu sync.Mutex
	byID := map[string]*esoakContainer{}
	var all []*esoakContainer
	evCtx, evCancel := context.WithCancel(ctx)
	var evWG sync.WaitGroup
	evWG.Add(1)
	go func() {
		defer evWG.Done()
		follow(evCtx, dc, []string{"die", "start", "restart"}, func(ev docker.Event) {
			mu.Lock()
			defer mu.Unlock()
			if c := byID[ev.ID]; c != nil {
				switch {
				case ev.Action == "die" && ev.ExitCode == 3:
					c.crashed = true
				case (ev.Action == "start" || ev.Action == "restart") && c.crashed:
					c.started = true
				}
			}
		})
	}()
	defer func() { evCancel(); evWG.Wait() }()
	t.Cleanup(func() {
		for _, c := range all {
			if !c.removed {
				cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
				_ = dc.RemoveContainer(cctx, c.id)
				ccancel()
			}
		}
	})

	churn := func(n int) {
		name := fmt.Sprintf("%s%d", prefix, n)
		cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
		defer ccancel()
		id, err := dc.Create(cctx, docker.CreateOptions{Name: name, Image: image,
			Labels: map[string]string{"hemostat.test": "1", "hemostat.soak": "embedded"},
			Cmd:    []string{"-once", "-exit-code", "3", "-exit-after", "2s"}})
		if err != nil {
			t.Logf("%s: create %s: %v", kind, name, err)
			res.failed++
			return
		}
		c := &esoakContainer{id: id, name: name, created: time.Now()}
		mu.Lock()
		byID[id] = c
		all = append(all, c)
		mu.Unlock()
		if err := dc.StartContainer(cctx, id); err != nil {
			t.Logf("%s: start %s: %v", kind, name, err)
		}
	}
	// check confirms the restarted containers run again, and removes those healed more than a minute ago
	// (bounding the number alive).
	check := func(final bool) {
		mu.Lock()
		var todo []*esoakContainer
		for _, c := range all {
			if !c.removed && (c.started || !c.healed.IsZero()) {
				todo = append(todo, c)
			}
		}
		mu.Unlock()
		for _, c := range todo {
			if c.healed.IsZero() {
				cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
				d, err := dc.Inspect(cctx, c.id)
				ccancel()
				if err == nil && d.State == "running" && d.StartedAt.After(c.created.Add(time.Second)) {
					mu.Lock()
					c.healed = time.Now()
					mu.Unlock()
				}
			}
			if !c.healed.IsZero() && !final && time.Since(c.created) > time.Minute {
				cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
				if err := dc.RemoveContainer(cctx, c.id); err == nil {
					mu.Lock()
					c.removed = true
					mu.Unlock()
				}
				ccancel()
			}
		}
	}
	counts := func() (crashed, healed, alive int) {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range all {
			if c.crashed {
				crashed++
			}
			if !c.healed.IsZero() {
				healed++
			}
			if !c.removed {
				alive++
			}
		}
		return
	}

	// CPU and memory of hemostat and its children (the redis-server child), from /proc.
	prevCPU := treeCPU(tree(pid))
	prevAt := time.Now()
	sample := func(minute int) {
		pids := tree(pid)
		cur := treeCPU(pids)
		now := time.Now()
		row := esoakRow{minute: minute, cpu: 100 * cur.Since(prevCPU).Seconds() / now.Sub(prevAt).Seconds()}
		prevCPU, prevAt = cur, now
		for _, p := range pids {
			if b, err := bench.ResidentBytes("/proc", p); err == nil {
				row.rss += b
			}
		}
		kctx, kcancel := context.WithTimeout(ctx, 10*time.Second)
		n, err := rdb.DBSize(kctx).Result()
		kcancel()
		row.keys = n
		if err != nil {
			row.keys = -1
		}
		row.disk = dirSize(filepath.Join(dir, "data"))
		row.crashed, row.healed, row.alive = counts()
		row.warns, row.errs = logLevels(logPath, nil)
		res.rows = append(res.rows, row)
		t.Logf("%s: minute %d: CPU %.1f %%, RSS %.0f MB, keys %d, data dir %.1f MB, crashed %d, healed %d, alive %d, log WARN %d ERROR %d",
			kind, minute, row.cpu, float64(row.rss)/(1<<20), row.keys, float64(row.disk)/(1<<20), row.crashed, row.healed, row.alive, row.warns, row.errs)
	}

	start := time.Now()
	n := 0
	nextChurn, nextCheck := start, start
	minute := 1
	for time.Since(start) < dur {
		now := time.Now()
		if !now.Before(nextChurn) {
			churn(n)
			n++
			nextChurn = nextChurn.Add(every)
		}
		if !now.Before(nextCheck) {
			check(false)
			nextCheck = now.Add(5 * time.Second)
		}
		if now.Sub(start) >= time.Duration(minute)*time.Minute {
			sample(minute)
			minute++
		}
		if err := proc.cmd.Process.Signal(syscall.Signal(0)); err != nil {
			t.Fatalf("%s: hemostat run exited during the soak:\n%s", kind, logTail())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if minute <= int(dur/time.Minute) { // the last minute's sample when the loop ended just before it
		sample(minute)
	}
	res.started = len(all) // n less the failed creates

	// Settle: every crashed container healed, or 3 minutes.
	testenv.Poll(3*time.Minute, func() bool {
		check(true)
		crashed, healed, _ := counts()
		mu.Lock()
		pending := 0
		for _, c := range all {
			if time.Since(c.created) < 10*time.Second && !c.crashed {
				pending++ // its crash is still to come
			}
		}
		mu.Unlock()
		return pending == 0 && crashed == healed && crashed == len(all)
	})
	sample(0)
	res.crashed, res.healed, _ = counts()
	mu.Lock()
	for _, c := range all {
		if c.healed.IsZero() {
			res.unhealed = append(res.unhealed, fmt.Sprintf("%s (crashed %v, restart seen %v)", c.name, c.crashed, c.started))
		}
	}
	mu.Unlock()
	logLevels(logPath, res.logCounts)
	res.load = bench.LoadAverage("/proc")
	proc.kill(syscall.SIGINT)

	// Verdicts: CPU growth (the symptom) and healing.
	var minutes []float64
	for _, r := range res.rows {
		if r.minute > 0 {
			minutes = append(minutes, r.cpu)
		}
	}
	if first, last, ok := cpuEnds(minutes); ok && last > 3*first && last > 20 {
		res.failures = append(res.failures, fmt.Sprintf("CPU grew from %.1f %% to %.1f %% of a core", first, last))
	}
	if len(res.unhealed) > 0 || res.crashed != res.started {
		res.failures = append(res.failures, fmt.Sprintf("%d started, %d crashed, %d healed; not healed: %v",
			res.started, res.crashed, res.healed, res.unhealed))
	}
	if res.failed > 0 {
		res.failures = append(res.failures, fmt.Sprintf("%d of %d creates failed", res.failed, n))
	}
	if len(res.failures) > 0 {
		t.Errorf("%s: %s\nhemostat's log tail:\n%s", kind, strings.Join(res.failures, "; "), logTail())
	}
	return res
}

// prefillEvents fills hemostat:events:all and the lists of the churn's event types to schema.EventsCap
// entries of about 1 KB (the size of a real container_unhealthy entry), at their old end: the events the
// churn records go in front, and the list's cap trims these first.
func prefillEvents(ctx context.Context, rdb *redis.Client, host string) error {
	types := []string{"container_unhealthy", "remediation_complete", "container_recovered"}
	for i, list := range append([]string{schema.KeyEventsAll}, mapEach(types, schema.EventsKey)...) {
		typ := types[max(i-1, 0)]
		for n := 0; n < schema.EventsCap; n += 100 {
			pipe := rdb.Pipeline()
			for j := n; j < min(n+100, schema.EventsCap); j++ {
				ts := time.Now().Add(-time.Duration(schema.EventsCap-j) * time.Minute).UTC().Format(time.RFC3339Nano)
				ev := fmt.Sprintf(`{"id":"prefill-%d-%d","schema":1,"event_type":%q,"timestamp":%q,"agent":"monitor","host":%q,"data":{"pad":%q}}`,
					i, j, typ, ts, host, strings.Repeat("x", 700))
				item := fmt.Sprintf(`{"timestamp":%q,"event_type":%q,"event":%s}`, ts, typ, ev)
				pipe.RPush(ctx, list, item)
			}
			if _, err := pipe.Exec(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

func mapEach(xs []string, f func(string) string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = f(x)
	}
	return out
}

// cpuEnds is the mean CPU of the first minutes (after the first, which holds the start-up, when there
// are at least four) and of the last two.
func cpuEnds(minutes []float64) (first, last float64, ok bool) {
	if len(minutes) < 2 {
		return 0, 0, false
	}
	head := minutes
	if len(head) >= 4 {
		head = head[1:]
	}
	k := min(2, len(minutes)/2)
	mean := func(xs []float64) float64 {
		s := 0.0
		for _, x := range xs {
			s += x
		}
		return s / float64(len(xs))
	}
	return mean(head[:k]), mean(minutes[len(minutes)-k:]), true
}

// treeCPU is the CPU time of pids (a tree): utime+stime, plus cutime+cstime (the children they reaped: a
// redis-server child that was restarted, its AOF-rewrite forks).
func treeCPU(pids []int) bench.CPUSnapshot {
	out := bench.CPUSnapshot{}
	for _, p := range pids {
		if st, err := bench.ReadStat("/proc", p); err == nil {
			out[p] = st.CPU + st.ChildCPU
		}
	}
	return out
}

var logMsg = regexp.MustCompile(`msg=("(?:[^"\\]|\\.)*"|\S+)`)

// logLevels counts hemostat's WARN and ERROR log lines; with into, it also counts them by level and message.
func logLevels(path string, into map[string]int) (warns, errs int) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var level string
		switch {
		case strings.Contains(line, "level=WARN"):
			warns++
			level = "WARN"
		case strings.Contains(line, "level=ERROR"):
			errs++
			level = "ERROR"
		default:
			continue
		}
		if into != nil {
			msg := line
			if m := logMsg.FindStringSubmatch(line); m != nil {
				msg = m[1]
			}
			into[level+" "+msg]++
		}
	}
	return warns, errs
}
