package export_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hemostat/hemostat/pkg/container"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/export"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

// BenchmarkScrape measures one scrape (state read from Redis and encoding) with 100 containers.
func BenchmarkScrape(b *testing.B) {
	e := open(b)
	ctx := context.Background()
	if err := e.st.Conn.Client().SAdd(ctx, schema.KeyHosts, "node-a").Err(); err != nil {
		b.Fatal(err)
	}
	for i := range 100 {
		name := fmt.Sprintf("web-%d", i)
		sum := container.Summary{ID: name, Name: name, Host: "node-a", Image: "nginx", State: "running", RestartCount: i, Mode: "auto"}
		smp := container.Sample{Time: time.Now(), Metrics: event.Metrics{CPUPercent: 12.5, MemoryPercent: 40, MemoryUsage: 1 << 27,
			MemoryLimit: 1 << 29, NetworkRxBytes: 1 << 20, NetworkTxBytes: 1 << 20, PIDs: 5}}
		if err := e.st.Conn.Client().HSet(ctx, schema.ContainersKey("node-a"), "node-a/"+name, mustJSON(b, sum)).Err(); err != nil {
			b.Fatal(err)
		}
		if err := e.st.Conn.Client().HSet(ctx, schema.StatsKey(schema.Target("node-a", name)), "sample", mustJSON(b, smp)).Err(); err != nil {
			b.Fatal(err)
		}
	}
	exp := export.New(ctx, export.Options{}, sourcesOf(e.st, e.bus))
	for b.Loop() {
		fams, err := exp.Registry().Gather()
		if err != nil || len(fams) == 0 {
			b.Fatal(err)
		}
	}
}
