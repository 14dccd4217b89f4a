package cmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hemostat/hemostat/pkg/agent"
	"github.com/hemostat/hemostat/pkg/bus"
	"github.com/hemostat/hemostat/pkg/conn"
	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/event"
	"github.com/hemostat/hemostat/pkg/respond"
	"github.com/hemostat/hemostat/pkg/store"
	"github.com/hemostat/hemostat/pkg/store/schema"
)

// respondOptions are the flags of hemostat respond: the responder's policy, whose defaults are
// respond.Config{}.WithDefaults(), and how many requests it reads at once.
type respondOptions struct {
	Config  respond.Config // Host is set at run time
	Workers int
	Batch   int64
	Bus     bus.Options
}

// defaultRespondBatch is how many requests one consumer reads and decides together.
const defaultRespondBatch = 64

func newRespondCmd(d *Deps, runF func(context.Context, *Deps, respondOptions) error) *cobra.Command {
	if runF == nil {
		runF = respondRun
	}
	opts := respondOptions{Config: respond.Config{}.WithDefaults(), Workers: respond.DefaultWorkers,
		Batch: defaultRespondBatch, Bus: bus.DefaultOptions()}
	cfg := &opts.Config
	c := &cobra.Command{
		Use:   "respond",
		Short: "Remediate this host's containers behind a safety ledger, verify, and audit every decision",
		Long: `respond consumes its host's requests, hemostat:remediation_needed:<host> (--host-name), in the
consumer group respond:<host>; every host runs its own responder, which reads only its own host's stream.
At start it drains once what its group left on the single request stream of earlier versions
(hemostat:remediation_needed). For each request, in order:

  1. the container must still exist (or have a compose replacement)   else skipped: gone
  2. protected containers are never touched: label hemostat.protected=true, hemostat's own
     (label hemostat.self=true or a name starting with "hemostat"), the --protected list   denied: protected
  3. the action must be allowed: label hemostat.actions (default --actions); exec only runs commands
     declared in hemostat.exec, without a shell; scale only for swarm services   denied: action_not_allowed
  4. a request already handled is acked, nothing else
  5. another responder holds the container's lease                    skipped: busy
  6. more than --max-unhealthy containers unhealthy (default 50% of watched, at least 3), or
     --max-concurrent actions running on the host                     held: blast_radius (pages once)
  7. circuit breaker: after --max-actions-per-hour actions on one container within an hour it opens
     (one escalation) for --breaker-cooloff, or until 'hemostat respond reset'   denied: circuit_open
  8. backoff: --backoff doubling up to --cooldown between actions; reset after --healthy-reset healthy
                                                                       denied: cooldown (with time left)
  9. --dry-run or label hemostat.mode=suggest|observe: simulated against the shadow ledger, so it predicts
     exactly what a real run would do; no engine write is made
 10. act, then verify: running, and healthy if it has a healthcheck, within a settle window derived from
     the healthcheck; a failed verification counts toward the breaker.

Per-container labels: hemostat.actions, hemostat.exec (JSON list of commands, e.g.
[["/app","-probe","http://127.0.0.1:8080/health"]]), hemostat.mode, hemostat.protected,
hemostat.stop_timeout, and the tuning labels hemostat.max_actions_per_hour, hemostat.backoff,
hemostat.cooldown, hemostat.breaker_cooloff, hemostat.healthy_reset (same values as the flags).

Every decision is appended to the hash-chained audit trail (hemostat audit) and published as
remediation_complete. Without Redis nothing is done: requests stay pending until it is back.`,
		Example: `  hemostat respond --dry-run
  hemostat respond --protected db-1,host-b/vault --max-actions-per-hour 2
  hemostat respond reset web-1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runF(cmd.Context(), d, opts)
		},
	}
	c.Annotations = map[string]string{annAgent: "true"}
	f := c.Flags()
	f.BoolVar(&cfg.DryRun, "dry-run", cfg.DryRun, "simulate every action against the shadow ledger; never write to the engine")
	f.StringSliceVar(&cfg.Protected, "protected", cfg.Protected, "containers never touched (names, host/name, or id prefixes), comma separated")
	completeWith(f, "protected", completeContainers)
	choiceSliceVar(f, &cfg.Actions, "actions", cfg.Actions, "actions allowed on containers without a hemostat.actions label", event.Actions...)
	f.IntVar(&cfg.MaxUnhealthy, "max-unhealthy", cfg.MaxUnhealthy, "hold automatic actions while more containers than this are unhealthy (0: --max-unhealthy-percent of watched, at least 3)")
	f.IntVar(&cfg.MaxUnhealthyPercent, "max-unhealthy-percent", cfg.MaxUnhealthyPercent, "percent of watched containers that may be unhealthy at once")
	f.IntVar(&cfg.MaxConcurrent, "max-concurrent", cfg.MaxConcurrent, "actions running at once on this host")
	f.DurationVar(&cfg.HoldPeriod, "hold-period", cfg.HoldPeriod, "page once per blast-radius hold period")
	f.IntVar(&cfg.MaxActionsPerHour, "max-actions-per-hour", cfg.MaxActionsPerHour, "actions on one container within an hour before the breaker opens")
	f.DurationVar(&cfg.BreakerCooloff, "breaker-cooloff", cfg.BreakerCooloff, "how long an open breaker stays open")
	f.DurationVar(&cfg.BackoffBase, "backoff", cfg.BackoffBase, "first gap between actions on one container; doubles each time")
	f.DurationVar(&cfg.Cooldown, "cooldown", cfg.Cooldown, "cap of the gap between actions on one container")
	f.DurationVar(&cfg.HealthyReset, "healthy-reset", cfg.HealthyReset, "healthy this long after an action resets the backoff")
	f.DurationVar(&cfg.StopTimeout, "stop-timeout", cfg.StopTimeout, "stop grace before SIGKILL, unless the hemostat.stop_timeout label says otherwise")
	f.Uint64Var(&cfg.MaxReplicas, "max-replicas", cfg.MaxReplicas, "scale never grows a swarm service beyond this many replicas")
	f.DurationVar(&cfg.ExecTimeout, "exec-timeout", cfg.ExecTimeout, "deadline of an exec action")
	f.DurationVar(&cfg.SettleMax, "settle-max", cfg.SettleMax, "longest verification wait, whatever the healthcheck says")
	f.DurationVar(&cfg.SettleDefault, "settle", cfg.SettleDefault, "verification wait for containers without a healthcheck")
	f.DurationVar(&cfg.StableFor, "stable-for", cfg.StableFor, "without a healthcheck, the container must stay running this long")
	f.DurationVar(&cfg.LeaseTTL, "lease-ttl", cfg.LeaseTTL, "lifetime of a container lease, renewed while acting")
	f.DurationVar(&cfg.DoneTTL, "done-ttl", cfg.DoneTTL, "how long handled request ids are remembered")
	f.Int64Var(&cfg.AuditMaxEntries, "audit-max-entries", cfg.AuditMaxEntries, "the audit trail keeps at most this many entries (negative: no cap); the first kept anchors the chain")
	f.DurationVar(&cfg.AuditMaxAge, "audit-max-age", cfg.AuditMaxAge, "the audit trail keeps no entry older than this (negative: no limit)")
	f.DurationVar(&cfg.HoldRetry, "hold-retry", cfg.HoldRetry, "look again at a request held by the blast radius after this, until the hold lifts")
	f.DurationVar(&cfg.FollowupPoll, "followup-poll", cfg.FollowupPoll, "longest wait between two reads of the host's follow-up schedule")
	f.DurationVar(&cfg.FollowupHold, "followup-hold", cfg.FollowupHold, "a follow-up taken by a responder that dies is due again after this")
	f.IntVar(&opts.Workers, "respond-workers", opts.Workers, "consumers, each reading --batch requests at once; also the engine actions one consumer runs at once")
	deprecatedAlias(f, "workers", "respond-workers")
	f.Int64Var(&opts.Batch, "batch", opts.Batch, "requests read at once by a consumer: those that need no engine action are decided together, one round trip per step")
	addBusFlags(c, &opts.Bus)
	c.AddCommand(newRespondResetCmd(d))
	return c
}

func respondRun(ctx context.Context, d *Deps, opts respondOptions) error {
	cfg := opts.Config
	if cfg.MaxUnhealthyPercent <= 0 || cfg.MaxUnhealthyPercent > 100 {
		return UsageError("--max-unhealthy-percent must be within 1..100, got %d", cfg.MaxUnhealthyPercent)
	}
	if cfg.MaxConcurrent <= 0 || cfg.MaxActionsPerHour <= 0 || opts.Workers <= 0 || opts.Batch <= 0 {
		return UsageError("--max-concurrent, --max-actions-per-hour, --respond-workers and --batch must be positive")
	}
	if cfg.BackoffBase <= 0 || cfg.Cooldown < cfg.BackoffBase {
		return UsageError("--backoff must be positive and at most --cooldown")
	}
	cfg.Host = d.HostName()
	if cfg.MaxRequestAge = d.Signing.requestAge(); cfg.MaxRequestAge >= cfg.DoneTTL {
		return UsageError("--max-request-age %s must be shorter than --done-ttl %s: a replay older than the one and younger than the other would be acted on", cfg.MaxRequestAge, cfg.DoneTTL)
	}
	st, err := d.Store(ctx)
	if err != nil {
		return err
	}
	dk, err := d.Docker(ctx)
	if err != nil {
		return err
	}
	// A consumer decides the requests of a read together; a long verification among them holds only that
	// consumer's next read (the others' outcomes are out before any action starts).
	opts.Bus.Batch, opts.Bus.Concurrency = opts.Batch, 1
	b, err := d.Bus(ctx, opts.Bus)
	if err != nil {
		return err
	}
	r := respond.New(cfg, dk, respondStores(st), st.Audit, b, respond.Options{Instance: d.Instance(), Workers: opts.Workers, Logger: d.Logger})
	mode := "auto"
	if cfg.DryRun {
		mode = "dry-run"
	}
	d.Logger.Info("responder ready", "host", cfg.Host, "group", respond.Group(cfg.Host), "mode", mode,
		"max_concurrent", cfg.MaxConcurrent, "max_actions_per_hour", cfg.MaxActionsPerHour)
	return agent.Run(ctx, agent.Options{Kind: "respond", Instance: d.Instance(), Version: Build().Version,
		Record: schema.Agent{Host: cfg.Host, Mode: mode, Policy: respond.EncodePolicy(r.Config())}, Logger: d.Logger},
		st.Agents, func(ctx context.Context) error { return r.Run(ctx, b) })
}

func isAction(a string) bool {
	for _, x := range event.Actions {
		if a == x {
			return true
		}
	}
	return false
}

func newRespondResetCmd(d *Deps) *cobra.Command {
	var output string
	c := &cobra.Command{
		Use:   "reset <container>",
		Short: "Close a container's circuit breaker and clear its backoff (audited as you)",
		Long: `reset closes the circuit breaker of a container and clears its backoff, in both the real and the
shadow ledger, and records the reset in the audit trail with the actor human:<$USER>. The container is
a name on this host (--host-name) or host/name.

A container hemostat does not know is an error (exit 5) and nothing is written: it must be watched by a
monitor (the container table), have a ledger, or, on this host, exist in the Docker engine.`,
		Example: `  hemostat respond reset web-1
  hemostat respond reset node-b/web-1 -o json`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: d.completion(completeContainers, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return respondResetRun(cmd.Context(), d, args[0], output)
		},
	}
	addOutputFlag(c.Flags(), &output, formatText, formatJSON, formatJSONL)
	return c
}

func respondResetRun(ctx context.Context, d *Deps, target, output string) error {
	host, name := d.HostName(), target
	if h, n, ok := strings.Cut(target, "/"); ok {
		host, name = h, n
	}
	if name == "" || host == "" || strings.Contains(name, "/") {
		return UsageError("reset: want a container name or host/name, got %q", target)
	}
	st, err := d.Store(ctx)
	if err != nil {
		return err
	}
	if err := checkContainer(ctx, d, st, host, name); err != nil {
		return err
	}
	user := os.Getenv("USER")
	if user == "" {
		user = "unknown"
	}
	r := respond.New(respond.Config{Host: host}, nil, respondStores(st), st.Audit, nil, respond.Options{Instance: d.Instance(), Logger: d.Logger})
	rec, err := r.Reset(ctx, name, "human:"+user)
	if err != nil {
		return auditStoreErr(err)
	}
	if output != formatText {
		return writeJSON(d.Out, output, rec)
	}
	fmt.Fprintf(d.Out, "breaker closed and backoff cleared for %s (audit entry %s)\n", event.Target(host, name), rec.StreamID)
	return nil
}

// checkContainer returns a not-found error (exit 5) saying what was looked at, unless hemostat knows the
// container: a monitor watches it, it has a ledger (real or shadow), or it is on this host and the Docker
// engine has it.
func checkContainer(ctx context.Context, d *Deps, st *store.Store, host, name string) error {
	target := event.Target(host, name)
	watched, err := st.Containers.Has(ctx, target)
	if err != nil {
		return auditStoreErr(err)
	}
	if watched {
		return nil
	}
	for _, shadow := range []bool{false, true} {
		_, found, err := st.Ledger.Get(ctx, schema.RespondKeys(host, name, shadow).Ledger)
		if err != nil && conn.IsUnavailable(err) {
			return auditStoreErr(err)
		}
		if found {
			return nil
		}
	}
	looked := "no monitor watches it and it has no ledger"
	if host == d.HostName() {
		dctx, cancel := context.WithTimeout(ctx, dockerLookupTimeout)
		defer cancel()
		dc, err := d.Docker(dctx)
		if err == nil {
			var s docker.TargetState
			if s, err = dc.ContainerState(dctx, name); err == nil && s.Name == name {
				return nil
			}
		}
		switch {
		case err == nil || errors.Is(err, docker.ErrNotFound):
			looked += ", and the Docker engine has no container of that name"
		default:
			looked += fmt.Sprintf(", and the Docker engine could not be asked (%v)", err)
		}
	}
	return &ExitError{Code: ExitNotFound, Err: fmt.Errorf("no container %s: %s", target, looked)}
}

// dockerLookupTimeout bounds the engine lookup of a container named on the command line.
const dockerLookupTimeout = 3 * time.Second
