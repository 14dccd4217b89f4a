package cmd

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hemostat/hemostat/pkg/cgroup"
	"github.com/hemostat/hemostat/pkg/conn"
	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/doctor"
	"github.com/hemostat/hemostat/pkg/monitor"
)

type doctorOptions struct {
	Output string
}

func newDoctorCmd(d *Deps) *cobra.Command {
	opts := &doctorOptions{}
	agents := map[string]*cobra.Command{
		"monitor": newMonitorCmd(d, nil),
		"analyze": newAnalyzeCmd(d, nil),
		"respond": newRespondCmd(d, nil),
		"alert":   newAlertCmd(d, nil),
		"export":  newExportCmd(d, nil),
	}
	c := &cobra.Command{
		Use:   "doctor",
		Short: "Check that hemostat, configured as it is, can do its job here, and say how to fix what is not",
		Long: `doctor checks, with the configuration the agents would use (the same flags and HEMOSTAT_* variables
as 'hemostat run'), everything that would make hemostat fail or silently do nothing:

  docker             the engine answers; the negotiated API version; the containers can be listed
  cgroup             which sampler --sampler would run, tried on a running container's cgroup files
  redis              reachable; version 6.2 or later (streams with XAUTOCLAIM); a Redis Cluster is refused
  redis-mode         standalone or through Sentinel; TLS off, on or mutual; the server is a master, and
                     through Sentinel it has a replica to promote
  redis-persistence  appendonly, save, and the last disk writes (without persistence a restart forgets
                     breakers, backoff, incidents and the audit trail)
  redis-eviction     maxmemory-policy noeviction (an evicting Redis drops streams and ledger keys)
  clock              this host against Redis TIME and the engine's clock
  notifications      a sink is configured, and each sink's host answers DNS, TCP and TLS (nothing is sent)
  labels             the hemostat.* labels of every container: booleans, modes, actions, exec JSON,
                     durations and thresholds an agent would misread or ignore
  watch              --watch, --include and --exclude leave the monitor something to watch
  dry-run            when --dry-run is on, nothing is ever restarted

Each line says ok, warn, FAIL or skip, and what to do. Nothing is written and nothing is sent.
Exit status: 0 when no check fails (warnings allowed), 1 when one does.`,
		Example: `  hemostat doctor
  hemostat doctor -o json | jq '.checks[] | select(.status != "ok")'
  hemostat doctor -o jsonl | jq -r 'select(.status == "fail") | .fix'
  HEMOSTAT_WATCH=labeled hemostat doctor`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return doctorRun(cmd.Context(), d, cmd.Flags(), opts)
		},
	}
	c.Annotations = map[string]string{annAgentConfig: "true"}
	f := c.Flags()
	addOutputFlag(f, &opts.Output, formatText, formatJSON, formatJSONL)
	mergeAgentFlags(f, agents)
	return c
}

func doctorRun(ctx context.Context, d *Deps, f *pflag.FlagSet, opts *doctorOptions) error {
	str := func(name string) string {
		if fl := f.Lookup(name); fl != nil {
			return fl.Value.String()
		}
		return ""
	}
	list := func(name string) []string {
		v, _ := f.GetStringSlice(name)
		return v
	}
	redisDefault := !f.Changed("redis-url") && os.Getenv(envName("redis-url")) == "" && len(d.Global.Redis.Sentinels) == 0
	ro := d.redisOptions(0)
	o := doctor.Options{
		Docker: func(ctx context.Context) (doctor.Docker, error) {
			c, err := d.Docker(ctx)
			if err != nil {
				return nil, err
			}
			return doctorDocker{c}, nil
		},
		Redis: func(ctx context.Context) (doctor.Redis, error) {
			c, err := d.Store(ctx)
			if err != nil {
				return nil, err
			}
			return c.Conn, nil
		},
		RedisURL:     d.redisTarget(),
		RedisDefault: redisDefault,
		RedisMode:    ro.Mode(),
		RedisTLS:     tlsWords(ro),
		Cgroup:       cgroup.NewReader(cgroup.Options{}),
		Sampler:      str("sampler"),
		Watch:        monitor.WatchRules{Mode: str("watch"), Include: list("include"), Exclude: list("exclude")},
		Sinks: doctor.Sinks{SlackWebhookURL: str("slack-webhook-url"), SlackToken: str("slack-token"),
			SlackChannel: str("slack-channel"), SlackAPIURL: str("slack-api-url"), WebhookURL: str("webhook-url")},
		DryRun: str("dry-run") == "true",
		Prober: doctor.NetProber{},
	}
	rep := doctor.Run(ctx, o)
	var err error
	switch opts.Output {
	case formatJSON:
		err = doctor.WriteJSON(d.Out, rep)
	case formatJSONL:
		err = doctor.WriteJSONL(d.Out, rep)
	default:
		err = doctor.WriteText(d.Out, rep)
	}
	if err != nil {
		return err
	}
	if !rep.OK {
		return &ExitError{Code: ExitFailure, Err: fmt.Errorf("doctor: %d check(s) failed", rep.Counts[doctor.StatusFail])}
	}
	return nil
}

// doctorDocker adapts *docker.Client to doctor.Docker.
type doctorDocker struct{ *docker.Client }

// Versions implements doctor.Docker.
func (c doctorDocker) Versions() (string, string) { return c.APIVersion, c.ServerVersion }

// tlsWords says how a connection with these options is encrypted.
func tlsWords(o conn.Options) string {
	switch {
	case !o.TLSEnabled():
		return "off"
	case o.TLS.Cert != "":
		return "on, with a client certificate"
	}
	return "on"
}
