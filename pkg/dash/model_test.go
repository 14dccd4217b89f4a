package dash

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/google/go-cmp/cmp"

	"github.com/alicebob/miniredis/v2"
	"github.com/hemostat/hemostat/pkg/bus"
	"github.com/hemostat/hemostat/pkg/container"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/respond"
	"github.com/hemostat/hemostat/pkg/store/schema"
	"github.com/redis/go-redis/v9"
)

func names(cs []Container) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

func TestOverviewFilterAndSort(t *testing.T) {
	tests := []struct {
		name string
		keys []string
		want []string
	}{
		{"by name", nil, []string{"api-1", "cache-1", "db-1", "proxy-1", "web-1", "worker-1"}},
		{"filter host", []string{"/", "node-b", "enter"}, []string{"cache-1", "proxy-1"}},
		{"filter state", []string{"/", "exited"}, []string{"worker-1"}},
		{"filter edited", []string{"/", "web-x", "backspace", "backspace"}, []string{"web-1"}},
		{"filter cleared", []string{"/", "web", "esc"}, []string{"api-1", "cache-1", "db-1", "proxy-1", "web-1", "worker-1"}},
		{"sort cpu", []string{"s", "s", "s", "s"}, []string{"worker-1", "proxy-1", "cache-1", "api-1", "db-1", "web-1"}},
		{"sort cpu desc", []string{"s", "s", "s", "s", "S"}, []string{"web-1", "db-1", "api-1", "cache-1", "proxy-1", "worker-1"}},
		{"sort breaker, ties by host/name", []string{"s", "s", "s", "s", "s", "s", "s"}, []string{"api-1", "db-1", "cache-1", "proxy-1", "web-1", "worker-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := keys(populated(newTestModel(120, 40)), tt.keys...)
			if diff := cmp.Diff(tt.want, names(m.overviewRows())); diff != "" {
				t.Errorf("rows (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNavigation(t *testing.T) {
	tests := []struct {
		name       string
		keys       []string
		wantView   viewID
		wantDetail string
	}{
		{"tab", []string{"tab"}, viewEvents, ""},
		{"tab tab tab wraps", []string{"tab", "tab", "tab"}, viewOverview, ""},
		{"shift+tab wraps back", []string{"shift+tab"}, viewHistory, ""},
		{"enter opens the selected container", []string{"j", "j", "enter"}, viewDetail, "node-a/db-1"},
		{"esc goes back", []string{"j", "enter", "esc"}, viewOverview, "node-b/cache-1"},
		{"cursor stops at the end", []string{"G", "j", "j", "enter"}, viewDetail, "node-a/worker-1"},
		{"history enter", []string{"3", "j", "enter"}, viewDetail, "node-a/worker-1"},
		{"history esc returns to history", []string{"3", "enter", "esc"}, viewHistory, "node-a/web-1"},
		{"events enter", []string{"2", "enter"}, viewDetail, "node-b/cache-1"},
		{"tab from detail", []string{"3", "enter", "tab"}, viewOverview, "node-a/web-1"},
		{"help swallows keys", []string{"?", "tab", "?"}, viewOverview, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := keys(populated(newTestModel(120, 40)), tt.keys...)
			if m.view != tt.wantView || m.detail != tt.wantDetail {
				t.Errorf("view %d detail %q, want %d %q", m.view, m.detail, tt.wantView, tt.wantDetail)
			}
		})
	}
}

func TestHistoryFilters(t *testing.T) {
	tests := []struct {
		name string
		keys []string
		want int
	}{
		{"all", nil, 7},
		{"container", []string{"/", "worker"}, 3},
		{"result success", []string{"f"}, 4},
		{"result failed", []string{"f", "f"}, 1},
		{"since 1h", []string{"t"}, 6},
		{"since 24h and success", []string{"t", "t", "f"}, 3},
		{"container and result", []string{"/", "web", "enter", "f"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := keys(populated(newTestModel(120, 40)), append([]string{"3"}, tt.keys...)...)
			if got := len(m.historyRows()); got != tt.want {
				t.Errorf("rows: got %d, want %d", got, tt.want)
			}
		})
	}
}

func TestKPIs(t *testing.T) {
	got := computeKPIs(newFixture(t0).snapshot(), t0, DefaultExpectedAgents)
	want := kpis{containers: 6, watched: 5, open: 2, remediations: 4, okRuns: 3, decisions: 6, falseAlarms: 1,
		alive: 3, expected: 4, missing: []string{"alert"}}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(kpis{})); diff != "" {
		t.Errorf("kpis (-want +got):\n%s", diff)
	}
}

func TestPauseBuffersEvents(t *testing.T) {
	m := populated(newTestModel(120, 40))
	before := len(m.evs)
	m = keys(m, "p")
	if !m.paused {
		t.Fatal("p did not pause")
	}
	ev := Event{Stream: event.StreamHealthAlert, ID: "99-0", Type: event.TypeContainerUnhealthy, Container: "api-1"}
	m = send(m, eventsMsg{batch: EventBatch{Events: []Event{ev}}, ok: true})
	if len(m.evs) != before || len(m.pending) != 1 {
		t.Fatalf("paused: %d events shown, %d pending; want %d and 1", len(m.evs), len(m.pending), before)
	}
	if !strings.Contains(m.Render(), "PAUSED (1 new)") {
		t.Error("the header does not say paused with one new event")
	}
	// A refresh tick while paused reads nothing.
	if _, cmd := m.Update(tickMsg{}); cmd == nil {
		t.Error("tick did not reschedule itself")
	}
	nm, _ := m.Update(tickMsg{})
	if nm.(Model).loading {
		t.Error("a tick started a read while paused")
	}
	m = keys(m, "p")
	if m.paused || len(m.evs) != before+1 || m.evs[0].ID != "99-0" || m.counts[event.TypeContainerUnhealthy] != 3 {
		t.Errorf("resumed: paused %v, %d events, newest %q, count %d", m.paused, len(m.evs), m.evs[0].ID, m.counts[event.TypeContainerUnhealthy])
	}
	// Redelivered events (same stream and id) are not shown twice.
	m = send(m, eventsMsg{batch: EventBatch{Events: []Event{ev}}, ok: true})
	if len(m.evs) != before+1 {
		t.Errorf("duplicate shown: %d events", len(m.evs))
	}
}

func TestEventSelectionStaysOnNewEvents(t *testing.T) {
	m := keys(populated(newTestModel(120, 40)), "2", "j", "j")
	sel := m.eventRows()[m.cursor[viewEvents]].ID
	m = send(m, eventsMsg{batch: EventBatch{Events: []Event{{Stream: "s", ID: "new-1", Type: "x"}, {Stream: "s", ID: "new-2", Type: "x"}}}, ok: true})
	if got := m.eventRows()[m.cursor[viewEvents]].ID; got != sel {
		t.Errorf("selection moved from %s to %s", sel, got)
	}
	// At the top, the selection follows the newest event.
	m = keys(m, "g")
	m = send(m, eventsMsg{batch: EventBatch{Events: []Event{{Stream: "s", ID: "new-3", Type: "x"}}}, ok: true})
	if got := m.eventRows()[m.cursor[viewEvents]].ID; got != "new-3" {
		t.Errorf("at the top: selected %s, want new-3", got)
	}
}

func TestRefreshAndErrors(t *testing.T) {
	src := &fakeSource{}
	m := New(context.Background(), src, nil, testOptions())
	m = send(m, tea.WindowSizeMsg{Width: 80, Height: 24})

	// r reads now; a second r while the read is in flight does not pile up reads.
	nm, cmd := m.Update(press("r")[0])
	m = nm.(Model)
	if cmd == nil || !m.loading {
		t.Fatal("r did not start a read")
	}
	if _, cmd2 := m.Update(press("r")[0]); cmd2 != nil {
		t.Error("r started a second read while one is in flight")
	}
	src.set(Snapshot{}, errRefused)
	m = send(m, cmd())
	if m.err == nil || m.loading {
		t.Fatalf("error not recorded: err %v loading %v", m.err, m.loading)
	}
	if !strings.Contains(m.Render(), "Redis is unreachable at 127.0.0.1:6379") {
		t.Error("the unreachable screen is missing")
	}
	// The next tick retries and recovers.
	src.set(newFixture(t0).snapshot(), nil)
	nm, cmd = m.Update(tickMsg{})
	m = nm.(Model)
	for _, msg := range runBatch(cmd) {
		m = send(m, msg)
	}
	if m.err != nil || !m.have || !strings.Contains(m.Render(), "web-1") {
		t.Errorf("not recovered: err %v have %v", m.err, m.have)
	}
	if src.reads != 2 {
		t.Errorf("reads: got %d, want 2", src.reads)
	}
}

// runBatch runs a command and the commands of a batch, except timers, and returns their messages.
func runBatch(cmd tea.Cmd) []tea.Msg {
	if cmd == nil {
		return nil
	}
	done := make(chan tea.Msg, 1)
	go func() { done <- cmd() }()
	var msg tea.Msg
	select {
	case msg = <-done:
	case <-time.After(100 * time.Millisecond):
		return nil // a timer
	}
	if b, ok := msg.(tea.BatchMsg); ok {
		var out []tea.Msg
		for _, c := range b {
			out = append(out, runBatch(c)...)
		}
		return out
	}
	return []tea.Msg{msg}
}

func TestQuit(t *testing.T) {
	for _, k := range []tea.KeyPressMsg{{Code: 'q', Text: "q"}, {Code: 'c', Mod: tea.ModCtrl}} {
		_, cmd := newTestModel(80, 24).Update(k)
		if cmd == nil {
			t.Fatalf("%s: no command", k)
		}
		if _, ok := cmd().(tea.QuitMsg); !ok {
			t.Errorf("%s does not quit", k)
		}
	}
	// While filtering, q is text.
	m := keys(populated(newTestModel(80, 24)), "/", "q")
	if m.filters[viewOverview] != "q" {
		t.Errorf("filter: got %q, want q", m.filters[viewOverview])
	}
}

func TestResize(t *testing.T) {
	m := populated(newTestModel(120, 40))
	for _, sz := range [][2]int{{80, 24}, {60, 15}, {200, 60}, {20, 5}} {
		m = send(m, tea.WindowSizeMsg{Width: sz[0], Height: sz[1]})
		for _, v := range []string{"1", "2", "3"} {
			m = keys(m, v)
			checkShape(t, strippedRender(m), sz[0], sz[1])
		}
	}
}

// explainOf is the Why of a container of the snapshot, one line per bullet.
func explainOf(t *testing.T, snap Snapshot, name string) string {
	t.Helper()
	m := send(newTestModel(120, 40), snapshotMsg{snap: snap})
	for _, c := range snap.Containers {
		if c.Name == name {
			return strings.Join(m.explain(c, m.incidentsOf(c)), "\n")
		}
	}
	t.Fatalf("no container %s in the snapshot", name)
	return ""
}

// withPolicy returns the snapshot with the policy its responders publish changed by f.
func withPolicy(snap Snapshot, f func(*respond.Config)) Snapshot {
	snap.Agents = slices.Clone(snap.Agents)
	for i, a := range snap.Agents {
		if a.Policy != nil {
			p := *a.Policy
			f(&p)
			snap.Agents[i].Policy = &p
		}
	}
	return snap
}

// withLabels returns the snapshot with labels added to one container.
func withLabels(snap Snapshot, name string, labels map[string]string) Snapshot {
	snap.Containers = slices.Clone(snap.Containers)
	for i, c := range snap.Containers {
		if c.Name == name {
			l := maps.Clone(c.Labels)
			if l == nil {
				l = map[string]string{}
			}
			maps.Copy(l, labels)
			snap.Containers[i].Labels = l
		}
	}
	return snap
}

func TestExplain(t *testing.T) {
	populated, healing := newFixture(t0).snapshot(), newHealingFixture(t0).snapshot()
	tests := []struct {
		name, container string
		snap            Snapshot
		want, not       []string
	}{
		{"waiting for the backoff after a relapse", "web-1", populated, []string{
			"cooling down: the next action is allowed in 1m30s (backoff step 2); requests before then are denied: cooldown.",
			"the analyzer chose restart (rules, confidence 0.90)",
			"relapsed 4s after restart 1; next attempt in 1m30s (attempt 3 of 3).",
			"last decision 5m ago: restart executed → success"}, []string{"did not hold", "default policy"}},
		{"breaker open, awaiting analysis", "worker-1", populated, []string{
			"circuit breaker open: 3 actions within 1h (max 3); it closes in 40m (or `hemostat respond reset worker-1`).",
			"waiting for the analyzer's decision"}, nil},
		{"suggest mode on a host without a responder", "cache-1", populated, []string{
			"no responder is running on node-b: hemostat acts on nothing there until one starts; explained here with the default policy.",
			"cooling down (shadow ledger): the next action is allowed in 15s (backoff step 1)",
			"mode suggest: hemostat records what it would do in the shadow ledger"}, nil},
		{"not watched", "proxy-1", populated, []string{"not watched"}, nil},
		{"nothing to do", "api-1", populated, []string{"no open incident: nothing to do."}, []string{"protected"}},
		{"next attempt after a failed verification, label backoff", "web-2", healing, []string{
			"next attempt in 12s (attempt 2 of 3)."}, nil},
		{"held by the blast radius", "api-2", healing, []string{
			"held: 2 actions already running on the host (max 2); hemostat looks again in 5s."}, nil},
		{"gave up", "worker-2", healing, []string{
			"gave up at 11:58:00 after 3 attempts: reset with `hemostat respond reset worker-2`, or the breaker closes at 12:58:00 (in 58m).",
			"circuit breaker open: 3 actions within 1h (max 3); it closes in 58m"}, nil},
		{"healthy, waiting out the hysteresis", "cache-2", healing, []string{
			"healthy since 11:59:10: recovered if it stays so for the monitor's recovery hysteresis; the backoff starts again at 12:09:10 (after 10m healthy)."}, nil},

		// The responder's policy and the container's labels decide, as they do for the responder.
		{"protected label read as ParseBool reads it", "api-1", withLabels(populated, "api-1", map[string]string{container.LabelProtected: "1"}),
			[]string{"protected (label hemostat.protected=true): hemostat never acts on it; requests are denied: protected."}, nil},
		{"protected label that is no boolean", "api-1", withLabels(populated, "api-1", map[string]string{container.LabelProtected: "yes"}),
			nil, []string{"protected"}},
		{"self label false is not protected", "api-1", withLabels(populated, "api-1", map[string]string{container.LabelSelf: "false"}),
			nil, []string{"protected"}},
		{"--protected of the host's responder", "web-1", withPolicy(populated, func(c *respond.Config) { c.Protected = []string{"node-a/web-1"} }),
			[]string{"protected (in the --protected list)"}, []string{"next attempt"}},
		{"the responder's self prefix", "api-1", withPolicy(populated, func(c *respond.Config) { c.SelfPrefix = "api" }),
			[]string{`protected (hemostat's own container (name prefix "api"))`}, nil},
		{"--max-actions-per-hour 2: the next look opens the breaker", "web-1", withPolicy(populated, func(c *respond.Config) { c.MaxActionsPerHour = 2 }),
			[]string{"the breaker opens at the next request: 2 actions within 1h (max 2)",
				"2 of 2 attempts made within 1h: at the next look, in 1m30s, the breaker opens; hemostat then gives up and escalates."}, nil},
		{"a max_actions_per_hour label", "web-1", withLabels(populated, "web-1", map[string]string{respond.LabelMaxActionsPerHour: "5"}),
			[]string{"next attempt in 1m30s (attempt 3 of 5)."}, nil},
		{"--healthy-reset", "cache-2", withPolicy(healing, func(c *respond.Config) { c.HealthyReset = 2 * time.Minute }),
			[]string{"the backoff starts again at 12:01:10 (after 2m healthy)."}, nil},
		{"--dry-run", "web-2", withPolicy(healing, func(c *respond.Config) { c.DryRun = true }),
			[]string{"dry run (respond --dry-run)"}, nil},
		{"a responder that publishes no policy", "web-1", func() Snapshot {
			s := populated
			s.Agents = slices.Clone(s.Agents)
			for i := range s.Agents {
				s.Agents[i].Policy = nil
			}
			return s
		}(), []string{"respond node-a-1 on node-a does not publish its policy (an older version): explained here with the default policy."}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := explainOf(t, tt.snap, tt.container)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("explain(%s) lacks %q:\n%s", tt.container, w, got)
				}
			}
			for _, w := range tt.not {
				if strings.Contains(got, w) {
					t.Errorf("explain(%s) says %q:\n%s", tt.container, w, got)
				}
			}
		})
	}
}

func TestDecodeTolerance(t *testing.T) {
	url := "redis://" + miniredis.RunT(t).Addr() + "/0"
	rdb := rawClient(t, url)
	ctx := context.Background()
	rdb.HSet(ctx, schema.ContainersKey("a"), "a/good", `{"name":"good","host":"a","state":"running"}`, "a/bad", `{"name":`)
	rdb.HSet(ctx, schema.ContainersKey("b"), "b/nameless", `{}`)
	rdb.SAdd(ctx, schema.KeyHosts, "a", "b")
	rdb.HSet(ctx, schema.StatsKey("a/good"), schema.FieldSample, "nope", schema.FieldHistory, `{"cpu":[1,2]}`)
	rdb.HSet(ctx, schema.LedgerKey("a/good"), schema.FieldLedgerAttempts, "garbage", schema.FieldNextAllowedMS, "x")
	rdb.ZAdd(ctx, schema.KeyIncidentsOpen, redis.Z{Score: 1000, Member: "a/good/crashed"}, redis.Z{Score: 900, Member: "a/good/unhealthy"})
	rdb.HSet(ctx, schema.IncidentKey("a/good/unhealthy"), schema.FieldState, schema.StateClosed)
	s, err := openSource(t, url).Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := names(s.Containers); !cmp.Equal(got, []string{"good", "nameless"}) {
		t.Errorf("containers: got %v", got)
	}
	if len(s.Problems) != 3 {
		t.Errorf("problems: got %v, want the bad summary, the bad sample and the bad ledger", s.Problems)
	}
	c := s.Containers[0]
	if c.Sample != nil || len(c.History.CPU) != 2 || c.Ledger == nil || c.Ledger.Breaker != "closed" || !c.Ledger.NextAllowed().IsZero() {
		t.Errorf("good container: %+v ledger %+v", c, c.Ledger)
	}
	if len(s.Incidents) != 1 {
		t.Fatalf("incidents: got %d, want 1 (a closed one is not open)", len(s.Incidents))
	}
	in := s.Incidents[0]
	if in.Host != "a" || in.Container != "good" || in.Class != "crashed" || in.State != "open" || in.OpenedAt.UnixMilli() != 1000 {
		t.Errorf("incident from its id: %+v", in)
	}
	if ev := decodeEvent(bus.Entry{Stream: "s", ID: "1-0", Raw: []byte("{bad")}); ev.Type != "malformed" || ev.Raw != "{bad" {
		t.Errorf("malformed event: %+v", ev)
	}
	dl := decodeEvent(bus.Entry{Stream: event.StreamDeadLetter, ID: "1-0", Raw: []byte("{bad"), Extra: map[string]string{"reason": "malformed"}})
	if dl.Type != TypeDeadLetter || dl.Raw != `{"event":"{bad","reason":"malformed"}` {
		t.Errorf("malformed dead letter: %+v", dl)
	}
}

func TestDetailScroll(t *testing.T) {
	m := keys(populated(newTestModel(80, 24)), "/", "web-1", "enter", "enter")
	top := strippedRender(m)
	m = keys(m, "G")
	bottom := strippedRender(m)
	if !strings.Contains(bottom, "Last decisions") || strings.Contains(bottom, "Why") {
		t.Errorf("G does not scroll to the end:\n%s", bottom)
	}
	// One k from the end moves the view up by one line, not back through positions past the end.
	m = keys(m, "k")
	if got := strippedRender(m); got == bottom || got == top {
		t.Errorf("k after G did not scroll up one line:\n%s", got)
	}
	m = keys(m, "g")
	if got := strippedRender(m); got != top {
		t.Errorf("g does not return to the top:\n%s", got)
	}
}

// TestDetailReadsTheIndex: the detail view shows the decisions its index read returns, also those older
// than the trail the snapshot keeps.
func TestDetailReadsTheIndex(t *testing.T) {
	f := newFixture(t0)
	snap := f.snapshot()
	src := &fakeSource{snap: snap}
	m := New(context.Background(), src, nil, testOptions())
	m = send(m, tea.WindowSizeMsg{Width: 120, Height: 60}, snapshotMsg{snap: snap})
	// The snapshot's trail lost web-1's entries (it keeps only the newest); the index still has them.
	trimmed := snap
	trimmed.Audit = nil
	m = send(m, snapshotMsg{snap: trimmed})
	m = keys(m, "/", "web-1", "enter")
	nm, cmd := m.Update(press("enter")[0])
	m = nm.(Model)
	if m.view != viewDetail {
		t.Fatal("enter did not open the detail")
	}
	if strings.Contains(strippedRender(m), "11-28 11:40:00  restart executed → success") {
		t.Fatal("decisions shown before the index read")
	}
	for _, msg := range runBatch(cmd) {
		m = send(m, msg)
	}
	for _, want := range []string{"11-28 11:40:00  restart executed → success", "11-28 11:55:00  restart executed → success"} {
		if !strings.Contains(strippedRender(m), want) {
			t.Errorf("decision %q from the index is missing:\n%s", want, strippedRender(m))
		}
	}
}

func TestSelectionSurvivesRefresh(t *testing.T) {
	f := newFixture(t0)
	m := keys(populated(newTestModel(120, 40)), "j", "j") // db-1
	snap := f.snapshot()
	extra := snap.Containers[0]
	extra.Name, extra.Host = "aaa-new", "node-a"
	snap.Containers = append([]Container{extra}, snap.Containers...)
	m = send(m, snapshotMsg{snap: snap})
	rows := m.overviewRows()
	if got := rows[m.cursor[viewOverview]].Name; got != "db-1" {
		t.Errorf("after a container appeared above it, the selection is %s, want db-1", got)
	}
	// The selected container went away: the cursor stays in range.
	snap.Containers = snap.Containers[:2]
	m = send(m, snapshotMsg{snap: snap})
	if c := m.cursor[viewOverview]; c != 1 {
		t.Errorf("cursor %d after rows went away, want 1 (the last row)", c)
	}
}

func TestEmptySystemSaysWhatToStart(t *testing.T) {
	tests := []struct {
		name   string
		agents []Agent
		want   string
	}{
		{"nothing running", nil, "start `hemostat run` or `hemostat monitor`"},
		{"monitor running", []Agent{{Kind: "monitor", Instance: "a"}}, "a monitor is running but has listed none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := send(newTestModel(100, 30), snapshotMsg{snap: Snapshot{Time: t0, Agents: tt.agents}})
			if got := strippedRender(m); !strings.Contains(got, tt.want) {
				t.Errorf("screen lacks %q:\n%s", tt.want, got)
			}
		})
	}
}
