package cli

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/cmdline"
	"github.com/switchyard/switchyard/proxy/accesslog"
)

// validRoutes is a routes file that loads.
const validRoutes = `domain: example.test
deployments:
  - id: 7f3a9c2e51d04b8e
    kind: es
    aliases: [prod-search]
    serving: {blue: 100}
    instances:
      - {id: i-0001, addr: 127.0.0.1:19201, zone: zone-a, generation: blue}
`

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFlagsSetFields(t *testing.T) {
	covered := map[string]bool{}
	for _, tc := range []struct {
		args []string
		got  func(s *ProxyOptions) any
		want any
	}{
		{[]string{"--routes-file", "r.yaml"}, func(s *ProxyOptions) any { return s.RoutesFile }, "r.yaml"},
		{[]string{"--listen", "127.0.0.1:1"}, func(s *ProxyOptions) any { return s.Config.Listen }, "127.0.0.1:1"},
		{[]string{"--admin-listen", "127.0.0.1:2"}, func(s *ProxyOptions) any { return s.Config.AdminListen }, "127.0.0.1:2"},
		{[]string{"--admin-listen", "-"}, func(s *ProxyOptions) any { return s.Config.AdminListen }, "-"},
		{[]string{"--zone", "zone-b"}, func(s *ProxyOptions) any { return s.Config.Zone }, "zone-b"},
		{[]string{"--domain", "Example.Test"}, func(s *ProxyOptions) any { return s.Config.Domain }, "example.test"},
		{[]string{"--trusted-proxies", "10.0.0.0/8,192.168.1.7"}, func(s *ProxyOptions) any { return s.Config.TrustedProxies },
			[]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.7/32")}},
		{[]string{"--trusted-proxies", "10.1.2.3/8", "--trusted-proxies", "::1"}, func(s *ProxyOptions) any { return s.Config.TrustedProxies },
			[]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}},
		{[]string{"--proxy-protocol", "optional", "--proxy-protocol-from", "10.0.0.10,2001:db8::/32"}, func(s *ProxyOptions) any {
			return []any{s.Config.ProxyProtocol.String(), s.Config.ProxyProtocolFrom}
		}, []any{"optional", []netip.Prefix{netip.MustParsePrefix("10.0.0.10/32"), netip.MustParsePrefix("2001:db8::/32")}}},
		{[]string{"--tls-listen", "127.0.0.1:9243", "--tls-cert", "/etc/tls/a.crt", "--tls-key", "/etc/tls/a.key"}, func(s *ProxyOptions) any {
			return []string{s.Config.TLS.Listen, s.Config.TLS.CertFile, s.Config.TLS.KeyFile}
		}, []string{"127.0.0.1:9243", "/etc/tls/a.crt", "/etc/tls/a.key"}},
		{[]string{"--tls-listen", "127.0.0.1:9243", "--tls-cert-dir", "/etc/tls/certs"}, func(s *ProxyOptions) any { return s.Config.TLS.CertDir }, "/etc/tls/certs"},
		{[]string{"--tls-client-ca", "/etc/tls/clients.pem"}, func(s *ProxyOptions) any { return s.Config.TLS.ClientCA }, "/etc/tls/clients.pem"},
		{[]string{"--tls-ticket-rotation", "6h"}, func(s *ProxyOptions) any { return s.Config.TLS.TicketRotation }, 6 * time.Hour},
		{[]string{"--client-header-timeout", "3s"}, func(s *ProxyOptions) any { return s.Config.ClientHeaderTimeout }, 3 * time.Second},
		{[]string{"--client-idle-timeout", "2m"}, func(s *ProxyOptions) any { return s.Config.ClientIdleTimeout }, 2 * time.Minute},
		{[]string{"--http2-cleartext"}, func(s *ProxyOptions) any { return s.Config.HTTP2Cleartext }, true},
		{[]string{"--http3"}, func(s *ProxyOptions) any { return s.Config.TLS.HTTP3 }, true},
		{[]string{"--max-concurrent-streams", "100"}, func(s *ProxyOptions) any { return s.Config.MaxConcurrentStreams }, 100},
		{[]string{"--max-header-bytes", "32KiB"}, func(s *ProxyOptions) any { return s.Config.MaxHeaderBytes }, 32 << 10},
		{[]string{"--max-header-bytes", "8000"}, func(s *ProxyOptions) any { return s.Config.MaxHeaderBytes }, 8000},
		{[]string{"--max-body-bytes", "2GiB"}, func(s *ProxyOptions) any { return s.Config.MaxBodyBytes }, int64(2 << 30)},
		{[]string{"--response-write-size", "256KiB"}, func(s *ProxyOptions) any { return s.Config.ResponseWriteSize }, 256 << 10},
		{[]string{"--response-write-size", "4096"}, func(s *ProxyOptions) any { return s.Config.ResponseWriteSize }, 4096},
		{[]string{"--splice-pipe-size", "256KiB"}, func(s *ProxyOptions) any { return s.Config.SplicePipeSize }, 256 << 10},
		{[]string{"--splice-pipe-size", "off"}, func(s *ProxyOptions) any { return s.Config.SplicePipeSize }, -1},
		{[]string{"--connect-timeout", "1500ms"}, func(s *ProxyOptions) any { return s.Config.ConnectTimeout }, 1500 * time.Millisecond},
		{[]string{"--response-header-timeout", "7s"}, func(s *ProxyOptions) any { return s.Config.ResponseHeaderTimeout }, 7 * time.Second},
		{[]string{"--upstream-idle-timeout", "8s"}, func(s *ProxyOptions) any { return s.Config.UpstreamIdleTimeout }, 8 * time.Second},
		{[]string{"--max-conns-per-instance", "100"}, func(s *ProxyOptions) any { return s.Config.MaxConnsPerInstance }, 100},
		{[]string{"--max-idle-conns-per-instance", "10"}, func(s *ProxyOptions) any { return s.Config.MaxIdleConnsPerInstance }, 10},
		{[]string{"--idle-conn-timeout", "9s"}, func(s *ProxyOptions) any { return s.Config.IdleConnTimeout }, 9 * time.Second},
		{[]string{"--drain-delay", "0s"}, func(s *ProxyOptions) any { return s.Config.DrainDelay }, time.Duration(0)},
		{[]string{"--drain-delay", "1s"}, func(s *ProxyOptions) any { return s.Config.DrainDelay }, time.Second},
		{[]string{"--shutdown-timeout", "11s"}, func(s *ProxyOptions) any { return s.Config.ShutdownTimeout }, 11 * time.Second},
		{[]string{"--access-log", "/var/log/a.log"}, func(s *ProxyOptions) any { return s.Config.AccessLog }, accesslog.Config{Path: "/var/log/a.log"}},
		{[]string{"--access-log", "-"}, func(s *ProxyOptions) any { return s.Config.AccessLog }, accesslog.Config{Path: "-"}},
		{[]string{"--access-log", "off"}, func(s *ProxyOptions) any { return s.Config.AccessLog }, accesslog.Config{Off: true}},
		{[]string{"--access-log-sample", "10"}, func(s *ProxyOptions) any { return s.Config.AccessLog.SampleEvery }, 10},
		{[]string{"--access-log-buffer", "128"}, func(s *ProxyOptions) any { return s.Config.AccessLog.Buffer }, 128},
		{[]string{"--deployment-metrics"}, func(s *ProxyOptions) any { return s.Config.DeploymentMetrics }, true},
		{[]string{"--deployment-metrics=false"}, func(s *ProxyOptions) any { return s.Config.DeploymentMetrics }, false},
		{[]string{"--log-level", "debug"}, func(s *ProxyOptions) any { return s.LogLevel }, slog.LevelDebug},
		{[]string{"--log-level", "ERROR"}, func(s *ProxyOptions) any { return s.LogLevel }, slog.LevelError},
		{[]string{"-listen=127.0.0.1:3"}, func(s *ProxyOptions) any { return s.Config.Listen }, "127.0.0.1:3"},
		{[]string{"--route-servers", "http://127.0.0.1:9280/,http://127.0.0.2:9280"}, func(s *ProxyOptions) any { return s.RouteServers },
			[]string{"http://127.0.0.1:9280", "http://127.0.0.2:9280"}},
		{[]string{"--route-servers", "http://a:1", "--cache-dir", "/var/cache/switchyard"}, func(s *ProxyOptions) any { return s.CacheDir }, "/var/cache/switchyard"},
		{[]string{"--routes-file", "r.yaml", "--proxy-id", "proxy-7"}, func(s *ProxyOptions) any { return s.ProxyID }, "proxy-7"},
		{[]string{"--retire-grace", "5s"}, func(s *ProxyOptions) any { return s.Config.RetireGrace }, 5 * time.Second},
		{[]string{"--retry-budget-percent", "35"}, func(s *ProxyOptions) any { return s.Config.RetryBudgetPercent }, 35},
		{[]string{"--retry-budget-floor", "25"}, func(s *ProxyOptions) any { return s.Config.RetryBudgetFloor }, 25},
		{[]string{"--idle-nap", "0"}, func(s *ProxyOptions) any { return s.Config.IdleNap }, time.Duration(0)},
		{[]string{"--tunnel-idle-timeout", "10m"}, func(s *ProxyOptions) any { return s.Config.TunnelIdleTimeout }, 10 * time.Minute},
		{[]string{"--tunnel-idle-timeout", "0"}, func(s *ProxyOptions) any { return s.Config.TunnelIdleTimeout }, time.Duration(-1)},
		{[]string{"--panic-threshold", "0.3"}, func(s *ProxyOptions) any { return s.Balancer.PanicThreshold }, 0.3},
		{[]string{"--outlier-consecutive-failures", "7"}, func(s *ProxyOptions) any { return s.Balancer.ConsecutiveFailures }, 7},
		{[]string{"--outlier-consecutive-failures", "-1"}, func(s *ProxyOptions) any { return s.Balancer.ConsecutiveFailures }, -1},
		{[]string{"--outlier-base-ejection", "10s"}, func(s *ProxyOptions) any { return s.Balancer.BaseEjection }, 10 * time.Second},
		{[]string{"--outlier-max-ejection", "2m"}, func(s *ProxyOptions) any { return s.Balancer.MaxEjection }, 2 * time.Minute},
		{[]string{"--outlier-max-ejected-percent", "30"}, func(s *ProxyOptions) any { return s.Balancer.MaxEjectedPercent }, 30},
		{[]string{"--health-check-path", "/_health"}, func(s *ProxyOptions) any { return s.Balancer.Check.Path }, "/_health"},
		{[]string{"--health-check-interval", "5s"}, func(s *ProxyOptions) any { return s.Balancer.Check.Interval }, 5 * time.Second},
		{[]string{"--health-check-timeout", "1s"}, func(s *ProxyOptions) any { return s.Balancer.Check.Timeout }, time.Second},
		{[]string{"--health-check-healthy-threshold", "3"}, func(s *ProxyOptions) any { return s.Balancer.Check.HealthyThreshold }, 3},
		{[]string{"--health-check-unhealthy-threshold", "4"}, func(s *ProxyOptions) any { return s.Balancer.Check.UnhealthyThreshold }, 4},
		{[]string{"--health-check-concurrency", "8"}, func(s *ProxyOptions) any { return s.Balancer.Check.Concurrency }, 8},
	} {
		name := strings.Join(tc.args, " ")
		for _, a := range tc.args {
			if strings.HasPrefix(a, "-") {
				covered[strings.TrimLeft(strings.SplitN(a, "=", 2)[0], "-")] = true
			}
		}
		args := tc.args
		if tc.args[0] != "--routes-file" && tc.args[0] != "--route-servers" {
			args = append([]string{"--routes-file", "r.yaml"}, args...)
		}
		s, err := parseProxyArgs(args)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got := tc.got(s); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %v; want %v", name, got, tc.want)
		}
	}
	for _, o := range proxyFlags {
		if !covered[o.name] {
			t.Errorf("flag --%s has no case", o.name)
		}
	}
}

// --idle-nap holds the one processor while it sleeps: it is refused
// unless the proxy runs on one (GOMAXPROCS=1).
func TestIdleNapNeedsOneCPU(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	_, err := parseProxyArgs([]string{"--routes-file", "r.yaml", "--idle-nap", "30us"})
	if err == nil || err.Error() != "--idle-nap: only for a proxy on one CPU: run with GOMAXPROCS=1 (it is 2)" {
		t.Errorf("GOMAXPROCS=2: %v", err)
	}
	runtime.GOMAXPROCS(1)
	s, err := parseProxyArgs([]string{"--routes-file", "r.yaml", "--idle-nap", "30us"})
	if err != nil || s.Config.IdleNap != 30*time.Microsecond {
		t.Errorf("GOMAXPROCS=1: %v, %v", err, s)
	}
	if _, err := parseProxyArgs([]string{"--routes-file", "r.yaml", "--idle-nap", "2ms"}); err == nil || !strings.Contains(err.Error(), "at most 1ms") {
		t.Errorf("2ms: %v", err)
	}
}

func TestDefaults(t *testing.T) {
	s, err := parseProxyArgs([]string{"--routes-file", "r.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	want := &ProxyOptions{RoutesFile: "r.yaml", LogLevel: slog.LevelInfo}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("got %+v; want %+v (zero Config: the proxy applies its defaults)", s, want)
	}
}

func TestConfigFilePrecedence(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "proxy.yaml", `# comment
routes-file: routes.yaml
listen: 127.0.0.1:7000
admin-listen: "-"
connect-timeout: 2s
trusted-proxies: [10.0.0.0/8, 172.16.0.0/12]
access-log: logs/access.log
deployment-metrics: true
max-body-bytes: 1MiB
log-level: warn
`)
	for _, tc := range []struct {
		name  string
		flags []string
		check func(s *ProxyOptions) (got, want any)
	}{
		{"file sets", nil, func(s *ProxyOptions) (any, any) {
			return []any{s.RoutesFile, s.Config.Listen, s.Config.AdminListen, s.Config.ConnectTimeout, s.Config.AccessLog.Path,
					s.Config.DeploymentMetrics, s.Config.MaxBodyBytes, s.LogLevel, len(s.Config.TrustedProxies)},
				[]any{filepath.Join(dir, "routes.yaml"), "127.0.0.1:7000", "-", 2 * time.Second, filepath.Join(dir, "logs/access.log"),
					true, int64(1 << 20), slog.LevelWarn, 2}
		}},
		{"flag wins", []string{"--listen", "127.0.0.1:7001", "--connect-timeout", "3s"}, func(s *ProxyOptions) (any, any) {
			return []any{s.Config.Listen, s.Config.ConnectTimeout, s.Config.AdminListen}, []any{"127.0.0.1:7001", 3 * time.Second, "-"}
		}},
		{"flag before --config still wins", []string{"--listen", "127.0.0.1:7002", "--config", cfg}, func(s *ProxyOptions) (any, any) {
			return s.Config.Listen, "127.0.0.1:7002"
		}},
		{"flag path relative to working directory", []string{"--routes-file", "r.yaml"}, func(s *ProxyOptions) (any, any) {
			return s.RoutesFile, "r.yaml"
		}},
		{"list flag replaces file list", []string{"--trusted-proxies", "192.0.2.1"}, func(s *ProxyOptions) (any, any) {
			return s.Config.TrustedProxies, []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")}
		}},
		{"bool flag overrides file", []string{"--deployment-metrics=false"}, func(s *ProxyOptions) (any, any) {
			return s.Config.DeploymentMetrics, false
		}},
		{"access-log off overrides file path", []string{"--access-log", "off"}, func(s *ProxyOptions) (any, any) {
			return s.Config.AccessLog, accesslog.Config{Off: true}
		}},
	} {
		args := tc.flags
		if !strings.Contains(strings.Join(args, " "), "--config") {
			args = append([]string{"--config", cfg}, args...)
		}
		s, err := parseProxyArgs(args)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got, want := tc.check(s); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %v; want %v", tc.name, got, want)
		}
	}
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	routesOK := writeFile(t, dir, "routes.yaml", validRoutes)
	cfgPath := filepath.Join(dir, "config.yaml")
	badRoutes := writeFile(t, dir, "bad-routes.yaml", "domain: example.test\ndeployments:\n  - id: 7f3a\n    kind: es\n    serving: {blue: 100}\n    instances:\n      - {id: i-1, addr: nowhere, zone: a, generation: blue}\n")
	emptyRoutes := writeFile(t, dir, "empty-routes.yaml", "domain: example.test\ndeployments: []\n")
	r := []string{"proxy", "--routes-file", routesOK}

	for _, tc := range []struct {
		name   string
		args   []string
		config string // written to cfgPath when not empty
		want   string // the whole stderr line, or a prefix ending in "..."
	}{
		{"no subcommand", nil, "", `switchyard: missing subcommand (run "switchyard help")`},
		{"unknown subcommand", []string{"allocatorz"}, "", `switchyard: unknown subcommand "allocatorz" (run "switchyard help")`},
		{"help for unknown subcommand", []string{"help", "nope"}, "", `switchyard help: unknown subcommand "nope"`},
		{"version argument", []string{"version", "x"}, "", `switchyard version: unexpected argument "x"`},
		{"bad duration", append(r, "--connect-timeout", "5x"), "", `switchyard proxy: --connect-timeout: invalid duration "5x"`},
		{"duration without unit", append(r, "--drain-delay=5"), "", `switchyard proxy: --drain-delay: invalid duration "5"`},
		{"negative duration", append(r, "--shutdown-timeout", "-1s"), "", `switchyard proxy: --shutdown-timeout: invalid duration "-1s": must not be negative`},
		{"bad int", append(r, "--max-conns-per-instance", "ten"), "", `switchyard proxy: --max-conns-per-instance: invalid integer "ten"`},
		{"negative int", append(r, "--access-log-sample", "-2"), "", `switchyard proxy: --access-log-sample: invalid integer "-2": must not be negative`},
		{"percent over 100", append(r, "--retry-budget-percent", "101"), "", `switchyard proxy: --retry-budget-percent: invalid percentage "101" (want 0 to 100)`},
		{"negative percent", append(r, "--retry-budget-percent", "-5"), "", `switchyard proxy: --retry-budget-percent: invalid percentage "-5" (want 0 to 100)`},
		{"ejected percent over 100", append(r, "--outlier-max-ejected-percent", "150"), "", `switchyard proxy: --outlier-max-ejected-percent: invalid percentage "150" (want 0 to 100)`},
		{"non-integer ejection count", append(r, "--outlier-consecutive-failures", "x"), "", `switchyard proxy: --outlier-consecutive-failures: invalid integer "x"`},
		{"bad size", append(r, "--max-body-bytes", "10MB"), "", `switchyard proxy: --max-body-bytes: invalid size "10MB" (want bytes, e.g. 16384 or 16KiB)`},
		{"write size too small", append(r, "--response-write-size", "1KiB"), "", `switchyard proxy: --response-write-size: size "1KiB" is out of range (want 4KiB to 16MiB)`},
		{"write size too large", append(r, "--response-write-size", "1GiB"), "", `switchyard proxy: --response-write-size: size "1GiB" is out of range (want 4KiB to 16MiB)`},
		{"pipe size too small", append(r, "--splice-pipe-size", "1KiB"), "", `switchyard proxy: --splice-pipe-size: size "1KiB" is out of range (want 4KiB to 16MiB, or off)`},
		{"pipe size not a size", append(r, "--splice-pipe-size", "no"), "", `switchyard proxy: --splice-pipe-size: ...`},
		{"bad bool", append(r, "--deployment-metrics=maybe"), "", `switchyard proxy: --deployment-metrics: invalid boolean "maybe"`},
		{"bad CIDR", append(r, "--trusted-proxies", "10.0.0.0/8,10.0.0.0/33"), "", `switchyard proxy: --trusted-proxies: invalid CIDR "10.0.0.0/33"`},
		{"bad address", append(r, "--listen", "9200"), "", `switchyard proxy: --listen: invalid address "9200" (want host:port)`},
		{"bad log level", append(r, "--log-level", "verbose"), "", `switchyard proxy: --log-level: invalid log level "verbose" (want debug, info, warn or error)`},
		{"unknown flag", append(r, "--lisen", "x"), "", `switchyard proxy: unknown flag --lisen`},
		{"flag without value", append(r, "--listen"), "", `switchyard proxy: --listen: missing value`},
		{"extra argument", append(r, "extra"), "", `switchyard proxy: unexpected argument "extra"`},
		{"missing --routes-file", []string{"proxy", "--listen", "127.0.0.1:1"}, "", `switchyard proxy: --routes-file or --route-servers is required`},
		{"both sources", []string{"proxy", "--routes-file", "r.yaml", "--route-servers", "http://a:1"}, "", `switchyard proxy: --routes-file and --route-servers exclude each other; give one`},
		{"cache dir with a file", []string{"proxy", "--routes-file", "r.yaml", "--cache-dir", "/tmp"}, "", `switchyard proxy: --cache-dir works with --route-servers, not with --routes-file`},
		{"bad route server URL", []string{"proxy", "--route-servers", "127.0.0.1:9280"}, "", `switchyard proxy: --route-servers: invalid URL "127.0.0.1:9280" (want http://host:port)`},
		{"bad panic threshold", append(r, "--panic-threshold", "2"), "", `switchyard proxy: --panic-threshold: invalid ratio "2" (want a number up to 1, e.g. 0.5)`},
		{"bad health check path", append(r, "--health-check-path", "health"), "", `switchyard proxy: --health-check-path: invalid path "health" (want /...)`},
		{"TLS without certificates", append(r, "--tls-listen", "127.0.0.1:9243"), "", `switchyard proxy: --tls-listen needs certificates: --tls-cert and --tls-key, or --tls-cert-dir`},
		{"TLS cert without key", append(r, "--tls-listen", "127.0.0.1:9243", "--tls-cert", "a.crt"), "", `switchyard proxy: --tls-cert and --tls-key go together`},
		{"TLS cert file missing", append(r, "--tls-listen", "127.0.0.1:0", "--tls-cert", filepath.Join(dir, "no.crt"), "--tls-key", filepath.Join(dir, "no.key")), "",
			"switchyard proxy: ...no.crt: no such file or directory"},
		{"route-server without zk", []string{"route-server"}, "", `switchyard route-server: --zk is required`},
		{"route-server bad zk", []string{"route-server", "--zk", "localhost"}, "", `switchyard route-server: --zk: invalid address "localhost" (want host:port)`},
		{"route-server bad root", []string{"route-server", "--zk", "127.0.0.1:2181", "--root", "switchyard"}, "", `switchyard route-server: --root: invalid root "switchyard" (want /name)`},
		{"missing routes file", []string{"proxy", "--routes-file", filepath.Join(dir, "nope.yaml")}, "", "switchyard proxy: ...nope.yaml: no such file or directory"},
		{"invalid routes file", []string{"proxy", "--routes-file", badRoutes}, "", "switchyard proxy: ..." + badRoutes + ":..."},
		{"empty routes file", []string{"proxy", "--routes-file", emptyRoutes}, "", "switchyard proxy: ..."},
		{"unknown config key", []string{"proxy", "--config", cfgPath}, "routes-file: r.yaml\n# c\nlisen: 127.0.0.1:1\n",
			`switchyard proxy: ` + cfgPath + `:3: unknown key "lisen"`},
		{"config key for flag-only --config", []string{"proxy", "--config", cfgPath}, "config: other.yaml\n",
			`switchyard proxy: ` + cfgPath + `:1: unknown key "config"`},
		{"bad config duration", []string{"proxy", "--config", cfgPath}, "routes-file: r.yaml\nconnect-timeout: 5x\n",
			`switchyard proxy: ` + cfgPath + `:2: connect-timeout: invalid duration "5x"`},
		{"bad config CIDR", []string{"proxy", "--config", cfgPath}, "trusted-proxies:\n  - 10.0.0.0/8\n  - nope\n",
			`switchyard proxy: ` + cfgPath + `:2: trusted-proxies: invalid CIDR "nope"`},
		{"config list for scalar key", []string{"proxy", "--config", cfgPath}, "listen: [a, b]\n",
			`switchyard proxy: ` + cfgPath + `:1: listen: want a single value`},
		{"config empty value", []string{"proxy", "--config", cfgPath}, "listen:\n",
			`switchyard proxy: ` + cfgPath + `:1: listen: missing value`},
		{"duplicate config key", []string{"proxy", "--config", cfgPath}, "listen: 127.0.0.1:1\nzone: a\nlisten: 127.0.0.1:2\n",
			`switchyard proxy: ` + cfgPath + `:3: duplicate key "listen" (first on line 1)`},
		{"config not a mapping", []string{"proxy", "--config", cfgPath}, "- listen\n",
			`switchyard proxy: ` + cfgPath + `:1: want a mapping of keys to values`},
		{"config syntax error", []string{"proxy", "--config", cfgPath}, "listen: 127.0.0.1:1\n  zone: [\n",
			`switchyard proxy: ` + cfgPath + `:...`},
		{"missing config file", []string{"proxy", "--config", filepath.Join(dir, "nope.yaml")}, "",
			`switchyard proxy: --config: open ` + filepath.Join(dir, "nope.yaml") + `: no such file or directory`},
		{"bad demo flag", []string{"demo", "--routes-file", "x"}, "", `switchyard demo: unknown flag --routes-file`},
		{"bad demo address", []string{"demo", "--listen", "localhost"}, "", `switchyard demo: --listen: invalid address "localhost" (want host:port)`},
	} {
		if tc.config != "" {
			writeFile(t, dir, "config.yaml", tc.config)
		}
		var stdout, stderr bytes.Buffer
		code := Main(tc.args, &stdout, &stderr)
		if code != cmdline.ExitUsage {
			t.Errorf("%s: exit %d; want %d (stderr %q)", tc.name, code, cmdline.ExitUsage, stderr.String())
		}
		checkOneLine(t, tc.name, stderr.String(), tc.want)
	}
}

// checkOneLine checks that out is exactly one line and matches want: equal,
// or, where want contains "...", a glob in which each "..." stands for any
// text.
func checkOneLine(t *testing.T, name, out, want string) {
	t.Helper()
	line, ok := strings.CutSuffix(out, "\n")
	if !ok || strings.Contains(line, "\n") {
		t.Errorf("%s: stderr %q; want exactly one line", name, out)
		return
	}
	if !matchDots(line, want) {
		t.Errorf("%s:\n got %q\nwant %q", name, line, want)
	}
}

func matchDots(s, pattern string) bool {
	parts := strings.Split(pattern, "...")
	if len(parts) == 1 {
		return s == pattern
	}
	rest, ok := strings.CutPrefix(s, parts[0])
	if !ok {
		return false
	}
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(rest, p)
		if i < 0 {
			return false
		}
		rest = rest[i+len(p):]
	}
	return strings.HasSuffix(rest, parts[len(parts)-1])
}

func TestHelpAndVersion(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"help"}, "usage: switchyard SUBCOMMAND"},
		{[]string{"--help"}, "usage: switchyard SUBCOMMAND"},
		{[]string{"help", "proxy"}, "--connect-timeout DURATION"},
		{[]string{"proxy", "--help"}, "--trusted-proxies CIDR[,CIDR]"},
		{[]string{"proxy", "-h"}, "--config FILE"},
		{[]string{"demo", "-h"}, "--admin-listen ADDR"},
		{[]string{"version"}, "switchyard "},
	} {
		var stdout, stderr bytes.Buffer
		if code := Main(tc.args, &stdout, &stderr); code != cmdline.ExitOK {
			t.Errorf("%v: exit %d; want 0 (stderr %q)", tc.args, code, stderr.String())
		}
		if !strings.Contains(stdout.String(), tc.want) {
			t.Errorf("%v: stdout %q; want it to contain %q", tc.args, stdout.String(), tc.want)
		}
		if stderr.Len() != 0 {
			t.Errorf("%v: stderr %q; want nothing", tc.args, stderr.String())
		}
	}
}

// TestListenFailure checks that a listener that cannot bind is a runtime
// failure: exit 1 with one line.
func TestListenFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	routesFile := writeFile(t, dir, "routes.yaml", validRoutes)
	var stdout, stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Main([]string{"proxy", "--routes-file", routesFile, "--listen", ln.Addr().String(),
			"--admin-listen", "-", "--log-level", "error"}, &stdout, &stderr)
	}()
	select {
	case code := <-done:
		if code != cmdline.ExitFailure {
			t.Errorf("exit %d; want %d", code, cmdline.ExitFailure)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("proxy did not fail within 10s on a busy port")
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "switchyard proxy: ") || !strings.Contains(last, "address already in use") {
		t.Errorf("last stderr line %q; want %q", last, fmt.Sprintf("switchyard proxy: listen tcp %s: bind: address already in use", ln.Addr()))
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 4096: "4KiB", 4097: "4097", 16 << 20: "16MiB", 3 << 30: "3GiB", 1536: "1536", 1 << 31: "2GiB"} {
		got := formatSize(n)
		if got != want {
			t.Errorf("formatSize(%d) = %q; want %q", n, got, want)
		}
		if back, err := parseSize(got); err != nil || back != n {
			t.Errorf("parseSize(formatSize(%d)) = %d, %v", n, back, err)
		}
	}
}
