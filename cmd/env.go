package cmd

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Flag annotations: how a flag meets the environment and the shell.
const (
	annSecret        = "hemostat_secret"         // flag also reads <ENV>_FILE
	annExtraEnv      = "hemostat_extra_env"      // further variable names, e.g. ANTHROPIC_API_KEY
	annPerInvocation = "hemostat_per_invocation" // belongs to one invocation: no environment twin
	annReplacedBy    = "hemostat_replaced_by"    // a deprecated alias of the named flag
)

// annAgent marks a command that runs a long-lived process (an agent, run, dash): its flags are its
// configuration, each with an environment twin unless it is per invocation.
const annAgent = "hemostat_agent"

// annAgentConfig marks a one-shot command that reads the agents' configuration (doctor): its flags are the
// agents', with the agents' environment twins.
const annAgentConfig = "hemostat_agent_config"

// envName is the environment twin of a flag: HEMOSTAT_<FLAG>, dashes and dots as underscores.
func envName(flag string) string {
	return "HEMOSTAT_" + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(flag))
}

// markSecret makes a flag also read HEMOSTAT_<FLAG>_FILE (and <EXTRA>_FILE) and hides its value in help.
func markSecret(fs *pflag.FlagSet, name string, extraEnv ...string) {
	_ = fs.SetAnnotation(name, annSecret, []string{"true"})
	if len(extraEnv) > 0 {
		_ = fs.SetAnnotation(name, annExtraEnv, extraEnv)
	}
}

// perInvocation marks flags that say what one invocation should do (filters, output formats, --follow):
// they have no environment twin, so a variable left in a shell cannot change what a later command does.
func perInvocation(fs *pflag.FlagSet, names ...string) {
	for _, n := range names {
		if err := fs.SetAnnotation(n, annPerInvocation, []string{"true"}); err != nil {
			panic(err) // a misspelt flag name: a programming error the tests catch
		}
	}
}

// deprecatedAlias adds old as a hidden alias of the flag named replacement: it sets the same value, as does
// its environment twin, and both say they are deprecated when used.
func deprecatedAlias(fs *pflag.FlagSet, old, replacement string) {
	nf := fs.Lookup(replacement)
	if nf == nil {
		panic("deprecatedAlias: no flag " + replacement)
	}
	fs.AddFlag(&pflag.Flag{Name: old, Usage: "deprecated: use --" + replacement, Value: nf.Value,
		DefValue: nf.DefValue, Hidden: true, Annotations: map[string][]string{annReplacedBy: {replacement}}})
}

// replacedBy is the flag a deprecated alias stands for, or "".
func replacedBy(f *pflag.Flag) string {
	if r := f.Annotations[annReplacedBy]; len(r) == 1 {
		return r[0]
	}
	return ""
}

// noEnv reports flags without an environment twin: those of one invocation, and help.
func noEnv(f *pflag.Flag) bool {
	_, once := f.Annotations[annPerInvocation]
	return once || f.Name == "help" || f.Name == "no-descriptions"
}

func envNames(f *pflag.Flag) []string {
	return append([]string{envName(f.Name)}, f.Annotations[annExtraEnv]...)
}

// envSet reports whether any environment twin of f (or its _FILE form, for a secret) is set.
func envSet(f *pflag.Flag) bool {
	_, secret := f.Annotations[annSecret]
	for _, n := range envNames(f) {
		if os.Getenv(n) != "" || (secret && os.Getenv(n+"_FILE") != "") {
			return true
		}
	}
	return false
}

// commandFlags lists every flag that applies to cmd, its parents' persistent flags included, once each.
func commandFlags(cmd *cobra.Command) []*pflag.Flag {
	seen := map[*pflag.Flag]bool{}
	var out []*pflag.Flag
	add := func(f *pflag.Flag) {
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	cmd.Flags().VisitAll(add)
	cmd.InheritedFlags().VisitAll(add)
	return out
}

// applyEnv fills every flag the user did not set from its environment twin. Precedence: defaults, then
// env, then flags. Deprecated names still work and say so on warn.
func applyEnv(cmd *cobra.Command, warn io.Writer) error {
	flags := commandFlags(cmd)
	byName := map[string]*pflag.Flag{}
	// A flag set on the command line, directly or through a deprecated alias, beats the environment.
	set := map[string]bool{}
	for _, f := range flags {
		byName[f.Name] = f
		if !f.Changed {
			continue
		}
		set[f.Name] = true
		if r := replacedBy(f); r != "" {
			set[r] = true
			fmt.Fprintf(warn, "hemostat: warning: --%s is deprecated: use --%s\n", f.Name, r)
		}
	}
	var errs []error
	for _, f := range flags {
		if set[f.Name] || noEnv(f) {
			continue
		}
		r := replacedBy(f)
		if r != "" && (set[r] || (byName[r] != nil && envSet(byName[r]))) {
			continue // the new name, given, wins
		}
		name, v, err := lookupEnv(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if name == "" {
			continue
		}
		if err := f.Value.Set(v); err != nil {
			errs = append(errs, valueError(name, f, v, err))
			continue
		}
		if r != "" {
			fmt.Fprintf(warn, "hemostat: warning: %s is deprecated: use %s\n", name, envName(r))
		}
	}
	return errors.Join(errs...)
}

// lookupEnv finds the value of f's first environment twin that is set: the variable, or for a secret the
// file its _FILE form names. It returns the variable's name, or "" when none is set.
func lookupEnv(f *pflag.Flag) (name, value string, err error) {
	_, secret := f.Annotations[annSecret]
	for _, n := range envNames(f) {
		if v := os.Getenv(n); v != "" {
			return n, v, nil
		}
		if !secret {
			continue
		}
		if file := os.Getenv(n + "_FILE"); file != "" {
			b, err := os.ReadFile(file)
			if err != nil {
				return "", "", UsageError("%s_FILE: %v", n, err)
			}
			return n + "_FILE", strings.TrimSpace(string(b)), nil
		}
	}
	return "", "", nil
}
