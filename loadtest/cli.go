package loadtest

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DefaultCLIDuration bounds a yardload run given neither --duration nor
// --requests.
const DefaultCLIDuration = 10 * time.Second

const usageText = `usage: yardload --url URL [flags]

Sends HTTP load to URL and reports req/s, status and error counts, and
latency percentiles. Without --rate it runs a closed loop (each connection
sends back to back); with --rate it runs an open loop at R req/s over the
connections, timing each request from its intended send time.

flags:
  --url URL             target, http:// or https:// (required)
  --method M            request method (default GET)
  --header K:V          request header; repeatable
  --host H              Host header (default: the URL's host)
  --body-size N         send N deterministic bytes as the body
  --rate R              open loop at R requests per second
  --connections C       connections (default 10)
  --duration D          stop after D, e.g. 30s (default 10s without --requests)
  --requests N          stop after N requests
  --timeout D           per-request timeout (default 10s)
  --keys-file F         route keys, one per line; each request picks one
  --key-header H        header that carries the key (default X-Found-Cluster)
  --host-template T     send the key in the Host header instead, e.g. '{key}.example.test'
  -o json|table         output format (default table)

Exit codes: 0 the run completed (errors are in the report), 1 it could not
start, 2 bad usage or bad input. SIGINT ends the run and prints what it saw.
`

// Main runs the yardload command line with args (without the program name)
// and returns its exit code. Bad usage is one line on stderr. While a run
// lasts, a progress line is drawn on stderr if it is a terminal.
func Main(args []string, stdout, stderr io.Writer) int {
	o, err := parseArgs(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usageText)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "yardload: %s\n", oneLine(err.Error()))
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { // a second signal kills the process
		<-ctx.Done()
		stop()
	}()
	return runCLI(ctx, o, stdout, stderr)
}

// cliOptions is a parsed command line.
type cliOptions struct {
	cfg    Config
	output string // "table" or "json"
}

func runCLI(ctx context.Context, o *cliOptions, stdout, stderr io.Writer) int {
	l, err := Start(ctx, o.cfg)
	if err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) {
			fmt.Fprintf(stderr, "yardload: %s: %s\n", flagOf(ce.Field), oneLine(ce.Msg))
			return 2
		}
		fmt.Fprintf(stderr, "yardload: %s\n", oneLine(strings.TrimPrefix(err.Error(), "loadtest: ")))
		return 1
	}
	stopProgress := func() {}
	if isTerminal(stderr) {
		stopProgress = progress(l, stderr)
	}
	r := l.Wait()
	stopProgress()
	if o.output == "json" {
		err = writeJSON(stdout, r)
	} else {
		err = writeTable(stdout, r)
	}
	if err != nil {
		fmt.Fprintf(stderr, "yardload: writing the report: %s\n", oneLine(err.Error()))
		return 1
	}
	return 0
}

// flagOf names the flag that sets a Config field.
func flagOf(field string) string {
	switch field {
	case "URL", "Method", "Header", "Host", "Rate", "Connections", "Duration", "Requests", "Timeout":
		return "--" + strings.ToLower(field)
	case "Keys":
		return "--keys-file"
	case "KeyHeader":
		return "--key-header"
	case "HostTemplate":
		return "--host-template"
	}
	return field
}

// cliFlags collects flag values; the first bad one is kept in err, naming
// its flag.
type cliFlags struct {
	fs  *flag.FlagSet
	err error
}

type flagFunc struct {
	f    *cliFlags
	name string
	set  func(string) error
}

func (v *flagFunc) String() string { return "" }
func (v *flagFunc) Set(s string) error {
	err := v.set(s)
	if err != nil && v.f.err == nil {
		dashes := "--"
		if len(v.name) == 1 {
			dashes = "-"
		}
		v.f.err = fmt.Errorf("%s%s: %w", dashes, v.name, err)
	}
	return err
}

func (f *cliFlags) def(name string, set func(string) error) {
	f.fs.Var(&flagFunc{f: f, name: name, set: set}, name, "")
}

func parseArgs(args []string) (*cliOptions, error) {
	o := &cliOptions{output: "table"}
	c := &o.cfg
	var bodySize int
	var keysFile string
	given := map[string]bool{}
	f := &cliFlags{fs: flag.NewFlagSet("yardload", flag.ContinueOnError)}
	f.fs.SetOutput(io.Discard)
	f.fs.Usage = func() {}

	str := func(dst *string) func(string) error {
		return func(s string) error { *dst = s; return nil }
	}
	f.def("url", str(&c.URL))
	f.def("method", str(&c.Method))
	f.def("host", str(&c.Host))
	f.def("key-header", str(&c.KeyHeader))
	f.def("host-template", str(&c.HostTemplate))
	f.def("keys-file", str(&keysFile))
	f.def("header", func(s string) error {
		k, v, ok := strings.Cut(s, ":")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || !validToken(k) {
			return fmt.Errorf("want K:V, got %q", s)
		}
		if c.Header == nil {
			c.Header = http.Header{}
		}
		c.Header.Add(k, v)
		return nil
	})
	f.def("body-size", func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return fmt.Errorf("invalid size %q (want bytes, >= 0)", s)
		}
		bodySize = n
		return nil
	})
	f.def("rate", func(s string) error {
		r, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("invalid number %q", s)
		}
		if !(r > 0) || r > 1e9 {
			return fmt.Errorf("%q is not a positive rate", s)
		}
		c.Rate = r
		return nil
	})
	f.def("connections", func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return fmt.Errorf("invalid count %q (want >= 1)", s)
		}
		c.Connections = n
		return nil
	})
	f.def("requests", func(s string) error {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1 {
			return fmt.Errorf("invalid count %q (want >= 1)", s)
		}
		c.Requests = n
		given["requests"] = true
		return nil
	})
	duration := func(dst *time.Duration, name string) func(string) error {
		return func(s string) error {
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 {
				return fmt.Errorf("invalid duration %q (want e.g. 30s)", s)
			}
			*dst = d
			given[name] = true
			return nil
		}
	}
	f.def("duration", duration(&c.Duration, "duration"))
	f.def("timeout", duration(&c.Timeout, "timeout"))
	f.def("o", func(s string) error {
		if s != "json" && s != "table" {
			return fmt.Errorf("invalid output %q (want json or table)", s)
		}
		o.output = s
		return nil
	})

	if err := f.fs.Parse(args); err != nil {
		switch {
		case errors.Is(err, flag.ErrHelp):
			return nil, err
		case f.err != nil:
			return nil, f.err
		}
		msg := err.Error()
		if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
			return nil, fmt.Errorf("unknown flag --%s", strings.TrimLeft(name, "-"))
		}
		if name, ok := strings.CutPrefix(msg, "flag needs an argument: "); ok {
			return nil, fmt.Errorf("--%s: missing value", strings.TrimLeft(name, "-"))
		}
		return nil, errors.New(msg)
	}
	if f.fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", f.fs.Arg(0))
	}
	if c.URL == "" {
		return nil, errors.New("--url is required")
	}
	if bodySize > 0 {
		c.Body = PatternBody(bodySize)
	}
	if keysFile != "" {
		keys, err := readKeys(keysFile)
		if err != nil {
			return nil, fmt.Errorf("--keys-file: %w", err)
		}
		c.Keys = keys
	}
	if c.HostTemplate != "" && keysFile == "" {
		return nil, errors.New("--host-template: needs --keys-file")
	}
	if !given["duration"] && !given["requests"] {
		c.Duration = DefaultCLIDuration
	}
	return o, nil
}

// readKeys reads route keys, one per line; blank lines and lines starting
// with # are skipped.
func readKeys(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var keys []string
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		k := strings.TrimSpace(sc.Text())
		if k == "" || strings.HasPrefix(k, "#") {
			continue
		}
		if strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("%s:%d: key %q has a space", path, line, k)
		}
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no keys", path)
	}
	return keys, nil
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// isTerminal reports whether w is a character device, such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
