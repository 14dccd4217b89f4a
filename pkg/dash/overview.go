package dash

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hemostat/hemostat/pkg/respond"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

// The overview: headline numbers, the container table, the open incidents and, on a tall screen, the agents.

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
		line := fmt.Sprintf("  %s  %s ago", in.Key, ago(now, in.OpenedAt))
		if in.Severity != "" {
			line += "  " + in.Severity
		}
		line += "  " + decisionSummary(in, w >= 100)
		o := m.outlookOf(in)
		if status := outlookStatus(o, now); status != "" {
			switch o.Kind {
			case respond.OutlookGaveUp, respond.OutlookGiveUp:
				status = st.bad.Render(status)
			case respond.OutlookHeld, respond.OutlookBusy, respond.OutlookFinal:
				status = st.warn.Render(status)
			}
			line += "  " + status
		}
		out = append(out, clip(line, w))
	}
	return out
}

// decisionSummary is the analyzer's decision in a few words; with how it decided when there is room.
func decisionSummary(in schema.Incident, wide bool) string {
	if in.Action == "" {
		return "awaiting analysis"
	}
	s := "→ " + in.Action
	if in.Method != "" && wide {
		s += fmt.Sprintf(" (%s, %.2f)", in.Method, in.Confidence)
	}
	return s
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
