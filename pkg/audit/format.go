package audit

import (
	"encoding/json"
	"fmt"
	"github.com/hemostat/hemostat/pkg/safetext"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// Output formats of `hemostat audit`.
const (
	FormatTable = "table"
	FormatJSON  = "json"
	FormatJSONL = "jsonl"
)

// Formats lists the output formats.
var Formats = []string{FormatTable, FormatJSON, FormatJSONL}

// Write prints records in a format. JSON is an array of entries (each with its stream_id), the same field
// names as the stream, stable for scripts; JSONL is one entry per line. The table fits width columns.
func Write(w io.Writer, format string, recs []Record, width int) error {
	switch format {
	case FormatJSON:
		if recs == nil {
			recs = []Record{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(recs)
	case FormatJSONL:
		enc := json.NewEncoder(w)
		for _, r := range recs {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	case FormatTable, "":
		t := NewTable(width)
		if err := t.Header(w); err != nil {
			return err
		}
		for _, r := range recs {
			if err := t.Row(w, r); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("unknown format %q (want table, json or jsonl)", format)
}

// Table prints records as aligned columns that fit a terminal width: fixed columns first, the reason
// takes what is left and is cut with an ellipsis.
type Table struct {
	width int
	cols  []column
}

type column struct {
	name string
	w    int
	get  func(Record) string
}

// NewTable returns a table for a terminal width (at least 60; 0 means 120).
func NewTable(width int) *Table {
	if width <= 0 {
		width = 120
	}
	width = max(width, 60)
	timeCol := column{"TIME", 19, func(r Record) string { return r.Time.Local().Format("2006-01-02 15:04:05") }}
	cols := []column{
		timeCol,
		{"CONTAINER", 18, func(r Record) string { return r.Container }},
		{"ACTION", 7, func(r Record) string { return r.Action }},
		{"RESULT", 9, func(r Record) string { return r.Result }},
		{"ACTOR", 14, func(r Record) string { return r.Actor }},
		{"DURATION", 8, func(r Record) string { return fmtDuration(r.DurationMS) }},
	}
	switch {
	case width >= 110:
	case width >= 80: // drop the actor and duration, keep what says what happened
		cols = cols[:4]
	default: // short time and container too
		cols = cols[:4]
		cols[0] = column{"TIME", 14, func(r Record) string { return r.Time.Local().Format("01-02 15:04:05") }}
		cols[1].w = 14
	}
	fixed := 0
	for _, c := range cols {
		fixed += c.w + 2
	}
	// What hemostat did or why it did not (the details), then why it was asked (the reason).
	cols = append(cols, column{"DETAILS", width - fixed, // at least 8 at the minimum width of 60
		func(r Record) string {
			s := r.Details
			if s == "" && r.Error != "" {
				s = r.Error
			}
			if r.Reason != "" {
				if s != "" {
					s += " · "
				}
				s += "asked: " + r.Reason
			}
			return s
		}})
	return &Table{width: width, cols: cols}
}

// Header prints the column names.
func (t *Table) Header(w io.Writer) error {
	cells := make([]string, len(t.cols))
	for i, c := range t.cols {
		cells[i] = c.name
	}
	return t.line(w, cells)
}

// Row prints one record.
func (t *Table) Row(w io.Writer, r Record) error {
	cells := make([]string, len(t.cols))
	for i, c := range t.cols {
		cells[i] = c.get(r)
	}
	return t.line(w, cells)
}

func (t *Table) line(w io.Writer, cells []string) error {
	var b strings.Builder
	for i, c := range t.cols {
		s := clip(oneLine(cells[i]), c.w)
		if i == len(t.cols)-1 {
			b.WriteString(s)
			break
		}
		b.WriteString(s)
		b.WriteString(strings.Repeat(" ", c.w-utf8.RuneCountInString(s)+2))
	}
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	return err
}

// oneLine is s on one line, safe for a terminal: control characters and escape sequences (anyone can
// name a container or write a log line) are shown as visible escapes, never interpreted.
func oneLine(s string) string {
	return strings.Join(strings.Fields(safetext.Line(s)), " ")
}

// clip cuts s to n runes, marking the cut with an ellipsis.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	if n <= 1 {
		return string(r[:n])
	}
	return string(r[:n-1]) + "…"
}

func fmtDuration(ms float64) string {
	if ms <= 0 {
		return "-"
	}
	d := time.Duration(ms * float64(time.Millisecond))
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return d.Round(time.Second).String()
}
