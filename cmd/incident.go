package cmd

import (
	"context"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hemostat/hemostat/pkg/audit"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/safetext"
	"github.com/hemostat/hemostat/pkg/store"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

func newIncidentCmd(d *Deps) *cobra.Command {
	c := &cobra.Command{
		Use:   "incident",
		Short: "List the open incidents, or close one by hand",
		Long: `An open incident is a problem hemostat keeps working on until it ends: recovered (its condition stayed
clear for the recovery hysteresis), gave up (the breaker opened: a human must act; it resumes after
'hemostat respond reset' or the breaker's cool-off if the container still fails), or closed by a person:
the container stopped or removed by a client, or 'hemostat incident close'.`,
		Example: `  hemostat incident list
  hemostat incident list web-1 -o json
  hemostat incident close web-1`,
	}
	c.AddCommand(newIncidentListCmd(d), newIncidentCloseCmd(d))
	return c
}

func newIncidentListCmd(d *Deps) *cobra.Command {
	var output string
	var filter jsonFilter
	c := &cobra.Command{
		Use:   "list [container]",
		Short: "The open incidents: their condition, attempts, and when hemostat looks again",
		Long: `list prints the open incidents, oldest first (of one container when one is named: a name on this host,
or host/name), with their condition (failing, or clear and waiting out the recovery hysteresis), the
actions taken, and what comes next: the next attempt and why it waits, or that hemostat gave up.`,
		Example: `  hemostat incident list
  hemostat incident list node-b/web-1
  hemostat incident list -o jsonl | jq -r 'select(.gave_up_at != null) | .key'
  hemostat incident list --jq '.[] | select(.attempts > 1) | "\(.key) \(.attempts)"'`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: d.completion(completeContainers, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			target := ""
			if len(args) == 1 {
				target = args[0]
			}
			if filter.active() && !cmd.Flags().Changed("output") {
				output = formatJSON // --jq works on JSON
			}
			if filter.active() && output == formatTable {
				return UsageError("--jq works on JSON: use -o json or -o jsonl")
			}
			if err := filter.compile(); err != nil {
				return err
			}
			return incidentListRun(cmd.Context(), d, target, output, filter)
		},
	}
	addOutputFlag(c.Flags(), &output, formatTable, formatJSON, formatJSONL)
	addJSONFilterFlags(c.Flags(), &filter)
	return c
}

func newIncidentCloseCmd(d *Deps) *cobra.Command {
	var output string
	c := &cobra.Command{
		Use:   "close <incident|container>",
		Short: "Close an open incident by hand: hemostat stops working on it (audited as you)",
		Long: `close ends open incidents as closed by a person: the follow-up is cancelled, the container leaves the
blast radius's count, the monitor forgets the incident at its next reconcile, and the audit trail records
who closed it. Name one incident (host/name/class), or a container (a name on this host, or host/name) to
close all of its open incidents. A later failure opens a new incident.

Nothing open by that name is an error (exit 5), and nothing is written.`,
		Example: `  hemostat incident close web-1
  hemostat incident close node-a/web-1/unhealthy
  hemostat incident close web-1 -o json`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: d.completion(completeIncidents, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return incidentCloseRun(cmd.Context(), d, args[0], output)
		},
	}
	addOutputFlag(c.Flags(), &output, formatText, formatJSON, formatJSONL)
	return c
}

// incidentView is one open incident as list prints it in JSON.
type incidentView struct {
	Key          string     `json:"key"`
	Host         string     `json:"host"`
	Container    string     `json:"container"`
	Class        string     `json:"class"`
	OpenedAt     time.Time  `json:"opened_at"`
	Condition    string     `json:"condition"`
	Relapses     int        `json:"relapses,omitempty"`
	Action       string     `json:"action,omitempty"`
	Attempts     int        `json:"attempts"`
	Errors       []string   `json:"errors,omitempty"`
	NextAt       *time.Time `json:"next_at,omitempty"`
	NextReason   string     `json:"next_reason,omitempty"`
	GaveUpAt     *time.Time `json:"gave_up_at,omitempty"`
	BreakerUntil *time.Time `json:"breaker_until,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func viewOf(in schema.Incident) incidentView {
	return incidentView{Key: in.Key, Host: in.Host, Container: in.Container, Class: in.Class, OpenedAt: in.OpenedAt,
		Condition: in.Condition, Relapses: in.Relapses, Action: in.Action, Attempts: in.Attempts, Errors: in.Errors,
		NextAt: timePtr(in.NextAt), NextReason: in.NextReason, GaveUpAt: timePtr(in.GaveUpAt),
		BreakerUntil: timePtr(in.BreakerUntil)}
}

// matchIncidents returns the open incidents a command-line name picks: one incident (host/name/class), a
// container (host/name, or a name on this host), or every one when the name is empty.
func matchIncidents(d *Deps, all []schema.Incident, name string) ([]schema.Incident, error) {
	if name == "" {
		return all, nil
	}
	parts := strings.Split(name, "/")
	var host, cname, class string
	switch len(parts) {
	case 1:
		host, cname = d.HostName(), parts[0]
	case 2:
		host, cname = parts[0], parts[1]
	case 3:
		host, cname, class = parts[0], parts[1], parts[2]
	}
	if host == "" || cname == "" || len(parts) > 3 {
		return nil, UsageError("want a container (name or host/name) or an incident (host/name/class), got %q", name)
	}
	var out []schema.Incident
	for _, in := range all {
		if in.Key == event.IncidentKey(host, cname, class) || (class == "" && strings.HasPrefix(in.Key, event.Target(host, cname)+"/")) {
			out = append(out, in)
		}
	}
	return out, nil
}

func incidentListRun(ctx context.Context, d *Deps, name, output string, filter jsonFilter) error {
	st, err := d.Store(ctx)
	if err != nil {
		return err
	}
	all, err := st.Incidents.OpenIncidents(ctx, "")
	if err != nil {
		return auditStoreErr(err)
	}
	list, err := matchIncidents(d, all, name)
	if err != nil {
		return err
	}
	if output != formatTable {
		views := make([]incidentView, len(list))
		for i, in := range list {
			views[i] = viewOf(in)
		}
		if output == formatJSONL {
			for _, v := range views {
				if filter.active() {
					err = filter.write(ctx, d.Out, v)
				} else {
					err = writeJSON(d.Out, output, v)
				}
				if err != nil {
					return err
				}
			}
			return nil
		}
		if filter.active() { // the array, as -o json prints it
			return filter.write(ctx, d.Out, views)
		}
		return writeJSON(d.Out, output, views)
	}
	now := time.Now()
	w := tabwriter.NewWriter(d.Out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "INCIDENT\tOPEN FOR\tCONDITION\tATTEMPTS\tNEXT")
	for _, in := range list {
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\n", safetext.Line(in.Key), now.Sub(in.OpenedAt).Round(time.Second),
			safetext.Line(orNone(in.Condition)), in.Attempts, safetext.Line(nextText(now, in)))
	}
	return w.Flush()
}

// nextText says what comes next about an incident, in a few words.
func nextText(now time.Time, in schema.Incident) string {
	switch {
	case in.GaveUp():
		s := "gave up at " + in.GaveUpAt.Local().Format("15:04")
		if !in.BreakerUntil.IsZero() {
			s += ", breaker open until " + in.BreakerUntil.Local().Format("15:04")
		}
		return s + ": hemostat respond reset " + in.Container
	case !in.NextAt.IsZero():
		wait := in.NextAt.Sub(now).Round(time.Second)
		why, _, _ := strings.Cut(in.NextReason, ":")
		if wait <= 0 {
			return "looking again now (" + why + ")"
		}
		return fmt.Sprintf("looking again in %s (%s)", wait, why)
	case in.Condition == schema.ConditionClear:
		return "healthy, waiting out the recovery hysteresis"
	case in.Action == event.ActionNone:
		return "escalated: a human must act"
	case in.FalseAlarm:
		return "false alarm: nothing to do"
	case in.Action == "":
		return "waiting for the analyzer"
	}
	return "-"
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// closedView is what close reports of each incident it closed.
type closedView struct {
	Key   string `json:"key"`
	Audit string `json:"audit_id"`
}

func incidentCloseRun(ctx context.Context, d *Deps, name, output string) error {
	st, err := d.Store(ctx)
	if err != nil {
		return err
	}
	all, err := st.Incidents.OpenIncidents(ctx, "")
	if err != nil {
		return auditStoreErr(err)
	}
	list, err := matchIncidents(d, all, name)
	if err != nil {
		return err
	}
	if len(list) == 0 {
		return &ExitError{Code: ExitNotFound, Err: fmt.Errorf("no open incident matches %q (hemostat incident list shows them)", name)}
	}
	user := os.Getenv("USER")
	if user == "" {
		user = "unknown"
	}
	actor := "human:" + user
	closed, err := closeIncidents(ctx, st, list, actor, time.Now())
	if err != nil {
		return auditStoreErr(err)
	}
	if output != formatText {
		if output == formatJSONL {
			for _, c := range closed {
				if err := writeJSON(d.Out, output, c); err != nil {
					return err
				}
			}
			return nil
		}
		return writeJSON(d.Out, output, closed)
	}
	for _, c := range closed {
		fmt.Fprintf(d.Out, "closed %s (audit entry %s)\n", c.Key, c.Audit)
	}
	return nil
}

// closeIncidents closes each incident as closed by actor and audits it.
func closeIncidents(ctx context.Context, st *store.Store, list []schema.Incident, actor string, now time.Time) ([]closedView, error) {
	trail := audit.NewTrail(st.Audit)
	var out []closedView
	for _, in := range list {
		if err := st.Incidents.Close(ctx, in.Key, now, "closed by "+actor); err != nil {
			return out, err
		}
		rec, err := trail.Append(ctx, audit.Entry{Time: now, Host: in.Host, Container: in.Container,
			ContainerID: in.ContainerID, Incident: in.Key, Action: actionClose, Decision: decisionClosed,
			Result: event.StatusSuccess, Reason: "incident closed by hand", Actor: actor, Attempts: in.Attempts})
		if err != nil {
			return out, err
		}
		out = append(out, closedView{Key: in.Key, Audit: rec.StreamID})
	}
	return out, nil
}

// The audit trail's words for a person closing an incident.
const (
	actionClose    = "close"
	decisionClosed = "closed"
)
