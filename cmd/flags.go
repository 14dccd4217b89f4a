package cmd

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hemostat/hemostat/pkg/bus"
)

// addBusFlags adds the consumer flags every agent that reads the bus shares; their defaults are the bus's.
func addBusFlags(c *cobra.Command, o *bus.Options) {
	def := bus.DefaultOptions()
	f := c.Flags()
	f.DurationVar(&o.ClaimIdle, "claim-idle", def.ClaimIdle, "reclaim entries another instance left pending longer than this")
	f.Int64Var(&o.MaxDeliveries, "max-deliveries", def.MaxDeliveries, "move an entry delivered more than this many times to the dead letter stream")
	f.Int64Var(&o.MaxLen, "stream-max-len", def.MaxLen, "approximate cap on the length of each stream (each host's request stream: 10,000 at most)")
}

// annChoices lists a flag's fixed choices: the shell completes them.
const annChoices = "hemostat_choices"

// choiceValue is a string flag that takes one of fixed choices (any case); anything else is a usage error
// that lists them.
type choiceValue struct {
	p       *string
	choices []string
}

func (v *choiceValue) String() string { return *v.p }
func (v *choiceValue) Type() string   { return "string" }
func (v *choiceValue) Set(s string) error {
	for _, c := range v.choices {
		if strings.EqualFold(strings.TrimSpace(s), c) {
			*v.p = c
			return nil
		}
	}
	return fmt.Errorf("want %s", orList(v.choices))
}

// choiceVar defines a string flag with fixed choices.
func choiceVar(fs *pflag.FlagSet, p *string, name, short, value, usage string, choices ...string) {
	*p = value
	fs.VarP(&choiceValue{p: p, choices: choices}, name, short, usage)
	_ = fs.SetAnnotation(name, annChoices, choices)
}

// choiceSliceValue is a comma-separated list flag whose items take fixed choices.
type choiceSliceValue struct {
	p       *[]string
	choices []string
	set     bool
}

func (v *choiceSliceValue) String() string { return "[" + strings.Join(*v.p, ",") + "]" }
func (v *choiceSliceValue) Type() string   { return "strings" }
func (v *choiceSliceValue) Set(s string) error {
	var items []string
	for _, it := range strings.Split(s, ",") {
		it = strings.TrimSpace(it)
		if it == "" {
			continue
		}
		ok := false
		for _, c := range v.choices {
			if strings.EqualFold(it, c) {
				items, ok = append(items, c), true
				break
			}
		}
		if !ok {
			return fmt.Errorf("%q is not one of %s", it, orList(v.choices))
		}
	}
	// The first Set replaces the default; repeating the flag adds to the list.
	if v.set {
		items = append(*v.p, items...)
	}
	*v.p, v.set = items, true
	return nil
}

// choiceSliceVar defines a comma-separated list flag whose items take fixed choices.
func choiceSliceVar(fs *pflag.FlagSet, p *[]string, name string, value []string, usage string, choices ...string) {
	*p = append([]string(nil), value...)
	fs.Var(&choiceSliceValue{p: p, choices: choices}, name, usage)
	_ = fs.SetAnnotation(name, annChoices, choices)
}

// suggest adds completion choices to a flag whose values are not limited to them.
func suggest(fs *pflag.FlagSet, name string, choices ...string) {
	if err := fs.SetAnnotation(name, annChoices, choices); err != nil {
		panic(err)
	}
}

// orList is "a, b or c".
func orList(xs []string) string {
	switch len(xs) {
	case 0:
		return ""
	case 1:
		return xs[0]
	}
	return strings.Join(xs[:len(xs)-1], ", ") + " or " + xs[len(xs)-1]
}

// valueError is the usage error of a bad flag value, given on the command line (where is --flag) or in the
// environment (where is the variable): it says what the flag wants, never strconv's words, and never
// repeats a secret.
func valueError(where string, f *pflag.Flag, value string, err error) error {
	want := err.Error()
	switch f.Value.Type() {
	case "int", "int8", "int16", "int32", "int64":
		want = "want a whole number"
	case "uint", "uint8", "uint16", "uint32", "uint64":
		want = "want a whole number, 0 or more"
	case "float32", "float64":
		want = "want a number"
	case "duration":
		want = "want a duration such as 500ms, 30s, 5m or 1h"
	case "bool":
		want = "want true or false"
	}
	if _, secret := f.Annotations[annSecret]; secret {
		return UsageError("%s: %s", where, want)
	}
	if !strings.HasPrefix(where, "-") {
		return UsageError("%s=%q: %s", where, value, want) // a variable
	}
	return UsageError("%s %q: %s", where, value, want)
}

// flagError turns pflag's and cobra's flag errors into usage errors (exit 2) that read like hemostat's own.
func flagError(_ *cobra.Command, err error) error {
	var ive *pflag.InvalidValueError
	if errors.As(err, &ive) {
		f := ive.GetFlag()
		return valueError("--"+f.Name, f, ive.GetValue(), ive.Unwrap())
	}
	return &ExitError{Code: ExitUsage, Err: err}
}
