package respond_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hemostat/hemostat/pkg/bus"
	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/respond"
	"github.com/hemostat/hemostat/pkg/respond/respondtest"
	"github.com/hemostat/hemostat/pkg/store"
	"github.com/hemostat/hemostat/pkg/store/ledger"
	"github.com/hemostat/hemostat/pkg/store/schema"
	"github.com/hemostat/hemostat/pkg/testenv"
)

// BenchmarkRequestToRestart measures the rules path from a remediation_needed entry published on the bus
// to the restart call reaching the engine (a recording runtime stamps the call, so Docker's own restart
// time is excluded): consume, inspect, ledger snapshot, host slot, ledger commit. It reports p50 and p99.
//
//	HEMOSTAT_TEST_REDIS_URL=redis://127.0.0.1:6390 go test -run '^$' -bench RequestToRestart -benchtime 2000x ./pkg/respond/
func BenchmarkRequestToRestart(b *testing.B) {
	st := openStore(b, testenv.RequireRedis(b))
	bs := bus.New(st.Conn, bus.Options{Block: 100 * time.Millisecond})
	fake := respondtest.NewFake(web("web-1", nil))
	calls := make(chan time.Time, 1)
	rec := &respondtest.Recorder{Inner: fake, OnWrite: func(c respondtest.Call) {
		if c.Op == "restart" {
			calls <- c.At
		}
	}}
	cfg := fastConfig(respond.Config{BackoffBase: time.Nanosecond, Cooldown: time.Nanosecond,
		BreakerWindow: time.Millisecond, MaxActionsPerHour: 1 << 30, StableFor: time.Nanosecond})
	r := respond.New(cfg, rec, respondStores(st), st.Audit, bs, respond.Options{Instance: "bench"})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = r.Run(ctx, bs) }) // exits when ctx is cancelled
	defer func() { cancel(); wg.Wait() }()

	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		env := request(b, "web-1", event.ActionRestart)
		sent := time.Now()
		if _, err := bs.Publish(ctx, requests, env); err != nil {
			b.Fatal(err)
		}
		select {
		case at := <-calls:
			lat = append(lat, at.Sub(sent))
		case <-time.After(10 * time.Second):
			b.Fatalf("request %d: no restart", i)
		}
		// Wait until the request is fully handled, so the next one is not held by this one's lease.
		deadline := time.Now().Add(10 * time.Second)
		for r.Stats().Handled.Load()+r.Stats().Duplicate.Load() < int64(i+1) || r.Stats().Acted.Load() < int64(i+1) || !doneMarked(ctx, st, env.ID) {
			if time.Now().After(deadline) {
				b.Fatalf("request %d not finished", i)
			}
			time.Sleep(50 * time.Microsecond)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

func doneMarked(ctx context.Context, st *store.Store, id string) bool {
	s, err := st.Ledger.Read(ctx, ledger.Query{Keys: schema.RespondKeys(host, "web-1", false), EventID: id}, time.Now())
	return err == nil && s.Done
}

// BenchmarkThroughput measures requests per second through one responder (16 consumers) on the rules path:
// b.N requests for distinct containers on the fake engine (healthy at once after the restart), each
// decided, committed, executed, verified, audited and published.
//
//	HEMOSTAT_TEST_REDIS_URL=redis://127.0.0.1:6390 go test -run '^$' -bench Throughput -benchtime 5000x ./pkg/respond/
func BenchmarkThroughput(b *testing.B) {
	st := openStore(b, testenv.RequireRedis(b))
	bs := bus.New(st.Conn, bus.Options{Block: 100 * time.Millisecond, Batch: 1})
	fake := respondtest.NewFake()
	names := make([]string, b.N)
	for i := range names {
		c := web(fmt.Sprintf("svc-%d", i), nil)
		c.HealthConfig = &docker.Healthcheck{Test: []string{"CMD", "true"}}
		fake.Add(c)
		names[i] = c.Name
	}
	cfg := fastConfig(respond.Config{MaxConcurrent: 1 << 20, MaxUnhealthy: 1 << 20})
	r := respond.New(cfg, fake, respondStores(st), st.Audit, bs, respond.Options{Instance: "bench", Workers: 16})
	envs := make([]event.Envelope, b.N)
	for i := range envs {
		envs[i] = request(b, names[i], event.ActionRestart)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < len(envs); i += 500 {
		if err := bs.PublishBatch(ctx, requests, envs[i:min(i+500, len(envs))]); err != nil {
			b.Fatal(err)
		}
	}
	wg.Go(func() { _ = r.Run(ctx, bs) }) // exits when ctx is cancelled
	waitOutcomes(ctx, b, bs)
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "requests/s")
}

// waitOutcomes polls until b.N remediation_complete entries are out: every request reported, not only
// decided.
func waitOutcomes(ctx context.Context, b *testing.B, bs *bus.Bus) {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		n, err := bs.Len(ctx, event.StreamRemediationComplete)
		if err == nil && n >= int64(b.N) {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d outcomes for %d requests (%v)", n, b.N, err)
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkStorm measures requests per second through one responder with its agent defaults (4 consumers,
// reads of 64) in a storm that needs no engine call: b.N requests over 1,000 containers in dry run, so the
// first request of each container is simulated and the repeats are denied by the backoff; every one is
// decided, committed, audited and published.
//
//	HEMOSTAT_TEST_REDIS_URL=redis://127.0.0.1:6390 go test -run '^$' -bench Storm -benchtime 50000x ./pkg/respond/
func BenchmarkStorm(b *testing.B) {
	st := openStore(b, testenv.RequireRedis(b))
	bs := bus.New(st.Conn, bus.Options{Block: 20 * time.Millisecond, Batch: 64, MaxLen: 10_000_000})
	fake := respondtest.NewFake()
	const containers = 1000
	for i := range containers {
		fake.Add(web(fmt.Sprintf("svc-%d", i), nil))
	}
	r := respond.New(fastConfig(respond.Config{DryRun: true}), fake, respondStores(st), st.Audit, bs, respond.Options{Instance: "bench"})
	envs := make([]event.Envelope, b.N)
	for i := range envs {
		envs[i] = request(b, fmt.Sprintf("svc-%d", i%containers), event.ActionRestart)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	for i := 0; i < len(envs); i += 1000 {
		if err := bs.PublishBatch(ctx, requests, envs[i:min(i+1000, len(envs))]); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	start := time.Now()
	wg.Go(func() { _ = r.Run(ctx, bs) }) // exits when ctx is cancelled
	waitOutcomes(ctx, b, bs)
	elapsed := time.Since(start)
	b.StopTimer()
	if h := r.Stats().Handled.Load(); h != int64(b.N) {
		b.Fatalf("%d decisions for %d requests", h, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "requests/s")
}
