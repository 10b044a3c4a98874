package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/switchyard/switchyard/internal/cmdline"
)

// option is one setting of a role whose options struct is T, reachable as
// the flag --<name> and as the config file key <name>. Exactly one of set
// and setPath is given: set parses raw and stores it in o; setPath does so
// for a value that may be a file path, which it resolves against dir (the
// config file's directory, "" for a flag). Either returns an error that
// says what is wrong with raw, without naming the option.
type option[T any] struct {
	name    string
	arg     string // placeholder in usage; "" for a boolean
	usage   string
	list    bool // a comma-separated list: repeated flags and YAML sequences add up
	set     func(o *T, raw string) error
	setPath func(o *T, raw, dir string) error
}

func (o *option[T]) isBool() bool { return o.arg == "" }

// store parses raw into t; dir is where raw was written (see setPath).
func (o *option[T]) store(t *T, raw, dir string) error {
	if o.setPath != nil {
		return o.setPath(t, raw, dir)
	}
	return o.set(t, raw)
}

// flagSet has a flag for each option of a role. Parsing only validates and
// records the values; apply stores them, so that a config file named by
// --config can be applied first, whatever the order on the command line.
type flagSet[T any] struct {
	*cmdline.FlagSet
	values []*optionValue[T] // in option order
}

// optionValue is the flag.Value of one option.
type optionValue[T any] struct {
	opt  *option[T]
	raws []string // every value given on the command line, in order
}

func (v *optionValue[T]) String() string   { return "" }
func (v *optionValue[T]) IsBoolFlag() bool { return v.opt.isBool() }

func (v *optionValue[T]) Set(raw string) error {
	var scratch T
	if err := v.opt.store(&scratch, raw, ""); err != nil {
		return err
	}
	v.raws = append(v.raws, raw)
	return nil
}

func newFlagSet[T any](name string, opts []*option[T]) *flagSet[T] {
	f := &flagSet[T]{FlagSet: cmdline.NewFlagSet(name)}
	for _, o := range opts {
		v := &optionValue[T]{opt: o}
		f.values = append(f.values, v)
		f.Var(v, o.name, o.usage)
	}
	return f
}

// apply stores the parsed flag values in t. A list option given several
// times gets all the values.
func (f *flagSet[T]) apply(t *T) {
	for _, v := range f.values {
		if len(v.raws) == 0 {
			continue
		}
		raw := v.raws[len(v.raws)-1]
		if v.opt.list {
			raw = strings.Join(v.raws, ",")
		}
		v.opt.store(t, raw, "") // validated by Set
	}
}

// parseArgs parses a role's arguments into t, which holds the defaults:
// first the config file named by --config (when withConfig), then the flags
// given, whatever their order. It returns flag.ErrHelp for -h/--help and
// otherwise usage errors that name the flag, or the config file and line.
func parseArgs[T any](name string, args []string, opts []*option[T], t *T, withConfig bool) error {
	f := newFlagSet(name, opts)
	var configPath string
	configGiven := false
	if withConfig {
		f.Func("config", "YAML config file", func(v string) error {
			configPath, configGiven = v, true
			return nil
		})
	}
	if err := f.ParseFlagsOnly(args); err != nil {
		return err
	}
	if configGiven {
		if configPath == "" {
			return cmdline.Usagef("--config: missing value")
		}
		if err := applyConfigFile(configPath, opts, t); err != nil {
			return err
		}
	}
	f.apply(t)
	return nil
}

// writeUsage prints "  --name ARG\n        usage" for every option.
func writeUsage[T any](w io.Writer, opts []*option[T]) {
	for _, o := range opts {
		fmt.Fprintf(w, "  --%s", o.name)
		if !o.isBool() {
			fmt.Fprintf(w, " %s", o.arg)
		}
		fmt.Fprintf(w, "\n        %s\n", o.usage)
	}
}
