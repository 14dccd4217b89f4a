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
	"github.com/spf13/pflag"

	"github.com/hemostat/hemostat/pkg/docker"
	"github.com/hemostat/hemostat/pkg/store"
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

// ErrNotImplemented is returned by subcommands that are not built yet.
var ErrNotImplemented = errors.New("not implemented yet")

// errUnavailable wraps errors about unreachable dependencies (exit 3); pkg/docker registers its own.
var unavailableErrs = []error{store.ErrUnavailable, docker.ErrUnavailable}

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
	err := root.ExecuteContext(ctx)
	d.closeAll()
	if err == nil {
		return ExitOK
	}
	code := exitCode(err)
	fmt.Fprintf(d.Err, "hemostat: %v\n", err)
	if code == ExitUsage && !strings.Contains(err.Error(), "--help") {
		fmt.Fprintln(d.Err, "Run 'hemostat --help' for usage.")
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
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnv(cmd); err != nil {
				return err
			}
			return d.init()
		},
	}
	root.SetIn(d.In)
	root.SetOut(d.Out)
	root.SetErr(d.Err)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &ExitError{Code: ExitUsage, Err: err}
	})
	g := &d.Global
	pf := root.PersistentFlags()
	pf.StringVar(&g.RedisURL, "redis-url", defaultRedisURL, "Redis URL (redis:// or rediss:// for TLS)")
	pf.StringVar(&g.RedisPassword, "redis-password", "", "Redis password (overrides the URL's)")
	markSecret(pf, "redis-password")
	pf.StringVar(&g.HostName, "host-name", "", "name of this Docker host in incident keys (default: the OS host name)")
	pf.StringVar(&g.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	pf.StringVar(&g.LogFormat, "log-format", "text", "log format: text or json")

	root.AddCommand(
		newMonitorCmd(d),
		newAnalyzeCmd(d),
		newRespondCmd(d),
		newAlertCmd(d),
		newExportCmd(d),
		newDashCmd(d),
		newAuditCmd(d),
		newRunCmd(d),
		newVersionCmd(d),
		newDoctorCmd(d),
	)
	root.AddCommand(newEnvironmentTopic(root))
	return root
}

const defaultRedisURL = "redis://127.0.0.1:6379/0"

// envName is the environment twin of a flag: HEMOSTAT_<FLAG>.
func envName(flag string) string {
	return "HEMOSTAT_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

const (
	annSecret   = "hemostat_secret"    // flag also reads <ENV>_FILE
	annExtraEnv = "hemostat_extra_env" // further variable names, e.g. ANTHROPIC_API_KEY
)

// markSecret makes a flag also read HEMOSTAT_<FLAG>_FILE (and <EXTRA>_FILE) and hides its value in help.
func markSecret(fs *pflag.FlagSet, name string, extraEnv ...string) {
	_ = fs.SetAnnotation(name, annSecret, []string{"true"})
	if len(extraEnv) > 0 {
		_ = fs.SetAnnotation(name, annExtraEnv, extraEnv)
	}
}

// applyEnv fills every flag the user did not set from its environment twin. Precedence: defaults, then
// env, then flags.
func applyEnv(cmd *cobra.Command) error {
	var errs []error
	visit := func(f *pflag.Flag) {
		if f.Changed || noEnv(f) {
			return
		}
		for _, name := range envNames(f) {
			v, ok := os.LookupEnv(name)
			if ok && v != "" {
				if err := f.Value.Set(v); err != nil {
					errs = append(errs, UsageError("%s=%q: %v", name, v, err))
				}
				return
			}
			if _, secret := f.Annotations[annSecret]; secret {
				if file, ok := os.LookupEnv(name + "_FILE"); ok && file != "" {
					b, err := os.ReadFile(file)
					if err != nil {
						errs = append(errs, UsageError("%s_FILE: %v", name, err))
						return
					}
					if err := f.Value.Set(strings.TrimSpace(string(b))); err != nil {
						errs = append(errs, UsageError("%s_FILE: %v", name, err))
					}
					return
				}
			}
		}
	}
	cmd.Flags().VisitAll(visit)
	cmd.InheritedFlags().VisitAll(visit)
	return errors.Join(errs...)
}

// noEnv reports flags without an environment twin: output formats and help belong to one invocation.
func noEnv(f *pflag.Flag) bool {
	return f.Name == "output" || f.Name == "help" || f.Name == "no-descriptions"
}

func envNames(f *pflag.Flag) []string {
	return append([]string{envName(f.Name)}, f.Annotations[annExtraEnv]...)
}

func notImplemented(name, issue string) func(*cobra.Command, []string) error {
	return func(*cobra.Command, []string) error {
		return fmt.Errorf("%s: %w (tracked in issue %s)", name, ErrNotImplemented, issue)
	}
}
