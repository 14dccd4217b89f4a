package cmd

import (
	"context"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hemostat/hemostat/pkg/conn"
	"github.com/hemostat/hemostat/pkg/store"
)

// Shells `hemostat completion` writes scripts for.
var completionShells = []string{"bash", "zsh", "fish", "powershell"}

// newCompletionCmd replaces cobra's default completion command, which exits 0 on an unknown shell.
func newCompletionCmd(root *cobra.Command) *cobra.Command {
	var noDesc bool
	c := &cobra.Command{
		Use:   "completion bash|zsh|fish|powershell",
		Short: "Print the shell completion script",
		Long: `completion prints the script that makes the shell complete hemostat's commands, flags, the choices of
flags such as -o, --result or --sampler, and the names of containers and incidents read from Redis (the
one --redis-url or HEMOSTAT_REDIS_URL names; with Redis away nothing is offered, after at most a second).

Load it in the current shell, or install it once for every new one:

  bash   source <(hemostat completion bash)
         hemostat completion bash > /etc/bash_completion.d/hemostat    (needs bash-completion)
  zsh    hemostat completion zsh > "${fpath[1]}/_hemostat"            (with compinit in ~/.zshrc)
  fish   hemostat completion fish > ~/.config/fish/completions/hemostat.fish
  powershell   hemostat completion powershell | Out-String | Invoke-Expression`,
		Example: `  source <(hemostat completion bash)
  hemostat completion zsh > "${fpath[1]}/_hemostat"
  hemostat completion fish --no-descriptions > ~/.config/fish/completions/hemostat.fish`,
		ValidArgs: completionShells,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 || !slices.Contains(completionShells, args[0]) {
				return UsageError("want one shell: %s", orList(completionShells))
			}
			return nil
		},
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(out, !noDesc)
			case "zsh":
				if noDesc {
					return root.GenZshCompletionNoDesc(out)
				}
				return root.GenZshCompletion(out)
			case "fish":
				return root.GenFishCompletion(out, !noDesc)
			default:
				if noDesc {
					return root.GenPowerShellCompletion(out)
				}
				return root.GenPowerShellCompletionWithDesc(out)
			}
		},
	}
	c.Flags().BoolVar(&noDesc, "no-descriptions", false, "complete without descriptions")
	perInvocation(c.Flags(), "no-descriptions")
	return c
}

// annComplete names the dynamic completion of a flag: one of the complete* kinds.
const annComplete = "hemostat_complete"

// Dynamic completion kinds: values read from Redis.
const (
	completeContainers = "containers" // host/name, or name on this host
	completeNames      = "names"      // container names alone
	completeIncidents  = "incidents"  // open incident keys
)

// completeWith marks a flag for dynamic completion of a kind.
func completeWith(fs *pflag.FlagSet, name, kind string) {
	if err := fs.SetAnnotation(name, annComplete, []string{kind}); err != nil {
		panic(err)
	}
}

// registerCompletions gives every flag with fixed choices or a dynamic kind its completion function. It
// runs once the whole tree is built, so that hemostat run's merged flags get theirs too.
func registerCompletions(root *cobra.Command, d *Deps) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		visit := func(f *pflag.Flag) {
			if _, ok := c.GetFlagCompletionFunc(f.Name); ok {
				return
			}
			if ch, ok := f.Annotations[annChoices]; ok {
				multi := strings.HasSuffix(f.Value.Type(), "s") || strings.HasSuffix(f.Value.Type(), "Slice")
				_ = c.RegisterFlagCompletionFunc(f.Name, choicesCompletion(ch, multi))
				return
			}
			if k, ok := f.Annotations[annComplete]; ok && len(k) == 1 {
				_ = c.RegisterFlagCompletionFunc(f.Name, d.completion(k[0], 0))
			}
		}
		c.Flags().VisitAll(visit)
		c.PersistentFlags().VisitAll(visit)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// choicesCompletion completes fixed choices; for a list flag, the item after the last comma.
func choicesCompletion(choices []string, multi bool) cobra.CompletionFunc {
	return func(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if !multi {
			return choices, cobra.ShellCompDirectiveNoFileComp
		}
		prefix, last := "", toComplete
		if i := strings.LastIndex(toComplete, ","); i >= 0 {
			prefix, last = toComplete[:i+1], toComplete[i+1:]
		}
		used := map[string]bool{}
		for _, u := range strings.Split(prefix, ",") {
			used[u] = true
		}
		var out []cobra.Completion
		for _, c := range choices {
			if !used[c] && strings.HasPrefix(c, last) {
				out = append(out, prefix+c)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
	}
}

// completionTimeout bounds the Redis read behind one completion: a shell must not hang on a dead Redis.
const completionTimeout = time.Second

// completion returns a completion function of a dynamic kind, for a flag (maxArgs 0) or for positional
// arguments while fewer than maxArgs are given. Every failure completes nothing, quietly.
func (d *Deps) completion(kind string, maxArgs int) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		none := cobra.ShellCompDirectiveNoFileComp
		if maxArgs > 0 && len(args) >= maxArgs {
			return nil, none
		}
		// The completion request skips the pre-run: read the environment's --redis-url and --host-name here.
		if applyEnv(cmd, io.Discard) != nil {
			return nil, none
		}
		ctx, cancel := context.WithTimeout(context.Background(), completionTimeout)
		defer cancel()
		conn.QuietDriverLogs(nil)
		st, err := store.Open(d.redisOptions(1))
		if err != nil {
			return nil, none
		}
		defer st.Close()
		var values []string
		switch kind {
		case completeIncidents:
			values, err = st.Incidents.OpenKeys(ctx)
		default:
			values, err = st.Containers.Targets(ctx)
		}
		if err != nil {
			return nil, none
		}
		host := d.Global.HostName
		if host == "" {
			host, _ = os.Hostname()
		}
		var out []cobra.Completion
		seen := map[string]bool{}
		for _, v := range values {
			c := v
			switch h, name, _ := strings.Cut(v, "/"); kind {
			case completeNames:
				c = name
			case completeContainers:
				if h == host {
					c = name
				}
			}
			if !seen[c] && strings.HasPrefix(c, toComplete) {
				seen[c] = true
				out = append(out, c)
			}
		}
		return out, none
	}
}
