package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/switchyard/switchyard/demo"
)

func demoUsage(w io.Writer) {
	fmt.Fprint(w, `usage: switchyard demo [--listen ADDR] [--admin-listen ADDR] [--log-level LEVEL]

Starts demo instances of two deployments (prod-search, kind es; prod-dash,
kind kb) in zone-a and zone-b, writes a routes file for them, and runs the
proxy over it exactly as "switchyard proxy" would. It prints curl commands
that reach every deployment. Ctrl-C stops everything.

flags:
`)
	writeUsage(w, demoOptions())
}

// demoOptions are the flags of the demo subcommand: the proxy options that
// make sense for it.
func demoOptions() []*option {
	var out []*option
	for _, o := range proxyOptions {
		switch o.name {
		case "listen", "admin-listen", "log-level":
			out = append(out, o)
		}
	}
	return out
}

func runDemo(args []string, stdout, stderr io.Writer) error {
	f := newFlagSet("demo", demoOptions())
	if err := f.parse(args); err != nil {
		return err
	}
	s := &settings{logLevel: slog.LevelInfo}
	f.apply(s)
	logger := newLogger(stderr, s.logLevel)
	ctx, stop := signalContext()
	defer stop()
	return demo.Run(ctx, demo.Options{
		Stdout:      stdout,
		Listen:      s.cfg.Listen,
		AdminListen: s.cfg.AdminListen,
		Proxy: func(ctx context.Context, p demo.Proxy) error {
			ps := &settings{routesFile: p.RoutesFile, logLevel: s.logLevel}
			ps.cfg.Listen = p.Listen
			ps.cfg.AdminListen = p.AdminListen
			ps.cfg.DrainDelay = p.DrainDelay
			ps.cfg.ShutdownTimeout = p.ShutdownTimeout
			return serveProxy(ctx, ps, logger, p.Ready)
		},
	})
}
