package cli

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"syscall"

	"golang.org/x/sync/errgroup"

	"github.com/switchyard/switchyard/internal/cmdline"
	"github.com/switchyard/switchyard/proxy"
	"github.com/switchyard/switchyard/proxy/accesslog"
	"github.com/switchyard/switchyard/proxy/listen"
	"github.com/switchyard/switchyard/routes/routeclient"
	"github.com/switchyard/switchyard/routes/routesfile"
	"github.com/switchyard/switchyard/zones"
)

func proxyUsage(w io.Writer) {
	fmt.Fprint(w, `usage: switchyard proxy (--routes-file FILE | --route-servers URL[,URL]) [flags]

Runs the proxy over a routes file, or over the tables that route servers
stream (with --cache-dir, the last one is kept on disk and served at start
when no route server answers). SIGHUP reloads the file (an invalid file
is rejected whole and the last good table keeps serving; with
--route-servers it is logged and ignored) and, with --tls-listen, the TLS
certificates; SIGUSR1 reopens
the access log file (for rotation: rename it, then send SIGUSR1); SIGTERM
or SIGINT drains: /_health answers 502 for --drain-delay while the listener still
accepts, then running requests get up to --shutdown-timeout.

Every flag is also a key of the YAML file given by --config, e.g.

    listen: 127.0.0.1:9200
    connect-timeout: 5s
    trusted-proxies: [10.0.0.0/8, 192.168.0.0/16]

Paths in the file are relative to the file. Flags win over the file.

flags:
  --config FILE
        YAML config file
`)
	writeUsage(w, proxyFlags)
}

// parseProxyArgs parses the proxy subcommand's arguments: defaults, then
// the config file, then flags.
func parseProxyArgs(args []string) (*ProxyOptions, error) {
	o := &ProxyOptions{LogLevel: slog.LevelInfo}
	if err := parseArgs("proxy", args, proxyFlags, o, true); err != nil {
		return nil, err
	}
	switch {
	case o.RoutesFile == "" && len(o.RouteServers) == 0:
		return nil, cmdline.Usagef("--routes-file or --route-servers is required")
	case o.RoutesFile != "" && len(o.RouteServers) > 0:
		return nil, cmdline.Usagef("--routes-file and --route-servers exclude each other; give one")
	case o.RoutesFile != "" && o.CacheDir != "":
		return nil, cmdline.Usagef("--cache-dir works with --route-servers, not with --routes-file")
	case o.Config.ProxyProtocol != listen.ProxyOff && len(o.Config.ProxyProtocolFrom) == 0:
		return nil, cmdline.Usagef("--proxy-protocol %s needs --proxy-protocol-from: the load balancers whose headers to honour", o.Config.ProxyProtocol)
	case (o.Config.TLS.CertFile == "") != (o.Config.TLS.KeyFile == ""):
		return nil, cmdline.Usagef("--tls-cert and --tls-key go together")
	case o.Config.TLS.Listen != "" && o.Config.TLS.CertFile == "" && o.Config.TLS.CertDir == "":
		return nil, cmdline.Usagef("--tls-listen needs certificates: --tls-cert and --tls-key, or --tls-cert-dir")
	}
	return o, nil
}

func runProxy(args []string, _, stderr io.Writer) error {
	o, err := parseProxyArgs(args)
	if err != nil {
		return err
	}
	o.Logger = newLogger(stderr, o.LogLevel)
	ctx, stop := cmdline.SignalContext()
	defer stop()
	return o.Run(ctx)
}

// Run runs a proxy over RoutesFile or RouteServers until ctx is done, then
// drains and returns nil. It is the one code path of both "switchyard
// proxy" and "switchyard demo". A routes file must load at start, and the
// proxy must accept its configuration, else Run returns a usage error.
// While it runs, SIGUSR1 reopens the access log file and SIGHUP reloads the
// routes file (with RouteServers it is logged and ignored) and the TLS
// certificates.
func (o *ProxyOptions) Run(ctx context.Context) error {
	logger := orDefault(o.Logger)
	cfg, err := o.proxyConfig(logger)
	if err != nil {
		return err
	}
	if len(o.RouteServers) > 0 {
		return o.runFromRouteServers(ctx, cfg, logger)
	}
	return o.runFromFile(ctx, cfg, logger)
}

// runFromFile runs a proxy over the routes file, which it loads first.
func (o *ProxyOptions) runFromFile(ctx context.Context, cfg proxy.Config, logger *slog.Logger) error {
	reload := make(chan os.Signal, 1)
	src := &routesfile.Source{Path: o.RoutesFile, Logger: logger, Reload: reload}
	table, err := src.Load()
	if err != nil {
		return cmdline.Usage(err)
	}
	srv, err := proxy.New(cfg)
	if err != nil {
		return cmdline.Usage(err)
	}
	srv.Apply(table)
	return o.serve(ctx, srv, logger,
		func(ctx context.Context) error {
			if err := src.Run(ctx, srv); err != nil {
				return fmt.Errorf("routes file source stopped: %w", err)
			}
			return nil
		},
		func(sig os.Signal) {
			select {
			case reload <- sig:
			default: // a reload is already due
			}
			srv.ReloadTLS()
		})
}

// runFromRouteServers runs a proxy whose table comes from route servers
// (and, at start when none answers, from the cache directory).
func (o *ProxyOptions) runFromRouteServers(ctx context.Context, cfg proxy.Config, logger *slog.Logger) error {
	if o.CacheDir != "" {
		if err := os.MkdirAll(o.CacheDir, 0o755); err != nil {
			return cmdline.Usage(fmt.Errorf("--cache-dir: %w", err))
		}
	}
	id := o.ProxyID
	if id == "" {
		host, _ := os.Hostname()
		id = host + "/" + cmp.Or(cfg.Listen, "127.0.0.1:9200")
	}
	src := &routeclient.Source{URLs: o.RouteServers, ProxyID: id, Zone: cfg.Zone, CacheDir: o.CacheDir, Logger: logger}
	cfg.SourceStatus = func() any { return src.Status() }
	srv, err := proxy.New(cfg)
	if err != nil {
		return cmdline.Usage(err)
	}
	src.Report = srv.GenerationReport
	return o.serve(ctx, srv, logger,
		func(ctx context.Context) error {
			if err := src.Run(ctx, srv); err != nil {
				return fmt.Errorf("route client stopped: %w", err)
			}
			return nil
		},
		func(sig os.Signal) {
			if cfg.TLS.Listen != "" {
				srv.ReloadTLS()
				return
			}
			logIgnored(logger, "the routes come from route servers; there is no file to reload", sig)
		})
}

// serve runs srv and the source of its tables at once until ctx is done
// and srv has drained. The first of them to fail ends the other, and serve
// returns its error. hangUp is what SIGHUP does; SIGUSR1 reopens the
// access log file. Both are handled from before srv listens until it has
// drained, so that neither ends the process meanwhile.
func (o *ProxyOptions) serve(ctx context.Context, srv *proxy.Server, logger *slog.Logger,
	source func(ctx context.Context) error, hangUp func(os.Signal)) error {
	stopSignals := onSignals(func(sig os.Signal) {
		if sig == syscall.SIGUSR1 {
			reopenAccessLog(srv, o.Config.AccessLog, logger)
			return
		}
		hangUp(sig)
	}, syscall.SIGHUP, syscall.SIGUSR1)
	defer stopSignals()

	g, gctx := errgroup.WithContext(ctx)
	served := make(chan struct{}) // closed when srv has drained, or failed
	g.Go(func() error {
		defer close(served)
		return srv.Run(gctx)
	})
	g.Go(func() error { return source(gctx) })
	if o.Ready != nil {
		g.Go(func() error {
			select {
			case <-srv.Ready():
				o.Ready(srv.Addr().String(), adminAddr(srv, o.Config.AdminListen))
			case <-served:
			}
			return nil
		})
	}
	return g.Wait()
}

// reopenAccessLog reopens srv's access log file, for rotation. A reopen
// that fails is logged and the old file stays in use.
func reopenAccessLog(srv *proxy.Server, alog accesslog.Config, logger *slog.Logger) {
	if alog.Off || alog.Path == "" || alog.Path == "-" {
		logger.Info("SIGUSR1: the access log is not a file; nothing to reopen")
	} else if err := srv.ReopenAccessLog(); err != nil {
		logger.Error("access log not reopened; still writing to the old file", "path", alog.Path, "err", err)
	} else {
		logger.Info("access log reopened", "path", alog.Path)
	}
}

// adminAddr is the admin listener's bound address, or the configured one
// ("-") when it is disabled.
func adminAddr(srv *proxy.Server, configured string) string {
	if addr := srv.AdminAddr(); addr != nil {
		return addr.String()
	}
	return configured
}

// proxyConfig completes the proxy's configuration: the logger and the
// zone-aware balancer, local to Config.Zone.
func (o *ProxyOptions) proxyConfig(logger *slog.Logger) (proxy.Config, error) {
	cfg := o.Config
	cfg.Logger = logger
	bc := o.Balancer
	bc.LocalZone = cfg.Zone
	if err := bc.Validate(); err != nil {
		return cfg, cmdline.Usage(err)
	}
	b := zones.NewBalancer(bc)
	cfg.Picker, cfg.Checker, cfg.Reporter = b, b, b
	return cfg, nil
}
