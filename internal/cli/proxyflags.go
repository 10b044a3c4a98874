package cli

import (
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"strings"

	"github.com/switchyard/switchyard/proxy"
	"github.com/switchyard/switchyard/proxy/listen"
	"github.com/switchyard/switchyard/zones"
)

// ProxyOptions configure the proxy role ("switchyard proxy"). Every field
// but Logger and Ready is a flag and a config file key (proxyFlags).
type ProxyOptions struct {
	// Config is the proxy's configuration; its zero fields get the proxy's
	// defaults. Run sets its Logger, its balancer (Picker, Checker,
	// Reporter) and, with RouteServers, its SourceStatus.
	Config proxy.Config
	// Balancer configures the zone-aware balancer; zero fields get its
	// defaults, and its LocalZone is Config.Zone.
	Balancer zones.Config

	// RoutesFile is the routes file to serve; SIGHUP reloads it. Exactly
	// one of RoutesFile and RouteServers is required.
	RoutesFile string
	// RouteServers are the base URLs (http://host:port) of the route
	// servers whose tables the proxy follows.
	RouteServers []string
	// CacheDir, with RouteServers, is where the last table applied is kept
	// and served from when no route server answers at start. "" keeps
	// none.
	CacheDir string
	// ProxyID, with RouteServers, is this proxy's name in the route
	// servers' status. "" means the host name and Config.Listen.
	ProxyID string

	// LogLevel is the level of the operational log (--log-level); the
	// command makes Logger from it.
	LogLevel slog.Level
	// Logger receives the operational log. Nil means slog.Default().
	Logger *slog.Logger
	// Ready, if not nil, is called once the listeners are bound, with their
	// addresses (host:port; the admin one is "-" when disabled).
	Ready func(listen, admin string)
}

// proxyFlags are the options of the proxy role, in usage order.
var proxyFlags = []*option[ProxyOptions]{
	{name: "routes-file", arg: "FILE", usage: "routes file to serve; SIGHUP reloads it (this or --route-servers is required)",
		setPath: func(o *ProxyOptions, v, dir string) error { return setPath(&o.RoutesFile, v, dir) }},
	{name: "route-servers", arg: "URL[,URL]", list: true, usage: "route servers to follow for the route table (this or --routes-file is required)",
		set: func(o *ProxyOptions, v string) error { return setURLs(&o.RouteServers, v) }},
	{name: "cache-dir", arg: "DIR", usage: "with --route-servers: where the last applied table is kept, and served from when no route server answers at start",
		setPath: func(o *ProxyOptions, v, dir string) error { return setPath(&o.CacheDir, v, dir) }},
	{name: "proxy-id", arg: "ID", usage: "with --route-servers: this proxy's name in route server status (default host name and listen address)",
		set: func(o *ProxyOptions, v string) error { o.ProxyID = v; return nil }},
	{name: "listen", arg: "ADDR", usage: "client listener (default 127.0.0.1:9200)",
		set: func(o *ProxyOptions, v string) error { return setAddr(&o.Config.Listen, v, false) }},
	{name: "admin-listen", arg: "ADDR", usage: "admin listener for /status, /metrics, /_health; - disables it (default 127.0.0.1:9244)",
		set: func(o *ProxyOptions, v string) error { return setAddr(&o.Config.AdminListen, v, true) }},
	{name: "zone", arg: "ZONE", usage: "availability zone this proxy runs in",
		set: func(o *ProxyOptions, v string) error { o.Config.Zone = v; return nil }},
	{name: "domain", arg: "DOMAIN", usage: "Host route key suffix, as in <key>.<domain> (default: the routes file's domain)",
		set: func(o *ProxyOptions, v string) error {
			o.Config.Domain = strings.ToLower(strings.TrimPrefix(v, "."))
			return nil
		}},
	{name: "trusted-proxies", arg: "CIDR[,CIDR]", list: true, usage: "peers whose X-Forwarded-For is kept and appended to",
		set: func(o *ProxyOptions, v string) error { return setPrefixes(&o.Config.TrustedProxies, v) }},
	{name: "proxy-protocol", arg: "off|on|optional", usage: "PROXY protocol (v1, v2) from the load balancers of --proxy-protocol-from: on requires it from them and refuses every other peer; optional takes it when sent (default off)",
		set: func(o *ProxyOptions, v string) (err error) {
			o.Config.ProxyProtocol, err = listen.ParseProxyMode(v)
			return err
		}},
	{name: "proxy-protocol-from", arg: "CIDR[,CIDR]", list: true, usage: "peers whose PROXY protocol header is honoured; required unless --proxy-protocol is off",
		set: func(o *ProxyOptions, v string) error { return setPrefixes(&o.Config.ProxyProtocolFrom, v) }},
	{name: "tls-listen", arg: "ADDR", usage: "TLS client listener, serving the same requests over TLS; needs --tls-cert and --tls-key or --tls-cert-dir (default off)",
		set: func(o *ProxyOptions, v string) error { return setAddr(&o.Config.TLS.Listen, v, false) }},
	{name: "tls-cert", arg: "FILE", usage: "PEM certificate chain of the default TLS certificate (with --tls-key)",
		setPath: func(o *ProxyOptions, v, dir string) error { return setPath(&o.Config.TLS.CertFile, v, dir) }},
	{name: "tls-key", arg: "FILE", usage: "PEM private key of --tls-cert",
		setPath: func(o *ProxyOptions, v, dir string) error { return setPath(&o.Config.TLS.KeyFile, v, dir) }},
	{name: "tls-cert-dir", arg: "DIR", usage: "directory of TLS certificates chosen by SNI: pairs NAME.crt and NAME.key; default.crt is the default",
		setPath: func(o *ProxyOptions, v, dir string) error { return setPath(&o.Config.TLS.CertDir, v, dir) }},
	{name: "tls-client-ca", arg: "FILE", usage: "PEM bundle of CAs: TLS clients must present a certificate that verifies against it (default: none asked)",
		setPath: func(o *ProxyOptions, v, dir string) error { return setPath(&o.Config.TLS.ClientCA, v, dir) }},
	{name: "max-concurrent-streams", arg: "N", usage: "bound on the concurrent requests (streams) of one HTTP/2 or HTTP/3 connection (default 250)",
		set: func(o *ProxyOptions, v string) error {
			if err := setInt(&o.Config.MaxConcurrentStreams, v); err != nil {
				return err
			}
			if o.Config.MaxConcurrentStreams < 1 || o.Config.MaxConcurrentStreams > 1<<20 {
				return fmt.Errorf("%q: want 1 to %d", v, 1<<20)
			}
			return nil
		}},
	{name: "http2-cleartext", usage: "serve HTTP/2 with prior knowledge (h2c, no Upgrade) on --listen beside HTTP/1.1 (default false)",
		set: func(o *ProxyOptions, v string) error { return setBool(&o.Config.HTTP2Cleartext, v) }},
	{name: "http3", usage: "serve HTTP/3 over QUIC on the UDP port of --tls-listen's address, announced by Alt-Svc on TLS responses (default false)",
		set: func(o *ProxyOptions, v string) error { return setBool(&o.Config.TLS.HTTP3, v) }},
	{name: "tls-ticket-rotation", arg: "DURATION", usage: "how often the TLS session ticket key is replaced; tickets of the previous key still resume (default 24h)",
		set: func(o *ProxyOptions, v string) error { return setDuration(&o.Config.TLS.TicketRotation, v) }},
	{name: "client-header-timeout", arg: "DURATION", usage: "bound on reading a request's headers (default 10s)",
		set: func(o *ProxyOptions, v string) error { return setDuration(&o.Config.ClientHeaderTimeout, v) }},
	{name: "client-idle-timeout", arg: "DURATION", usage: "bound on keep-alive waits and on each body read or write to a client (default 60s)",
		set: func(o *ProxyOptions, v string) error { return setDuration(&o.Config.ClientIdleTimeout, v) }},
	{name: "max-header-bytes", arg: "SIZE", usage: "bound on the request line and headers; larger get 431 (default 16KiB)",
		set: func(o *ProxyOptions, v string) error {
			n, err := parseSize(v)
			if err == nil && n > 1<<30 {
				err = fmt.Errorf("size %q is too large (at most 1GiB)", v)
			}
			o.Config.MaxHeaderBytes = int(n)
			return err
		}},
	{name: "max-body-bytes", arg: "SIZE", usage: "bound on request bodies; larger get 413 (default 0: no limit)",
		set: func(o *ProxyOptions, v string) (err error) { o.Config.MaxBodyBytes, err = parseSize(v); return err }},
	{name: "response-write-size", arg: "SIZE", usage: "largest write of a streamed response body to a client; each response streaming a larger body holds a buffer this big while it streams (default 128KiB, 4KiB to 16MiB)",
		set: func(o *ProxyOptions, v string) error {
			return setSizeIn(&o.Config.ResponseWriteSize, v, proxy.MinResponseWriteSize, proxy.MaxResponseWriteSize, "")
		}},
	{name: "splice-pipe-size", arg: "SIZE|off", usage: "pipe through which a response body is spliced from the instance to the client without copying; off copies every body (default 1MiB, 4KiB to 16MiB)",
		set: func(o *ProxyOptions, v string) error {
			if v == "off" {
				o.Config.SplicePipeSize = -1
				return nil
			}
			return setSizeIn(&o.Config.SplicePipeSize, v, proxy.MinSplicePipeSize, proxy.MaxSplicePipeSize, ", or off")
		}},
	{name: "connect-timeout", arg: "DURATION", usage: "bound on dialing an instance (default 5s)",
		set: func(o *ProxyOptions, v string) error { return setDuration(&o.Config.ConnectTimeout, v) }},
	{name: "response-header-timeout", arg: "DURATION", usage: "bound on waiting for an instance's response headers (default 60s)",
		set: func(o *ProxyOptions, v string) error { return setDuration(&o.Config.ResponseHeaderTimeout, v) }},
	{name: "upstream-idle-timeout", arg: "DURATION", usage: "bound on each body read or write to an instance (default 60s)",
		set: func(o *ProxyOptions, v string) error { return setDuration(&o.Config.UpstreamIdleTimeout, v) }},
	{name: "max-conns-per-instance", arg: "N", usage: "bound on connections to one instance (default 512)",
		set: func(o *ProxyOptions, v string) error { return setInt(&o.Config.MaxConnsPerInstance, v) }},
	{name: "max-idle-conns-per-instance", arg: "N", usage: "bound on the keep-alive pool of one instance (default 64)",
		set: func(o *ProxyOptions, v string) error { return setInt(&o.Config.MaxIdleConnsPerInstance, v) }},
	{name: "idle-conn-timeout", arg: "DURATION", usage: "close pooled instance connections unused this long (default 30s)",
		set: func(o *ProxyOptions, v string) error { return setDuration(&o.Config.IdleConnTimeout, v) }},
	{name: "drain-delay", arg: "DURATION", usage: "keep accepting this long after SIGTERM while /_health says 502 (default 5s)",
		set: func(o *ProxyOptions, v string) error { return setDuration(&o.Config.DrainDelay, v) }},
	{name: "shutdown-timeout", arg: "DURATION", usage: "bound on running requests and upgraded connections after the listener closes; those left are cut (default 30s)",
		set: func(o *ProxyOptions, v string) error { return setDuration(&o.Config.ShutdownTimeout, v) }},
	{name: "access-log", arg: "PATH|-|off", usage: "access log file; - is stdout, off disables it (default -)",
		setPath: func(o *ProxyOptions, v, dir string) error { return setAccessLog(&o.Config.AccessLog, v, dir) }},
	{name: "access-log-sample", arg: "N", usage: "log one request in N; responses >= 500 are always logged (default 1)",
		set: func(o *ProxyOptions, v string) error { return setInt(&o.Config.AccessLog.SampleEvery, v) }},
	{name: "access-log-buffer", arg: "N", usage: "access log lines that may wait for the writer before lines are dropped (default 4096)",
		set: func(o *ProxyOptions, v string) error { return setInt(&o.Config.AccessLog.Buffer, v) }},
	{name: "deployment-metrics", usage: "add a deployment label to request metrics",
		set: func(o *ProxyOptions, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("invalid boolean %q", v)
			}
			o.Config.DeploymentMetrics = b
			return nil
		}},
	{name: "retry-budget-percent", arg: "N", usage: "retries in flight may be at most N% of the requests in flight (default 20)",
		set: func(o *ProxyOptions, v string) error { return setPercent(&o.Config.RetryBudgetPercent, v) }},
	{name: "retry-budget-floor", arg: "N", usage: "retries that may be in flight whatever the percentage (default 10)",
		set: func(o *ProxyOptions, v string) error { return setInt(&o.Config.RetryBudgetFloor, v) }},
	{name: "tunnel-idle-timeout", arg: "DURATION", usage: "end an upgraded (WebSocket) connection when nothing passed either way this long; 0: never (default 1h)",
		set: func(o *ProxyOptions, v string) error {
			if err := setDuration(&o.Config.TunnelIdleTimeout, v); err != nil {
				return err
			}
			if o.Config.TunnelIdleTimeout == 0 {
				o.Config.TunnelIdleTimeout = -1 // never
			}
			return nil
		}},
	{name: "idle-nap", arg: "DURATION", usage: "under load, sleep this long between small batches of requests instead of waiting to be woken (fewer wake-ups, at most this much added latency); only with GOMAXPROCS=1; 0: off (default 0, at most 1ms)",
		set: func(o *ProxyOptions, v string) error {
			if err := setDuration(&o.Config.IdleNap, v); err != nil {
				return err
			}
			if o.Config.IdleNap > proxy.MaxIdleNap {
				return fmt.Errorf("invalid duration %q: at most %v", v, proxy.MaxIdleNap)
			}
			if n := runtime.GOMAXPROCS(0); o.Config.IdleNap > 0 && n != 1 {
				return fmt.Errorf("only for a proxy on one CPU: run with GOMAXPROCS=1 (it is %d)", n)
			}
			return nil
		}},
	{name: "retire-grace", arg: "DURATION", usage: "how long a request still streaming from an instance taken out of service may go on (default 30s)",
		set: func(o *ProxyOptions, v string) error { return setDuration(&o.Config.RetireGrace, v) }},
	{name: "panic-threshold", arg: "RATIO", usage: "below this healthy share a deployment ignores instance health and spreads over all its instances (default 0.5; negative disables)",
		set: func(o *ProxyOptions, v string) error {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f > 1 {
				return fmt.Errorf("invalid ratio %q (want a number up to 1, e.g. 0.5)", v)
			}
			o.Balancer.PanicThreshold = f
			return nil
		}},
	{name: "outlier-consecutive-failures", arg: "N", usage: "consecutive failures (connect error, reset, timeout, 5xx) that eject an instance (default 5; negative disables ejection)",
		set: func(o *ProxyOptions, v string) error { return setSignedInt(&o.Balancer.ConsecutiveFailures, v) }},
	{name: "outlier-base-ejection", arg: "DURATION", usage: "ejection time, multiplied by the times an instance was ejected (default 30s)",
		set: func(o *ProxyOptions, v string) error { return setDuration(&o.Balancer.BaseEjection, v) }},
	{name: "outlier-max-ejection", arg: "DURATION", usage: "longest ejection (default 5m)",
		set: func(o *ProxyOptions, v string) error { return setDuration(&o.Balancer.MaxEjection, v) }},
	{name: "outlier-max-ejected-percent", arg: "N", usage: "most of a deployment's instances ejected at once, in percent (default 50)",
		set: func(o *ProxyOptions, v string) error { return setPercent(&o.Balancer.MaxEjectedPercent, v) }},
	{name: "health-check-path", arg: "PATH", usage: "path of active HTTP health checks; empty disables them (default)",
		set: func(o *ProxyOptions, v string) error {
			if v != "" && v[0] != '/' {
				return fmt.Errorf("invalid path %q (want /...)", v)
			}
			o.Balancer.Check.Path = v
			return nil
		}},
	{name: "health-check-interval", arg: "DURATION", usage: "time between active checks of an instance, ±10% jitter (default 10s)",
		set: func(o *ProxyOptions, v string) error { return setDuration(&o.Balancer.Check.Interval, v) }},
	{name: "health-check-timeout", arg: "DURATION", usage: "bound on one active check (default 2s)",
		set: func(o *ProxyOptions, v string) error { return setDuration(&o.Balancer.Check.Timeout, v) }},
	{name: "health-check-healthy-threshold", arg: "N", usage: "passing checks in a row that make an instance healthy (default 2)",
		set: func(o *ProxyOptions, v string) error { return setInt(&o.Balancer.Check.HealthyThreshold, v) }},
	{name: "health-check-unhealthy-threshold", arg: "N", usage: "failing checks in a row that make an instance unhealthy (default 3)",
		set: func(o *ProxyOptions, v string) error { return setInt(&o.Balancer.Check.UnhealthyThreshold, v) }},
	{name: "health-check-concurrency", arg: "N", usage: "checks in flight at once (default 16)",
		set: func(o *ProxyOptions, v string) error { return setInt(&o.Balancer.Check.Concurrency, v) }},
	{name: "log-level", arg: "LEVEL", usage: "operational log level: debug, info, warn or error (default info)",
		set: func(o *ProxyOptions, v string) (err error) { o.LogLevel, err = parseLogLevel(v); return err }},
}
