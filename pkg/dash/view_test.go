package dash

import (
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/google/go-cmp/cmp"

	"github.com/hemostat/hemostat/pkg/audit"
	"github.com/hemostat/hemostat/pkg/container"
	"maps"
	"regexp"
)

// updating reports whether -update was given: the flag is defined by charmbracelet/x/exp/golden, which
// teatest imports, and rewrites testdata/*.golden here too.
func updating() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// fakeSource is a Source that returns what it is told and counts the reads.
type fakeSource struct {
	mu    sync.Mutex
	snap  Snapshot
	err   error
	reads int
}

func (f *fakeSource) Snapshot(context.Context) (Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	return f.snap, f.err
}

// ContainerAudit filters the snapshot's trail, as the Redis source's index read returns it.
func (f *fakeSource) ContainerAudit(_ context.Context, host, name string, n int) ([]audit.Entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	var out []audit.Entry
	for _, e := range f.snap.Audit {
		if e.Host == host && e.Container == name && len(out) < n {
			out = append(out, e)
		}
	}
	return out, nil
}

func (f *fakeSource) set(s Snapshot, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.snap, f.err = s, err
}

func (f *fakeSource) Follow(ctx context.Context, _ chan<- EventBatch) error {
	<-ctx.Done()
	return nil
}

var errRefused = errors.New("redis unavailable at 127.0.0.1:6379: dial tcp 127.0.0.1:6379: connect: connection refused")

func testOptions() Options {
	return Options{
		Refresh:   2 * time.Second,
		RedisAddr: "127.0.0.1:6379",
		Now:       func() time.Time { return t0 },
		Location:  time.UTC,
	}
}

func newTestModel(w, h int) Model {
	m := New(context.Background(), &fakeSource{}, nil, testOptions())
	return send(m, tea.WindowSizeMsg{Width: w, Height: h})
}

// send feeds messages to Update, ignoring the commands (the tests drive every message themselves).
func send(m Model, msgs ...tea.Msg) Model {
	for _, msg := range msgs {
		nm, _ := m.Update(msg)
		m = nm.(Model)
	}
	return m
}

// press turns key names into key press messages: "enter", "tab", "shift+tab", "esc", or text.
func press(keys ...string) []tea.Msg {
	var out []tea.Msg
	for _, k := range keys {
		switch k {
		case "enter":
			out = append(out, tea.KeyPressMsg{Code: tea.KeyEnter})
		case "tab":
			out = append(out, tea.KeyPressMsg{Code: tea.KeyTab})
		case "shift+tab":
			out = append(out, tea.KeyPressMsg{Code: tea.KeyTab, Mod: tea.ModShift})
		case "esc":
			out = append(out, tea.KeyPressMsg{Code: tea.KeyEscape})
		case "backspace":
			out = append(out, tea.KeyPressMsg{Code: tea.KeyBackspace})
		case "down":
			out = append(out, tea.KeyPressMsg{Code: tea.KeyDown})
		case "up":
			out = append(out, tea.KeyPressMsg{Code: tea.KeyUp})
		default:
			for _, r := range k {
				out = append(out, tea.KeyPressMsg{Code: r, Text: string(r)})
			}
		}
	}
	return out
}

func keys(m Model, k ...string) Model { return send(m, press(k...)...) }

func populated(m Model) Model {
	f := newFixture(t0)
	return send(m,
		snapshotMsg{snap: f.snapshot()},
		eventsMsg{batch: EventBatch{Events: f.streamEvents(), Backfill: true}, ok: true})
}

func empty(m Model) Model {
	return send(m, snapshotMsg{snap: Snapshot{Time: t0}}, eventsMsg{batch: EventBatch{Backfill: true}, ok: true})
}

func unreachable(m Model) Model {
	return send(m, snapshotMsg{err: errRefused}, eventsMsg{batch: EventBatch{Err: errRefused}, ok: true})
}

// bare has one container and nothing else known about it: the empty detail view.
func bare(m Model) Model {
	return send(m, snapshotMsg{snap: Snapshot{Time: t0, Containers: []Container{{Summary: container.Summary{
		ID: "abc", Name: "web-1", Host: "node-a", Image: "nginx", State: "created", Watched: true,
	}}}}})
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if updating() {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./pkg/dash -run %s -update)", err, t.Name())
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", path, diff)
	}
}

func TestGolden(t *testing.T) {
	sizes := []struct{ w, h int }{{80, 24}, {120, 40}}
	states := []struct {
		name  string
		setup func(Model) Model
	}{
		{"empty", empty},
		{"error", unreachable},
		{"populated", populated},
		{"stale", func(m Model) Model { return send(populated(m), snapshotMsg{err: errRefused}) }},
	}
	views := []struct {
		name string
		keys []string
	}{
		{"overview", nil},
		{"events", []string{"tab"}},
		{"events_selected", []string{"tab", "j", "j"}},
		{"events_scrolled", []string{"tab", "J", "J", "J", "K"}},
		{"history", []string{"tab", "tab"}},
		{"history_filtered", []string{"3", "/", "worker", "enter", "f", "f"}},
		{"detail", []string{"/", "web-1", "enter", "enter"}},
		{"detail_breaker", []string{"/", "worker", "enter", "enter"}},
		{"overview_filter", []string{"/", "node-b"}},
		{"overview_sorted", []string{"s", "s", "s", "s", "S"}},
		{"help", []string{"?"}},
	}
	for _, sz := range sizes {
		for _, st := range states {
			for _, v := range views {
				if st.name != "populated" && strings.Contains(v.name, "_") {
					continue // variants only matter with data
				}
				if v.name == "help" && st.name != "empty" {
					continue
				}
				name := st.name + "_" + v.name + "_" + strconv.Itoa(sz.w) + "x" + strconv.Itoa(sz.h)
				t.Run(name, func(t *testing.T) {
					m := st.setup(newTestModel(sz.w, sz.h))
					if v.name == "detail" && st.name == "empty" {
						m = bare(m)
					}
					m = keys(m, v.keys...)
					got := ansi.Strip(m.Render())
					checkShape(t, got, sz.w, sz.h)
					golden(t, name, got)
				})
			}
		}
	}
}

// TestGoldenHealing: incidents at each point of the healing loop (newHealingFixture), in the overview's
// incident list and in the detail view's Why.
func TestGoldenHealing(t *testing.T) {
	views := []struct {
		name string
		keys []string
	}{
		{"overview", nil},
		{"detail_waiting", []string{"/", "web-2", "enter", "enter"}},
		{"detail_held", []string{"/", "api-2", "enter", "enter"}},
		{"detail_gaveup", []string{"/", "worker-2", "enter", "enter"}},
		{"detail_healthy", []string{"/", "cache-2", "enter", "enter"}},
	}
	for _, sz := range []struct{ w, h int }{{80, 24}, {120, 40}} {
		for _, v := range views {
			name := "healing_" + v.name + "_" + strconv.Itoa(sz.w) + "x" + strconv.Itoa(sz.h)
			t.Run(name, func(t *testing.T) {
				m := send(newTestModel(sz.w, sz.h), snapshotMsg{snap: newHealingFixture(t0).snapshot()},
					eventsMsg{batch: EventBatch{Backfill: true}, ok: true})
				m = keys(m, v.keys...)
				got := ansi.Strip(m.Render())
				checkShape(t, got, sz.w, sz.h)
				golden(t, name, got)
			})
		}
	}
}

// checkShape asserts the screen is exactly h lines of at most w cells.
func checkShape(t *testing.T, s string, w, h int) {
	t.Helper()
	lines := strings.Split(s, "\n")
	if len(lines) != h {
		t.Errorf("screen has %d lines, want %d", len(lines), h)
	}
	for i, l := range lines {
		if n := ansi.StringWidth(l); n > w {
			t.Errorf("line %d is %d cells wide, want at most %d: %q", i, n, w, l)
		}
	}
}

func TestNoColourEmitsNoColourCodes(t *testing.T) {
	for _, color := range []bool{false, true} {
		o := testOptions()
		o.Color = color
		m := populated(send(New(context.Background(), &fakeSource{}, nil, o), tea.WindowSizeMsg{Width: 120, Height: 40}))
		out := m.Render()
		hasColour := strings.Contains(out, "[38;") || strings.Contains(out, "[31m") || strings.Contains(out, "[32m") ||
			strings.Contains(out, "[48;") || strings.Contains(out, "[91m")
		if hasColour != color {
			t.Errorf("Color=%v: colour codes present = %v", color, hasColour)
		}
	}
}

func strippedRender(m Model) string { return ansi.Strip(m.Render()) }

// An LLM's refused proposal shows in the incident and in the decisions: a human decides, and sees what
// the model wanted.
func TestDetailShowsARefusedProposal(t *testing.T) {
	f := newHealingFixture(t0)
	for i, in := range f.incidents {
		if in.Fields["container"] != "web-2" {
			continue
		}
		fields := maps.Clone(in.Fields)
		fields["action"], fields["proposed_action"], fields["analysis_method"] = "none", "stop", "llm:openai:m"
		fields["reason"] = "LLM proposed stop: a human decides (it may choose restart, none)"
		f.incidents[i].Fields = fields
	}
	f.audit = append(f.audit, audit.Entry{Seq: 1, ID: "e1", Time: t0.Add(-time.Second), Host: "node-a", Container: "web-2",
		Action: "none", Decision: "escalated", Result: "escalated", Reason: "escalated by the model", ProposedAction: "stop",
		Actor: "llm:openai:m"})
	m := send(newTestModel(120, 40), snapshotMsg{snap: f.snapshot()}, eventsMsg{batch: EventBatch{Backfill: true}, ok: true})
	got := ansi.Strip(keys(m, "/", "web-2", "enter", "enter").Render())
	for _, want := range []string{"refused: the LLM proposed stop, which it may not choose here; a human decides",
		"escalated by the model (the LLM proposed stop, refused)"} {
		if !strings.Contains(strings.Join(strings.Fields(got), " "), want) {
			t.Errorf("detail lacks %q:\n%s", want, got)
		}
	}
}

// Hostile text (escape sequences, C1 controls, bidi overrides, invalid UTF-8) in anything a source gives
// the dash is shown as visible escapes in every view: nothing reaches the terminal as an order.
func TestHostileTextIsNeutralised(t *testing.T) {
	const evil = "web\x1b[2J\x1b]0;owned\x07\u009b31m\u202eexe\xff"
	f := newHealingFixture(t0)
	c := f.containers[0]
	f.containers[0].Name = evil
	f.containers[0].Labels = map[string]string{"hemostat.note\x1b[5m": evil}
	for i, in := range f.incidents {
		if in.Fields["container"] == c.Name {
			fields := maps.Clone(in.Fields)
			fields["container"], fields["reason"], fields["root_cause"] = evil, "reason "+evil, evil
			f.incidents[i].Fields = fields
		}
	}
	f.audit = append(f.audit, audit.Entry{Seq: 1, ID: "e1", Time: t0.Add(-time.Second), Host: "node-a", Container: evil,
		Action: "restart", Decision: "executed", Result: "failed", Reason: evil, Details: "exec output " + evil, Actor: "rules"})
	src := &fakeSource{}
	src.set(f.snapshot(), nil)
	events := make(chan EventBatch, 1)
	raw := `{"id":"1","agent":"monitor\u001b[2J","host":"node-a\u202e","event_type":"health_alert","data":{"container_name":"x\u001b]0;t\u0007"}}`
	events <- EventBatch{Events: []Event{{Stream: "hemostat:events:health_alert", ID: "1-0", Time: t0, Type: "health_alert",
		Container: evil, Incident: "node-a/" + evil + "/crashed", Raw: raw}}, Backfill: true}
	o := testOptions()
	o.Color = false
	m := send(New(context.Background(), src, events, o), tea.WindowSizeMsg{Width: 160, Height: 50})
	// The messages come through the model's own commands, as in the program.
	m = send(m, m.load()(), m.waitEvents()())
	screens := map[string]string{"overview": m.Render()}
	for _, v := range []struct {
		name string
		keys []string
	}{
		{"detail", []string{"enter"}},
		{"events", []string{"esc", "tab"}},
		{"event json", []string{"enter"}},
		{"history", []string{"esc", "tab"}},
	} {
		m = keys(m, v.keys...)
		screens[v.name] = m.Render()
	}
	shown := false
	ours := regexp.MustCompile("\x1b\\[[0-9;]*m") // the dash's own bold and reverse (SGR) even without colour
	for name, s := range screens {
		s = ours.ReplaceAllString(s, "")
		for _, bad := range []string{"\x1b", "\u009b", "\u202e", "\x07", "\xff"} {
			if strings.Contains(s, bad) {
				t.Errorf("%s view emits %q:\n%s", name, bad, s)
			}
		}
		shown = shown || strings.Contains(s, `web\x1b[2J`)
	}
	if !shown {
		t.Errorf("no view shows the name's visible escape; screens:\n%s\n%s", screens["overview"], screens["detail"])
	}
}
