package bench_test

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hemostat/hemostat/pkg/bench"
	"github.com/hemostat/hemostat/pkg/cgroup"
	"github.com/hemostat/hemostat/pkg/monitor"
	"github.com/hemostat/hemostat/pkg/testenv"
)

// config is the harness's settings, read from HEMOSTAT_BENCH_* variables (scripts/bench documents them).
type config struct {
	run           string          // HEMOSTAT_BENCH_RUN: label value of this run's containers
	max           int             // HEMOSTAT_BENCH_MAX: largest fleet [100]
	apiRounds     int             // HEMOSTAT_BENCH_API_ROUNDS: rounds of the API sampler per fleet size [5]
	cgroupRounds  int             // HEMOSTAT_BENCH_CGROUP_ROUNDS: rounds of the cgroup sampler [100]
	workers       int             // HEMOSTAT_BENCH_WORKERS: cgroup sampler workers, the monitor's default [8]
	apiWorkers    int             // HEMOSTAT_BENCH_API_WORKERS: API sampler workers, the monitor's default [128]
	baselineFull  int             // HEMOSTAT_BENCH_BASELINE_FULL: largest fleet the baseline polls whole [50]
	baselineProbe int             // HEMOSTAT_BENCH_BASELINE_SAMPLE: containers polled above it, extrapolated [10]
	idle          time.Duration   // HEMOSTAT_BENCH_IDLE: window that measures the daemon's idle CPU [5s]
	soak          time.Duration   // HEMOSTAT_BENCH_SOAK: how long hemostat run watches before its RSS is read [10m]
	chainAlerts   int             // HEMOSTAT_BENCH_CHAIN_ALERTS: alerts timed one by one through analyze and respond [500]
	events        int             // HEMOSTAT_BENCH_EVENTS: alerts of the throughput run [60000]
	detections    int             // HEMOSTAT_BENCH_DETECTIONS: containers per failure class for detection latency [10]
	out           string          // HEMOSTAT_BENCH_OUT: file the report is written to [a temp file]
	sections      map[string]bool // HEMOSTAT_BENCH_SECTIONS: sections to run [sampling,detect,restart,throughput,rss]
	stores        []string        // HEMOSTAT_BENCH_STORES: stores of the throughput run [redis,embedded-redis-server,embedded-in-process]
}

func loadConfig(t *testing.T) config {
	c := config{
		run:           os.Getenv("HEMOSTAT_BENCH_RUN"),
		max:           envInt(t, "HEMOSTAT_BENCH_MAX", 100),
		apiRounds:     envInt(t, "HEMOSTAT_BENCH_API_ROUNDS", 5),
		cgroupRounds:  envInt(t, "HEMOSTAT_BENCH_CGROUP_ROUNDS", 100),
		workers:       envInt(t, "HEMOSTAT_BENCH_WORKERS", 8),
		apiWorkers:    envInt(t, "HEMOSTAT_BENCH_API_WORKERS", 128),
		baselineFull:  envInt(t, "HEMOSTAT_BENCH_BASELINE_FULL", 50),
		baselineProbe: envInt(t, "HEMOSTAT_BENCH_BASELINE_SAMPLE", 10),
		idle:          envDuration(t, "HEMOSTAT_BENCH_IDLE", 5*time.Second),
		soak:          envDuration(t, "HEMOSTAT_BENCH_SOAK", 10*time.Minute),
		chainAlerts:   envInt(t, "HEMOSTAT_BENCH_CHAIN_ALERTS", 500),
		events:        envInt(t, "HEMOSTAT_BENCH_EVENTS", 60000),
		detections:    envInt(t, "HEMOSTAT_BENCH_DETECTIONS", 10),
		out:           os.Getenv("HEMOSTAT_BENCH_OUT"),
	}
	c.stores = strings.Split(cmp.Or(os.Getenv("HEMOSTAT_BENCH_STORES"), "redis,embedded-redis-server,embedded-in-process"), ",")
	c.sections = map[string]bool{}
	list := os.Getenv("HEMOSTAT_BENCH_SECTIONS")
	if list == "" {
		list = strings.Join(allSections, ",")
	}
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if !slices.Contains(allSections, name) {
			t.Fatalf("HEMOSTAT_BENCH_SECTIONS: unknown section %q, want some of %s", name, strings.Join(allSections, ","))
		}
		c.sections[name] = true
	}
	if c.run == "" {
		c.run = strconv.FormatInt(time.Now().Unix()%1e6, 10)
	}
	if c.out == "" {
		c.out = filepath.Join(os.TempDir(), "hemostat-bench-"+c.run+".md")
	}
	return c
}

// allSections are the harness's sections, in report order.
var allSections = []string{"sampling", "detect", "restart", "throughput", "rss"}

// fleetSizes are the fleet sizes measured: 10, 50, 100 and 200 up to max (max itself when it is below 10).
func fleetSizes(max int) []int {
	var out []int
	for _, n := range []int{10, 50, 100, 200} {
		if n <= max {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		out = []int{max}
	}
	return out
}

// TestHarness is the benchmark harness of issue 9 (scripts/bench runs it): it measures the seed's
// sampling approach, hemostat's API sampler and its cgroup sampler side by side at growing fleets of idle
// test containers, then the detection and response chain, and prints one markdown report. It runs only
// with HEMOSTAT_BENCH=1: it takes minutes and starts up to HEMOSTAT_BENCH_MAX containers.
func TestHarness(t *testing.T) {
	if os.Getenv("HEMOSTAT_BENCH") != "1" {
		t.Skip("benchmark harness: run scripts/bench (or set HEMOSTAT_BENCH=1)")
	}
	cfg := loadConfig(t)
	dc := testenv.RequireDocker(t)
	began := time.Now()
	m := bench.ReadMachine("/proc")
	reader := cgroup.NewReader(cgroup.Options{})
	rep := bench.Report{Title: "hemostat benchmark harness: the seed's approach beside hemostat, one run"}
	rep.Machine = []string{
		fmt.Sprintf("CPU: %s × %d (GOMAXPROCS %d)", m.CPUModel, m.CPUs, runtime.GOMAXPROCS(0)),
		"kernel: " + m.Kernel,
		fmt.Sprintf("Docker Engine %s (API %s), cgroup v%d", dc.ServerVersion, dc.APIVersion, reader.Version()),
		"Go: " + runtime.Version(),
		"date: " + began.UTC().Format(time.RFC3339),
		"load average at start (1/5/15 min): " + m.Load,
	}

	ctx := t.Context()
	fl := newFleet(t, dc, cfg.run)
	if cfg.sections["sampling"] {
		rep.Sections = append(rep.Sections, samplingSection(ctx, t, cfg, fl, reader))
	}
	rep.Sections = append(rep.Sections, chainSections(ctx, t, cfg, fl)...)

	rep.Machine = append(rep.Machine,
		"load average at end (1/5/15 min): "+bench.LoadAverage("/proc"),
		"harness run time: "+bench.FormatDuration(time.Since(began).Round(time.Second)))
	md := rep.Markdown()
	fmt.Print("\n" + md)
	if err := os.WriteFile(cfg.out, []byte(md), 0o644); err != nil {
		t.Errorf("write report: %v", err)
	} else {
		t.Logf("report written to %s", cfg.out)
	}
}

// measurement is one sampler's rounds at one fleet size.
type measurement struct {
	rounds  []time.Duration
	self    time.Duration // this process's CPU over all rounds
	shims   time.Duration // the CPU of the fleet's containerd-shims over all rounds
	core    time.Duration // the CPU of dockerd and containerd over all rounds
	elapsed time.Duration // wall time of all rounds
	idle    time.Duration // dockerd's and containerd's idle CPU per second
	errors  int
	scale   float64 // the baseline's extrapolation factor, 1 when measured whole
}

func (ms measurement) p(q float64) time.Duration {
	return time.Duration(float64(bench.Percentile(ms.rounds, q)) * ms.scale)
}

// coreNet is dockerd's and containerd's CPU over the rounds less their idle rate over the same time: what
// the calls cost them, give or take the noise of a shared machine.
func (ms measurement) coreNet() time.Duration {
	return ms.core - time.Duration(float64(ms.idle)*ms.elapsed.Seconds())
}

// formatCPU renders CPU over the rounds per round; 0 is shown as under one clock tick per round.
func (ms measurement) formatCPU(d time.Duration) string {
	if d <= 0 {
		return "< " + bench.FormatDuration(ms.perRound(bench.ClockTick))
	}
	return bench.FormatDuration(ms.perRound(d))
}

func (ms measurement) perRound(d time.Duration) time.Duration {
	if len(ms.rounds) == 0 {
		return 0
	}
	return time.Duration(float64(d) / float64(len(ms.rounds)) * ms.scale)
}

// daemonProcs are the daemon's processes a measurement accounts: dockerd and containerd, which serve
// everything else on the machine too, and the containerd-shims of the fleet's containers, which serve
// only them (a stats call reaches the container's shim, which reads its cgroup).
type daemonProcs struct {
	core, shims []int
}

// findDaemon finds dockerd, containerd and the shims of refs.
func findDaemon(t *testing.T, refs []monitor.ContainerRef) daemonProcs {
	t.Helper()
	pids := make([]int, len(refs))
	for i, r := range refs {
		pids[i] = r.Pid
	}
	all, err := bench.DaemonPIDs("/proc", pids)
	if err != nil {
		t.Fatal(err)
	}
	core, err := bench.DaemonPIDs("/proc", []int{})
	if err != nil {
		t.Fatal(err)
	}
	return daemonProcs{core: core, shims: slices.DeleteFunc(all, func(p int) bool { return slices.Contains(core, p) })}
}

// measure runs round n times and accounts the CPU of this process and of the daemon's processes over all
// of them.
func measure(t *testing.T, n int, d daemonProcs, round func() (errs int)) measurement {
	t.Helper()
	ms := measurement{scale: 1}
	self0, err := bench.SelfCPU()
	if err != nil {
		t.Fatal(err)
	}
	core0, shims0 := bench.ProcessCPU("/proc", d.core), bench.ProcessCPU("/proc", d.shims)
	for range n {
		start := time.Now()
		ms.errors += round()
		ms.rounds = append(ms.rounds, time.Since(start))
	}
	self1, _ := bench.SelfCPU()
	ms.self = self1 - self0
	ms.core = bench.ProcessCPU("/proc", d.core).Since(core0)
	ms.shims = bench.ProcessCPU("/proc", d.shims).Since(shims0)
	for _, r := range ms.rounds {
		ms.elapsed += r
	}
	return ms
}

// idleRates are the CPU per second of dockerd and containerd, and of the fleet's shims, while nobody asks
// them anything (their own housekeeping and, for the former, whatever else runs on the machine).
func idleRates(t *testing.T, window time.Duration, d daemonProcs) (core, shims time.Duration) {
	t.Helper()
	core0, shims0 := bench.ProcessCPU("/proc", d.core), bench.ProcessCPU("/proc", d.shims)
	start := time.Now()
	select {
	case <-time.After(window):
	case <-t.Context().Done():
	}
	sec := time.Since(start).Seconds()
	core = time.Duration(float64(bench.ProcessCPU("/proc", d.core).Since(core0)) / sec)
	shims = time.Duration(float64(bench.ProcessCPU("/proc", d.shims).Since(shims0)) / sec)
	return core, shims
}

// perSecond renders a CPU rate, "0 ms/s" when nothing was measured.
func perSecond(d time.Duration) string {
	if d <= 0 {
		return "0 ms/s"
	}
	return bench.FormatDuration(d) + "/s"
}

// samplingSection measures the three samplers at each fleet size.
func samplingSection(ctx context.Context, t *testing.T, cfg config, fl *fleet, reader *cgroup.Reader) bench.Section {
	dc := fl.dc
	sec := bench.Section{Title: "1. Sampling N idle containers: one round"}
	tab := &bench.Table{Header: []string{"N", "sampler", "rounds", "round p50", "round p95",
		"hemostat CPU/round", "shims CPU/round", "dockerd+containerd CPU/round", "… net of idle",
		"round vs baseline", "shims CPU vs baseline", "dockerd+containerd net vs baseline"}}
	sec.Table = tab
	seed, err := newSeedClient(dc.Host(), dc.APIVersion)
	if err != nil {
		t.Fatal(err)
	}
	cgroupOK := reader.Available()
	api := monitor.APISampler{Client: dc}
	cg := monitor.CgroupSampler{Reader: reader}
	var idleNotes, callNotes, targets []string
	for _, n := range fleetSizes(cfg.max) {
		startAt := time.Now()
		if err := fl.grow(ctx, n); err != nil {
			t.Fatalf("start %d containers: %v", n, err)
		}
		t.Logf("N=%d: %d containers running (grown in %v)", n, n, time.Since(startAt).Round(time.Millisecond))
		refs := fl.running(n)
		procs := findDaemon(t, refs)
		idleBefore, shimsBefore := idleRates(t, cfg.idle, procs)
		type result struct {
			label string
			ms    measurement
		}
		var results []result

		// (a) the seed: sequential stream=false stats and two inspects per container, one round.
		probe := refs
		scale := 1.0
		if n > cfg.baselineFull {
			probe = refs[:min(cfg.baselineProbe, n)]
			scale = float64(n) / float64(len(probe))
		}
		var calls []time.Duration
		base := measure(t, 1, procs, func() int {
			errs := 0
			for _, r := range probe {
				start := time.Now()
				if err := seed.poll(ctx, r.ID); err != nil {
					t.Logf("baseline %s: %v", r.Name, err)
					errs++
				}
				calls = append(calls, time.Since(start))
			}
			return errs
		})
		base.scale = scale
		callNotes = append(callNotes, fmt.Sprintf("N=%d: p50 %s, p95 %s over %d containers", n,
			bench.FormatDuration(bench.Percentile(calls, 50)), bench.FormatDuration(bench.Percentile(calls, 95)), len(calls)))
		label := "seed: sequential stats(stream=false) + 2 inspects"
		if scale != 1 {
			label += fmt.Sprintf(" (extrapolated from %d)", len(probe))
		}
		results = append(results, result{label, base})
		t.Logf("N=%d baseline: %v per round", n, base.p(50))

		// (b) hemostat's API sampler: concurrent one-shot stats with the monitor's API worker pool (each call
		// mostly waits for the daemon's collector tick, so the pool is wide).
		wide := min(n, cfg.apiWorkers)
		apiM := measure(t, cfg.apiRounds, procs, func() int {
			return countErrors(t, "api", monitor.SampleRound(ctx, api, refs, wide, 10*time.Second))
		})
		results = append(results, result{fmt.Sprintf("hemostat api: one-shot stats, %d workers", wide), apiM})
		t.Logf("N=%d api with %d workers: p50 %v", n, wide, apiM.p(50))
		if n == 100 {
			targets = append(targets, verdictNote("API fallback: 100 containers in under 2 s (round p95)", apiM.p(95), 2*time.Second))
		}
		// The same through a small pool, for reference: a round then takes ceil(N/workers) collector ticks.
		if cfg.workers < wide {
			narrow := measure(t, cfg.apiRounds, procs, func() int {
				return countErrors(t, "api", monitor.SampleRound(ctx, api, refs, cfg.workers, 10*time.Second))
			})
			results = append(results, result{fmt.Sprintf("(reference) api through a pool of %d workers", cfg.workers), narrow})
			t.Logf("N=%d api with %d workers: p50 %v", n, cfg.workers, narrow.p(50))
		}

		// (c) hemostat's cgroup sampler, pids cached from inspect; one warm-up round resolves the paths.
		if cgroupOK == nil {
			warm := time.Now()
			countErrors(t, "cgroup warm-up", monitor.SampleRound(ctx, cg, refs, cfg.workers, 10*time.Second))
			cold := time.Since(warm)
			cgM := measure(t, cfg.cgroupRounds, procs, func() int {
				return countErrors(t, "cgroup", monitor.SampleRound(ctx, cg, refs, cfg.workers, 10*time.Second))
			})
			results = append(results, result{fmt.Sprintf("hemostat cgroup: file reads, %d workers", cfg.workers), cgM})
			t.Logf("N=%d cgroup: p50 %v (first round, resolving paths: %v)", n, cgM.p(50), cold)
			if n == 100 {
				targets = append(targets, verdictNote("100 containers sampled with cgroup reads in under 40 ms (round p95)", cgM.p(95), 40*time.Millisecond))
			}
			sec.Notes = append(sec.Notes, fmt.Sprintf("cgroup sampler's first round at N=%d (resolves and caches every cgroup path): %s",
				n, bench.FormatDuration(cold)))
		}

		// The daemon's idle rate is taken before and after the measurements; the mean is subtracted.
		idleAfter, shimsAfter := idleRates(t, cfg.idle, procs)
		idle := (idleBefore + idleAfter) / 2
		idleNotes = append(idleNotes, fmt.Sprintf("N=%d: dockerd+containerd %s before, %s after; the %d shims %s before, %s after",
			n, perSecond(idleBefore), perSecond(idleAfter), len(procs.shims), perSecond(shimsBefore), perSecond(shimsAfter)))
		base.idle = idle
		for i, r := range results {
			r.ms.idle = idle
			tab.Rows = append(tab.Rows, row(n, r.label, r.ms, base, i == 0))
		}
		if cgroupOK != nil {
			tab.Rows = append(tab.Rows, []string{strconv.Itoa(n), "hemostat cgroup: unavailable: " + cgroupOK.Error()})
		}
	}
	sec.Notes = append(targets, sec.Notes...)
	sec.Notes = append([]string{
		"Round: every running container sampled once. The seed polled sequentially; hemostat samples with bounded worker pools " +
			"of the monitor's default sizes (cgroup reads: 8; stats API calls, which mostly wait: 128) and, for the cgroup sampler, " +
			"keeps each container's pid from its event-maintained table.",
		"hemostat CPU/round: this process's user+system CPU (getrusage) over the rounds, divided by the rounds; for the seed's row it is " +
			"the harness doing the seed's calls (Go, not Python: the seed's own interpreter cost more).",
		"Daemon CPU: utime+stime growth (/proc/<pid>/stat, 10 ms ticks) over the rounds, divided by the rounds, of the " +
			"containerd-shims of the fleet's containers (they serve only these containers: a stats call reaches the container's " +
			"shim, which reads its cgroup) and of dockerd and containerd (which also serve everything else on this shared machine). " +
			"Idle rates, measured for " + cfg.idle.String() + " before and after each fleet size's measurements: " +
			strings.Join(idleNotes, "; ") + ". \"net of idle\" subtracts the mean of dockerd's and containerd's two idle rates " +
			"over the rounds' wall time; \"< x\" means under one clock tick over all rounds (or nothing left after the subtraction).",
		"seed per-container time (stats stream=false + 2 inspects): " + strings.Join(callNotes, "; ") + ".",
		fmt.Sprintf("Extrapolated rows: above N=%d the seed's round is measured on %d containers and scaled linearly by N/%d "+
			"(its calls are sequential, so its round time is linear in N).", cfg.baselineFull, cfg.baselineProbe, cfg.baselineProbe),
		"vs baseline: how many times less than the seed's row at the same N (round time p50; shims CPU per round; dockerd and " +
			"containerd CPU per round net of idle); \"-\" where a figure is under the clock tick.",
	}, sec.Notes...)
	return sec
}

// verdictNote says whether a measured figure met its target.
func verdictNote(target string, got, limit time.Duration) string {
	v := "met"
	if got >= limit {
		v = "missed"
	}
	return fmt.Sprintf("Target: %s: %s (%s).", target, v, bench.FormatDuration(got))
}

// row is one table row; base is the seed's measurement at the same fleet size.
func row(n int, label string, ms, base measurement, isBase bool) []string {
	r := []string{strconv.Itoa(n), label, strconv.Itoa(len(ms.rounds)), bench.FormatDuration(ms.p(50)),
		bench.FormatDuration(ms.p(95)), bench.FormatDuration(ms.perRound(ms.self)), ms.formatCPU(ms.shims),
		ms.formatCPU(ms.core), ms.formatCPU(ms.coreNet())}
	if ms.errors > 0 {
		r[1] += fmt.Sprintf(" (%d errors)", ms.errors)
	}
	if isBase {
		return append(r, "1", "1", "1")
	}
	return append(r, bench.FormatRatio(float64(base.p(50)), float64(ms.p(50))),
		bench.FormatRatio(float64(base.perRound(base.shims)), float64(ms.perRound(ms.shims))),
		bench.FormatRatio(float64(base.perRound(base.coreNet())), float64(ms.perRound(ms.coreNet()))))
}

// countErrors logs the first failed sample of a round and returns how many failed.
func countErrors(t *testing.T, what string, res []monitor.SampleResult) int {
	n := 0
	for _, r := range res {
		if r.Err != nil {
			if n == 0 {
				t.Logf("%s sample %s: %v", what, r.Ref.Name, r.Err)
			}
			n++
		}
	}
	return n
}
