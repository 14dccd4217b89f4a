package cmd

import (
	"fmt"
	"sort"
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
	name, flag, usage, where string
	secret                   bool
}

func environmentHelp(root *cobra.Command) string {
	seen := map[string]*envVar{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		add := func(f *pflag.Flag) {
			if noEnv(f) {
				return
			}
			for _, n := range envNames(f) {
				v, ok := seen[n]
				if !ok {
					_, secret := f.Annotations[annSecret]
					v = &envVar{name: n, flag: f.Name, usage: f.Usage, secret: secret}
					seen[n] = v
				}
				where := c.Name()
				if c == root {
					where = "all"
				}
				if v.where == "" {
					v.where = where
				} else if v.where != "all" && !strings.Contains(v.where, where) {
					v.where += ", " + where
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
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("Every flag has an environment twin HEMOSTAT_<FLAG> (dashes become underscores). Precedence:\n")
	b.WriteString("defaults, then the environment, then flags. Secrets also read <NAME>_FILE, a file holding the value.\n")
	b.WriteString("CI=true makes tests fail, not skip, when Redis or Docker is missing. NO_COLOR turns colour off in dash.\n")
	b.WriteString("DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH and DOCKER_API_VERSION select the Docker engine.\n\n")
	for _, n := range names {
		v := seen[n]
		extra := ""
		if v.secret {
			extra = " (also " + n + "_FILE)"
		}
		fmt.Fprintf(&b, "  %-34s --%s [%s]%s\n      %s\n", n, v.flag, v.where, extra, v.usage)
	}
	return b.String()
}
