package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// flagSet wraps a flag.FlagSet whose flags are options. Parsing only
// validates and records the values; apply stores them, so that a config file
// named by --config can be applied first, whatever the order on the command
// line.
type flagSet struct {
	fs     *flag.FlagSet
	values []*optionValue // in option order
	err    error          // first value error, naming the flag
}

// optionValue is the flag.Value of one option.
type optionValue struct {
	set  *flagSet
	opt  *option
	raws []string // every value given on the command line, in order
}

func (v *optionValue) String() string   { return "" }
func (v *optionValue) IsBoolFlag() bool { return v.opt.isBool() }

func (v *optionValue) Set(raw string) error {
	var scratch settings
	if err := v.opt.set(&scratch, raw); err != nil {
		if v.set.err == nil {
			v.set.err = fmt.Errorf("--%s: %w", v.opt.name, err)
		}
		return err
	}
	v.raws = append(v.raws, raw)
	return nil
}

func newFlagSet(name string, opts []*option) *flagSet {
	f := &flagSet{fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	f.fs.SetOutput(io.Discard)
	for _, o := range opts {
		v := &optionValue{set: f, opt: o}
		f.values = append(f.values, v)
		f.fs.Var(v, o.name, o.usage)
	}
	return f
}

// parse parses args. It returns flag.ErrHelp for -h/--help and otherwise
// usage errors that name the flag.
func (f *flagSet) parse(args []string) error {
	err := f.fs.Parse(args)
	switch {
	case err == nil && f.fs.NArg() > 0:
		return usagef("unexpected argument %q", f.fs.Arg(0))
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		return err
	case f.err != nil:
		return &usageError{f.err}
	}
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		return usagef("unknown flag --%s", strings.TrimLeft(name, "-"))
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: "); ok {
		return usagef("--%s: missing value", strings.TrimLeft(name, "-"))
	}
	return usagef("%s", msg)
}

// apply stores the parsed flag values in s. A list option given several
// times gets all the values.
func (f *flagSet) apply(s *settings) {
	for _, v := range f.values {
		if len(v.raws) == 0 {
			continue
		}
		raw := v.raws[len(v.raws)-1]
		if v.opt.list {
			raw = strings.Join(v.raws, ",")
		}
		v.opt.set(s, raw) // validated by Set
	}
}

// given reports whether the flag name was on the command line.
func (f *flagSet) given(name string) bool {
	for _, v := range f.values {
		if v.opt.name == name {
			return len(v.raws) > 0
		}
	}
	return false
}

// writeUsage prints "  --name ARG\n        usage" for every option.
func writeUsage(w io.Writer, opts []*option) {
	for _, o := range opts {
		fmt.Fprintf(w, "  --%s", o.name)
		if !o.isBool() {
			fmt.Fprintf(w, " %s", o.arg)
		}
		fmt.Fprintf(w, "\n        %s\n", o.usage)
	}
}
