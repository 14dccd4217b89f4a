package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// Table is a markdown table: a header row and rows of cells.
type Table struct {
	Header []string
	Rows   [][]string
}

// Markdown renders the table with columns padded to a common width, so it also reads well in a terminal.
// Pipes in cells are escaped; short rows are padded with empty cells.
func (t Table) Markdown() string {
	n := len(t.Header)
	for _, r := range t.Rows {
		n = max(n, len(r))
	}
	cell := func(r []string, i int) string {
		if i < len(r) {
			return strings.ReplaceAll(r[i], "|", `\|`)
		}
		return ""
	}
	width := make([]int, n)
	for i := range n {
		width[i] = max(3, utf8.RuneCountInString(cell(t.Header, i)))
		for _, r := range t.Rows {
			width[i] = max(width[i], utf8.RuneCountInString(cell(r, i)))
		}
	}
	var b strings.Builder
	line := func(r []string) {
		b.WriteString("|")
		for i := range n {
			c := cell(r, i)
			b.WriteString(" " + c + strings.Repeat(" ", width[i]-utf8.RuneCountInString(c)) + " |")
		}
		b.WriteString("\n")
	}
	line(t.Header)
	b.WriteString("|")
	for i := range n {
		b.WriteString(strings.Repeat("-", width[i]+2) + "|")
	}
	b.WriteString("\n")
	for _, r := range t.Rows {
		line(r)
	}
	return b.String()
}

// Section is one part of the report: a heading, an optional table and notes printed as a list under it.
type Section struct {
	Title string
	Table *Table
	Notes []string
}

// Report is the harness's whole output.
type Report struct {
	Title    string
	Machine  []string // "key: value" notes on the machine and the run
	Sections []Section
}

// Markdown renders the report: a level-2 title, the machine notes as a list, then each section under a
// level-3 heading.
func (r Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "## %s\n\n", r.Title)
	for _, m := range r.Machine {
		fmt.Fprintf(&b, "- %s\n", m)
	}
	for _, s := range r.Sections {
		fmt.Fprintf(&b, "\n### %s\n\n", s.Title)
		if s.Table != nil {
			b.WriteString(s.Table.Markdown())
			if len(s.Notes) > 0 {
				b.WriteString("\n")
			}
		}
		for _, n := range s.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	return b.String()
}

// Machine describes the host from procfs: CPU model and count, kernel and load average.
type Machine struct {
	CPUModel string
	CPUs     int
	Kernel   string
	Load     string // the three load averages of /proc/loadavg
}

// ReadMachine reads the machine notes under procRoot (normally /proc); fields it cannot read stay empty.
func ReadMachine(procRoot string) Machine {
	var m Machine
	if f, err := os.Open(filepath.Join(procRoot, "cpuinfo")); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			if !ok {
				continue
			}
			switch strings.TrimSpace(k) {
			case "processor":
				m.CPUs++
			case "model name":
				if m.CPUModel == "" {
					m.CPUModel = strings.TrimSpace(v)
				}
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile(filepath.Join(procRoot, "sys", "kernel", "osrelease")); err == nil {
		m.Kernel = string(bytes.TrimSpace(b))
	}
	m.Load = LoadAverage(procRoot)
	return m
}

// LoadAverage is the 1, 5 and 15 minute load averages from <procRoot>/loadavg, "" when unreadable.
func LoadAverage(procRoot string) string {
	b, err := os.ReadFile(filepath.Join(procRoot, "loadavg"))
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
