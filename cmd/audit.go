package cmd

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/x/term"
	"github.com/spf13/cobra"

	"github.com/hemostat/hemostat/pkg/audit"
	"github.com/hemostat/hemostat/pkg/conn"
	"github.com/hemostat/hemostat/pkg/event"
)

type auditOptions struct {
	Since  string
	Action string
	Result string
	Limit  int
	Output string
	Follow bool
}

func newAuditCmd(d *Deps) *cobra.Command {
	var opts auditOptions
	c := &cobra.Command{
		Use:   "audit [container]",
		Short: "Show the remediation audit trail, or verify its hash chain",
		Long: `audit prints the responder's decisions from the hash-chained trail hemostat:audit, oldest first: the
newest --limit entries that match. A container is a name on this host (--host-name) or host/name; its
entries are read through the container's index, not by scanning the trail.

  -o table   columns that fit the terminal (default)
  -o json    one JSON array; field names are those of the stream and stable for scripts
  -o jsonl   one JSON object per line (works with --follow)

'hemostat audit verify' recomputes the chain. Exit codes: 0 ok (also when nothing matches), 2 usage,
3 Redis unreachable, 4 the chain is broken (verify names the first edited or missing entry).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			target := ""
			if len(args) == 1 {
				target = args[0]
			}
			return auditRun(cmd.Context(), d, opts, target)
		},
	}
	f := c.Flags()
	f.StringVar(&opts.Since, "since", "", "only entries since a duration ago (90m, 24h, 7d) or a time (RFC 3339 or 2006-01-02)")
	f.StringVar(&opts.Action, "action", "", "only this action: "+strings.Join(append(slices.Clone(event.Actions), "reset"), ", "))
	f.StringVar(&opts.Result, "result", "", "only this result: "+strings.Join(event.Statuses, ", "))
	f.IntVar(&opts.Limit, "limit", 50, "the newest N entries that match (0: all)")
	f.StringVarP(&opts.Output, "output", "o", audit.FormatTable, "output format: table, json or jsonl")
	f.BoolVarP(&opts.Follow, "follow", "f", false, "keep printing new entries as they are appended")
	c.AddCommand(newAuditVerifyCmd(d))
	return c
}

// parseSince reads a relative duration (with a d suffix for days) or an absolute time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if n, ok := strings.CutSuffix(s, "d"); ok {
		if days, err := strconv.Atoi(n); err == nil && days >= 0 {
			return now.Add(-time.Duration(days) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--since %q: want a duration (90m, 24h, 7d) or a time (RFC 3339 or 2006-01-02)", s)
}

// auditStoreErr marks Redis connection failures met after start as unavailable (exit 3).
func auditStoreErr(err error) error {
	if err != nil && conn.IsUnavailable(err) {
		return fmt.Errorf("%w: %v", conn.ErrUnavailable, err)
	}
	return err
}

// termWidth is the terminal's width, $COLUMNS, or 120 when the output is not a terminal.
func termWidth(d *Deps) int {
	if f, ok := d.Out.(*os.File); ok && term.IsTerminal(f.Fd()) {
		if w, _, err := term.GetSize(f.Fd()); err == nil && w > 0 {
			return w
		}
	}
	if n, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && n > 0 {
		return n
	}
	return 120
}

func auditRun(ctx context.Context, d *Deps, opts auditOptions, target string) error {
	if !slices.Contains(audit.Formats, opts.Output) {
		return UsageError("-o %q: want table, json or jsonl", opts.Output)
	}
	if opts.Follow && opts.Output == audit.FormatJSON {
		return UsageError("--follow writes a stream: use -o jsonl or -o table")
	}
	if opts.Action != "" && opts.Action != "reset" && !isAction(opts.Action) {
		return UsageError("--action %q: want one of %s, reset", opts.Action, strings.Join(event.Actions, ", "))
	}
	if opts.Result != "" && !slices.Contains(event.Statuses, opts.Result) {
		return UsageError("--result %q: want one of %s", opts.Result, strings.Join(event.Statuses, ", "))
	}
	if opts.Limit < 0 {
		return UsageError("--limit must be 0 or more, got %d", opts.Limit)
	}
	since, err := parseSince(opts.Since, time.Now())
	if err != nil {
		return UsageError("%v", err)
	}
	f := audit.Filter{Since: since, Action: opts.Action, Result: opts.Result, Limit: opts.Limit}
	if opts.Limit == 0 {
		f.Limit = -1
	}
	if target != "" {
		f.Target = target
		if !strings.Contains(target, "/") {
			f.Target = event.Target(d.HostName(), target)
		}
	}
	st, err := d.Store(ctx)
	if err != nil {
		return err
	}
	tr := audit.NewTrail(st.Audit)
	head, err := tr.Head(ctx) // --follow continues from here, so nothing appended meanwhile is missed
	if err != nil {
		return auditStoreErr(err)
	}
	recs, err := tr.Query(ctx, f)
	if err != nil {
		return auditStoreErr(err)
	}
	width := termWidth(d)
	if !opts.Follow {
		return audit.Write(d.Out, opts.Output, recs, width)
	}
	table := audit.NewTable(width)
	if opts.Output == audit.FormatTable {
		if err := table.Header(d.Out); err != nil {
			return err
		}
	}
	print := func(r audit.Record) error {
		if opts.Output == audit.FormatTable {
			return table.Row(d.Out, r)
		}
		return audit.Write(d.Out, audit.FormatJSONL, []audit.Record{r}, width)
	}
	printed := map[string]bool{}
	for _, r := range recs {
		printed[r.StreamID] = true
		if err := print(r); err != nil {
			return err
		}
	}
	after := head.ID
	if after == "" {
		after = "0"
	}
	f.Since = time.Time{}
	err = tr.Follow(ctx, f, after, func(r audit.Record) error {
		if printed[r.StreamID] {
			return nil // already shown by the query
		}
		return print(r)
	})
	if err != nil {
		return auditStoreErr(err)
	}
	return nil
}

func newAuditVerifyCmd(d *Deps) *cobra.Command {
	var output string
	c := &cobra.Command{
		Use:   "verify",
		Short: "Recompute the audit hash chain; exit 4 at the first edited or missing entry",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return auditVerifyRun(cmd.Context(), d, output)
		},
	}
	c.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return c
}

func auditVerifyRun(ctx context.Context, d *Deps, output string) error {
	if output != "text" && output != "json" {
		return UsageError("-o %q: want text or json", output)
	}
	st, err := d.Store(ctx)
	if err != nil {
		return err
	}
	rep, err := audit.NewTrail(st.Audit).Verify(ctx)
	if err != nil {
		return auditStoreErr(err)
	}
	if output == "json" {
		type brk struct {
			StreamID string `json:"stream_id"`
			Seq      int64  `json:"seq"`
			Kind     string `json:"kind"`
			Detail   string `json:"detail"`
		}
		v := struct {
			OK      bool   `json:"ok"`
			Entries int64  `json:"entries"`
			Head    string `json:"head_hash"`
			Break   *brk   `json:"break,omitempty"`
		}{OK: rep.Break == nil, Entries: rep.Entries, Head: rep.Head.Hash}
		if b := rep.Break; b != nil {
			v.Break = &brk{b.StreamID, b.Seq, b.Kind, b.Detail}
		}
		enc := json.NewEncoder(d.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			return err
		}
	} else if rep.Break == nil {
		fmt.Fprintf(d.Out, "audit trail intact: %d entries, head %.16s\n", rep.Entries, rep.Head.Hash)
	}
	if rep.Break != nil {
		return &ExitError{Code: ExitIntegrity, Err: rep.Break}
	}
	return nil
}
