package containers_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/container"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/store"
	"github.com/hemostat/hemostat/pkg/store/containers"
	"github.com/hemostat/hemostat/pkg/store/schema"
	"github.com/hemostat/hemostat/pkg/store/storetest"
)

var t0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func summary(host, name, state string) container.Summary {
	return container.Summary{ID: "id-" + name, Name: name, Host: host, Image: "img:" + name, State: state,
		Mode: container.ModeAuto, Watched: true, Labels: map[string]string{"app": name}, UpdatedAt: t0}
}

// TestWriteContainers: a host's write replaces its part of the table and leaves the other hosts' alone,
// a host whose name starts with another's included.
func TestWriteContainers(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		other, prefixed := summary("h2", "db", "running"), summary("h10", "x", "exited")
		if err := st.Containers.WriteContainers(ctx, "h2", []container.Summary{other}); err != nil {
			t.Fatal(err)
		}
		if err := st.Containers.WriteContainers(ctx, "h10", []container.Summary{prefixed}); err != nil {
			t.Fatal(err)
		}
		a, b := summary("h1", "a", "running"), summary("h1", "b", "running")
		if err := st.Containers.WriteContainers(ctx, "h1", []container.Summary{a, b}); err != nil {
			t.Fatal(err)
		}
		a2 := a
		a2.State, a2.RestartCount, a2.Incidents = "restarting", 3, []string{"crashed"}
		if err := st.Containers.WriteContainers(ctx, "h1", []container.Summary{a2}); err != nil {
			t.Fatal(err)
		}
		got, problems, err := st.Containers.All(ctx)
		if err != nil || problems != nil {
			t.Fatalf("all: %v %v", problems, err)
		}
		want := map[string]container.Summary{"h1/a": a2, "h2/db": other, "h10/x": prefixed}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("containers (-want +got):\n%s", diff)
		}
		targets, err := st.Containers.Targets(ctx)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(targets)
		if diff := cmp.Diff([]string{"h1/a", "h10/x", "h2/db"}, targets); diff != "" {
			t.Errorf("targets (-want +got):\n%s", diff)
		}
		// A host with no containers left empties its part.
		if err := st.Containers.WriteContainers(ctx, "h1", nil); err != nil {
			t.Fatal(err)
		}
		if got, _, _ := st.Containers.All(ctx); len(got) != 2 || got["h1/a"].Name != "" {
			t.Errorf("after h1 lost its containers: %v", got)
		}
	})
}

// TestAll is the dashboard's read of the table: old summaries without the watched flag count as
// watched, one without its host or name takes them from its field, one that does not decode is reported.
func TestAll(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		if got, problems, err := st.Containers.All(ctx); len(got) != 0 || problems != nil || err != nil {
			t.Errorf("all of nothing = %v %v %v", got, problems, err)
		}
		rdb.SAdd(ctx, schema.KeyHosts, "a")
		rdb.HSet(ctx, schema.ContainersKey("a"),
			"a/web", `{"name":"web","host":"a","state":"running"}`,
			"a/off", `{"name":"off","host":"a","watched":false}`,
			"a/anon", `{"state":"exited"}`,
			"a/bad", `{"name":`)
		got, problems, err := st.Containers.All(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]container.Summary{
			"a/web":  {Name: "web", Host: "a", State: "running", Watched: true},
			"a/off":  {Name: "off", Host: "a"},
			"a/anon": {Name: "anon", Host: "a", State: "exited", Watched: true},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("containers (-want +got):\n%s", diff)
		}
		if len(problems) != 1 || !strings.Contains(problems[0].Error(), "a/bad") ||
			!strings.Contains(problems[0].Error(), schema.ContainersKey("a")) {
			t.Errorf("problems = %v, want one naming a/bad in %s", problems, schema.ContainersKey("a"))
		}
	})
}

func TestStats(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		sample := &container.Sample{Time: t0, Source: "cgroup", Metrics: event.Metrics{CPUPercent: 12.5, MemoryPercent: 40},
			CPUTotalNS: 123456789, OnlineCPUs: 2}
		web := schema.Stats{Sample: sample, History: container.History{CPU: []float64{1, 2.5}, Memory: []float64{40}}}
		fresh := schema.Stats{History: container.History{CPU: []float64{}, Memory: []float64{}}}
		err := st.Containers.WriteStats(ctx, []containers.StatsEntry{{Target: "h/web", Stats: web}, {Target: "h/new", Stats: fresh}}, 3*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if ttl := rdb.PTTL(ctx, schema.StatsKey("h/web")).Val(); ttl <= 0 || ttl > 3*time.Second {
			t.Errorf("stats ttl = %s, want within 3s", ttl)
		}
		if err := rdb.HSet(ctx, schema.StatsKey("h/bad"), schema.FieldSample, "{", schema.FieldHistory, `{"cpu":[7]}`).Err(); err != nil {
			t.Fatal(err)
		}
		got, problems, err := st.Containers.Stats(ctx, []string{"h/web", "h/new", "h/bad", "h/none"})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]schema.Stats{"h/web": web, "h/new": fresh, "h/bad": {History: container.History{CPU: []float64{7}}}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("stats (-want +got):\n%s", diff)
		}
		if len(problems) != 1 || !strings.Contains(problems[0].Error(), "h/bad") || !strings.Contains(problems[0].Error(), schema.FieldSample) {
			t.Errorf("problems = %v, want one naming h/bad and %s", problems, schema.FieldSample)
		}
		if got, problems, err := st.Containers.Stats(ctx, nil); len(got) != 0 || problems != nil || err != nil {
			t.Errorf("stats of nothing = %v %v %v", got, problems, err)
		}
		if err := st.Containers.WriteStats(ctx, nil, time.Second); err != nil {
			t.Errorf("write of no stats: %v", err)
		}
	})
}

func TestHosts(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		if got, problems, err := st.Containers.Hosts(ctx); got != nil || problems != nil || err != nil {
			t.Errorf("hosts of nothing = %v %v %v", got, problems, err)
		}
		h1 := schema.HostStatus{Host: "h1", Sampler: "cgroup", Workers: 4, RoundSeconds: 0.25, Rounds: 10, RoundsSkipped: 1,
			SampleErrors: 2, Events: 30, AlertsBuffered: 3, AlertsDropped: 4, Containers: 12, Running: 11, Watched: 9, UpdatedAt: t0}
		h2 := schema.HostStatus{Host: "h2", Sampler: "api", UpdatedAt: t0.Add(time.Second)}
		for _, h := range []schema.HostStatus{h1, h2, h1} {
			if err := st.Containers.WriteHost(ctx, h); err != nil {
				t.Fatal(err)
			}
		}
		// A host listed whose figures are gone is left out; one whose figures do not decode is reported.
		rdb.SAdd(ctx, schema.KeyHosts, "gone", "bad")
		rdb.HSet(ctx, schema.HostKey("bad"), schema.FieldSampler, "api", schema.FieldWorkers, "four")
		got, problems, err := st.Containers.Hosts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(got, func(a, b schema.HostStatus) int { return strings.Compare(a.Host, b.Host) })
		want := []schema.HostStatus{{Host: "bad", Sampler: "api"}, h1, h2}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("hosts (-want +got):\n%s", diff)
		}
		if len(problems) != 1 || !strings.Contains(problems[0].Error(), schema.FieldWorkers) {
			t.Errorf("problems = %v, want one naming %s", problems, schema.FieldWorkers)
		}
		if h, found, err := st.Containers.Host(ctx, "h1"); !found || err != nil || !cmp.Equal(h, h1) {
			t.Errorf("host h1 = %+v %v %v", h, found, err)
		}
		if h, found, err := st.Containers.Host(ctx, "none"); found || err != nil || !cmp.Equal(h, schema.HostStatus{}) {
			t.Errorf("host none = %+v %v %v, want not found", h, found, err)
		}
	})
}

// TestTargetsSortedAndHas: the readers of every host's hash, across hosts; a host listed with no hash
// (its figures written, not yet its containers) reads as none, and the legacy shared table is not read.
func TestTargetsSortedAndHas(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		if got, err := st.Containers.Targets(ctx); err != nil || len(got) != 0 {
			t.Fatalf("empty: %v, %v", got, err)
		}
		for host, names := range map[string][]string{"h2": {"db"}, "h1": {"web", "api"}} {
			var sums []container.Summary
			for _, n := range names {
				sums = append(sums, container.Summary{Host: host, Name: n})
			}
			if err := st.Containers.WriteContainers(ctx, host, sums); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.Containers.WriteHost(ctx, schema.HostStatus{Host: "h3"}); err != nil {
			t.Fatal(err)
		}
		rdb.HSet(ctx, schema.KeyContainersLegacy, "h1/old", "{}", "h4/x", "{}")
		got, err := st.Containers.Targets(ctx)
		if d := cmp.Diff([]string{"h1/api", "h1/web", "h2/db"}, got); err != nil || d != "" {
			t.Errorf("Targets (-want +got): %v\n%s", err, d)
		}
		all, problems, err := st.Containers.All(ctx)
		if err != nil || problems != nil {
			t.Fatalf("all: %v %v", problems, err)
		}
		want := map[string]container.Summary{"h1/web": {Host: "h1", Name: "web"}, "h1/api": {Host: "h1", Name: "api"},
			"h2/db": {Host: "h2", Name: "db"}}
		if d := cmp.Diff(want, all); d != "" {
			t.Errorf("All (-want +got):\n%s", d)
		}
		for target, want := range map[string]bool{"h1/web": true, "h2/db": true, "h1/db": false, "h2/web": false,
			"h1/old": false, "h4/x": false, "h3/x": false, "web": false, "": false} {
			if ok, err := st.Containers.Has(ctx, target); err != nil || ok != want {
				t.Errorf("Has(%s) = %v, %v; want %v", target, ok, err, want)
			}
		}
	})
}
