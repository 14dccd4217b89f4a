// Package bench holds the pure helpers of hemostat's benchmark harness: percentiles of round times, CPU
// accounting of this process and of the Docker daemon's processes from procfs, machine notes and the
// markdown table the harness prints. The harness itself lives in this package's tests, gated by
// HEMOSTAT_BENCH=1 and run by scripts/bench; nothing in hemostat's binary imports this package.
package bench

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Percentile returns the p-th percentile (0..100) of ds by the nearest-rank method: the smallest value
// such that at least p percent of the values are at or below it. It is 0 for no values; ds is not
// modified.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	rank = min(max(rank, 1), len(s))
	return s[rank-1]
}

// Mean is the arithmetic mean of ds, 0 for no values.
func Mean(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum / time.Duration(len(ds))
}

// FormatDuration renders a duration with three significant figures in the unit that suits it: "812µs",
// "4.21ms", "1.98s", "3m20s". Zero and negative durations render as "-".
func FormatDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Millisecond:
		return sig3(float64(d)/float64(time.Microsecond)) + "µs"
	case d < time.Second:
		return sig3(float64(d)/float64(time.Millisecond)) + "ms"
	case d < 100*time.Second:
		return sig3(d.Seconds()) + "s"
	}
	m := int(d / time.Minute)
	s := int((d % time.Minute).Round(time.Second) / time.Second)
	if s == 60 {
		m, s = m+1, 0
	}
	return fmt.Sprintf("%dm%02ds", m, s)
}

// FormatRatio renders how many times larger base is than x ("×2400", "×3.1", "×0.8"), or "-" when either
// is not positive. It is the speed-up (or saving) of x against the baseline.
func FormatRatio(base, x float64) string {
	if base <= 0 || x <= 0 || math.IsInf(base, 0) || math.IsInf(x, 0) || math.IsNaN(base) || math.IsNaN(x) {
		return "-"
	}
	return "×" + sig3(base/x)
}

// sig3 formats v with three significant figures and no exponent ("0.0123", "4.21", "812", "24100").
func sig3(v float64) string {
	if v == 0 {
		return "0"
	}
	digits := 2 - int(math.Floor(math.Log10(math.Abs(v))))
	if digits <= 0 {
		p := math.Pow(10, float64(-digits))
		return fmt.Sprintf("%.0f", math.Round(v/p)*p)
	}
	return fmt.Sprintf("%.*f", digits, v)
}
