package cmd

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"

	"github.com/hemostat/hemostat/pkg/conn"
	"github.com/hemostat/hemostat/pkg/embedded"
)

type runOptions struct {
	Embedded            string
	EmbeddedAddr        string
	EmbeddedRedisServer string
	DataDir             string
	Agents              []string
	// ignoredEnv are the variables of the agents' deprecated flags, which run does not take: each meant a
	// different setting in different agents.
	ignoredEnv map[string][]string
}

// runAgents are the agents `hemostat run` starts, in start order.
var runAgents = []string{"export", "alert", "respond", "analyze", "monitor"}

func newRunCmd(d *Deps) *cobra.Command {
	opts := &runOptions{}
	agents := map[string]*cobra.Command{
		"monitor": newMonitorCmd(d, nil),
		"analyze": newAnalyzeCmd(d, nil),
		"respond": newRespondCmd(d, nil),
		"alert":   newAlertCmd(d, nil),
		"export":  newExportCmd(d, nil),
	}
	c := &cobra.Command{
		Use:   "run",
		Short: "Run every agent in one process (monitor, analyze, respond, alert, export)",
		Long: `run starts monitor, analyze, respond, alert and export in one process, sharing one Redis connection pool.
It accepts every flag of those agents. A flag several agents share means the same in each and sets it for
all of them (--claim-idle, --max-deliveries, --stream-max-len); where agents' settings differ, so do their
names (--sample-workers for monitor, --respond-workers for respond).

With --redis-url (or HEMOSTAT_REDIS_URL) it uses that Redis. With neither, it uses the default address when a
Redis answers there, and otherwise serves an embedded store on --embedded-addr (loopback only), so
'hemostat dash' and 'hemostat audit' in another terminal work unchanged. The embedded store is a
redis-server child when one is installed (--embedded auto or redis-server; --embedded-redis-server names the
binary), with its append-only file in --data-dir, fsynced before each reply; otherwise (--embedded
in-process) an in-process store that journals its writes to --data-dir. Either way a write acknowledged
more than a second before a crash survives it, and nothing is served until the old state is loaded.

Ctrl-C stops every agent gracefully: work in flight finishes, or stays pending for the next start.`,
		Example: `  hemostat run
  hemostat run --redis-url redis://redis:6379/0 --dry-run --watch labeled
  hemostat run --agents monitor,analyze --llm-provider openai -o jsonl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runRun(cmd, d, opts, agents)
		},
	}
	c.Annotations = map[string]string{annAgent: "true"}
	f := c.Flags()
	f.StringVar(&opts.EmbeddedAddr, "embedded-addr", "127.0.0.1:6379", "loopback address of the embedded store, when no Redis is configured or answering")
	choiceVar(f, &opts.Embedded, "embedded", "", string(embedded.Auto), "the embedded store: a redis-server child, the in-process store, or auto (the child when redis-server is installed)", embedded.Kinds...)
	f.StringVar(&opts.EmbeddedRedisServer, "embedded-redis-server", "", "the redis-server binary the embedded store runs (default: redis-server on PATH)")
	f.StringVar(&opts.DataDir, "data-dir", defaultDataDir(), "where the embedded store keeps its state")
	choiceSliceVar(f, &opts.Agents, "agents", runAgents, "agents to run", runAgents...)
	opts.ignoredEnv = mergeAgentFlags(f, agents)
	return c
}

// defaultDataDir is $XDG_STATE_HOME/hemostat, or ~/.local/state/hemostat.
func defaultDataDir() string {
	if x := os.Getenv("XDG_STATE_HOME"); x != "" {
		return filepath.Join(x, "hemostat")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "state", "hemostat")
	}
	return filepath.Join(os.TempDir(), "hemostat")
}

// mergeAgentFlags adds every agent's flags to run's flag set. A name several agents define becomes one flag
// whose value is set on all of them: TestRunFlagsHaveOneMeaning checks they mean the same in each. The
// agents' deprecated aliases are left out; it returns their variables, each with what replaces it.
func mergeAgentFlags(dst *pflag.FlagSet, agents map[string]*cobra.Command) (ignoredEnv map[string][]string) {
	ignoredEnv = map[string][]string{}
	byName := map[string][]*pflag.Flag{}
	var order []string
	names := make([]string, 0, len(agents))
	for n := range agents {
		names = append(names, n)
	}
	sort.Strings(names)
	owners := map[string][]string{}
	for _, n := range names {
		visit := func(fl *pflag.Flag) {
			if r := replacedBy(fl); r != "" {
				ignoredEnv[envName(fl.Name)] = append(ignoredEnv[envName(fl.Name)], envName(r))
				return
			}
			if _, ok := byName[fl.Name]; !ok {
				order = append(order, fl.Name)
			}
			byName[fl.Name] = append(byName[fl.Name], fl)
			owners[fl.Name] = append(owners[fl.Name], n)
		}
		agents[n].Flags().VisitAll(visit)
		agents[n].PersistentFlags().VisitAll(visit)
	}
	for _, name := range order {
		fls := byName[name]
		if dst.Lookup(name) != nil {
			continue
		}
		if len(fls) == 1 {
			dst.AddFlag(fls[0])
			continue
		}
		first := fls[0]
		merged := &pflag.Flag{Name: name, Shorthand: first.Shorthand, Usage: first.Usage, DefValue: first.DefValue,
			NoOptDefVal: first.NoOptDefVal, Value: &fanout{flags: fls, owners: owners[name]}, Annotations: first.Annotations, Hidden: first.Hidden}
		dst.AddFlag(merged)
	}
	return ignoredEnv
}

// fanout is a flag value that sets several agents' flags of the same name.
type fanout struct {
	flags  []*pflag.Flag
	owners []string // the agents, in the order of flags
}

func (f *fanout) String() string { return f.flags[0].Value.String() }
func (f *fanout) Type() string   { return f.flags[0].Value.Type() }
func (f *fanout) Set(v string) error {
	for _, fl := range f.flags {
		if err := fl.Value.Set(v); err != nil {
			return err
		}
		fl.Changed = true
	}
	return nil
}

func runRun(cmd *cobra.Command, d *Deps, opts *runOptions, agents map[string]*cobra.Command) error {
	ctx := cmd.Context()
	for _, a := range opts.Agents {
		if _, ok := agents[a]; !ok {
			return UsageError("--agents: unknown agent %q (want %s)", a, strings.Join(runAgents, ", "))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(opts.ignoredEnv)) {
		if os.Getenv(name) != "" {
			fmt.Fprintf(d.Err, "hemostat: warning: %s is ignored by hemostat run: use %s\n", name, strings.Join(opts.ignoredEnv[name], " or "))
		}
	}
	if err := ensureStore(ctx, cmd, d, opts); err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, name := range runAgents {
		if !contains(opts.Agents, name) {
			continue
		}
		ac := agents[name]
		ac.SetContext(gctx)
		ac.SetOut(cmd.OutOrStdout())
		ac.SetErr(cmd.ErrOrStderr())
		// Each agent runs until the signal (or another agent's failure) cancels gctx.
		g.Go(func() error {
			if ac.PreRunE != nil {
				if err := ac.PreRunE(ac, nil); err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
			}
			if err := ac.RunE(ac, nil); err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("%s: %w", name, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// ensureStore decides which Redis to use: the configured one, the default address when it answers, or
// the embedded store.
func ensureStore(ctx context.Context, cmd *cobra.Command, d *Deps, opts *runOptions) error {
	configured := cmd.Flags().Changed("redis-url") || os.Getenv("HEMOSTAT_REDIS_URL") != "" || len(d.Global.Redis.Sentinels) > 0
	if configured {
		_, err := d.Store(ctx) // exit 3 with what was tried when it does not answer
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	_, err := d.Store(pctx)
	cancel()
	if err == nil {
		d.Logger.Info("using Redis at the default address", "url", conn.Redact(d.Global.Redis.URL))
		return nil
	}
	if !errors.Is(err, conn.ErrUnavailable) {
		return err
	}
	e, err := embedded.Start(embedded.Options{Kind: embedded.Kind(opts.Embedded), Addr: opts.EmbeddedAddr,
		DataDir: opts.DataDir, RedisServerPath: opts.EmbeddedRedisServer, Logger: d.Logger})
	if err != nil {
		return fmt.Errorf("no Redis at %s and the embedded store could not start: %w", conn.Redact(d.Global.Redis.URL), err)
	}
	d.OnClose(func() {
		if err := e.Close(); err != nil {
			d.Logger.Warn("embedded store: stop", "err", err)
		}
	})
	fmt.Fprintf(d.Err, "hemostat: no Redis at %s; serving an embedded store (%s) on %s (state in %s)\n",
		conn.Redact(d.Global.Redis.URL), e.Kind(), e.Addr(), opts.DataDir)
	d.Global.Redis.URL = embedded.URL(e)
	_, err = d.Store(ctx)
	return err
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
