package monitor

import (
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/hemostat/hemostat/pkg/container"
)

// The detectors below are pure functions of what the monitor has seen; the engine calls them and turns
// their verdicts into incidents.

// CrashVerdict is what a die event means.
type CrashVerdict struct {
	Crashed    bool // a non-zero exit nobody asked for
	Deliberate bool // a stop or kill by a client preceded the die
	OOM        bool // the die follows an OOM kill (reported as oom_killed instead)
	Loop       bool // enough unrequested dies within the loop window for crash_loop
	Dies       int  // unrequested dies within the loop window, this one included
}

// CrashInput is what detectCrash needs about one die event.
type CrashInput struct {
	ExitCode   int
	At         time.Time   // the die event's time
	LastKill   time.Time   // the latest stop or kill event of the container
	LastOOM    time.Time   // the latest oom event of the container
	OOMKilled  bool        // inspect says the kernel OOM-killed it
	Dies       []time.Time // earlier unrequested dies
	KillWindow time.Duration
	OOMWindow  time.Duration
	LoopWindow time.Duration
	LoopCount  int
}

// detectCrash classifies a die event (the README's Detection table): crashed when the exit code is not 0
// and no stop or kill preceded it within KillWindow (docker stop ends in 143 or 137 and is no crash);
// oom when an oom event preceded it within OOMWindow; crash_loop when LoopCount or more unrequested dies
// (whatever their exit code: a restart policy "always" loops on exit 0 too) fall within LoopWindow.
func detectCrash(in CrashInput) CrashVerdict {
	var v CrashVerdict
	v.Deliberate = !in.LastKill.IsZero() && !in.At.Before(in.LastKill) && in.At.Sub(in.LastKill) <= in.KillWindow
	v.OOM = in.OOMKilled || (!in.LastOOM.IsZero() && !in.At.Before(in.LastOOM.Add(-time.Second)) && in.At.Sub(in.LastOOM) <= in.OOMWindow)
	if v.Deliberate {
		return v
	}
	v.Crashed = in.ExitCode != 0 && !v.OOM
	v.Dies = 1
	for _, d := range in.Dies {
		if !d.After(in.At) && in.At.Sub(d) <= in.LoopWindow {
			v.Dies++
		}
	}
	v.Loop = v.Dies >= in.LoopCount
	return v
}

// inStartPeriod reports whether a container's healthcheck is still in its start period at t (Docker does
// not count failures then, and neither does hemostat).
func inStartPeriod(startedAt time.Time, startPeriod time.Duration, t time.Time) bool {
	return startPeriod > 0 && !startedAt.IsZero() && t.Before(startedAt.Add(startPeriod))
}

// overThreshold reports whether the last k values all exceed threshold: k consecutive samples, never one
// spike.
func overThreshold(values []float64, threshold float64, k int) bool {
	if k <= 0 {
		k = 1
	}
	if len(values) < k {
		return false
	}
	for _, v := range values[len(values)-k:] {
		if math.IsNaN(v) || v <= threshold {
			return false
		}
	}
	return true
}

// point is one working-set observation.
type point struct {
	T time.Time
	V float64 // bytes
}

// LeakVerdict is the outcome of the growth-trend test.
type LeakVerdict struct {
	Leak        bool
	Slope       float64       // bytes per second
	R2          float64       // goodness of fit of the line
	TimeToLimit time.Duration // predicted time until the working set reaches the limit
}

// LeakParams tune detectLeak.
type LeakParams struct {
	MinSamples int           // fewest points before judging
	Horizon    time.Duration // leak when the limit is predicted within this
	MinR2      float64       // steadiness of the growth (0..1)
	MinGrowth  float64       // fewest bytes grown across the window, against noise
}

// detectLeak fits a least-squares line through the working-set points and reports a leak when the growth
// is steady (R² at least MinR2), positive, at least MinGrowth over the window, and predicts the limit
// within the horizon.
func detectLeak(pts []point, limit float64, p LeakParams) LeakVerdict {
	var v LeakVerdict
	n := len(pts)
	if n < max(p.MinSamples, 2) || limit <= 0 {
		return v
	}
	t0 := pts[0].T
	var sx, sy, sxx, sxy, syy float64
	for _, q := range pts {
		x := q.T.Sub(t0).Seconds()
		sx += x
		sy += q.V
		sxx += x * x
		sxy += x * q.V
		syy += q.V * q.V
	}
	fn := float64(n)
	den := fn*sxx - sx*sx
	if den <= 0 {
		return v
	}
	v.Slope = (fn*sxy - sx*sy) / den
	intercept := (sy - v.Slope*sx) / fn
	vy := fn*syy - sy*sy
	if vy > 0 {
		v.R2 = (fn*sxy - sx*sy) * (fn*sxy - sx*sy) / (den * vy)
	}
	if v.Slope <= 0 {
		return v
	}
	lastX := pts[n-1].T.Sub(t0).Seconds()
	now := intercept + v.Slope*lastX
	grown := v.Slope * lastX
	secs := (limit - now) / v.Slope
	if secs < 0 {
		secs = 0
	}
	v.TimeToLimit = time.Duration(secs * float64(time.Second))
	v.Leak = v.R2 >= p.MinR2 && grown >= p.MinGrowth && v.TimeToLimit < p.Horizon
	return v
}

// cpuPercent is the CPU use between two samples of one container relative to its limit in cores (the
// host's cores when it has none): NaN when the samples cannot be compared (first sample, restart).
func cpuPercent(prev, cur container.Sample, limitCores float64, hostCores int) float64 {
	dt := cur.Time.Sub(prev.Time)
	if prev.Time.IsZero() || dt <= 0 || cur.CPUTotalNS < prev.CPUTotalNS {
		return math.NaN()
	}
	cores := limitCores
	if cores <= 0 {
		cores = float64(cur.OnlineCPUs)
	}
	if cores <= 0 {
		cores = float64(hostCores)
	}
	if cores <= 0 {
		cores = 1
	}
	return 100 * float64(cur.CPUTotalNS-prev.CPUTotalNS) / float64(dt.Nanoseconds()) / cores
}

// parsePercent reads a threshold label such as "90" or "90%"; ok is false for anything else or a value
// outside (0, 100].
func parsePercent(s string) (float64, bool) {
	s = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), "%"))
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v <= 0 || v > 100 || math.IsNaN(v) {
		return 0, false
	}
	return v, true
}
