package cmd

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// newEnvironmentTopic adds "hemostat help environment": every variable, generated from the flags so it
// cannot drift.
func newEnvironmentTopic(root *cobra.Command) *cobra.Command {
	// A help topic: no Run, shown under "Additional help topics". Built on demand, after every
	// subcommand has added its flags.
	topic := &cobra.Command{Use: "environment", Short: "Environment variables that configure hemostat"}
	topic.SetHelpFunc(func(c *cobra.Command, _ []string) {
		fmt.Fprint(c.OutOrStdout(), environmentHelp(root))
	})
	return topic
}

type envVar struct {
	name, flag, usage string
	where             []string
	secret            bool
}

func environmentHelp(root *cobra.Command) string {
	seen := map[string]*envVar{}
	deprecated := map[string][]string{} // variable -> "command: NEW_NAME"
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		where := strings.TrimPrefix(c.CommandPath(), root.Name()+" ")
		if c == root {
			where = "all"
		}
		add := func(f *pflag.Flag) {
			if noEnv(f) {
				return
			}
			if r := replacedBy(f); r != "" {
				d := where + ": " + envName(r)
				if !slices.Contains(deprecated[envName(f.Name)], d) {
					deprecated[envName(f.Name)] = append(deprecated[envName(f.Name)], d)
				}
				return
			}
			for _, n := range envNames(f) {
				v, ok := seen[n]
				if !ok {
					_, secret := f.Annotations[annSecret]
					v = &envVar{name: n, flag: f.Name, usage: f.Usage, secret: secret}
					seen[n] = v
				}
				if !slices.Contains(v.where, "all") && !slices.Contains(v.where, where) {
					v.where = append(v.where, where)
				}
			}
		}
		c.LocalFlags().VisitAll(add)
		if c == root {
			c.PersistentFlags().VisitAll(add)
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	var b strings.Builder
	b.WriteString("Every configuration flag has an environment twin HEMOSTAT_<FLAG> (dashes become underscores).\n")
	b.WriteString("Precedence: defaults, then the environment, then flags. Flags that say what one invocation does\n")
	b.WriteString("(-o, --follow, --limit, --since, --jq and the filters of audit and dash) have none.\n")
	b.WriteString("Secrets also read <NAME>_FILE, a file holding the value.\n")
	b.WriteString("CI=true makes tests fail, not skip, when Redis or Docker is missing. NO_COLOR turns colour off in dash.\n")
	b.WriteString("DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH and DOCKER_API_VERSION select the Docker engine.\n\n")
	for _, n := range slices.Sorted(maps.Keys(seen)) {
		v := seen[n]
		extra := ""
		if v.secret {
			extra = " (also " + n + "_FILE)"
		}
		fmt.Fprintf(&b, "  %-34s --%s [%s]%s\n      %s\n", n, v.flag, strings.Join(v.where, ", "), extra, v.usage)
	}
	if len(deprecated) > 0 {
		b.WriteString("\nDeprecated, still read with a warning (hemostat run ignores them):\n")
		for _, n := range slices.Sorted(maps.Keys(deprecated)) {
			fmt.Fprintf(&b, "  %-34s %s\n", n, strings.Join(deprecated[n], "; "))
		}
	}
	return b.String()
}
