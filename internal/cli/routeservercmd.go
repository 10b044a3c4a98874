package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/switchyard/switchyard/internal/cmdline"
	"github.com/switchyard/switchyard/routes/wire"
	"github.com/switchyard/switchyard/routes/zkstore"
	"github.com/switchyard/switchyard/routeserver"
)

// RouteServerOptions configure the route server role ("switchyard
// route-server"). Every field but Logger is a flag and a config file key
// (routeServerFlags).
type RouteServerOptions struct {
	// ZK are the ZooKeeper servers, host:port. Required.
	ZK []string
	// Root is the ZooKeeper root of the layout. "" means
	// zkstore.DefaultRoot.
	Root string
	// Listen is the HTTP listener for the route stream, /status and
	// /metrics. "" means 127.0.0.1:9280.
	Listen string
	// Name is the name registered in ZooKeeper and shown in status. ""
	// means the host name and Listen.
	Name string
	// MaxWait is the longest a route poll is held. 0 means the route
	// server's default.
	MaxWait time.Duration
	// SessionTimeout is the ZooKeeper session timeout. 0 means the
	// watcher's default.
	SessionTimeout time.Duration
	// TableHash is how tables are hashed; the zero value is
	// wire.HashSHA256. The command's default is wire.HashSum.
	TableHash wire.HashScheme

	// LogLevel is the level of the operational log (--log-level); the
	// command makes Logger from it.
	LogLevel slog.Level
	// Logger receives the operational log. Nil means slog.Default().
	Logger *slog.Logger
}

// routeServerFlags are the options of the route server role.
var routeServerFlags = []*option[RouteServerOptions]{
	{name: "zk", arg: "HOST:PORT[,HOST:PORT]", list: true, usage: "ZooKeeper servers (required)",
		set: func(o *RouteServerOptions, v string) error { return setHosts(&o.ZK, v) }},
	{name: "root", arg: "PATH", usage: "ZooKeeper root of the layout (default /switchyard)",
		set: func(o *RouteServerOptions, v string) error { return setRoot(&o.Root, v) }},
	{name: "listen", arg: "ADDR", usage: "HTTP listener for the route stream, /status, /metrics (default 127.0.0.1:9280)",
		set: func(o *RouteServerOptions, v string) error { return setAddr(&o.Listen, v, false) }},
	{name: "name", arg: "NAME", usage: "name registered in ZooKeeper and shown in status (default: host name and listen address)",
		set: func(o *RouteServerOptions, v string) error { o.Name = v; return nil }},
	{name: "max-wait", arg: "DURATION", usage: "longest a route poll is held (default 30s)",
		set: func(o *RouteServerOptions, v string) error { return setDuration(&o.MaxWait, v) }},
	{name: "session-timeout", arg: "DURATION", usage: "ZooKeeper session timeout (default 10s)",
		set: func(o *RouteServerOptions, v string) error { return setDuration(&o.SessionTimeout, v) }},
	{name: "table-hash", arg: "SCHEME", usage: "how tables are hashed: sum (a change costs what it touches) or sha256 (over the whole table, for proxies that check no other) (default sum)",
		set: func(o *RouteServerOptions, v string) (err error) {
			o.TableHash, err = wire.ParseHashScheme(v)
			return err
		}},
	{name: "log-level", arg: "LEVEL", usage: "operational log level: debug, info, warn or error (default info)",
		set: func(o *RouteServerOptions, v string) (err error) { o.LogLevel, err = parseLogLevel(v); return err }},
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
	writeUsage(w, routeServerFlags)
}

func parseRouteServerArgs(args []string) (*RouteServerOptions, error) {
	o := &RouteServerOptions{LogLevel: slog.LevelInfo, TableHash: wire.HashSum}
	if err := parseArgs("route-server", args, routeServerFlags, o, true); err != nil {
		return nil, err
	}
	if len(o.ZK) == 0 {
		return nil, cmdline.Usagef("--zk is required")
	}
	return o, nil
}

func runRouteServer(args []string, _, stderr io.Writer) error {
	o, err := parseRouteServerArgs(args)
	if err != nil {
		return err
	}
	o.Logger = newLogger(stderr, o.LogLevel)
	ctx, stop := cmdline.SignalContext()
	defer stop()
	return o.Run(ctx)
}

// Run runs a route server fed by a ZooKeeper watcher until ctx ends, then
// returns nil. The server and the watcher run at once; the first to fail
// ends the other, and Run returns its error. SIGHUP and SIGUSR1 are logged
// and ignored while it runs.
func (o *RouteServerOptions) Run(ctx context.Context) error {
	logger := orDefault(o.Logger)
	listen := cmp.Or(o.Listen, "127.0.0.1:9280")
	name := o.Name
	if name == "" {
		host, _ := os.Hostname()
		name = host + "/" + listen
	}
	stopIgnore := ignoreSignals(logger, "a route server has no file to reload or reopen", syscall.SIGHUP, syscall.SIGUSR1)
	defer stopIgnore()
	rs, err := routeserver.New(routeserver.Config{Name: name, Listen: listen, MaxWait: o.MaxWait, TableHash: o.TableHash, Logger: logger})
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return rs.Run(gctx) })
	g.Go(func() error { return o.watch(gctx, rs, name, logger) })
	err = g.Wait()
	if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)) {
		return nil
	}
	return err
}

// watch feeds rs the tables in ZooKeeper until ctx ends. It starts once rs
// listens, since it registers rs's address under name.
func (o *RouteServerOptions) watch(ctx context.Context, rs *routeserver.Server, name string, logger *slog.Logger) error {
	select {
	case <-rs.Ready():
	case <-ctx.Done():
		return nil
	}
	w := &zkstore.Watcher{
		Servers: o.ZK, Root: cmp.Or(o.Root, zkstore.DefaultRoot), SessionTimeout: o.SessionTimeout, Logger: logger,
		Register: &zkstore.Registration{Name: sanitizeName(name), URL: "http://" + rs.Addr().String(), StartedAt: time.Now()},
		// The server takes each table as a change of the one before:
		// no whole-table map is made per change.
		DepsOnly: true,
	}
	return w.Run(ctx, func(st zkstore.State) {
		rs.Update(routeserver.Input{
			Version: uint64(max(st.Version, 0)), Domain: st.Domain, Zones: st.Zones,
			Set: st.Deps, Base: st.Base, Changed: st.Changed, Invalid: st.Invalid, Stale: st.Stale, Synced: st.Synced,
		})
	})
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
