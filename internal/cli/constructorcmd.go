package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/switchyard/switchyard/controlplane/constructor"
	"github.com/switchyard/switchyard/internal/cmdline"
)

// ConstructorOptions configure the constructor role ("switchyard
// constructor"); Config's fields are flags and config file keys.
type ConstructorOptions struct {
	Config   constructor.Config
	LogLevel slog.Level
}

// constructorFlags are the options of the constructor role.
var constructorFlags = []*option[ConstructorOptions]{
	{name: "zk", arg: "HOST:PORT[,HOST:PORT]", list: true, usage: "ZooKeeper servers (required)",
		set: func(o *ConstructorOptions, v string) error { return setHosts(&o.Config.ZK, v) }},
	{name: "root", arg: "PATH", usage: "ZooKeeper root of the layout (default /switchyard)",
		set: func(o *ConstructorOptions, v string) error { return setRoot(&o.Config.Root, v) }},
	{name: "id", arg: "ID", usage: "this constructor's name in the leader election (default: host name and pid)",
		set: func(o *ConstructorOptions, v string) error { o.Config.ID = v; return nil }},
	{name: "start-timeout", arg: "DURATION", usage: "time a new generation has to be running before its change fails (default 5m)",
		set: func(o *ConstructorOptions, v string) error { return setDuration(&o.Config.StartTimeout, v) }},
	{name: "retire-grace", arg: "DURATION", usage: "time the old generation keeps serving its requests after a cutover (default 30s)",
		set: func(o *ConstructorOptions, v string) error { return setDuration(&o.Config.RetireGrace, v) }},
	{name: "converge-timeout", arg: "DURATION", usage: "longest wait for the proxies to apply a cutover (default 2m)",
		set: func(o *ConstructorOptions, v string) error { return setDuration(&o.Config.ConvergeTimeout, v) }},
	{name: "rollback-rate", arg: "PERCENT|off", usage: "share of failed attempts to a new generation, while the old one drains, that rolls a change back (default 5%)",
		set: func(o *ConstructorOptions, v string) error {
			if v == "off" {
				o.Config.RollbackRate = -1
				return nil
			}
			pct := strings.HasSuffix(v, "%")
			r, err := strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64)
			if pct {
				r /= 100
			}
			if err != nil || !(r > 0 && r < 1) {
				return fmt.Errorf("invalid rate %q (want between 0%% and 100%%, e.g. 5%%, or off)", v)
			}
			o.Config.RollbackRate = r
			return nil
		}},
	{name: "rollback-min-requests", arg: "N", usage: "attempts to a new generation needed before --rollback-rate applies (default 20)",
		set: func(o *ConstructorOptions, v string) error {
			var n int
			if err := setInt(&n, v); err != nil {
				return err
			}
			o.Config.RollbackMinRequests = uint64(n)
			return nil
		}},
	{name: "lost-grace", arg: "DURATION", usage: "time an allocator's live node must be missing before its instances are replaced elsewhere (default 1m)",
		set: func(o *ConstructorOptions, v string) error { return setDuration(&o.Config.LostGrace, v) }},
	{name: "interval", arg: "DURATION", usage: "how often plans are looked at again (default 500ms)",
		set: func(o *ConstructorOptions, v string) error { return setDuration(&o.Config.Interval, v) }},
	{name: "session-timeout", arg: "DURATION", usage: "ZooKeeper session timeout (default 10s)",
		set: func(o *ConstructorOptions, v string) error { return setDuration(&o.Config.SessionTimeout, v) }},
	{name: "log-level", arg: "LEVEL", usage: "operational log level: debug, info, warn or error (default info)",
		set: func(o *ConstructorOptions, v string) (err error) { o.LogLevel, err = parseLogLevel(v); return err }},
}

func constructorUsage(w io.Writer) {
	fmt.Fprint(w, `usage: switchyard constructor --zk HOST:PORT[,..] [flags]

Carries plans out (<root>/plans): places each revision's instances on the
allocators, waits until they run, and swaps them into the routing table
grow-and-shrink, with zero failed requests. Run two or more: one leads
(elected in ZooKeeper), the others stand by and resume a change in flight
when it goes. SIGTERM or SIGINT stops it.

flags:
  --config FILE
        YAML config file
`)
	writeUsage(w, constructorFlags)
}

func parseConstructorArgs(args []string) (*ConstructorOptions, error) {
	o := &ConstructorOptions{LogLevel: slog.LevelInfo}
	if err := parseArgs("constructor", args, constructorFlags, o, true); err != nil {
		return nil, err
	}
	if len(o.Config.ZK) == 0 {
		return nil, cmdline.Usagef("--zk is required")
	}
	if o.Config.ID == "" {
		host, _ := os.Hostname()
		o.Config.ID = host + "-" + strconv.Itoa(os.Getpid())
	}
	return o, nil
}

func runConstructor(args []string, _, stderr io.Writer) error {
	o, err := parseConstructorArgs(args)
	if err != nil {
		return err
	}
	o.Config.Logger = newLogger(stderr, o.LogLevel)
	ctx, stop := cmdline.SignalContext()
	defer stop()
	return o.Run(ctx)
}

// Run runs the constructor until ctx ends.
func (o *ConstructorOptions) Run(ctx context.Context) error {
	c, err := constructor.New(o.Config)
	if err != nil {
		return cmdline.Usagef("%v", err)
	}
	return c.Run(ctx)
}
