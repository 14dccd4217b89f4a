package dash

import "charm.land/lipgloss/v2"

// styles are the dashboard's looks; without colour only bold and reverse remain, and every state is also
// spelled out in text, so nothing depends on colour.
type styles struct {
	title, tab, tabActive, dim, bold, header, selected, ok, warn, bad, key lipgloss.Style
}

func newStyles(color bool) styles {
	s := styles{
		title:     lipgloss.NewStyle().Bold(true),
		tab:       lipgloss.NewStyle(),
		tabActive: lipgloss.NewStyle().Bold(true).Reverse(true),
		dim:       lipgloss.NewStyle(),
		bold:      lipgloss.NewStyle().Bold(true),
		header:    lipgloss.NewStyle().Bold(true),
		selected:  lipgloss.NewStyle().Reverse(true),
		ok:        lipgloss.NewStyle(),
		warn:      lipgloss.NewStyle(),
		bad:       lipgloss.NewStyle().Bold(true),
		key:       lipgloss.NewStyle().Bold(true),
	}
	if !color {
		return s
	}
	s.title = s.title.Foreground(lipgloss.Color("#E05A47"))
	s.tabActive = lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color("#FFFFFF")).Background(lipgloss.Color("#C0392B"))
	s.dim = s.dim.Foreground(lipgloss.Color("245"))
	s.header = s.header.Foreground(lipgloss.Color("252")).Underline(true)
	s.selected = lipgloss.NewStyle().Background(lipgloss.Color("237")).Bold(true)
	s.ok = s.ok.Foreground(lipgloss.Color("2"))
	s.warn = s.warn.Foreground(lipgloss.Color("3"))
	s.bad = s.bad.Foreground(lipgloss.Color("1"))
	s.key = s.key.Foreground(lipgloss.Color("6"))
	return s
}

// state colours a container state or health word.
func (s styles) state(v string) string {
	switch v {
	case "running", "healthy", "closed", "success", "executed", "connected":
		return s.ok.Render(v)
	case "starting", "restarting", "paused", "created", "held", "skipped", "dry_run", "suggest", "observe":
		return s.warn.Render(v)
	case "exited", "dead", "unhealthy", "open", "failed", "denied", "escalated", "removing":
		return s.bad.Render(v)
	}
	return v
}
