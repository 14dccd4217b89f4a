package dash

import (
	"fmt"
	"strings"
	"time"

	"github.com/hemostat/hemostat/pkg/audit"
)

// The history view: the audit trail, filtered by container, result and time, and the selected entry in full.

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
