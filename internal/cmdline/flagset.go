package cmdline

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// FlagSet is a flag.FlagSet that prints nothing and whose errors are usage
// errors of one line: an unknown flag is "unknown flag --name"; a flag
// defined with Var or Func reports a bad value as "--name: <its error>"
// ("-n: ..." for a one-letter name) and a missing one as "--name: missing
// value". Flags defined on the embedded flag.FlagSet directly keep the
// flag package's messages for those.
type FlagSet struct {
	*flag.FlagSet
	err   error           // the first value error, naming its flag
	named map[string]bool // the flags defined with Var or Func
}

// NewFlagSet returns an empty FlagSet; name is the flag.FlagSet's name.
func NewFlagSet(name string) *FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &FlagSet{FlagSet: fs, named: map[string]bool{}}
}

// Var defines a flag as flag.FlagSet.Var does; an error from v.Set becomes
// the parse error, naming the flag. v may be a boolean flag (a method
// IsBoolFlag() bool that returns true).
func (f *FlagSet) Var(v flag.Value, name, usage string) {
	f.named[name] = true
	f.FlagSet.Var(&namedValue{Value: v, set: f, name: name}, name, usage)
}

// Func defines a flag whose every value is given to set, as
// flag.FlagSet.Func does; an error from set becomes the parse error, naming
// the flag.
func (f *FlagSet) Func(name, usage string, set func(string) error) {
	f.Var(funcValue(set), name, usage)
}

// Parse parses args, which may end with positional arguments (Args). It
// returns flag.ErrHelp for -h or --help, and otherwise usage errors.
func (f *FlagSet) Parse(args []string) error {
	err := f.FlagSet.Parse(args)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		return err
	case f.err != nil:
		return &UsageError{f.err}
	}
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		return Usagef("unknown flag --%s", strings.TrimLeft(name, "-"))
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: "); ok && f.named[strings.TrimLeft(name, "-")] {
		return Usagef("--%s: missing value", strings.TrimLeft(name, "-"))
	}
	return Usagef("%s", msg)
}

// ParseFlagsOnly parses args as Parse does, and refuses a positional
// argument: `unexpected argument "x"`.
func (f *FlagSet) ParseFlagsOnly(args []string) error {
	if err := f.Parse(args); err != nil {
		return err
	}
	if f.NArg() > 0 {
		return Usagef("unexpected argument %q", f.Arg(0))
	}
	return nil
}

// Given reports whether the flag name was on the command line.
func (f *FlagSet) Given(name string) bool {
	given := false
	f.Visit(func(fl *flag.Flag) { given = given || fl.Name == name })
	return given
}

// namedValue is a flag.Value that keeps the first error of Set in its
// FlagSet, naming the flag.
type namedValue struct {
	flag.Value
	set  *FlagSet
	name string
}

func (v *namedValue) Set(s string) error {
	err := v.Value.Set(s)
	if err != nil && v.set.err == nil {
		dashes := "--"
		if len(v.name) == 1 {
			dashes = "-"
		}
		v.set.err = fmt.Errorf("%s%s: %w", dashes, v.name, err)
	}
	return err
}

func (v *namedValue) IsBoolFlag() bool {
	b, ok := v.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// funcValue is a flag.Value that hands each value to a function.
type funcValue func(string) error

func (f funcValue) Set(s string) error { return f(s) }
func (f funcValue) String() string     { return "" }
