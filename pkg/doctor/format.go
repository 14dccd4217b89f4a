package doctor

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// WriteText writes the report for a person: one line per check, its details and its fix indented below,
// then the counts.
func WriteText(w io.Writer, rep Report) error {
	width := 0
	for _, c := range rep.Checks {
		width = max(width, len(c.Name))
	}
	var b strings.Builder
	for _, c := range rep.Checks {
		mark := map[Status]string{StatusOK: "ok", StatusSkip: "skip", StatusWarn: "warn", StatusFail: "FAIL"}[c.Status]
		fmt.Fprintf(&b, "%-4s  %-*s  %s\n", mark, width, c.Name, c.Summary)
		indent := strings.Repeat(" ", 6+width+2)
		for _, d := range c.Details {
			fmt.Fprintf(&b, "%s- %s\n", indent, d)
		}
		if c.Fix != "" {
			fmt.Fprintf(&b, "%sfix: %s\n", indent, c.Fix)
		}
	}
	fmt.Fprintf(&b, "\n%d ok, %d warnings, %d failed, %d skipped\n",
		rep.Counts[StatusOK], rep.Counts[StatusWarn], rep.Counts[StatusFail], rep.Counts[StatusSkip])
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON writes the report as one indented JSON document.
func WriteJSON(w io.Writer, rep Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// WriteJSONL writes one check per line, as the other commands' -o jsonl write one record per line; the
// counts and the verdict follow from the checks' statuses.
func WriteJSONL(w io.Writer, rep Report) error {
	enc := json.NewEncoder(w)
	for _, c := range rep.Checks {
		if err := enc.Encode(c); err != nil {
			return err
		}
	}
	return nil
}
