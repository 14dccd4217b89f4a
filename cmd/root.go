// Package cmd is hemostat's command tree: one file per subcommand, the wiring of agents to their
// dependencies, and the one place that maps errors to exit codes.
package cmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/hemostat/hemostat/pkg/conn"
	"github.com/hemostat/hemostat/pkg/docker"
)

// Exit codes scripts can rely on.
const (
	ExitOK          = 0 // success
	ExitFailure     = 1 // the command failed
	ExitUsage       = 2 // bad flags or arguments
	ExitUnavailable = 3 // Redis or Docker could not be reached at start
	ExitIntegrity   = 4 // audit verify found an edited or missing entry
	ExitNotFound    = 5 // the named container or record does not exist
)

// ExitError carries an exit code with an error.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// UsageError marks an error as a usage error (exit 2).
func UsageError(format string, args ...any) error {
	return &ExitError{Code: ExitUsage, Err: fmt.Errorf(format, args...)}
}

// errUnavailable wraps errors about unreachable dependencies (exit 3); pkg/docker registers its own.
var unavailableErrs = []error{conn.ErrUnavailable, docker.ErrUnavailable}

// Main runs hemostat with the process's arguments and returns the exit code.
func Main() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d := NewDeps(os.Stdin, os.Stdout, os.Stderr)
	return Run(ctx, d, os.Args[1:])
}

// Run executes the command tree with args and returns the exit code. Errors are printed once, to stderr.
func Run(ctx context.Context, d *Deps, args []string) int {
	root := NewRootCmd(d)
	root.SetArgs(args)
	c, err := root.ExecuteContextC(ctx)
	d.closeAll()
	if err == nil {
		return ExitOK
	}
	code := exitCode(err)
	fmt.Fprintf(d.Err, "hemostat: %v\n", err)
	if code == ExitUsage && !strings.Contains(err.Error(), "--help") {
		fmt.Fprintf(d.Err, "Run '%s' for usage.\n", usageHint(c))
	}
	return code
}

func exitCode(err error) int {
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	for _, u := range unavailableErrs {
		if errors.Is(err, u) {
			return ExitUnavailable
		}
	}
	if isCobraUsage(err) {
		return ExitUsage
	}
	return ExitFailure
}

func isCobraUsage(err error) bool {
	s := err.Error()
	for _, p := range []string{"unknown flag", "unknown shorthand flag", "unknown command", "invalid argument",
		"flag needs an argument", "accepts ", "requires at least", "requires at most", "required flag",
		"bad flag syntax", "if any flags in the group"} {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}

// NewRootCmd builds the whole command tree over the given dependencies.
func NewRootCmd(d *Deps) *cobra.Command {
	root := &cobra.Command{
		Use:   "hemostat",
		Short: "Heal unhealthy Docker containers carefully: detect, diagnose, remediate, verify, record",
		Long: `hemostat watches Docker containers, diagnoses failures with rules or an LLM, and remediates them
behind safety rails (cooldowns, backoff, circuit breakers, blast-radius limits, dry-run, verification),
recording every decision. Each subcommand runs one agent; the agents talk over Redis Streams.

Run everything in one process with 'hemostat run'.`,
		Example: `  hemostat run                                # every agent, on an embedded store when no Redis answers
  hemostat dash                               # what hemostat sees and decides
  hemostat audit web-1 --since 24h            # what it did to web-1, newest first
  hemostat respond reset web-1                # close web-1's circuit breaker
  hemostat help environment                   # every variable that configures hemostat`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnv(cmd, d.Err); err != nil {
				return err
			}
			return d.init()
		},
	}
	root.CompletionOptions.DisableDefaultCmd = true // newCompletionCmd: an unknown shell is a usage error
	root.SetIn(d.In)
	root.SetOut(d.Out)
	root.SetErr(d.Err)
	root.SetFlagErrorFunc(flagError)
	g := &d.Global
	pf := root.PersistentFlags()
	addRedisFlags(pf, &g.Redis)
	pf.StringVar(&g.HostName, "host-name", "", "name of this Docker host in incident keys (default: the OS host name)")
	choiceVar(pf, &g.LogLevel, "log-level", "", "info", "log level: "+orList(logLevels), logLevels...)
	choiceVar(pf, &g.LogFormat, "log-format", "", "text", "log format: "+orList(logFormats)+" (logs go to stderr)", logFormats...)
	addSigningFlags(pf, &d.Signing)

	root.AddCommand(
		newMonitorCmd(d, nil),
		newAnalyzeCmd(d, nil),
		newRespondCmd(d, nil),
		newAlertCmd(d, nil),
		newExportCmd(d, nil),
		newDashCmd(d, nil),
		newAuditCmd(d),
		newIncidentCmd(d),
		newRunCmd(d),
		newVersionCmd(d),
		newCompletionCmd(root),
		newDoctorCmd(d),
	)
	root.AddCommand(newEnvironmentTopic(root))
	root.SetHelpCommand(newHelpCmd(root))
	registerCompletions(root, d)
	return root
}

const defaultRedisURL = "redis://127.0.0.1:6379/0"

// Log levels and formats of --log-level and --log-format.
var (
	logLevels  = []string{"debug", "info", "warn", "error"}
	logFormats = []string{"text", "json"}
)

// newHelpCmd replaces cobra's help command, which exits 0 on an unknown topic.
func newHelpCmd(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:   "help [command]",
		Short: "Help about any command or topic",
		Long:  "help prints the help of a command (hemostat help audit verify) or of a topic (hemostat help environment).",
		Example: `  hemostat help respond reset
  hemostat help environment`,
		ValidArgsFunction: func(_ *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
			c, _, err := root.Find(args)
			if err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var out []cobra.Completion
			for _, sub := range c.Commands() {
				if sub.IsAvailableCommand() || sub.IsAdditionalHelpTopicCommand() {
					out = append(out, cobra.CompletionWithDesc(sub.Name(), sub.Short))
				}
			}
			return out, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(_ *cobra.Command, args []string) error {
			c, rest, err := root.Find(args)
			if err != nil || c == nil || len(rest) > 0 {
				return UsageError("unknown help topic %q", strings.Join(args, " "))
			}
			return c.Help()
		},
	}
}

// usageHint is the help to read after a usage error: the command's own.
func usageHint(c *cobra.Command) string {
	if c == nil || c.Name() == "help" || c.Root() == c {
		return "hemostat --help"
	}
	return c.CommandPath() + " --help"
}
