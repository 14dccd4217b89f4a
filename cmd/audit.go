package cmd

import (
	"context"
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
	"github.com/hemostat/hemostat/pkg/store"
)

// auditOptions are the flags of hemostat audit: all of them say what one invocation shows, so none has
// an environment twin.
type auditOptions struct {
	Since    string
	Action   string
	Result   string
	Incident string
	Limit    int
	Output   string
	Follow   bool
	Filter   jsonFilter
}

// defaultAuditLimit is how many matching entries audit prints without --limit.
const defaultAuditLimit = 50

func newAuditCmd(d *Deps) *cobra.Command {
	var opts auditOptions
	c := &cobra.Command{
		Use:   "audit [container]",
		Short: "Show the remediation audit trail, or verify its hash chain",
		Long: `audit prints the responder's decisions from the hash-chained trail hemostat:audit, newest first: the
newest --limit entries that match. With --follow it prints them oldest first, then each new entry as it
is appended, until interrupted. A container is host/name, or a bare name: the container of that name on
the one host that has it (this host, --host-name, when none has); a name on several hosts is a usage
error that lists them as host/name. Its entries are read through the container's index, not by scanning
the trail.

  -o table   columns that fit the terminal (default)
  -o json    one JSON array; field names are those of the stream and stable for scripts
  -o jsonl   one JSON object per line (works with --follow)

--jq filters and formats the JSON with a jq expression, as gh does: the array with -o json, which it
implies, and each entry with -o jsonl or --follow.

'hemostat audit verify' recomputes the chain. Exit codes: 0 ok (also when nothing matches), 2 usage,
3 Redis unreachable, 4 the chain is broken (verify names the first edited or missing entry).`,
		Example: `  hemostat audit
  hemostat audit web-1 --since 24h --result failed -o json
  hemostat audit --action restart --limit 0 --jq '.[] | select(.verified | not) | .container'
  hemostat audit --jq '.[] | "\(.time) \(.container) \(.result)"'
  hemostat audit --follow -o jsonl | jq .reason
  hemostat audit verify`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: d.completion(completeContainers, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			target := ""
			if len(args) == 1 {
				target = args[0]
			}
			if opts.Filter.active() && !cmd.Flags().Changed("output") {
				opts.Output = audit.FormatJSON // --jq works on JSON
				if opts.Follow {
					opts.Output = audit.FormatJSONL
				}
			}
			return auditRun(cmd.Context(), d, opts, target)
		},
	}
	f := c.Flags()
	f.StringVar(&opts.Since, "since", "", "only entries since a duration ago (90m, 24h, 7d) or a time (RFC 3339 or 2006-01-02)")
	actions := append(slices.Clone(event.Actions), "reset")
	choiceVar(f, &opts.Action, "action", "", "", "only this action: "+strings.Join(actions, ", "), actions...)
	choiceVar(f, &opts.Result, "result", "", "", "only this result: "+strings.Join(event.Statuses, ", "), event.Statuses...)
	f.StringVar(&opts.Incident, "incident", "", "only entries of this incident (host/name/class)")
	completeWith(f, "incident", completeIncidents)
	f.IntVar(&opts.Limit, "limit", defaultAuditLimit, "the newest N entries that match (0: all)")
	addOutputFlag(f, &opts.Output, audit.Formats...)
	f.BoolVarP(&opts.Follow, "follow", "f", false, "keep printing new entries as they are appended")
	addJSONFilterFlags(f, &opts.Filter)
	perInvocation(f, "since", "action", "result", "incident", "limit", "follow")
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

// resolveTarget turns audit's container argument into host/name. A bare name is the container of that name
// on the one host that has it (known to a monitor, or with audit entries), this host when none has; on
// several hosts it is ambiguous, a usage error that lists them.
func resolveTarget(ctx context.Context, st *store.Store, thisHost, arg string) (string, error) {
	if strings.Contains(arg, "/") {
		return arg, nil
	}
	hosts, err := st.Audit.HostsOf(ctx, arg)
	if err != nil {
		return "", auditStoreErr(err)
	}
	known, err := st.Containers.Targets(ctx)
	if err != nil {
		return "", auditStoreErr(err)
	}
	for _, t := range known {
		if h, n, ok := strings.Cut(t, "/"); ok && n == arg && !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	switch len(hosts) {
	case 0:
		return event.Target(thisHost, arg), nil
	case 1:
		return event.Target(hosts[0], arg), nil
	}
	slices.Sort(hosts)
	cands := make([]string, len(hosts))
	for i, h := range hosts {
		cands[i] = event.Target(h, arg)
	}
	return "", UsageError("container %q is on %d hosts; name one as host/name: %s", arg, len(hosts), strings.Join(cands, ", "))
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
	if opts.Follow && opts.Output == audit.FormatJSON {
		return UsageError("--follow writes a stream: use -o jsonl or -o table")
	}
	if opts.Filter.active() && opts.Output == audit.FormatTable {
		return UsageError("--jq works on JSON: use -o json or -o jsonl")
	}
	if err := opts.Filter.compile(); err != nil {
		return err
	}
	if opts.Limit < 0 {
		return UsageError("--limit %d: want 0 (all) or more", opts.Limit)
	}
	since, err := parseSince(opts.Since, time.Now())
	if err != nil {
		return UsageError("%v", err)
	}
	f := audit.Filter{Since: since, Action: opts.Action, Result: opts.Result, Incident: opts.Incident, Limit: opts.Limit}
	if opts.Limit == 0 {
		f.Limit = -1
	}
	if opts.Incident != "" {
		host, rest, ok := strings.Cut(opts.Incident, "/")
		name, _, ok2 := strings.Cut(rest, "/")
		if !ok || !ok2 || host == "" || name == "" {
			return UsageError("--incident %q: want host/name/class", opts.Incident)
		}
		f.Target = event.Target(host, name) // read through the container's index
	}
	st, err := d.Store(ctx)
	if err != nil {
		return err
	}
	if target != "" {
		t, err := resolveTarget(ctx, st, d.HostName(), target)
		if err != nil {
			return err
		}
		if f.Target != "" && f.Target != t {
			return UsageError("--incident %q is not an incident of %s", opts.Incident, t)
		}
		f.Target = t
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
		slices.Reverse(recs) // newest first
		if opts.Filter.active() {
			return writeFiltered(ctx, d, opts, recs)
		}
		return audit.Write(d.Out, opts.Output, recs, width)
	}
	table := audit.NewTable(width)
	if opts.Output == audit.FormatTable {
		if err := table.Header(d.Out); err != nil {
			return err
		}
	}
	print := func(r audit.Record) error {
		switch {
		case opts.Output == audit.FormatTable:
			return table.Row(d.Out, r)
		case opts.Filter.active():
			return opts.Filter.write(ctx, d.Out, r)
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

// writeFiltered prints records through --jq: the array with -o json, each record with -o jsonl.
func writeFiltered(ctx context.Context, d *Deps, opts auditOptions, recs []audit.Record) error {
	if opts.Output == audit.FormatJSON {
		if recs == nil {
			recs = []audit.Record{}
		}
		return opts.Filter.write(ctx, d.Out, recs)
	}
	for _, r := range recs {
		if err := opts.Filter.write(ctx, d.Out, r); err != nil {
			return err
		}
	}
	return nil
}

func newAuditVerifyCmd(d *Deps) *cobra.Command {
	var output string
	c := &cobra.Command{
		Use:   "verify",
		Short: "Recompute the audit hash chain; exit 4 at the first edited or missing entry",
		Long: `verify recomputes the SHA-256 chain of hemostat:audit from the first entry to the head. Exit codes: 0 the
chain is intact, 3 Redis unreachable, 4 an entry was edited or is missing (named, on stderr, and in the
JSON with -o json).`,
		Example: `  hemostat audit verify
  hemostat audit verify -o json | jq .ok`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return auditVerifyRun(cmd.Context(), d, output)
		},
	}
	addOutputFlag(c.Flags(), &output, formatText, formatJSON, formatJSONL)
	return c
}

func auditVerifyRun(ctx context.Context, d *Deps, output string) error {
	st, err := d.Store(ctx)
	if err != nil {
		return err
	}
	rep, err := audit.NewTrail(st.Audit).Verify(ctx)
	if err != nil {
		return auditStoreErr(err)
	}
	if output != formatText {
		type brk struct {
			StreamID string `json:"stream_id"`
			Seq      int64  `json:"seq"`
			Kind     string `json:"kind"`
			Detail   string `json:"detail"`
		}
		type anchor struct {
			Seq       int64     `json:"seq"`
			Hash      string    `json:"hash"`
			TrimmedAt time.Time `json:"trimmed_at"`
		}
		v := struct {
			OK         bool    `json:"ok"`
			Entries    int64   `json:"entries"`
			FirstSeq   int64   `json:"first_seq,omitempty"`
			Head       string  `json:"head_hash"`
			AnchoredAt *anchor `json:"anchored_at,omitempty"` // the trimmed chain starts after this entry
			Break      *brk    `json:"break,omitempty"`
		}{OK: rep.Break == nil, Entries: rep.Entries, FirstSeq: rep.First, Head: rep.Head.Hash}
		if a := rep.Anchor; a.Seq > 0 {
			v.AnchoredAt = &anchor{a.Seq, a.Hash, a.TrimmedAt}
		}
		if b := rep.Break; b != nil {
			v.Break = &brk{b.StreamID, b.Seq, b.Kind, b.Detail}
		}
		if err := writeJSON(d.Out, output, v); err != nil {
			return err
		}
	} else if rep.Break == nil {
		fmt.Fprintf(d.Out, "audit trail intact: %d entries, head %.16s\n", rep.Entries, rep.Head.Hash)
		if a := rep.Anchor; a.Seq > 0 {
			fmt.Fprintf(d.Out, "the chain starts at seq %d: entries up to seq %d were trimmed by the retention on %s, and the first kept chains to the anchor %.16s\n",
				a.Seq+1, a.Seq, a.TrimmedAt.UTC().Format(time.RFC3339), a.Hash)
		}
	}
	if rep.Break != nil {
		return &ExitError{Code: ExitIntegrity, Err: rep.Break}
	}
	return nil
}
