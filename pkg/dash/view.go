package dash

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/hemostat/hemostat/pkg/audit"
	"github.com/hemostat/hemostat/pkg/container"
)

// View implements tea.Model: the whole screen in the alternate buffer.
func (m Model) View() tea.View {
	v := tea.NewView(m.Render())
	v.AltScreen = true
	v.WindowTitle = "hemostat dash"
	return v
}

// Render draws the screen as text: exactly height lines, none wider than width.
func (m Model) Render() string {
	w, h := m.width, m.height
	if w <= 0 || h <= 0 {
		w, h = 80, 24
	}
	lines := m.header(w)
	bodyH := max(h-len(lines)-1, 1)
	var body []string
	switch {
	case m.help:
		body = m.helpLines(w)
	case !m.have && m.err != nil:
		body = m.unreachableLines(w)
	case !m.have:
		body = []string{"", "  connecting to Redis at " + m.addr() + " …"}
	case m.view == viewOverview:
		body = m.overviewLines(w, bodyH)
	case m.view == viewEvents:
		body = m.eventLines(w, bodyH)
	case m.view == viewHistory:
		body = m.historyLines(w, bodyH)
	case m.view == viewDetail:
		dl := m.detailLines(w)
		off := min(m.cursor[viewDetail], max(len(dl)-bodyH, 0))
		body = dl[off:]
	}
	if len(body) > bodyH {
		body = body[:bodyH]
	}
	for len(body) < bodyH {
		body = append(body, "")
	}
	lines = append(lines, body...)
	lines = append(lines, m.footer(w))
	for i, l := range lines {
		lines[i] = clip(l, w)
	}
	return strings.Join(lines, "\n")
}

func (m Model) addr() string {
	if m.o.RedisAddr == "" {
		return "the configured address"
	}
	return m.o.RedisAddr
}

func (m Model) header(w int) []string {
	st := m.st
	var tabs []string
	active := m.view
	if active == viewDetail {
		active = m.back
	}
	for i, name := range tabNames {
		if viewID(i) == active {
			tabs = append(tabs, st.tabActive.Render("["+name+"]"))
		} else {
			tabs = append(tabs, st.tab.Render(" "+name+" "))
		}
	}
	line1 := st.title.Render("hemostat dash") + "  " + strings.Join(tabs, " ")
	if m.view == viewDetail {
		line1 += "  › " + m.detail
	}
	if hint := "? help"; ansi.StringWidth(line1)+len(hint)+2 <= w {
		line1 += strings.Repeat(" ", w-ansi.StringWidth(line1)-len(hint)) + st.dim.Render(hint)
	}

	var status []string
	switch {
	case m.err != nil:
		status = append(status, "redis "+m.addr()+" "+st.bad.Render("✗ unreachable"),
			"retrying every "+human(m.o.Refresh))
		if m.have {
			status = append(status, "data from "+clock(m.lastOK, m.o.Location))
		}
	case m.have:
		status = append(status, "redis "+m.addr()+" "+st.ok.Render("● connected"))
		status = append(status, fmt.Sprintf("refreshed %s (every %s)", clock(m.lastOK, m.o.Location), human(m.o.Refresh)))
	default:
		status = append(status, "redis "+m.addr()+" connecting")
	}
	switch {
	case m.err != nil:
		// the Redis error above says it all
	case m.liveErr != nil:
		status = append(status, st.warn.Render("live: reconnecting"))
	case m.live:
		status = append(status, "live "+st.ok.Render("●"))
	}
	if m.paused {
		p := "PAUSED"
		if n := len(m.pending); n > 0 {
			p += fmt.Sprintf(" (%d new)", n)
		}
		status = append(status, st.bad.Render(p))
	}
	return []string{line1, strings.Join(status, " · ")}
}

func (m Model) footer(w int) string {
	st := m.st
	if m.filtering {
		return st.key.Render("/") + " filter: " + m.filters[m.view] + "█  " + st.dim.Render("enter keep · esc clear")
	}
	hints := [][2]string{{"↑↓", "move"}}
	switch m.view {
	case viewOverview:
		hints = append(hints, [2]string{"enter", "detail"}, [2]string{"/", "filter"}, [2]string{"s", "sort"})
	case viewEvents:
		hints = append(hints, [2]string{"enter", "detail"}, [2]string{"/", "filter"})
	case viewHistory:
		hints = append(hints, [2]string{"enter", "detail"}, [2]string{"/", "container"}, [2]string{"f", "result"}, [2]string{"t", "since"})
	case viewDetail:
		hints = append(hints, [2]string{"esc", "back"})
	}
	hints = append(hints, [2]string{"tab", "view"}, [2]string{"p", "pause"}, [2]string{"r", "refresh"}, [2]string{"q", "quit"}, [2]string{"?", "help"})
	var parts []string
	width := 0
	for _, h := range hints {
		p := st.key.Render(h[0]) + " " + h[1]
		pw := ansi.StringWidth(p) + 2
		if width+pw > w {
			break
		}
		parts = append(parts, p)
		width += pw
	}
	if f := m.filters[m.view]; f != "" && m.view != viewDetail {
		return st.warn.Render("filter: "+f) + "  " + strings.Join(parts, "  ")
	}
	return strings.Join(parts, "  ")
}

func (m Model) helpLines(w int) []string {
	rows := [][2]string{
		{"tab / shift+tab", "next / previous view (1 2 3 jump)"},
		{"↑ ↓ / k j", "move the selection; pgup pgdown, g G for the ends"},
		{"enter", "container detail: why hemostat did or did not act"},
		{"esc", "back from detail; clear the filter"},
		{"/", "filter (history: by container); enter keeps, esc clears"},
		{"s / S", "overview: next sort column / reverse order"},
		{"J / K", "events: scroll the raw JSON of the selected event"},
		{"f / t", "history: cycle result filter / time range"},
		{"p", "pause refreshing (live events are kept and shown on resume)"},
		{"r", "refresh now"},
		{"?", "close this help"},
		{"q / ctrl+c", "quit"},
	}
	out := []string{"", m.st.bold.Render("  Keys"), ""}
	for _, r := range rows {
		out = append(out, "  "+m.st.key.Render(fit(r[0], 16))+" "+r[1])
	}
	out = append(out, "",
		"  Containers, incidents and ledgers are re-read every "+human(m.o.Refresh)+"; events are",
		"  followed live from the streams; history is the hemostat:audit trail.")
	return out
}

func (m Model) unreachableLines(w int) []string {
	out := []string{"", "  " + m.st.bad.Render("Redis is unreachable at "+m.addr()), ""}
	for _, l := range wrap(m.err.Error(), w-4) {
		out = append(out, "  "+l)
	}
	out = append(out, "",
		fmt.Sprintf("  Retrying every %s. Start Redis (or `hemostat run`, which embeds one),", human(m.o.Refresh)),
		"  or point the dashboard at yours with --redis-url / HEMOSTAT_REDIS_URL.")
	return out
}

// kpis are the overview's headline numbers.
type kpis struct {
	containers, watched  int
	open                 int
	remediations, okRuns int
	decisions            int
	falseAlarms          int
	alive, expected      int
	missing              []string
}

func computeKPIs(s Snapshot, now time.Time, expected []string) kpis {
	k := kpis{containers: len(s.Containers), open: len(s.Incidents), falseAlarms: s.FalseAlarms, expected: len(expected)}
	for _, c := range s.Containers {
		if c.Watched {
			k.watched++
		}
	}
	since := now.Add(-24 * time.Hour)
	for _, e := range s.Audit {
		if e.Time.Before(since) {
			continue
		}
		k.decisions++
		switch e.Result {
		case "success":
			k.remediations++
			k.okRuns++
		case "failed":
			k.remediations++
		}
	}
	kinds := map[string]bool{}
	for _, a := range s.Agents {
		kinds[a.Kind] = true
	}
	for _, e := range expected {
		if kinds[e] {
			k.alive++
		} else {
			k.missing = append(k.missing, e)
		}
	}
	return k
}

func (m Model) kpiLines(w int) []string {
	k := computeKPIs(m.snap, m.o.Now(), m.o.ExpectedAgents)
	st := m.st
	success := "success -"
	if k.remediations > 0 {
		success = fmt.Sprintf("success %d%% (%d/%d)", k.okRuns*100/k.remediations, k.okRuns, k.remediations)
	}
	agents := fmt.Sprintf("agents %d/%d", k.alive, k.expected)
	if len(k.missing) > 0 {
		agents = st.warn.Render(agents) + " (no " + strings.Join(k.missing, ", ") + ")"
	}
	open := fmt.Sprintf("open incidents %d", k.open)
	if k.open > 0 {
		open = st.bad.Render(open)
	}
	items := []string{
		fmt.Sprintf("containers %d (%d watched)", k.containers, k.watched),
		open,
		fmt.Sprintf("remediations 24h %d", k.remediations),
		success,
		fmt.Sprintf("false alarms 24h %d", k.falseAlarms),
		agents,
	}
	return pack(items, w-2, " · ", "  ")
}

// pack joins items with sep into lines of at most w cells, each line starting with indent.
func pack(items []string, w int, sep, indent string) []string {
	var lines []string
	cur := ""
	for _, it := range items {
		switch {
		case cur == "":
			cur = it
		case ansi.StringWidth(cur)+len(sep)+ansi.StringWidth(it) <= w:
			cur += sep + it
		default:
			lines = append(lines, indent+cur)
			cur = it
		}
	}
	if cur != "" {
		lines = append(lines, indent+cur)
	}
	return lines
}

type column struct {
	name  string
	width int
	right bool
	sort  string
}

func (m Model) overviewColumns(w int) []column {
	wide := w >= 100
	trend, trendName := 8, "TREND"
	if wide {
		trend, trendName = 16, "CPU TREND"
	}
	cols := []column{{name: "NAME", sort: "name"}}
	if wide {
		cols = append(cols, column{name: "HOST", width: 12, sort: "host"})
	}
	cols = append(cols,
		column{name: "STATE", width: 10, sort: "state"},
		column{name: "HEALTH", width: 9, sort: "health"},
		column{name: "CPU%", width: 6, right: true, sort: "cpu"},
		column{name: "MEM%", width: 6, right: true, sort: "mem"},
		column{name: trendName, width: trend},
		column{name: "MODE", width: 7, sort: "mode"},
		column{name: "BREAKER", width: 7, sort: "breaker"},
	)
	used := 2
	for _, c := range cols[1:] {
		used += c.width + 1
	}
	cols[0].width = max(w-used-1, 8)
	return cols
}

func (m Model) renderRow(cols []column, cells []string, selected bool) string {
	var b strings.Builder
	if selected {
		b.WriteString("› ")
	} else {
		b.WriteString("  ")
	}
	for i, c := range cols {
		if i > 0 {
			b.WriteByte(' ')
		}
		v := cells[i]
		if selected {
			v = ansi.Strip(v)
		}
		if c.right {
			b.WriteString(fitRight(v, c.width))
		} else {
			b.WriteString(fit(v, c.width))
		}
	}
	if selected {
		return m.st.selected.Render(b.String())
	}
	return b.String()
}

func (m Model) headerRow(cols []column, sortBy string, desc bool) string {
	cells := make([]string, len(cols))
	for i, c := range cols {
		cells[i] = c.name
		if c.sort != "" && c.sort == sortBy {
			if desc {
				cells[i] += "▼"
			} else {
				cells[i] += "▲"
			}
		}
	}
	return m.st.header.Render(m.renderRow(cols, cells, false))
}

// window returns the slice bounds that show rows around the cursor in h lines.
func window(n, cursor, h int) (int, int) {
	if h <= 0 || n == 0 {
		return 0, 0
	}
	start := max(0, cursor-h+1)
	return start, min(n, start+h)
}

func (m Model) overviewLines(w, h int) []string {
	out := m.kpiLines(w)
	out = append(out, "")
	if len(m.snap.Containers) == 0 {
		monitorAlive := false
		for _, a := range m.snap.Agents {
			monitorAlive = monitorAlive || a.Kind == "monitor"
		}
		if monitorAlive {
			out = append(out,
				"  no containers yet: a monitor is running but has listed none. Is Docker running any?",
				"  (with --watch labeled, only containers labelled hemostat.enable=true are watched)")
		} else {
			out = append(out,
				"  no containers yet: start `hemostat run` or `hemostat monitor`",
				"  (containers appear here as soon as a monitor has listed them).")
		}
		if len(m.snap.Incidents) == 0 {
			return out
		}
	}
	inc := m.incidentLines(w, max(h/4, 2))
	if h >= 30 {
		inc = append(inc, m.agentLines(w)...)
	}
	rows := m.overviewRows()
	if len(m.snap.Containers) > 0 {
		tableH := max(h-len(out)-len(inc)-1, 2)
		cols := m.overviewColumns(w)
		out = append(out, m.headerRow(cols, sortColumns[m.sortCol], m.sortDesc))
		cur := m.cursor[viewOverview]
		start, end := window(len(rows), cur, tableH-1)
		for i := start; i < end; i++ {
			out = append(out, m.renderRow(cols, m.containerCells(rows[i], cols), i == cur))
		}
		if len(rows) == 0 {
			out = append(out, "  no container matches the filter "+fmt.Sprintf("%q", m.filters[viewOverview]))
		}
		for len(out) < h-len(inc) {
			out = append(out, "")
		}
	}
	return append(out, inc...)
}

func (m Model) containerCells(c Container, cols []column) []string {
	st := m.st
	cells := make([]string, 0, len(cols))
	for _, col := range cols {
		var v string
		switch col.name {
		case "NAME":
			v = c.Name
			if !c.Watched {
				v += " (unwatched)"
			}
		case "HOST":
			v = c.Host
		case "STATE":
			v = st.state(c.State)
		case "HEALTH":
			v = c.Health
			if v == "" {
				v = "-"
			}
			v = st.state(v)
		case "CPU%":
			v = "-"
			if c.Sample != nil {
				v = pct(c.Sample.Metrics.CPUPercent)
			}
		case "MEM%":
			v = "-"
			if c.Sample != nil {
				v = pct(c.Sample.Metrics.MemoryPercent)
			}
		case "CPU TREND", "TREND":
			v = sparkline(c.History.CPU, col.width)
		case "MODE":
			v = st.state(modeOf(c))
		case "BREAKER":
			v = st.state(breakerOf(c))
		}
		cells = append(cells, v)
	}
	return cells
}

// incidentLines lists the open incidents in at most h rows plus a title.
func (m Model) incidentLines(w, h int) []string {
	st := m.st
	now := m.o.Now()
	if len(m.snap.Incidents) == 0 {
		return []string{st.bold.Render("Open incidents") + ": none"}
	}
	out := []string{st.bold.Render(fmt.Sprintf("Open incidents (%d)", len(m.snap.Incidents)))}
	incs := slices.Clone(m.snap.Incidents)
	slices.Reverse(incs) // newest first
	for i, in := range incs {
		if i == h-1 && len(incs) > h {
			out = append(out, fmt.Sprintf("  … %d more", len(incs)-i))
			break
		}
		line := fmt.Sprintf("  %s  %s ago", in.ID, ago(now, in.OpenedAt))
		if in.Severity != "" {
			line += "  " + in.Severity
		}
		line += "  " + decisionSummary(in)
		out = append(out, clip(line, w))
	}
	return out
}

// agentLines lists the live agent instances with the age of their last heartbeat, and the missing kinds.
func (m Model) agentLines(w int) []string {
	now := m.o.Now()
	items := []string{m.st.bold.Render("Agents") + ":"}
	for _, a := range m.snap.Agents {
		s := a.Kind + " " + a.Instance
		if a.Version != "" {
			s += " " + a.Version
		}
		items = append(items, s+" ("+ago(now, a.LastHeartbeat)+")")
	}
	if len(m.snap.Agents) == 0 {
		items = append(items, "none alive")
	}
	if k := computeKPIs(m.snap, now, m.o.ExpectedAgents); len(k.missing) > 0 {
		items = append(items, m.st.warn.Render("missing: "+strings.Join(k.missing, ", ")))
	}
	lines := pack(items[1:], w-2-len("Agents: "), " · ", "")
	for i := range lines {
		if i == 0 {
			lines[i] = items[0] + " " + lines[i]
		} else {
			lines[i] = "        " + lines[i]
		}
	}
	return lines
}

func decisionSummary(in Incident) string {
	if in.Action == "" {
		return "awaiting analysis"
	}
	s := "→ " + in.Action
	if in.Method != "" {
		s += fmt.Sprintf(" (%s, %.2f)", in.Method, in.Confidence)
	}
	return s
}

func (m Model) eventLines(w, h int) []string {
	st := m.st
	var counts []string
	types := make([]string, 0, len(m.counts))
	for t := range m.counts {
		types = append(types, t)
	}
	slices.Sort(types)
	for _, t := range types {
		counts = append(counts, fmt.Sprintf("%s %d", t, m.counts[t]))
	}
	out := []string{}
	if len(counts) == 0 {
		out = append(out, "  seen: nothing yet")
	} else {
		counts[0] = "seen: " + counts[0]
		out = append(out, pack(counts, w-2, " · ", "  ")...)
	}
	rows := m.eventRows()
	if len(m.evs) == 0 {
		out = append(out, "",
			"  no events yet: they appear here live as the agents publish them",
			"  (start `hemostat run`, or `hemostat monitor` and `hemostat analyze`).")
		if m.liveErr != nil {
			out = append(out, "", "  live follow: "+clip(m.liveErr.Error(), w-16))
		}
		return out
	}
	cols := []column{{name: "TIME", width: 8}, {name: "TYPE", width: 20}, {name: "CONTAINER", width: 16}, {name: "INCIDENT"}}
	if w >= 100 {
		cols[3] = column{name: "INCIDENT", width: 36}
		cols = append(cols, column{name: "AGENT"})
	}
	used := 2
	for _, c := range cols[:len(cols)-1] {
		used += c.width + 1
	}
	cols[len(cols)-1].width = max(w-used-1, 6)
	listH := max((h-len(out))/2, 3)
	out = append(out, st.header.Render(m.renderRow(cols, colNames(cols), false)))
	cur := m.cursor[viewEvents]
	start, end := window(len(rows), cur, listH-1)
	for i := start; i < end; i++ {
		e := rows[i]
		cells := []string{clock(e.Time, m.o.Location), e.Type, e.Container, e.Incident}
		if len(cols) > 4 {
			cells = append(cells, agentOf(e.Raw))
		}
		out = append(out, m.renderRow(cols, cells, i == cur))
	}
	if len(rows) == 0 {
		out = append(out, fmt.Sprintf("  no event matches the filter %q", m.filters[viewEvents]))
		return out
	}
	sel := rows[min(cur, len(rows)-1)]
	out = append(out, st.bold.Render(clip(fmt.Sprintf("── %s %s (%s) ", sel.Type, sel.ID, sel.Stream)+strings.Repeat("─", w), w)))
	var js []string
	for _, l := range prettyJSON(sel.Raw) {
		js = append(js, wrapIndent(l, w)...)
	}
	room := h - len(out)
	off := min(m.jsonOff, max(len(js)-room+1, 0))
	js = js[off:]
	if len(js) > room && room > 0 {
		js = append(js[:room-1], m.st.dim.Render(fmt.Sprintf("… %d more lines (J/K scroll)", len(js)-room+1)))
	}
	return append(out, js...)
}

func colNames(cols []column) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c.name
	}
	return out
}

func agentOf(raw string) string {
	var e struct {
		Agent string `json:"agent"`
		Host  string `json:"host"`
	}
	_ = json.Unmarshal([]byte(raw), &e)
	if e.Host != "" {
		return e.Agent + "@" + e.Host
	}
	return e.Agent
}

func prettyJSON(raw string) []string {
	var b bytes.Buffer
	if err := json.Indent(&b, []byte(raw), "", "  "); err != nil {
		return strings.Split(raw, "\n")
	}
	return strings.Split(b.String(), "\n")
}

// wrapIndent hard-wraps a long line, keeping its indentation on continuation lines.
func wrapIndent(l string, w int) []string {
	if ansi.StringWidth(l) <= w {
		return []string{l}
	}
	ind := len(l) - len(strings.TrimLeft(l, " "))
	ind = min(ind, w/2) + 2
	var out []string
	for ansi.StringWidth(l) > w {
		out = append(out, ansi.Cut(l, 0, w))
		l = strings.Repeat(" ", ind) + ansi.Cut(l, w, ansi.StringWidth(l))
	}
	return append(out, l)
}

func (m Model) historyLines(w, h int) []string {
	st := m.st
	rows := m.historyRows()
	f := m.filters[viewHistory]
	if f == "" {
		f = "any"
	}
	out := pack([]string{
		"container: " + f + " (/)",
		"result: " + resultChoices[m.histResult] + " (f)",
		"since: " + sinceChoices[m.histSince].name + " (t)",
		fmt.Sprintf("%d of %d", len(rows), len(m.snap.Audit)),
	}, w-2, "   ", "  ")
	if len(m.snap.Audit) == 0 {
		return append(out, "",
			"  no remediations recorded yet: `hemostat respond` writes every decision to hemostat:audit",
			"  (start `hemostat run` to run every agent).")
	}
	if len(rows) == 0 {
		return append(out, "", "  no remediation matches these filters.")
	}
	wide := w >= 100
	cols := []column{{name: "TIME", width: 14}, {name: "CONTAINER", width: 14}, {name: "ACTION", width: 8}}
	if wide {
		cols = append(cols, column{name: "DECISION", width: 9})
		cols[1].width = 20
	}
	cols = append(cols, column{name: "RESULT", width: 9})
	if wide {
		cols = append(cols, column{name: "BY", width: 14})
	}
	cols = append(cols, column{name: "REASON"})
	used := 2
	for _, c := range cols[:len(cols)-1] {
		used += c.width + 1
	}
	cols[len(cols)-1].width = max(w-used-1, 6)
	listH := max((h-len(out))*3/5, 3)
	out = append(out, st.header.Render(m.renderRow(cols, colNames(cols), false)))
	cur := min(m.cursor[viewHistory], len(rows)-1)
	start, end := window(len(rows), cur, listH-1)
	for i := start; i < end; i++ {
		e := rows[i]
		cells := []string{stamp(e.Time, m.o.Location), e.Container, e.Action}
		if wide {
			cells = append(cells, st.state(e.Decision))
		}
		cells = append(cells, st.state(e.Result))
		if wide {
			cells = append(cells, e.Actor)
		}
		cells = append(cells, e.Reason)
		out = append(out, m.renderRow(cols, cells, i == cur))
	}
	sel := rows[cur]
	out = append(out, st.bold.Render(clip("── "+sel.Host+"/"+sel.Container+" "+stamp(sel.Time, m.o.Location)+" "+strings.Repeat("─", w), w)))
	return append(out, m.entryDetail(sel, w)...)
}

// entryDetail explains one audit entry in full.
func (m Model) entryDetail(e audit.Entry, w int) []string {
	var out []string
	head := fmt.Sprintf("%s: %s → %s", e.Action, e.Decision, m.st.state(e.Result))
	if e.DryRun {
		head += " (dry run)"
	}
	if e.Verified {
		head += ", verified"
	}
	if e.DurationMS > 0 {
		head += fmt.Sprintf(", took %s", time.Duration(e.DurationMS*float64(time.Millisecond)).Round(time.Millisecond))
	}
	out = append(out, "  "+head)
	for _, l := range wrap("reason: "+orDash(e.Reason), w-4) {
		out = append(out, "  "+l)
	}
	if e.Details != "" {
		for _, l := range wrap("details: "+e.Details, w-4) {
			out = append(out, "  "+l)
		}
	}
	if e.RetryAfterMS > 0 {
		out = append(out, "  retry allowed after "+human(time.Duration(e.RetryAfterMS)*time.Millisecond))
	}
	if e.Error != "" {
		for _, l := range wrap("error: "+e.Error, w-4) {
			out = append(out, "  "+l)
		}
	}
	meta := []string{"by " + orDash(e.Actor)}
	if e.AnalysisMethod != "" {
		meta = append(meta, fmt.Sprintf("analysis %s (%.2f)", e.AnalysisMethod, e.Confidence))
	}
	if e.Incident != "" {
		meta = append(meta, "incident "+e.Incident)
	}
	return append(out, pack(meta, w-4, " · ", "  ")...)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// detailLines renders the container detail; the view scrolls through them.
func (m Model) detailLines(w int) []string {
	st := m.st
	now := m.o.Now()
	c, ok := m.detailContainer()
	if !ok {
		return []string{"", "  " + m.detail + " is not known (any more): the monitor lists containers in hemostat:containers.", "  esc goes back."}
	}
	var out []string
	id := c.ID
	if len(id) > 12 {
		id = id[:12]
	}
	out = append(out, pack([]string{
		st.bold.Render(c.Name), "host " + c.Host, "image " + orDash(c.Image), "id " + orDash(id),
	}, w-2, "  ", "  ")...)
	watched := "yes"
	if !c.Watched {
		watched = st.warn.Render("no")
	}
	out = append(out, pack([]string{
		"state " + st.state(c.State), "health " + st.state(orDash(c.Health)), fmt.Sprintf("restarts %d", c.RestartCount),
		"mode " + st.state(modeOf(c)), "watched " + watched, startedAgo(now, c.StartedAt),
	}, w-2, "  ", "  ")...)

	incs := m.incidentsOf(c)
	out = append(out, "", st.bold.Render("Why"))
	for _, l := range explain(c, incs, now) {
		for i, wl := range wrap(l, w-6) {
			if i == 0 {
				out = append(out, "  • "+wl)
			} else {
				out = append(out, "    "+wl)
			}
		}
	}

	out = append(out, "", st.bold.Render("Latest sample"))
	if c.Sample == nil {
		out = append(out, "  none recent (samples expire after 3 monitor intervals)")
	} else {
		s := c.Sample
		out = append(out, pack([]string{
			fmt.Sprintf("%s ago from %s", ago(now, s.Time), orDash(s.Source)),
			"cpu " + pct(s.Metrics.CPUPercent) + "%",
			fmt.Sprintf("mem %s%% (%s of %s)", pct(s.Metrics.MemoryPercent), bytesIEC(s.Metrics.MemoryUsage), bytesIEC(s.Metrics.MemoryLimit)),
			fmt.Sprintf("pids %d", s.Metrics.PIDs),
			fmt.Sprintf("net rx %s tx %s", bytesIEC(s.Metrics.NetworkRxBytes), bytesIEC(s.Metrics.NetworkTxBytes)),
			fmt.Sprintf("io r %s w %s", bytesIEC(s.Metrics.BlkioReadBytes), bytesIEC(s.Metrics.BlkioWriteBytes)),
		}, w-2, "  ", "  ")...)
	}
	if len(c.History.CPU)+len(c.History.Memory) > 0 {
		sw := min(60, w-12)
		out = append(out, "  cpu "+sparkline(c.History.CPU, sw), "  mem "+sparkline(c.History.Memory, sw))
	}

	out = append(out, "", st.bold.Render("Open incident"))
	if len(incs) == 0 {
		out = append(out, "  none")
	}
	for _, in := range incs {
		out = append(out, m.incidentDetail(in, w)...)
	}

	out = append(out, "", st.bold.Render("Ledger (respond)"))
	out = append(out, ledgerLines(c.Ledger, now, m.o.Location, w)...)
	if c.Shadow != nil {
		out = append(out, "", st.bold.Render("Shadow ledger (dry-run, suggest, observe: what a real run would have done)"))
		out = append(out, ledgerLines(c.Shadow, now, m.o.Location, w)...)
	}

	out = append(out, "", st.bold.Render("Last decisions"))
	n := 0
	for _, e := range m.decisionsOf(c) {
		n++
		line := fmt.Sprintf("  %s  %s %s → %s", stamp(e.Time, m.o.Location), e.Action, e.Decision, st.state(e.Result))
		if e.Reason != "" {
			line += ": " + e.Reason
		}
		out = append(out, wrapIndent(line, w)...)
	}
	if n == 0 {
		out = append(out, "  none recorded in hemostat:audit")
	}
	return out
}

func startedAgo(now, t time.Time) string {
	if t.IsZero() {
		return "started -"
	}
	return "started " + ago(now, t) + " ago"
}

// decisionsOf returns the container's newest decisions: read through its audit index when that read is
// done, else found in the trail the snapshot holds.
func (m Model) decisionsOf(c Container) []audit.Entry {
	if m.detailFor == c.Target() {
		return m.detailAudit
	}
	var out []audit.Entry
	for _, e := range m.snap.Audit {
		if e.Host == c.Host && e.Container == c.Name {
			out = append(out, e)
			if len(out) == detailDecisions {
				break
			}
		}
	}
	return out
}

func (m Model) incidentsOf(c Container) []Incident {
	var out []Incident
	for _, in := range m.snap.Incidents {
		if in.Host == c.Host && in.Container == c.Name {
			out = append(out, in)
		}
	}
	return out
}

func (m Model) incidentDetail(in Incident, w int) []string {
	now := m.o.Now()
	head := fmt.Sprintf("  %s since %s (%s ago)", m.st.bad.Render(in.Class), clock(in.OpenedAt, m.o.Location), ago(now, in.OpenedAt))
	if in.Severity != "" {
		head += ", " + in.Severity
	}
	out := []string{head}
	add := func(label, v string) {
		if v == "" {
			return
		}
		for i, l := range wrap(label+v, w-6) {
			if i == 0 {
				out = append(out, "    "+l)
			} else {
				out = append(out, "      "+l)
			}
		}
	}
	if in.Action == "" {
		add("decision: ", "awaiting analysis")
	} else {
		add("decision: ", fmt.Sprintf("%s, confidence %.2f, by %s at %s", in.Action, in.Confidence, orDash(in.Method), clock(in.DecidedAt, m.o.Location)))
	}
	add("reason: ", in.Reason)
	add("root cause: ", in.RootCause)
	for _, e := range in.Evidence {
		add("evidence: ", e)
	}
	add("llm error: ", in.LLMError)
	return out
}

func ledgerLines(l *Ledger, now time.Time, loc *time.Location, w int) []string {
	if l == nil {
		return []string{"  no decisions yet: respond has not acted on this container"}
	}
	hour := now.Add(-time.Hour)
	var recent []string
	for _, a := range l.Attempts {
		if !a.Before(hour) {
			recent = append(recent, clock(a, loc))
		}
	}
	att := fmt.Sprintf("attempts last hour: %d", len(recent))
	if len(recent) > 0 {
		att += " (" + strings.Join(recent, ", ") + ")"
	}
	cool := "cooldown: none, an action is allowed now"
	if left := l.NextAllowed.Sub(now); left > 0 {
		cool = fmt.Sprintf("cooldown: %s left (next allowed %s)", human(left), clock(l.NextAllowed, loc))
	}
	breaker := "breaker: " + l.Breaker
	if l.Breaker == "open" && l.BreakerUntil.After(now) {
		breaker += fmt.Sprintf(" for %s more (until %s)", human(l.BreakerUntil.Sub(now)), clock(l.BreakerUntil, loc))
	}
	out := pack([]string{att, fmt.Sprintf("backoff step %d", l.BackoffStep)}, w-2, " · ", "  ")
	out = append(out, "  "+cool, "  "+breaker)
	if l.LastAction != "" || l.LastDecision != "" {
		last := fmt.Sprintf("last: %s %s → %s at %s", orDash(l.LastAction), orDash(l.LastDecision), orDash(l.LastResult), clock(l.LastActionAt, loc))
		if l.LastReason != "" {
			last += ": " + l.LastReason
		}
		out = append(out, wrapIndent("  "+last, w)...)
	}
	if !l.HealthySince.IsZero() {
		out = append(out, "  healthy since "+clock(l.HealthySince, loc)+" ("+ago(now, l.HealthySince)+"; the backoff resets after 10m healthy)")
	}
	return out
}

// explain says, in plain words, whether hemostat will act on the container and why (docs/architecture.md, remediation).
func explain(c Container, incs []Incident, now time.Time) []string {
	var out []string
	if !c.Watched {
		out = append(out, "not watched: hemostat ignores it (hemostat.enable=false, or excluded by configuration).")
	}
	if c.Labels[container.LabelProtected] == "true" || c.Labels[container.LabelSelf] != "" {
		out = append(out, "protected: hemostat never acts on it (requests are denied: protected).")
	}
	if l := c.Ledger; l != nil {
		if l.Breaker == "open" && (l.BreakerUntil.IsZero() || l.BreakerUntil.After(now)) {
			s := fmt.Sprintf("circuit breaker open: %s in the last hour", plural(countSince(l.Attempts, now.Add(-time.Hour)), "action", "actions"))
			if !l.BreakerUntil.IsZero() {
				s += fmt.Sprintf("; it closes in %s", human(l.BreakerUntil.Sub(now)))
			}
			out = append(out, s+" (or `hemostat respond reset "+c.Name+"`). Requests are denied: circuit_open.")
		}
		if left := l.NextAllowed.Sub(now); left > 0 {
			out = append(out, fmt.Sprintf("cooling down: the next action is allowed in %s (backoff step %d); requests before then are denied: cooldown.", human(left), l.BackoffStep))
		}
	}
	switch modeOf(c) {
	case "suggest", "observe":
		out = append(out, "mode "+modeOf(c)+": hemostat records what it would do in the shadow ledger and does not act.")
	}
	switch {
	case len(incs) == 0 && c.State == "running" && c.Health != "unhealthy":
		out = append(out, "no open incident: nothing to do.")
	case len(incs) == 0:
		out = append(out, "no open incident recorded for it (state "+orDash(c.State)+").")
	}
	for _, in := range incs {
		switch {
		case in.Action == "":
			out = append(out, fmt.Sprintf("incident %s open for %s: waiting for the analyzer's decision.", in.Class, human(now.Sub(in.OpenedAt))))
		case in.Action == "none":
			out = append(out, fmt.Sprintf("incident %s: the analyzer chose not to act (escalated to a human): %s", in.Class, orDash(in.Reason)))
		default:
			out = append(out, fmt.Sprintf("incident %s: the analyzer chose %s (%s, confidence %.2f): %s", in.Class, in.Action, orDash(in.Method), in.Confidence, orDash(in.Reason)))
		}
	}
	for _, in := range incs {
		if l := c.Ledger; l != nil && l.LastResult == "success" && l.LastActionAt.After(in.OpenedAt) &&
			c.State != "" && c.State != "running" {
			out = append(out, fmt.Sprintf("the last action did not hold: the container is %s again. Alerts are edge-triggered, so hemostat acts again when the monitor re-alerts (escalation, e.g. to crash_loop, or its re-alert interval).", c.State))
			break
		}
	}
	if l := c.Ledger; l != nil && l.LastDecision != "" {
		s := fmt.Sprintf("last decision %s ago: %s %s → %s", ago(now, l.LastActionAt), orDash(l.LastAction), l.LastDecision, orDash(l.LastResult))
		if l.LastReason != "" {
			s += " (" + l.LastReason + ")"
		}
		out = append(out, s+".")
	}
	return out
}

func countSince(ts []time.Time, since time.Time) int {
	n := 0
	for _, t := range ts {
		if !t.Before(since) {
			n++
		}
	}
	return n
}
