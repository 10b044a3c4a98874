// Package yardctl is the yardctl command line, the operators' tool over the
// ZooKeeper store: its commands, flags, output and exit codes.
// cmd/yardctl calls Main and nothing else.
package yardctl

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/switchyard/switchyard/internal/cmdline"
	"github.com/switchyard/switchyard/routes/zkstore"
)

// usageError is bad usage or bad input (exit 2), as the commands write it:
// &usageError{err}. It is a cmdline.UsageError to errors.As.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// As makes a usageError a *cmdline.UsageError.
func (e *usageError) As(target any) bool {
	t, ok := target.(**cmdline.UsageError)
	if ok {
		*t = &cmdline.UsageError{Err: e.err}
	}
	return ok
}

func usagef(format string, a ...any) error { return cmdline.Usagef(format, a...) }

// globals are the flags every command takes, before or after its name.
type globals struct {
	zk      string
	root    string
	output  string
	timeout time.Duration
}

func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.zk, "zk", g.zk, "ZooKeeper servers, HOST:PORT[,HOST:PORT...] (required)")
	fs.StringVar(&g.root, "root", g.root, "root znode of the routing table")
	fs.StringVar(&g.output, "o", g.output, "output format: table or json")
	fs.StringVar(&g.output, "output", g.output, "output format: table or json")
	fs.DurationVar(&g.timeout, "timeout", g.timeout, "how long to try to reach ZooKeeper")
}

// command is one yardctl command. run gets its parsed flag set: its own
// flags and its positional arguments.
type command struct {
	name, args, summary string
	flags               func(fs *flag.FlagSet) // defines the command's own flags
	// waits: the command takes --wait, and --timeout (when given) also
	// bounds the wait for proxies (default defaultWait).
	waits bool
	run   func(ctx context.Context, e *env, fs *flag.FlagSet) error
	// budget, when set, is extra time the command may take beyond the
	// usual limit, given its flags (a watch window).
	budget func(fs *flag.FlagSet) time.Duration
}

var commands []*command

func init() {
	commands = []*command{applyCommand, routesCommand, cutoverCommand, weightsCommand, rollbackCommand,
		maintenanceCommand, zoneCommand, statusCommand, allocatorsCommand, allocatorCommand,
		planCommand, plansCommand}
}

// env is what a running command has: its options, outputs and (once
// connect is called) the store.
type env struct {
	g              globals
	stdout, stderr io.Writer
	conn           *zk.Conn
	store          *zkstore.Store
	waitTimeout    time.Duration // --wait gives up after it
	timeoutGiven   bool          // --timeout was given, before or after the command
}

// connect reaches ZooKeeper within --timeout.
func (e *env) connect(ctx context.Context) (*zkstore.Store, error) {
	var servers []string
	for s := range strings.SplitSeq(e.g.zk, ",") {
		if s = strings.TrimSpace(s); s != "" {
			servers = append(servers, s)
		}
	}
	conn, err := zkstore.Dial(ctx, servers, 10*time.Second, e.g.timeout, nil)
	if err != nil {
		return nil, err
	}
	e.conn = conn
	e.store, err = zkstore.New(conn, e.g.root)
	return e.store, err
}

func (e *env) json() bool { return e.g.output == "json" }

func usage(w io.Writer) {
	fmt.Fprint(w, `yardctl is the operators' tool over Switchyard's ZooKeeper store.

usage: yardctl --zk HOST:PORT[,...] [--root /switchyard] [-o table|json] [--timeout 5s] COMMAND [ARGS]

commands:
`)
	width := 0
	for _, c := range commands {
		width = max(width, len(c.name+" "+c.args))
	}
	for _, c := range commands {
		fmt.Fprintf(w, "  %-*s  %s\n", width, c.name+" "+c.args, c.summary)
	}
	fmt.Fprint(w, `
The global flags may also follow the command. --timeout bounds reaching
ZooKeeper (and each route server's /status); a command gives up after 10
times it. cutover, weights, rollback and maintenance take --wait: wait
until every proxy that the route servers report has applied the write;
there --timeout, when given, also bounds that wait (default 60s).

Exit codes: 0 success, 1 runtime failure (e.g. ZooKeeper unreachable),
2 bad usage or bad input.
`)
}

// Main runs yardctl with args (without the program name) and returns the
// exit code: 0 success, 1 runtime failure (e.g. ZooKeeper unreachable, a
// write lost), 2 bad usage or bad input. Errors are one line on stderr.
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, args, stdout, stderr)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{g: globals{root: zkstore.DefaultRoot, output: "table", timeout: 5 * time.Second}, stdout: stdout, stderr: stderr}
	defer func() {
		if e.conn != nil {
			e.conn.Close()
		}
	}()
	return cmdline.ExitCode(stderr, "yardctl", dispatch(ctx, e, args))
}

func oneLine(err error) string { return cmdline.OneLine(err) }

// flagString returns the value of a command's flag.
func flagString(fs *flag.FlagSet, name string) string { return fs.Lookup(name).Value.String() }

func dispatch(ctx context.Context, e *env, args []string) error {
	top := cmdline.NewFlagSet("yardctl")
	e.g.register(top.FlagSet)
	if err := top.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(e.stdout)
		}
		return err
	}
	rest := top.Args()
	if len(rest) == 0 {
		return usagef(`missing command (run "yardctl help")`)
	}
	name := rest[0]
	if name == "help" {
		usage(e.stdout)
		return nil
	}
	var cmd *command
	for _, c := range commands {
		if c.name == name {
			cmd = c
		}
	}
	if cmd == nil {
		return usagef(`unknown command %q (run "yardctl help")`, name)
	}
	fs := cmdline.NewFlagSet(name)
	e.g.register(fs.FlagSet)
	if cmd.flags != nil {
		cmd.flags(fs.FlagSet)
	}
	if cmd.waits {
		fs.Bool("wait", false, "wait until every proxy has applied the write (at most --timeout, default 60s)")
	}
	if err := parseInterspersed(fs, rest[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(e.stdout, "usage: yardctl [global flags] %s %s\n\n%s\n", cmd.name, cmd.args, cmd.summary)
			fs.SetOutput(e.stdout)
			fs.PrintDefaults()
		}
		return err
	}
	e.timeoutGiven = top.Given("timeout") || fs.Given("timeout")
	switch {
	case e.g.zk == "":
		return usagef("--zk is required")
	case e.g.output != "table" && e.g.output != "json":
		return usagef("-o: %q is not table or json", e.g.output)
	case e.g.timeout <= 0:
		return usagef("--timeout must be positive")
	}
	if err := zkstore.CheckRoot(e.g.root); err != nil {
		return cmdline.Usage(fmt.Errorf("--root: %w", err))
	}
	// Every command ends within 10 times --timeout (plus the wait for
	// proxies), even when ZooKeeper stops answering midway.
	limit := 10 * e.g.timeout
	if cmd.waits {
		e.waitTimeout = defaultWait
		if top.Given("timeout") || fs.Given("timeout") {
			e.waitTimeout = e.g.timeout
		}
		limit += e.waitTimeout
	}
	if cmd.budget != nil {
		if d := cmd.budget(fs.FlagSet); d > 0 {
			limit += d + e.waitTimeout // the watch, then a rollback's wait
		}
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- cmd.run(ctx, e, fs.FlagSet) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%s: gave up after %v: %w", name, limit, ctx.Err())
	}
}

// defaultWait bounds --wait when --timeout is not given.
const defaultWait = 60 * time.Second

// parseInterspersed parses flags anywhere among the positional arguments.
func parseInterspersed(fs *cmdline.FlagSet, args []string) error {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	return fs.FlagSet.Parse(append([]string{"--"}, pos...))
}
