package monitor

import (
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hemostat/hemostat/pkg/container"
)

var t0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func TestDetectCrash(t *testing.T) {
	base := CrashInput{At: t0, KillWindow: time.Minute, OOMWindow: 5 * time.Second, LoopWindow: 5 * time.Minute, LoopCount: 3}
	with := func(f func(*CrashInput)) CrashInput { in := base; f(&in); return in }
	for _, tc := range []struct {
		name string
		in   CrashInput
		want CrashVerdict
	}{
		{"exit 3", with(func(in *CrashInput) { in.ExitCode = 3 }), CrashVerdict{Crashed: true, Dies: 1}},
		{"exit 0", with(func(in *CrashInput) { in.ExitCode = 0 }), CrashVerdict{Dies: 1}},
		{"docker stop ends in 143", with(func(in *CrashInput) { in.ExitCode = 143; in.LastKill = t0.Add(-300 * time.Millisecond) }),
			CrashVerdict{Deliberate: true}},
		{"docker kill ends in 137", with(func(in *CrashInput) { in.ExitCode = 137; in.LastKill = t0.Add(-10 * time.Second) }),
			CrashVerdict{Deliberate: true}},
		{"kill long ago is no excuse", with(func(in *CrashInput) { in.ExitCode = 1; in.LastKill = t0.Add(-2 * time.Minute) }),
			CrashVerdict{Crashed: true, Dies: 1}},
		{"137 without kill is a crash", with(func(in *CrashInput) { in.ExitCode = 137 }), CrashVerdict{Crashed: true, Dies: 1}},
		{"oom event before die", with(func(in *CrashInput) { in.ExitCode = 137; in.LastOOM = t0.Add(-40 * time.Millisecond) }),
			CrashVerdict{OOM: true, Dies: 1}},
		{"OOMKilled from inspect", with(func(in *CrashInput) { in.ExitCode = 137; in.OOMKilled = true }),
			CrashVerdict{OOM: true, Dies: 1}},
		{"third die in five minutes loops", with(func(in *CrashInput) {
			in.ExitCode = 1
			in.Dies = []time.Time{t0.Add(-4 * time.Minute), t0.Add(-time.Minute)}
		}), CrashVerdict{Crashed: true, Loop: true, Dies: 3}},
		{"restart always loops on exit 0", with(func(in *CrashInput) {
			in.Dies = []time.Time{t0.Add(-2 * time.Second), t0.Add(-time.Second)}
		}), CrashVerdict{Loop: true, Dies: 3}},
		{"old dies do not count", with(func(in *CrashInput) {
			in.ExitCode = 1
			in.Dies = []time.Time{t0.Add(-6 * time.Minute), t0.Add(-time.Minute)}
		}), CrashVerdict{Crashed: true, Dies: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, detectCrash(tc.in)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestInStartPeriod(t *testing.T) {
	for _, tc := range []struct {
		name   string
		period time.Duration
		at     time.Duration
		want   bool
	}{
		{"inside", 10 * time.Second, 5 * time.Second, true},
		{"after", 10 * time.Second, 11 * time.Second, false},
		{"no start period", 0, time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := inStartPeriod(t0, tc.period, t0.Add(tc.at)); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestOverThreshold(t *testing.T) {
	nan := math.NaN()
	for _, tc := range []struct {
		name string
		vals []float64
		want bool
	}{
		{"three over", []float64{10, 90, 91, 92}, true},
		{"one spike", []float64{10, 10, 99}, false},
		{"dip in between", []float64{90, 50, 90, 90}, false},
		{"too few", []float64{90, 90}, false},
		{"unknown sample", []float64{90, nan, 90}, false},
		{"at the threshold is not over", []float64{85, 85, 85}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := overThreshold(tc.vals, 85, 3); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func series(n int, step time.Duration, f func(i int) float64) []point {
	pts := make([]point, n)
	for i := range pts {
		pts[i] = point{T: t0.Add(time.Duration(i) * step), V: f(i)}
	}
	return pts
}

func TestDetectLeak(t *testing.T) {
	const mib = 1 << 20
	p := LeakParams{MinSamples: 10, Horizon: 30 * time.Minute, MinR2: 0.8, MinGrowth: mib}
	for _, tc := range []struct {
		name  string
		pts   []point
		limit float64
		want  bool
	}{
		// 1 MiB per 10 s from 100 MiB toward 512 MiB: the limit in about 70 min.
		{"slow growth beyond the horizon", series(20, 10*time.Second, func(i int) float64 { return 100*mib + float64(i)*mib }), 512 * mib, false},
		// 10 MiB per 10 s toward 512 MiB: about 6 min.
		{"steady growth within the horizon", series(20, 10*time.Second, func(i int) float64 { return 100*mib + float64(i)*10*mib }), 512 * mib, true},
		{"flat", series(20, 10*time.Second, func(int) float64 { return 100 * mib }), 512 * mib, false},
		{"shrinking", series(20, 10*time.Second, func(i int) float64 { return 300*mib - float64(i)*mib }), 512 * mib, false},
		{"noise is not a trend", series(20, 10*time.Second, func(i int) float64 { return 100*mib + float64((i*7919)%13)*mib }), 120 * mib, false},
		{"too few samples", series(5, 10*time.Second, func(i int) float64 { return 100*mib + float64(i)*10*mib }), 512 * mib, false},
		{"no limit", series(20, 10*time.Second, func(i int) float64 { return 100*mib + float64(i)*10*mib }), 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := detectLeak(tc.pts, tc.limit, p)
			if got.Leak != tc.want {
				t.Errorf("leak: got %v, want %v (%+v)", got.Leak, tc.want, got)
			}
		})
	}
	got := detectLeak(series(20, 10*time.Second, func(i int) float64 { return 100*mib + float64(i)*10*mib }), 512*mib, p)
	// At 1 MiB/s from 290 MiB, 222 MiB remain: 222 s.
	if got.Slope < 0.99*mib || got.Slope > 1.01*mib || got.TimeToLimit < 220*time.Second || got.TimeToLimit > 224*time.Second {
		t.Errorf("fit: slope %v B/s, time to limit %v", got.Slope, got.TimeToLimit)
	}
}

func TestCPUPercent(t *testing.T) {
	prev := container.Sample{Time: t0, CPUTotalNS: 1e9}
	for _, tc := range []struct {
		name      string
		cur       container.Sample
		limit     float64
		hostCores int
		want      float64
	}{
		{"half a core of a 0.5 limit", container.Sample{Time: t0.Add(time.Second), CPUTotalNS: 1.5e9}, 0.5, 2, 100},
		{"one core of two host cores", container.Sample{Time: t0.Add(2 * time.Second), CPUTotalNS: 3e9}, 0, 2, 50},
		{"online cpus from the sample", container.Sample{Time: t0.Add(time.Second), CPUTotalNS: 2e9, OnlineCPUs: 4}, 0, 2, 25},
		{"restart resets the counter", container.Sample{Time: t0.Add(time.Second), CPUTotalNS: 1}, 0, 2, math.NaN()},
		{"same time", container.Sample{Time: t0, CPUTotalNS: 2e9}, 0, 2, math.NaN()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := cpuPercent(prev, tc.cur, tc.limit, tc.hostCores)
			if math.IsNaN(tc.want) != math.IsNaN(got) || (!math.IsNaN(got) && math.Abs(got-tc.want) > 1e-9) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParsePercent(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
		ok   bool
	}{
		{"90", 90, true}, {"12.5%", 12.5, true}, {" 50 ", 50, true}, {"0", 0, false}, {"150", 0, false}, {"high", 0, false}, {"", 0, false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, ok := parsePercent(tc.in)
			if got != tc.want || ok != tc.ok {
				t.Errorf("got %v %v, want %v %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestWatched(t *testing.T) {
	all := WatchRules{Mode: WatchAll, Exclude: []string{"hemostat*"}}
	labeled := WatchRules{Mode: WatchLabeled}
	incl := WatchRules{Mode: WatchAll, Include: []string{"web-*", "db"}}
	for _, tc := range []struct {
		name   string
		rules  WatchRules
		cname  string
		labels map[string]string
		want   bool
	}{
		{"all watches plain", all, "web-1", nil, true},
		{"opt out", all, "web-1", map[string]string{"hemostat.enable": "false"}, false},
		{"self by label", all, "anything", map[string]string{"hemostat.self": "true"}, false},
		{"self by name", all, "hemostat-monitor", nil, false},
		{"labeled needs a label", labeled, "web-1", nil, false},
		{"labeled with enable", labeled, "web-1", map[string]string{"hemostat.enable": "true"}, true},
		{"labeled with autoheal", labeled, "web-1", map[string]string{"autoheal": "true"}, true},
		{"labeled opt out wins", labeled, "web-1", map[string]string{"hemostat.enable": "false", "autoheal": "true"}, false},
		{"include glob", incl, "web-7", nil, true},
		{"include exact", incl, "db", nil, true},
		{"not included", incl, "cache", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.rules.Watched(tc.cname, tc.labels); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
