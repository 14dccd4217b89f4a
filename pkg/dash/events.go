package dash

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/hemostat/hemostat/pkg/safetext"
	"slices"
	"strings"
)

// The events view: counts by type, the live timeline and the raw JSON of the selected event.

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

func agentOf(raw string) string {
	var e struct {
		Agent string `json:"agent"`
		Host  string `json:"host"`
	}
	_ = json.Unmarshal([]byte(raw), &e) // JSON escapes decode to control characters: clean after
	if e.Host != "" {
		return safetext.Line(e.Agent + "@" + e.Host)
	}
	return safetext.Line(e.Agent)
}

func prettyJSON(raw string) []string {
	var b bytes.Buffer
	if err := json.Indent(&b, []byte(raw), "", "  "); err != nil {
		return strings.Split(raw, "\n")
	}
	return strings.Split(b.String(), "\n")
}
