package analyze

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hemostat/hemostat/pkg/bus"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

// BenchmarkAnalyzeRules measures alerts per second through the analyzer as Run consumes (HandleBatch
// over the reads of the bus) with rules on real Redis: b.N alerts over 1,000 containers and every class are
// published first with PublishBatch, then consumed until every one is answered. It reports alerts/s and
// the p50 and p99 time an alert spends in the handler (its read's decisions, answers and records: every
// alert of a read waits for the whole read).
//
//	go test -run XXX -bench AnalyzeRules -benchtime 50000x ./pkg/analyze/
func BenchmarkAnalyzeRules(b *testing.B) {
	e := newEnv(b)
	bb := bus.New(e.st.Conn, bus.Options{Batch: 500, Concurrency: 16, Block: 20 * time.Millisecond, MaxLen: 10_000_000})
	a := New(Options{Consumer: "bench"}, storesOf(e.st), bb)
	defer a.Close()
	ctx := context.Background()

	envs := make([]event.Envelope, b.N)
	for i := range envs {
		class := event.Classes[i%len(event.Classes)]
		al := alertOf(class, anomaly("cpu", 85, 97), anomaly("memory", 80, 90), func(a *event.ContainerUnhealthy) {
			a.ContainerName = fmt.Sprintf("svc-%d", i%1000)
			a.EventTime = time.Now().Add(-time.Duration(b.N-i) * time.Millisecond)
		})
		envs[i] = alertEnvelope(b, "node-a", al)
	}
	for chunk := range slices.Chunk(envs, 5000) {
		if err := bb.PublishBatch(ctx, event.StreamHealthAlert, chunk); err != nil {
			b.Fatal(err)
		}
	}

	var mu sync.Mutex
	lat := make([]time.Duration, 0, b.N)
	handler := func(ctx context.Context, ms []bus.Message) []error {
		start := time.Now()
		errs := a.HandleBatch(ctx, ms)
		d := time.Since(start)
		mu.Lock()
		for range ms {
			lat = append(lat, d)
		}
		mu.Unlock()
		return errs
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	b.ResetTimer()
	start := time.Now()
	go func() {
		done <- bb.ConsumeBatch(cctx, bus.Group{Name: GroupName, Consumer: "bench", Streams: []string{event.StreamHealthAlert}}, handler)
	}()
	for a.Stats().Alerts.Load()+a.Stats().Duplicates.Load() < int64(b.N) {
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	n, err := bb.Len(ctx, requestsA)
	if err != nil {
		b.Fatal(err)
	}
	fa, err := bb.Len(ctx, event.StreamFalseAlarm)
	if err != nil {
		b.Fatal(err)
	}
	if n+fa != int64(b.N) {
		b.Fatalf("%d answers to %d alerts", n+fa, b.N)
	}
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "alerts/s")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
}

// BenchmarkBusCeiling is the reference for BenchmarkAnalyzeRules on the same machine and Redis: the same
// alerts through the same bus settings, with a handler that makes one Redis round trip and decides
// nothing. The gap between the two is the analyzer's own cost.
//
//	go test -run XXX -bench 'AnalyzeRules|BusCeiling' -benchtime 50000x ./pkg/analyze/
func BenchmarkBusCeiling(b *testing.B) {
	e := newEnv(b)
	bb := bus.New(e.st.Conn, bus.Options{Batch: 500, Concurrency: 16, Block: 20 * time.Millisecond, MaxLen: 10_000_000})
	ctx := context.Background()
	envs := make([]event.Envelope, b.N)
	for i := range envs {
		envs[i] = alertEnvelope(b, "node-a", alertOf(event.Classes[i%len(event.Classes)]))
	}
	for chunk := range slices.Chunk(envs, 5000) {
		if err := bb.PublishBatch(ctx, event.StreamHealthAlert, chunk); err != nil {
			b.Fatal(err)
		}
	}
	var handled sync.WaitGroup
	handled.Add(b.N)
	h := func(ctx context.Context, m bus.Message) error {
		defer handled.Done()
		return e.rdb.HSet(ctx, schema.IncidentKey(m.Envelope.Incident), "seen", m.Envelope.ID).Err()
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	b.ResetTimer()
	start := time.Now()
	go func() {
		done <- bb.Consume(cctx, bus.Group{Name: GroupName, Consumer: "bench", Streams: []string{event.StreamHealthAlert}}, h)
	}()
	handled.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "alerts/s")
}
