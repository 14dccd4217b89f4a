package dash

import (
	"fmt"
	"strings"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
)

// The screen: a header, the body of the current view, and a footer of key hints. Each view draws its
// body in its own file (overview.go, events.go, history.go, detail.go); this one holds the frame, the
// help and unreachable screens, and the table and text widgets they share.

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

type column struct {
	name  string
	width int
	right bool
	sort  string
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

func colNames(cols []column) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c.name
	}
	return out
}

// window returns the slice bounds that show rows around the cursor in h lines.
func window(n, cursor, h int) (int, int) {
	if h <= 0 || n == 0 {
		return 0, 0
	}
	start := max(0, cursor-h+1)
	return start, min(n, start+h)
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

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
