package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"syscall"
	"time"

	"github.com/switchyard/switchyard/routes/zkstore"
	"github.com/switchyard/switchyard/routeserver"
)

// routeServerOptions are the options of the route-server subcommand.
var routeServerOptions = []*option{
	{name: "zk", arg: "HOST:PORT[,HOST:PORT]", list: true, usage: "ZooKeeper servers (required)",
		set: func(s *settings, v string) error { return setHosts(&s.zk, v) }},
	{name: "root", arg: "PATH", usage: "ZooKeeper root of the layout (default /switchyard)",
		set: func(s *settings, v string) error {
			if len(v) < 2 || v[0] != '/' || v[len(v)-1] == '/' {
				return fmt.Errorf("invalid root %q (want /name)", v)
			}
			s.root = v
			return nil
		}},
	{name: "listen", arg: "ADDR", usage: "HTTP listener for the route stream, /status, /metrics (default 127.0.0.1:9280)",
		set: func(s *settings, v string) error { return setAddr(&s.rsListen, v, false) }},
	{name: "name", arg: "NAME", usage: "name registered in ZooKeeper and shown in status (default: host name and listen address)",
		set: func(s *settings, v string) error { s.rsName = v; return nil }},
	{name: "max-wait", arg: "DURATION", usage: "longest a route poll is held (default 30s)",
		set: func(s *settings, v string) error { return setDuration(&s.maxWait, v) }},
	{name: "session-timeout", arg: "DURATION", usage: "ZooKeeper session timeout (default 10s)",
		set: func(s *settings, v string) error { return setDuration(&s.sessionTimeout, v) }},
	{name: "log-level", arg: "LEVEL", usage: "operational log level: debug, info, warn or error (default info)",
		set: func(s *settings, v string) (err error) { s.logLevel, err = parseLogLevel(v); return err }},
}

func routeServerUsage(w io.Writer) {
	fmt.Fprint(w, `usage: switchyard route-server --zk HOST:PORT[,..] [flags]

Watches the routing table in ZooKeeper and streams it to proxies
(GET /v1/routes), with /status, /metrics and /_health on the same listener.
When ZooKeeper is lost it keeps serving its last table, marked stale.
SIGTERM or SIGINT stops it; SIGHUP and SIGUSR1 are logged and ignored
(it has no file to reload or reopen).

flags:
  --config FILE
        YAML config file
`)
	writeUsage(w, routeServerOptions)
}

func parseRouteServerArgs(args []string) (*settings, error) {
	f := newFlagSet("route-server", routeServerOptions)
	var configPath string
	f.fs.StringVar(&configPath, "config", "", "YAML config file")
	if err := f.parse(args); err != nil {
		return nil, err
	}
	s := &settings{logLevel: slog.LevelInfo, root: zkstore.DefaultRoot, rsListen: "127.0.0.1:9280"}
	configGiven := false
	f.fs.Visit(func(fl *flag.Flag) { configGiven = configGiven || fl.Name == "config" })
	if configGiven {
		if configPath == "" {
			return nil, usagef("--config: missing value")
		}
		if err := applyConfigFile(configPath, routeServerOptions, s); err != nil {
			return nil, err
		}
	}
	f.apply(s)
	if len(s.zk) == 0 {
		return nil, usagef("--zk is required")
	}
	return s, nil
}

func runRouteServer(args []string, _, stderr io.Writer) error {
	s, err := parseRouteServerArgs(args)
	if err != nil {
		return err
	}
	logger := newLogger(stderr, s.logLevel)
	ctx, stop := signalContext()
	defer stop()
	stopIgnore := ignoreSignals(logger, "a route server has no file to reload or reopen", syscall.SIGHUP, syscall.SIGUSR1)
	defer stopIgnore()
	return serveRouteServer(ctx, s, logger)
}

// serveRouteServer runs a route server fed by a ZooKeeper watcher until ctx
// ends.
func serveRouteServer(ctx context.Context, s *settings, logger *slog.Logger) error {
	name := s.rsName
	if name == "" {
		host, _ := os.Hostname()
		name = host + "/" + s.rsListen
	}
	rs, err := routeserver.New(routeserver.Config{Name: name, Listen: s.rsListen, MaxWait: s.maxWait, Logger: logger})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rsDone := make(chan error, 1)
	go func() { rsDone <- rs.Run(ctx) }()
	select {
	case <-rs.Ready():
	case err := <-rsDone:
		return err
	}
	w := &zkstore.Watcher{
		Servers: s.zk, Root: s.root, SessionTimeout: s.sessionTimeout, Logger: logger,
		Register: &zkstore.Registration{Name: sanitizeName(name), URL: "http://" + rs.Addr().String(), StartedAt: time.Now()},
	}
	wDone := make(chan error, 1)
	go func() {
		wDone <- w.Run(ctx, func(st zkstore.State) {
			rs.Update(routeserver.Input{
				Version: uint64(max(st.Version, 0)), Domain: st.Domain, Zones: st.Zones,
				Deployments: st.Deployments, Invalid: st.Invalid, Stale: st.Stale, Synced: st.Synced,
			})
		})
	}()
	var first error
	select {
	case first = <-rsDone:
		cancel()
		<-wDone
	case first = <-wDone:
		cancel()
		<-rsDone
	}
	if ctx.Err() != nil && (first == nil || errors.Is(first, context.Canceled)) {
		return nil
	}
	return first
}

// sanitizeName makes a name usable as one znode name.
func sanitizeName(name string) string {
	b := []byte(name)
	for i, c := range b {
		if c == '/' {
			b[i] = '_'
		}
	}
	return string(b)
}
