package bus_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hemostat/hemostat/pkg/bus"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/testenv"
)

// BenchmarkPublishConsumeAck measures events per second through one consumer group on real Redis:
// batched publish, batched read, one XACK per batch.
func BenchmarkPublishConsumeAck(b *testing.B) {
	benchStage(b, false)
}

// BenchmarkStage measures one agent stage: consume, publish the answer on the next stream, ack.
func BenchmarkStage(b *testing.B) {
	benchStage(b, true)
}

func benchStage(b *testing.B, forward bool) {
	url := testenv.RequireRedis(b)
	bb, _ := newBusTB(b, url, bus.Options{Block: 20 * time.Millisecond, Batch: 500, Concurrency: 16})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var handled atomic.Int64
	h := func(ctx context.Context, m bus.Message) error {
		if forward {
			if _, err := bb.PublishRaw(ctx, event.StreamRemediationNeeded, m.Raw); err != nil {
				return err
			}
		}
		handled.Add(1)
		return nil
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = bb.Consume(ctx, bus.Group{Name: "bench", Consumer: "c1", Streams: []string{stream}}, h)
	}()
	envs := make([]event.Envelope, 500)
	for i := range envs {
		envs[i] = alert(i)
	}
	b.ResetTimer()
	start := time.Now()
	for sent := 0; sent < b.N; sent += len(envs) {
		// Sustained, not a burst: keep the backlog well inside the stream cap (MaxLen), as a real producer
		// paced by its consumers would; a backlog beyond the cap is trimmed away.
		for int64(sent)-handled.Load() > 20000 {
			time.Sleep(100 * time.Microsecond)
		}
		n := min(len(envs), b.N-sent)
		if err := bb.PublishBatch(ctx, stream, envs[:n]); err != nil {
			b.Fatal(err)
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for handled.Load() < int64(b.N) {
		if time.Now().After(deadline) {
			b.Fatalf("handled %d of %d", handled.Load(), b.N)
		}
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	cancel()
	<-done
}
