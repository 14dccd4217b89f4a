package agents_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/hemostat/hemostat/pkg/store"
	"github.com/hemostat/hemostat/pkg/store/schema"
	"github.com/hemostat/hemostat/pkg/store/storetest"
	"github.com/hemostat/hemostat/pkg/testenv"
)

var t0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func list(t *testing.T, st *store.Store) ([]schema.Agent, []error) {
	t.Helper()
	got, problems, err := st.Agents.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(a, b schema.Agent) int { return strings.Compare(a.Kind+a.Instance, b.Kind+b.Instance) })
	return got, problems
}

func TestHeartbeatListRemove(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		if got, problems := list(t, st); got != nil || problems != nil {
			t.Errorf("agents of nothing = %v %v", got, problems)
		}
		mon := schema.Agent{Kind: "monitor", Instance: "a-1", Version: "1.2.3", Host: "a", StartedAt: t0}
		resp := schema.Agent{Kind: "respond", Instance: "a-2", Version: "1.2.3", Host: "a", StartedAt: t0, Mode: "dry-run",
			Policy: `{"max_concurrent":2}`}
		ana := schema.Agent{Kind: "analyze", Instance: "x", Version: "1.2.3", StartedAt: t0, LLM: "claude", LLMMode: "advisory"}
		for _, a := range []schema.Agent{mon, resp, ana} {
			if err := st.Agents.Heartbeat(ctx, a, t0.Add(time.Minute), time.Minute); err != nil {
				t.Fatal(err)
			}
		}
		// A second beat moves the last heartbeat on.
		if err := st.Agents.Heartbeat(ctx, mon, t0.Add(2*time.Minute), time.Minute); err != nil {
			t.Fatal(err)
		}
		if ttl := rdb.PTTL(ctx, schema.AgentKey("monitor", "a-1")).Val(); ttl <= 0 || ttl > time.Minute {
			t.Errorf("heartbeat ttl = %s, want within a minute", ttl)
		}
		got, problems := list(t, st)
		mon.LastHeartbeat = t0.Add(2 * time.Minute)
		resp.LastHeartbeat, ana.LastHeartbeat = t0.Add(time.Minute), t0.Add(time.Minute)
		if diff := cmp.Diff([]schema.Agent{ana, mon, resp}, got); diff != "" || problems != nil {
			t.Errorf("agents (-want +got):\n%s%v", diff, problems)
		}
		if err := st.Agents.Remove(ctx, "respond", "a-2"); err != nil {
			t.Fatal(err)
		}
		if got, _ := list(t, st); len(got) != 2 || got[0].Kind != "analyze" || got[1].Kind != "monitor" {
			t.Errorf("agents after the respond agent stopped = %+v", got)
		}
		if err := st.Agents.Remove(ctx, "respond", "a-2"); err != nil {
			t.Errorf("removing a removed heartbeat: %v", err)
		}
	})
}

// TestHeartbeatExpires: an agent that stops beating drops out of the list when its ttl passes.
func TestHeartbeatExpires(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		if err := st.Agents.Heartbeat(ctx, schema.Agent{Kind: "alert", Instance: "1", StartedAt: t0}, time.Now(), time.Hour); err != nil {
			t.Fatal(err)
		}
		if err := st.Agents.Heartbeat(ctx, schema.Agent{Kind: "export", Instance: "1", StartedAt: t0}, time.Now(), 50*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 5*time.Second, "the short heartbeat to expire", func() bool {
			got, _ := list(t, st)
			return len(got) == 1 && got[0].Kind == "alert"
		})
	})
}

// TestListDecodes: a heartbeat without kind or instance takes them from its key; one that does not decode
// is listed as far as it does and reported.
func TestListDecodes(t *testing.T) {
	t.Parallel()
	storetest.Backends(t, func(t *testing.T, st *store.Store, rdb *redis.Client) {
		ctx := context.Background()
		rdb.HSet(ctx, schema.AgentKey("monitor", "m-1"), schema.FieldVersion, "0.9")
		rdb.HSet(ctx, schema.AgentKey("respond", "r-1"), schema.FieldKind, "respond", schema.FieldInstance, "r-1",
			schema.FieldStartedAt, "yesterday", schema.FieldLastHeartbeat, schema.FormatTime(t0))
		got, problems := list(t, st)
		want := []schema.Agent{{Kind: "monitor", Instance: "m-1", Version: "0.9"}, {Kind: "respond", Instance: "r-1", LastHeartbeat: t0}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("agents (-want +got):\n%s", diff)
		}
		if len(problems) != 1 || !strings.Contains(problems[0].Error(), schema.AgentKey("respond", "r-1")) ||
			!strings.Contains(problems[0].Error(), schema.FieldStartedAt) {
			t.Errorf("problems = %v, want one naming the respond agent's key and %s", problems, schema.FieldStartedAt)
		}
	})
}
