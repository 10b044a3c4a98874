package cli

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/proxy/accesslog"
)

// The parsers of option values. Each returns an error that says what is
// wrong with the value, without naming the option.

func setDuration(dst *time.Duration, v string) error {
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("invalid duration %q", v)
	}
	if d < 0 {
		return fmt.Errorf("invalid duration %q: must not be negative", v)
	}
	*dst = d
	return nil
}

// parseInt parses an integer of either sign.
func parseInt(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("invalid integer %q", v)
	}
	return n, nil
}

// setSignedInt stores an integer of either sign.
func setSignedInt(dst *int, v string) error {
	n, err := parseInt(v)
	if err != nil {
		return err
	}
	*dst = n
	return nil
}

// setPercent stores an integer from 0 to 100.
func setPercent(dst *int, v string) error {
	n, err := parseInt(v)
	if err != nil {
		return err
	}
	if n < 0 || n > 100 {
		return fmt.Errorf("invalid percentage %q (want 0 to 100)", v)
	}
	*dst = n
	return nil
}

// setInt stores a non-negative integer.
func setInt(dst *int, v string) error {
	n, err := parseInt(v)
	if err != nil {
		return err
	}
	if n < 0 {
		return fmt.Errorf("invalid integer %q: must not be negative", v)
	}
	*dst = n
	return nil
}

// parseSize parses a byte count: an integer, optionally followed by KiB, MiB
// or GiB.
func parseSize(v string) (int64, error) {
	num, mult := v, int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if strings.HasSuffix(v, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(v, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid size %q (want bytes, e.g. 16384 or 16KiB)", v)
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q is too large", v)
	}
	return n * mult, nil
}

// setSizeIn sets *dst to the size v: 0 (the default), or lo to hi. The
// range in the error ends with also (", or off").
func setSizeIn(dst *int, v string, lo, hi int64, also string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	if n != 0 && (n < lo || n > hi) {
		return fmt.Errorf("size %q is out of range (want %s to %s%s)", v, formatSize(lo), formatSize(hi), also)
	}
	*dst = int(n)
	return nil
}

// formatSize writes n as parseSize reads it: in the largest unit that
// divides it.
func formatSize(n int64) string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.mult && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

func setAddr(dst *string, v string, dashDisables bool) error {
	if dashDisables && v == "-" {
		*dst = v
		return nil
	}
	_, port, err := net.SplitHostPort(v)
	if err == nil {
		_, err = strconv.ParseUint(port, 10, 16)
	}
	if err != nil {
		return fmt.Errorf("invalid address %q (want host:port)", v)
	}
	*dst = v
	return nil
}

// setPrefixes parses a comma-separated list of CIDR prefixes; a bare
// address is a one-address prefix.
func setPrefixes(dst *[]netip.Prefix, v string) error {
	var out []netip.Prefix
	for _, part := range strings.Split(v, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		p, err := netip.ParsePrefix(part)
		if err != nil {
			a, aerr := netip.ParseAddr(part)
			if aerr != nil {
				return fmt.Errorf("invalid CIDR %q", part)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	*dst = out
	return nil
}

// setPath stores a file path. A relative path written in a config file
// is relative to the file's directory, dir ("" for a flag: relative to the
// working directory); "-" stays as it is.
func setPath(dst *string, v, dir string) error {
	if v == "" {
		return fmt.Errorf("missing value (want a path)")
	}
	if v != "-" && dir != "" && !filepath.IsAbs(v) {
		v = filepath.Join(dir, v)
	}
	*dst = v
	return nil
}

func parseLogLevel(v string) (slog.Level, error) {
	switch strings.ToLower(v) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("invalid log level %q (want debug, info, warn or error)", v)
}

// setURLs parses a comma-separated list of http(s) base URLs.
func setURLs(dst *[]string, v string) error {
	var out []string
	for _, part := range strings.Split(v, ",") {
		part = strings.TrimRight(strings.TrimSpace(part), "/")
		if part == "" {
			continue
		}
		u, err := url.Parse(part)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("invalid URL %q (want http://host:port)", part)
		}
		out = append(out, part)
	}
	if len(out) == 0 {
		return fmt.Errorf("missing value (want http://host:port[,...])")
	}
	*dst = out
	return nil
}

// setHosts parses a comma-separated list of host:port.
func setHosts(dst *[]string, v string) error {
	var out []string
	for _, part := range strings.Split(v, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		var a string
		if err := setAddr(&a, part, false); err != nil {
			return err
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		return fmt.Errorf("missing value (want host:port[,...])")
	}
	*dst = out
	return nil
}

// setAccessLog stores the access log's destination: a file path (as
// setPath), "-" for stdout, or "off".
func setAccessLog(dst *accesslog.Config, v, dir string) error {
	switch v {
	case "":
		return fmt.Errorf("missing value (want a path, - or off)")
	case "off":
		dst.Off, dst.Path = true, ""
		return nil
	}
	dst.Off = false
	return setPath(&dst.Path, v, dir)
}

// setRoot stores a ZooKeeper root path: "/name", no trailing slash.
func setRoot(dst *string, v string) error {
	if len(v) < 2 || v[0] != '/' || v[len(v)-1] == '/' {
		return fmt.Errorf("invalid root %q (want /name)", v)
	}
	*dst = v
	return nil
}
