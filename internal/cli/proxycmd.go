package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/switchyard/switchyard/proxy"
	"github.com/switchyard/switchyard/proxy/accesslog"
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
--route-servers it is logged and ignored); SIGUSR1 reopens
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
	writeUsage(w, proxyOptions)
}

// parseProxyArgs parses the proxy subcommand's arguments: defaults, then the
// config file, then flags.
func parseProxyArgs(args []string) (*settings, error) {
	f := newFlagSet("proxy", proxyOptions)
	var configPath string
	f.fs.StringVar(&configPath, "config", "", "YAML config file")
	if err := f.parse(args); err != nil {
		return nil, err
	}
	s := &settings{logLevel: slog.LevelInfo}
	configGiven := false
	f.fs.Visit(func(fl *flag.Flag) { configGiven = configGiven || fl.Name == "config" })
	if configGiven {
		if configPath == "" {
			return nil, usagef("--config: missing value")
		}
		if err := applyConfigFile(configPath, proxyOptions, s); err != nil {
			return nil, err
		}
	}
	f.apply(s)
	switch {
	case s.routesFile == "" && len(s.routeServers) == 0:
		return nil, usagef("--routes-file or --route-servers is required")
	case s.routesFile != "" && len(s.routeServers) > 0:
		return nil, usagef("--routes-file and --route-servers exclude each other; give one")
	case s.routesFile != "" && s.cacheDir != "":
		return nil, usagef("--cache-dir works with --route-servers, not with --routes-file")
	}
	return s, nil
}

func runProxy(args []string, _, stderr io.Writer) error {
	s, err := parseProxyArgs(args)
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	return serveProxy(ctx, s, newLogger(stderr, s.logLevel), nil)
}

// serveProxy runs a proxy over s.routesFile until ctx is done, then drains
// and returns nil. It is the one code path of both "switchyard proxy" and
// "switchyard demo". The routes file must load at start (else a usage
// error); afterwards SIGHUP reloads it. ready, if not nil, is called with the
// bound addresses once the listeners are up.
func serveProxy(ctx context.Context, s *settings, logger *slog.Logger, ready func(listen, admin string)) error {
	if len(s.routeServers) > 0 {
		return serveProxyFromRouteServers(ctx, s, logger)
	}
	cfg, err := proxyConfig(s, logger)
	if err != nil {
		return err
	}
	src := &routesfile.Source{Path: s.routesFile, Logger: logger}
	table, err := src.Load()
	if err != nil {
		return &usageError{err}
	}
	srv, err := proxy.New(cfg)
	if err != nil {
		return &usageError{err}
	}
	srv.Apply(table)

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	src.Reload = hup

	srcCtx, stopSrc := context.WithCancel(ctx)
	srcDone := make(chan struct{})
	go func() {
		defer close(srcDone)
		if err := src.Run(srcCtx, srv); err != nil && srcCtx.Err() == nil {
			logger.Error("routes file source stopped", "path", s.routesFile, "err", err)
		}
	}()
	runDone, readyDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(readyDone)
		select {
		case <-srv.Ready():
			if ready != nil {
				ready(srv.Addr().String(), adminAddr(srv, cfg.AdminListen))
			}
		case <-runDone:
		}
	}()
	stopReopen := reopenAccessLogOnSignal(srv, s.cfg.AccessLog, logger)
	err = srv.Run(ctx)
	stopReopen()
	close(runDone)
	<-readyDone
	stopSrc()
	<-srcDone
	return err
}

// reopenAccessLogOnSignal reopens srv's access log file on every SIGUSR1
// until the returned function is called, which waits for a reopen in
// progress. A reopen that fails is logged and the old file stays in use.
func reopenAccessLogOnSignal(srv *proxy.Server, alog accesslog.Config, logger *slog.Logger) (stop func()) {
	isFile := !alog.Off && alog.Path != "" && alog.Path != "-"
	return onSignals(func(os.Signal) {
		if !isFile {
			logger.Info("SIGUSR1: the access log is not a file; nothing to reopen")
		} else if err := srv.ReopenAccessLog(); err != nil {
			logger.Error("access log not reopened; still writing to the old file", "path", alog.Path, "err", err)
		} else {
			logger.Info("access log reopened", "path", alog.Path)
		}
	}, syscall.SIGUSR1)
}

// adminAddr is the admin listener's bound address if the server reports it,
// else the configured one.
func adminAddr(srv *proxy.Server, configured string) string {
	if a, ok := any(srv).(interface{ AdminAddr() net.Addr }); ok {
		if addr := a.AdminAddr(); addr != nil {
			return addr.String()
		}
	}
	return configured
}

// serveProxyFromRouteServers runs a proxy whose table comes from route
// servers (and, at start when none answers, from the cache directory).
func serveProxyFromRouteServers(ctx context.Context, s *settings, logger *slog.Logger) error {
	cfg, err := proxyConfig(s, logger)
	if err != nil {
		return err
	}
	if s.cacheDir != "" {
		if err := os.MkdirAll(s.cacheDir, 0o755); err != nil {
			return &usageError{fmt.Errorf("--cache-dir: %w", err)}
		}
	}
	id := s.proxyID
	if id == "" {
		host, _ := os.Hostname()
		listen := cfg.Listen
		if listen == "" {
			listen = "127.0.0.1:9200"
		}
		id = host + "/" + listen
	}
	src := &routeclient.Source{URLs: s.routeServers, ProxyID: id, Zone: cfg.Zone, CacheDir: s.cacheDir, Logger: logger}
	cfg.SourceStatus = func() any { return src.Status() }
	srv, err := proxy.New(cfg)
	if err != nil {
		return &usageError{err}
	}
	src.Report = srv.GenerationReport
	srcCtx, stopSrc := context.WithCancel(ctx)
	srcDone := make(chan struct{})
	go func() {
		defer close(srcDone)
		if err := src.Run(srcCtx, srv); err != nil {
			logger.Error("route client stopped", "err", err)
		}
	}()
	stopReopen := reopenAccessLogOnSignal(srv, s.cfg.AccessLog, logger)
	stopIgnore := ignoreSignals(logger, "the routes come from route servers; there is no file to reload", syscall.SIGHUP)
	err = srv.Run(ctx)
	stopIgnore()
	stopReopen()
	stopSrc()
	<-srcDone
	return err
}

// proxyConfig completes the proxy's configuration: the logger and the
// zone-aware balancer, local to --zone.
func proxyConfig(s *settings, logger *slog.Logger) (proxy.Config, error) {
	cfg := s.cfg
	cfg.Logger = logger
	bc := s.balancer
	bc.LocalZone = cfg.Zone
	if err := bc.Validate(); err != nil {
		return cfg, &usageError{err}
	}
	b := zones.NewBalancer(bc)
	cfg.Picker, cfg.Checker, cfg.Reporter = b, b, b
	return cfg, nil
}
