package bench_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestFleetSizes(t *testing.T) {
	tests := []struct {
		max  int
		want []int
	}{
		{5, []int{5}},
		{10, []int{10}},
		{99, []int{10, 50}},
		{100, []int{10, 50, 100}},
		{500, []int{10, 50, 100, 200}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.max), func(t *testing.T) {
			if diff := cmp.Diff(tt.want, fleetSizes(tt.max)); diff != "" {
				t.Errorf("fleetSizes(%d) (-want +got):\n%s", tt.max, diff)
			}
		})
	}
}

func TestMeasurementScalesAndNets(t *testing.T) {
	ms := measurement{rounds: []time.Duration{2 * time.Second}, core: 300 * time.Millisecond,
		elapsed: 2 * time.Second, idle: 50 * time.Millisecond, scale: 10}
	if got, want := ms.p(50), 20*time.Second; got != want {
		t.Errorf("extrapolated p50 = %v, want %v", got, want)
	}
	if got, want := ms.coreNet(), 200*time.Millisecond; got != want {
		t.Errorf("coreNet = %v, want %v", got, want)
	}
	if got, want := ms.perRound(ms.coreNet()), 2*time.Second; got != want {
		t.Errorf("net per extrapolated round = %v, want %v", got, want)
	}
	quiet := measurement{rounds: make([]time.Duration, 100), scale: 1}
	if got, want := quiet.formatCPU(0), "< 100µs"; got != want {
		t.Errorf("formatCPU(0) over 100 rounds = %q, want %q", got, want)
	}
}

func TestLatencyRow(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	tests := []struct {
		name string
		in   []time.Duration
		want []string
	}{
		{"met", ms(1, 2, 3), []string{"x", "3", "2.00ms", "3.00ms", "3.00ms", "3.00ms", "p99 < 25.0ms", "met"}},
		{"missed", ms(1, 30), []string{"x", "2", "1.00ms", "30.0ms", "30.0ms", "30.0ms", "p99 < 25.0ms", "missed"}},
		{"alert before the event", []time.Duration{-time.Millisecond, time.Millisecond}, []string{"x", "2", "≤ 0", "1.00ms", "1.00ms", "1.00ms", "p99 < 25.0ms", "met"}},
		{"none", nil, []string{"x", "0", "-", "-", "-", "-", "25.0ms", "no samples"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, latencyRow("x", tt.in, 25*time.Millisecond)); diff != "" {
				t.Errorf("latencyRow (-want +got):\n%s", diff)
			}
		})
	}
}
