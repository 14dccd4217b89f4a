package dash

import (
	"context"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/google/go-cmp/cmp"

	"github.com/alicebob/miniredis/v2"
	"github.com/hemostat/hemostat/pkg/bus"
	"github.com/hemostat/hemostat/pkg/event"
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

func TestExplain(t *testing.T) {
	f := newFixture(t0)
	snap := f.snapshot()
	byName := map[string]Container{}
	for _, c := range snap.Containers {
		byName[c.Name] = c
	}
	incs := func(name string) []Incident {
		var out []Incident
		for _, in := range snap.Incidents {
			if in.Container == name {
				out = append(out, in)
			}
		}
		return out
	}
	tests := []struct {
		name string
		want []string
	}{
		{"web-1", []string{"cooling down: the next action is allowed in 1m30s", "the analyzer chose restart (rules, confidence 0.90)", "last decision 5m ago: restart executed → success"}},
		{"worker-1", []string{"circuit breaker open: 3 actions in the last hour; it closes in 40m", "waiting for the analyzer's decision"}},
		{"cache-1", []string{"mode suggest: hemostat records what it would do in the shadow ledger"}},
		{"proxy-1", []string{"not watched"}},
		{"api-1", []string{"no open incident: nothing to do."}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := strings.Join(explain(byName[tt.name], incs(tt.name), t0), "\n")
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("explain(%s) lacks %q:\n%s", tt.name, w, got)
				}
			}
		})
	}
}

func TestDecodeTolerance(t *testing.T) {
	url := "redis://" + miniredis.RunT(t).Addr() + "/0"
	rdb := rawClient(t, url)
	ctx := context.Background()
	rdb.HSet(ctx, schema.KeyContainers, "a/good", `{"name":"good","host":"a","state":"running"}`, "a/bad", `{"name":`, "b/nameless", `{}`)
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
	if c.Sample != nil || len(c.History.CPU) != 2 || c.Ledger == nil || c.Ledger.Breaker != "closed" || !c.Ledger.NextAllowed.IsZero() {
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

func TestExplainActionDidNotHold(t *testing.T) {
	c := Container{Ledger: &Ledger{LastResult: "success", LastDecision: "executed", LastAction: "restart", LastActionAt: t0.Add(-time.Minute), Breaker: "closed"}}
	c.Name, c.State, c.Watched = "x", "exited", true
	in := []Incident{{Class: "crashed", OpenedAt: t0.Add(-2 * time.Minute), Action: "restart", Method: "rules"}}
	got := strings.Join(explain(c, in, t0), "\n")
	if !strings.Contains(got, "the last action did not hold: the container is exited again") {
		t.Errorf("explain:\n%s", got)
	}
	c.State = "running"
	if got := strings.Join(explain(c, in, t0), "\n"); strings.Contains(got, "did not hold") {
		t.Errorf("running again, yet:\n%s", got)
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
