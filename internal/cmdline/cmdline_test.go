package cmdline

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"testing"
)

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		code   int
		stderr string
	}{
		{"success", nil, ExitOK, ""},
		{"help", flag.ErrHelp, ExitOK, ""},
		{"usage", Usagef("--zk is required"), ExitUsage, "prog sub: --zk is required\n"},
		{"wrapped usage", fmt.Errorf("apply: %w", Usage(errors.New("bad file"))), ExitUsage, "prog sub: apply: bad file\n"},
		{"runtime", errors.New("listen tcp: address already in use"), ExitFailure, "prog sub: listen tcp: address already in use\n"},
		{"several lines", errors.New("first\n  second\tthird "), ExitFailure, "prog sub: first second third\n"},
	} {
		var stderr bytes.Buffer
		if code := ExitCode(&stderr, "prog sub", tc.err); code != tc.code || stderr.String() != tc.stderr {
			t.Errorf("%s: got exit %d, stderr %q; want %d, %q", tc.name, code, stderr.String(), tc.code, tc.stderr)
		}
	}
}

// boolValue is a boolean flag.Value, as an option of a command may be.
type boolValue struct{ b *bool }

func (v boolValue) String() string   { return "" }
func (v boolValue) IsBoolFlag() bool { return true }
func (v boolValue) Set(s string) (err error) {
	*v.b, err = strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("invalid boolean %q", s)
	}
	return nil
}

// newTestSet has flags of every kind: defined with Func (--url, -o), with
// Var (--verbose, a boolean), and on the flag.FlagSet directly (--zk).
func newTestSet() (*FlagSet, *bool) {
	f := NewFlagSet("test")
	f.Func("url", "", func(s string) error {
		if s == "" {
			return errors.New("missing value (want a URL)")
		}
		return nil
	})
	f.Func("o", "", func(s string) error {
		if s != "json" {
			return fmt.Errorf("invalid output %q", s)
		}
		return nil
	})
	verbose := new(bool)
	f.Var(boolValue{verbose}, "verbose", "")
	f.String("zk", "", "")
	return f, verbose
}

func TestFlagSetErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // "" for no error
	}{
		{[]string{"--url", "x", "--verbose"}, ""},
		{[]string{"--bogus"}, "unknown flag --bogus"},
		{[]string{"-b"}, "unknown flag --b"},
		{[]string{"--url"}, "--url: missing value"},
		{[]string{"--url="}, "--url: missing value (want a URL)"},
		{[]string{"-o", "xml"}, `-o: invalid output "xml"`},
		{[]string{"--verbose=maybe"}, `--verbose: invalid boolean "maybe"`},
		{[]string{"--o", "xml", "--url="}, `-o: invalid output "xml"`}, // the first error
		// A flag defined on the flag.FlagSet keeps the flag package's message.
		{[]string{"--zk"}, "flag needs an argument: -zk"},
		{[]string{"---x"}, "bad flag syntax: ---x"},
		{[]string{"--url", "x", "extra"}, `unexpected argument "extra"`},
	} {
		f, _ := newTestSet()
		err := f.ParseFlagsOnly(tc.args)
		var ue *UsageError
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v; want no error", tc.args, err)
		case tc.want == "":
		case err == nil || err.Error() != tc.want || !errors.As(err, &ue):
			t.Errorf("%q: got %v; want the usage error %q", tc.args, err, tc.want)
		}
	}
}

func TestFlagSetParse(t *testing.T) {
	f, verbose := newTestSet()
	if err := f.Parse([]string{"--verbose", "--url", "x", "cmd", "--zk", "y"}); err != nil {
		t.Fatal(err)
	}
	if !*verbose || f.NArg() != 3 || f.Arg(0) != "cmd" {
		t.Errorf("got verbose %v, args %q; want true and [cmd --zk y]", *verbose, f.Args())
	}
	if !f.Given("url") || f.Given("zk") || f.Given("o") {
		t.Errorf("Given: url %v, zk %v, o %v; want true, false, false", f.Given("url"), f.Given("zk"), f.Given("o"))
	}
	for _, help := range []string{"-h", "--help"} {
		f, _ := newTestSet()
		if err := f.ParseFlagsOnly([]string{help}); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%s: got %v; want flag.ErrHelp", help, err)
		}
	}
}
