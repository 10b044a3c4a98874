// Package yardload is the yardload command line over the loadtest package:
// its flags, the keys file, the report as a table or JSON, the progress
// line, and exit codes. cmd/yardload calls Main and nothing else.
package yardload

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/cmdline"
	"github.com/switchyard/switchyard/loadtest"
)

// defaultDuration bounds a run given neither --duration nor --requests.
const defaultDuration = 10 * time.Second

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
  --http2               HTTP/2 over TLS (ALPN h2); needs an https URL
  --http3               HTTP/3 over QUIC; needs an https URL
  --streams S           with --http2 or --http3: requests in flight per connection (default 1)
  --ca FILE             trust the CA certificates of this PEM file (instead of the system's)
  --insecure            do not verify the server's certificate
  -o json|table         output format (default table)

Exit codes: 0 the run completed (errors are in the report), 1 it could not
start, 2 bad usage or bad input. SIGINT ends the run and prints what it saw.
`

// Main runs the yardload command line with args (without the program name)
// and returns its exit code: 0 the run completed, 1 it could not start, 2
// bad usage or bad input, which is one line on stderr. While a run lasts, a
// progress line is drawn on stderr if it is a terminal.
func Main(args []string, stdout, stderr io.Writer) int {
	o, err := parseArgs(args)
	if err == nil {
		ctx, stop := cmdline.SignalContext()
		defer stop()
		err = run(ctx, o, stdout, stderr)
	}
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usageText)
	}
	return cmdline.ExitCode(stderr, "yardload", err)
}

// options is a parsed command line.
type options struct {
	cfg    loadtest.Config
	output string // "table" or "json"
}

// run runs the load o describes and writes its report on stdout. A Config
// that loadtest refuses is a usage error naming the flag.
func run(ctx context.Context, o *options, stdout, stderr io.Writer) error {
	l, err := loadtest.Start(ctx, o.cfg)
	if err != nil {
		var ce *loadtest.ConfigError
		if errors.As(err, &ce) {
			return cmdline.Usagef("%s: %s", flagOf(ce.Field), ce.Msg)
		}
		return errors.New(strings.TrimPrefix(err.Error(), "loadtest: "))
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
		return fmt.Errorf("writing the report: %w", err)
	}
	return nil
}

// flagOf names the flag that sets a Config field.
func flagOf(field string) string {
	switch field {
	case "URL", "Method", "Header", "Host", "Rate", "Connections", "Duration", "Requests", "Timeout":
		return "--" + strings.ToLower(field)
	case "Keys":
		return "--keys-file"
	case "Protocol":
		return "--http2/--http3"
	case "Streams":
		return "--streams"
	case "KeyHeader":
		return "--key-header"
	case "HostTemplate":
		return "--host-template"
	}
	return field
}

// parseArgs parses the command line. It returns flag.ErrHelp for -h or
// --help, and otherwise usage errors that name the flag.
func parseArgs(args []string) (*options, error) {
	o := &options{output: "table"}
	c := &o.cfg
	var bodySize int
	var keysFile, caFile string
	var insecure bool
	given := map[string]bool{}
	f := cmdline.NewFlagSet("yardload")

	str := func(dst *string) func(string) error {
		return func(s string) error { *dst = s; return nil }
	}
	f.Func("url", "", str(&c.URL))
	f.Func("method", "", str(&c.Method))
	f.Func("host", "", str(&c.Host))
	f.Func("key-header", "", str(&c.KeyHeader))
	f.Func("host-template", "", str(&c.HostTemplate))
	f.Func("keys-file", "", str(&keysFile))
	f.Func("header", "", func(s string) error {
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
	f.Func("body-size", "", func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return fmt.Errorf("invalid size %q (want bytes, >= 0)", s)
		}
		bodySize = n
		return nil
	})
	f.Func("rate", "", func(s string) error {
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
	f.Func("connections", "", func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return fmt.Errorf("invalid count %q (want >= 1)", s)
		}
		c.Connections = n
		return nil
	})
	f.Func("requests", "", func(s string) error {
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
	f.Func("duration", "", duration(&c.Duration, "duration"))
	f.Func("timeout", "", duration(&c.Timeout, "timeout"))
	var http2, http3 bool
	f.Var(boolValue{&http2}, "http2", "")
	f.Var(boolValue{&http3}, "http3", "")
	f.Func("streams", "", func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return fmt.Errorf("invalid count %q (want >= 1)", s)
		}
		c.Streams = n
		given["streams"] = true
		return nil
	})
	f.Func("ca", "", str(&caFile))
	f.Var(boolValue{&insecure}, "insecure", "")
	f.Func("o", "", func(s string) error {
		if s != "json" && s != "table" {
			return fmt.Errorf("invalid output %q (want json or table)", s)
		}
		o.output = s
		return nil
	})

	if err := f.ParseFlagsOnly(args); err != nil {
		return nil, err
	}
	if c.URL == "" {
		return nil, cmdline.Usagef("--url is required")
	}
	if bodySize > 0 {
		c.Body = loadtest.PatternBody(bodySize)
	}
	if keysFile != "" {
		keys, err := readKeys(keysFile)
		if err != nil {
			return nil, cmdline.Usage(fmt.Errorf("--keys-file: %w", err))
		}
		c.Keys = keys
	}
	switch {
	case http2 && http3:
		return nil, cmdline.Usagef("--http3: give --http2 or --http3, not both")
	case http2:
		c.Protocol = loadtest.HTTP2
	case http3:
		c.Protocol = loadtest.HTTP3
	}
	if given["streams"] && c.Protocol == loadtest.HTTP1 {
		return nil, cmdline.Usagef("--streams: needs --http2 or --http3")
	}
	if caFile != "" || insecure {
		if caFile != "" && insecure {
			return nil, cmdline.Usagef("--insecure: give --ca or --insecure, not both")
		}
		c.TLSConfig = &tls.Config{InsecureSkipVerify: insecure}
		if caFile != "" {
			pool, err := readCA(caFile)
			if err != nil {
				return nil, cmdline.Usage(fmt.Errorf("--ca: %w", err))
			}
			c.TLSConfig.RootCAs = pool
		}
	}
	if c.HostTemplate != "" && keysFile == "" {
		return nil, cmdline.Usagef("--host-template: needs --keys-file")
	}
	if !given["duration"] && !given["requests"] {
		c.Duration = defaultDuration
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

// boolValue is a boolean flag: --name alone, or --name=true|false.
type boolValue struct{ b *bool }

func (v boolValue) String() string   { return "" }
func (v boolValue) IsBoolFlag() bool { return true }
func (v boolValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("invalid boolean %q", s)
	}
	*v.b = b
	return nil
}

// readCA reads a PEM file of CA certificates.
func readCA(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s: no PEM certificate in it", path)
	}
	return pool, nil
}

// isTerminal reports whether w is a character device, such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// validToken reports whether s is an HTTP token (RFC 9110), the rule by
// which loadtest checks header names: here it tells a K:V header from a
// malformed one.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}
