package cli

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/proxy"
	"github.com/switchyard/switchyard/zones"
)

// settings is everything the proxy subcommand is configured with.
type settings struct {
	cfg        proxy.Config
	routesFile string
	logLevel   slog.Level

	// The zone-aware balancer (its LocalZone is cfg.Zone).
	balancer zones.Config

	// Route servers as the proxy's source (instead of routesFile).
	routeServers []string
	cacheDir     string
	proxyID      string

	// The route-server subcommand.
	zk             []string
	root           string
	rsListen       string
	rsName         string
	maxWait        time.Duration
	sessionTimeout time.Duration

	// base is the directory relative paths resolve against while a config
	// file is applied; empty for flags (relative to the working directory).
	base string
}

// option is one setting, reachable as the flag --<name> and as the config
// file key <name>. set parses raw and stores it; it returns an error that
// says what is wrong with raw, without naming the option.
type option struct {
	name  string
	arg   string // placeholder in usage; "" for a boolean
	usage string
	list  bool // a comma-separated list: repeated flags and YAML sequences add up
	set   func(s *settings, raw string) error
}

func (o *option) isBool() bool { return o.arg == "" }

// proxyOptions are the options of the proxy subcommand, in usage order.
var proxyOptions = []*option{
	{name: "routes-file", arg: "FILE", usage: "routes file to serve; SIGHUP reloads it (this or --route-servers is required)",
		set: func(s *settings, v string) error { return setPath(&s.routesFile, s, v) }},
	{name: "route-servers", arg: "URL[,URL]", list: true, usage: "route servers to follow for the route table (this or --routes-file is required)",
		set: func(s *settings, v string) error { return setURLs(&s.routeServers, v) }},
	{name: "cache-dir", arg: "DIR", usage: "with --route-servers: where the last applied table is kept, and served from when no route server answers at start",
		set: func(s *settings, v string) error { return setPath(&s.cacheDir, s, v) }},
	{name: "proxy-id", arg: "ID", usage: "with --route-servers: this proxy's name in route server status (default host name and listen address)",
		set: func(s *settings, v string) error { s.proxyID = v; return nil }},
	{name: "listen", arg: "ADDR", usage: "client listener (default 127.0.0.1:9200)",
		set: func(s *settings, v string) error { return setAddr(&s.cfg.Listen, v, false) }},
	{name: "admin-listen", arg: "ADDR", usage: "admin listener for /status, /metrics, /_health; - disables it (default 127.0.0.1:9244)",
		set: func(s *settings, v string) error { return setAddr(&s.cfg.AdminListen, v, true) }},
	{name: "zone", arg: "ZONE", usage: "availability zone this proxy runs in",
		set: func(s *settings, v string) error { s.cfg.Zone = v; return nil }},
	{name: "domain", arg: "DOMAIN", usage: "Host route key suffix, as in <key>.<domain> (default: the routes file's domain)",
		set: func(s *settings, v string) error {
			s.cfg.Domain = strings.ToLower(strings.TrimPrefix(v, "."))
			return nil
		}},
	{name: "trusted-proxies", arg: "CIDR[,CIDR]", list: true, usage: "peers whose X-Forwarded-For is kept and appended to",
		set: setPrefixes},
	{name: "client-header-timeout", arg: "DURATION", usage: "bound on reading a request's headers (default 10s)",
		set: func(s *settings, v string) error { return setDuration(&s.cfg.ClientHeaderTimeout, v) }},
	{name: "client-idle-timeout", arg: "DURATION", usage: "bound on keep-alive waits and on each body read or write to a client (default 60s)",
		set: func(s *settings, v string) error { return setDuration(&s.cfg.ClientIdleTimeout, v) }},
	{name: "max-header-bytes", arg: "SIZE", usage: "bound on the request line and headers; larger get 431 (default 16KiB)",
		set: func(s *settings, v string) error {
			n, err := parseSize(v)
			if err == nil && n > 1<<30 {
				err = fmt.Errorf("size %q is too large (at most 1GiB)", v)
			}
			s.cfg.MaxHeaderBytes = int(n)
			return err
		}},
	{name: "max-body-bytes", arg: "SIZE", usage: "bound on request bodies; larger get 413 (default 0: no limit)",
		set: func(s *settings, v string) (err error) { s.cfg.MaxBodyBytes, err = parseSize(v); return err }},
	{name: "response-write-size", arg: "SIZE", usage: "largest write of a streamed response body to a client; each response streaming a larger body holds a buffer this big while it streams (default 128KiB, 4KiB to 16MiB)",
		set: func(s *settings, v string) error {
			return setSizeIn(&s.cfg.ResponseWriteSize, v, proxy.MinResponseWriteSize, proxy.MaxResponseWriteSize, "")
		}},
	{name: "splice-pipe-size", arg: "SIZE|off", usage: "pipe through which a response body is spliced from the instance to the client without copying; off copies every body (default 1MiB, 4KiB to 16MiB)",
		set: func(s *settings, v string) error {
			if v == "off" {
				s.cfg.SplicePipeSize = -1
				return nil
			}
			return setSizeIn(&s.cfg.SplicePipeSize, v, proxy.MinSplicePipeSize, proxy.MaxSplicePipeSize, ", or off")
		}},
	{name: "connect-timeout", arg: "DURATION", usage: "bound on dialing an instance (default 5s)",
		set: func(s *settings, v string) error { return setDuration(&s.cfg.ConnectTimeout, v) }},
	{name: "response-header-timeout", arg: "DURATION", usage: "bound on waiting for an instance's response headers (default 60s)",
		set: func(s *settings, v string) error { return setDuration(&s.cfg.ResponseHeaderTimeout, v) }},
	{name: "upstream-idle-timeout", arg: "DURATION", usage: "bound on each body read or write to an instance (default 60s)",
		set: func(s *settings, v string) error { return setDuration(&s.cfg.UpstreamIdleTimeout, v) }},
	{name: "max-conns-per-instance", arg: "N", usage: "bound on connections to one instance (default 512)",
		set: func(s *settings, v string) error { return setInt(&s.cfg.MaxConnsPerInstance, v) }},
	{name: "max-idle-conns-per-instance", arg: "N", usage: "bound on the keep-alive pool of one instance (default 64)",
		set: func(s *settings, v string) error { return setInt(&s.cfg.MaxIdleConnsPerInstance, v) }},
	{name: "idle-conn-timeout", arg: "DURATION", usage: "close pooled instance connections unused this long (default 30s)",
		set: func(s *settings, v string) error { return setDuration(&s.cfg.IdleConnTimeout, v) }},
	{name: "drain-delay", arg: "DURATION", usage: "keep accepting this long after SIGTERM while /_health says 502 (default 5s)",
		set: func(s *settings, v string) error { return setDuration(&s.cfg.DrainDelay, v) }},
	{name: "shutdown-timeout", arg: "DURATION", usage: "bound on running requests and upgraded connections after the listener closes; those left are cut (default 30s)",
		set: func(s *settings, v string) error { return setDuration(&s.cfg.ShutdownTimeout, v) }},
	{name: "access-log", arg: "PATH|-|off", usage: "access log file; - is stdout, off disables it (default -)",
		set: setAccessLog},
	{name: "access-log-sample", arg: "N", usage: "log one request in N; responses >= 500 are always logged (default 1)",
		set: func(s *settings, v string) error { return setInt(&s.cfg.AccessLog.SampleEvery, v) }},
	{name: "access-log-buffer", arg: "N", usage: "access log lines that may wait for the writer before lines are dropped (default 4096)",
		set: func(s *settings, v string) error { return setInt(&s.cfg.AccessLog.Buffer, v) }},
	{name: "deployment-metrics", usage: "add a deployment label to request metrics",
		set: func(s *settings, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("invalid boolean %q", v)
			}
			s.cfg.DeploymentMetrics = b
			return nil
		}},
	{name: "retry-budget-percent", arg: "N", usage: "retries in flight may be at most N% of the requests in flight (default 20)",
		set: func(s *settings, v string) error { return setPercent(&s.cfg.RetryBudgetPercent, v) }},
	{name: "retry-budget-floor", arg: "N", usage: "retries that may be in flight whatever the percentage (default 10)",
		set: func(s *settings, v string) error { return setInt(&s.cfg.RetryBudgetFloor, v) }},
	{name: "tunnel-idle-timeout", arg: "DURATION", usage: "end an upgraded (WebSocket) connection when nothing passed either way this long; 0: never (default 1h)",
		set: func(s *settings, v string) error {
			if err := setDuration(&s.cfg.TunnelIdleTimeout, v); err != nil {
				return err
			}
			if s.cfg.TunnelIdleTimeout == 0 {
				s.cfg.TunnelIdleTimeout = -1 // never
			}
			return nil
		}},
	{name: "idle-nap", arg: "DURATION", usage: "under load, sleep this long between small batches of requests instead of waiting to be woken (fewer wake-ups, at most this much added latency); only with GOMAXPROCS=1; 0: off (default 0, at most 1ms)",
		set: func(s *settings, v string) error {
			if err := setDuration(&s.cfg.IdleNap, v); err != nil {
				return err
			}
			if s.cfg.IdleNap > proxy.MaxIdleNap {
				return fmt.Errorf("invalid duration %q: at most %v", v, proxy.MaxIdleNap)
			}
			if n := runtime.GOMAXPROCS(0); s.cfg.IdleNap > 0 && n != 1 {
				return fmt.Errorf("only for a proxy on one CPU: run with GOMAXPROCS=1 (it is %d)", n)
			}
			return nil
		}},
	{name: "retire-grace", arg: "DURATION", usage: "how long a request still streaming from an instance taken out of service may go on (default 30s)",
		set: func(s *settings, v string) error { return setDuration(&s.cfg.RetireGrace, v) }},
	{name: "panic-threshold", arg: "RATIO", usage: "below this healthy share a deployment ignores instance health and spreads over all its instances (default 0.5; negative disables)",
		set: func(s *settings, v string) error {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f > 1 {
				return fmt.Errorf("invalid ratio %q (want a number up to 1, e.g. 0.5)", v)
			}
			s.balancer.PanicThreshold = f
			return nil
		}},
	{name: "outlier-consecutive-failures", arg: "N", usage: "consecutive failures (connect error, reset, timeout, 5xx) that eject an instance (default 5; negative disables ejection)",
		set: func(s *settings, v string) error { return setSignedInt(&s.balancer.ConsecutiveFailures, v) }},
	{name: "outlier-base-ejection", arg: "DURATION", usage: "ejection time, multiplied by the times an instance was ejected (default 30s)",
		set: func(s *settings, v string) error { return setDuration(&s.balancer.BaseEjection, v) }},
	{name: "outlier-max-ejection", arg: "DURATION", usage: "longest ejection (default 5m)",
		set: func(s *settings, v string) error { return setDuration(&s.balancer.MaxEjection, v) }},
	{name: "outlier-max-ejected-percent", arg: "N", usage: "most of a deployment's instances ejected at once, in percent (default 50)",
		set: func(s *settings, v string) error { return setPercent(&s.balancer.MaxEjectedPercent, v) }},
	{name: "health-check-path", arg: "PATH", usage: "path of active HTTP health checks; empty disables them (default)",
		set: func(s *settings, v string) error {
			if v != "" && v[0] != '/' {
				return fmt.Errorf("invalid path %q (want /...)", v)
			}
			s.balancer.Check.Path = v
			return nil
		}},
	{name: "health-check-interval", arg: "DURATION", usage: "time between active checks of an instance, ±10% jitter (default 10s)",
		set: func(s *settings, v string) error { return setDuration(&s.balancer.Check.Interval, v) }},
	{name: "health-check-timeout", arg: "DURATION", usage: "bound on one active check (default 2s)",
		set: func(s *settings, v string) error { return setDuration(&s.balancer.Check.Timeout, v) }},
	{name: "health-check-healthy-threshold", arg: "N", usage: "passing checks in a row that make an instance healthy (default 2)",
		set: func(s *settings, v string) error { return setInt(&s.balancer.Check.HealthyThreshold, v) }},
	{name: "health-check-unhealthy-threshold", arg: "N", usage: "failing checks in a row that make an instance unhealthy (default 3)",
		set: func(s *settings, v string) error { return setInt(&s.balancer.Check.UnhealthyThreshold, v) }},
	{name: "health-check-concurrency", arg: "N", usage: "checks in flight at once (default 16)",
		set: func(s *settings, v string) error { return setInt(&s.balancer.Check.Concurrency, v) }},
	{name: "log-level", arg: "LEVEL", usage: "operational log level: debug, info, warn or error (default info)",
		set: func(s *settings, v string) (err error) { s.logLevel, err = parseLogLevel(v); return err }},
}

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
func setPrefixes(s *settings, v string) error {
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
	s.cfg.TrustedProxies = out
	return nil
}

func setAccessLog(s *settings, v string) error {
	switch v {
	case "":
		return fmt.Errorf("missing value (want a path, - or off)")
	case "off":
		s.cfg.AccessLog.Off, s.cfg.AccessLog.Path = true, ""
		return nil
	}
	s.cfg.AccessLog.Off = false
	return setPath(&s.cfg.AccessLog.Path, s, v)
}

// setPath stores a file path; relative paths in a config file are relative
// to the file's directory.
func setPath(dst *string, s *settings, v string) error {
	if v == "" {
		return fmt.Errorf("missing value (want a path)")
	}
	if v != "-" && s.base != "" && !filepath.IsAbs(v) {
		v = filepath.Join(s.base, v)
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
