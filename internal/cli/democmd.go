package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/switchyard/switchyard/demo"
	"github.com/switchyard/switchyard/internal/cmdline"
)

// DemoOptions configure the demo role ("switchyard demo"): demo instances
// and a proxy over them. Listen, AdminListen and LogLevel are flags
// (demoFlags).
type DemoOptions struct {
	// Listen and AdminListen are the proxy's listeners. "" means the demo's
	// defaults (demo.DefaultListen, demo.DefaultAdminListen).
	Listen, AdminListen string
	// LogLevel is the level of the operational log (--log-level); the
	// command makes Logger from it.
	LogLevel slog.Level
	// Logger receives the proxy's operational log. Nil means
	// slog.Default().
	Logger *slog.Logger
	// Stdout receives the banner. Nil discards it.
	Stdout io.Writer
}

func demoUsage(w io.Writer) {
	fmt.Fprint(w, `usage: switchyard demo [--listen ADDR] [--admin-listen ADDR] [--log-level LEVEL]

Starts demo instances of two deployments (prod-search, kind es; prod-dash,
kind kb) in zone-a and zone-b, writes a routes file for them, and runs the
proxy over it exactly as "switchyard proxy" would. It prints curl commands
that reach every deployment. Ctrl-C stops everything.

flags:
`)
	writeUsage(w, demoFlags())
}

// demoFlags are the flags of the demo role: the proxy options that make
// sense for it.
func demoFlags() []*option[ProxyOptions] {
	var out []*option[ProxyOptions]
	for _, o := range proxyFlags {
		switch o.name {
		case "listen", "admin-listen", "log-level":
			out = append(out, o)
		}
	}
	return out
}

func parseDemoArgs(args []string) (*DemoOptions, error) {
	p := &ProxyOptions{LogLevel: slog.LevelInfo}
	if err := parseArgs("demo", args, demoFlags(), p, false); err != nil {
		return nil, err
	}
	return &DemoOptions{Listen: p.Config.Listen, AdminListen: p.Config.AdminListen, LogLevel: p.LogLevel}, nil
}

func runDemo(args []string, stdout, stderr io.Writer) error {
	o, err := parseDemoArgs(args)
	if err != nil {
		return err
	}
	o.Logger, o.Stdout = newLogger(stderr, o.LogLevel), stdout
	ctx, stop := cmdline.SignalContext()
	defer stop()
	return o.Run(ctx)
}

// Run starts the demo instances and runs a proxy over them, as
// ProxyOptions.Run does, until ctx is done; then the proxy drains and the
// instances stop. demo.Run owns the instances: they start before the proxy
// and stop after it has drained.
func (o *DemoOptions) Run(ctx context.Context) error {
	return demo.Run(ctx, demo.Options{
		Stdout:      o.Stdout,
		Listen:      o.Listen,
		AdminListen: o.AdminListen,
		Proxy: func(ctx context.Context, p demo.Proxy) error {
			po := &ProxyOptions{RoutesFile: p.RoutesFile, LogLevel: o.LogLevel, Logger: o.Logger, Ready: p.Ready}
			po.Config.Listen = p.Listen
			po.Config.AdminListen = p.AdminListen
			po.Config.DrainDelay = p.DrainDelay
			po.Config.ShutdownTimeout = p.ShutdownTimeout
			return po.Run(ctx)
		},
	})
}
