// Package cli is the switchyard command line: subcommands, flags, config
// files and exit codes. cmd/switchyard calls Main and nothing else.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
)

// Exit codes.
const (
	exitOK      = 0
	exitRuntime = 1 // runtime failure, e.g. a listener cannot bind
	exitUsage   = 2 // bad usage or bad input
)

// Version is reported by "switchyard version". Release builds set it with
// -ldflags "-X github.com/switchyard/switchyard/internal/cli.Version=v1.2.3".
var Version = ""

// usageError is bad usage or bad input: exit 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return &usageError{fmt.Errorf(format, a...)} }

// command is one subcommand. run returns a usageError for bad usage or
// input, flag.ErrHelp after printing help, and any other error for a runtime
// failure.
type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) error
	usage   func(w io.Writer)
}

var commands []*command

func init() {
	commands = []*command{
		{name: "proxy", summary: "run the proxy over a routes file or route servers", run: runProxy, usage: proxyUsage},
		{name: "route-server", summary: "stream the routing table in ZooKeeper to proxies", run: runRouteServer, usage: routeServerUsage},
		{name: "demo", summary: "run demo instances in two zones behind a proxy", run: runDemo, usage: demoUsage},
		{name: "version", summary: "print the version", run: runVersion,
			usage: func(w io.Writer) { fmt.Fprintln(w, "usage: switchyard version") }},
		{name: "help", summary: "print help for a subcommand", run: runHelp,
			usage: func(w io.Writer) { fmt.Fprintln(w, "usage: switchyard help [SUBCOMMAND]") }},
	}
}

// Main runs the switchyard command line with args (without the program
// name) and returns the process exit code: 0 success, 1 runtime failure, 2
// bad usage or bad input. Errors are one line on stderr.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, `switchyard: missing subcommand (run "switchyard help")`)
		return exitUsage
	}
	name := args[0]
	if name == "-h" || name == "-help" || name == "--help" {
		name = "help"
	}
	cmd := lookup(name)
	if cmd == nil {
		fmt.Fprintf(stderr, "switchyard: unknown subcommand %q (run \"switchyard help\")\n", name)
		return exitUsage
	}
	err := cmd.run(args[1:], stdout, stderr)
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		cmd.usage(stdout)
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "switchyard %s: %s\n", cmd.name, oneLine(err))
		return exitUsage
	}
	fmt.Fprintf(stderr, "switchyard %s: %s\n", cmd.name, oneLine(err))
	return exitRuntime
}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

func runHelp(args []string, stdout, _ io.Writer) error {
	switch {
	case len(args) > 1:
		return usagef("unexpected argument %q", args[1])
	case len(args) == 1:
		c := lookup(args[0])
		if c == nil {
			return usagef("unknown subcommand %q", args[0])
		}
		c.usage(stdout)
		return nil
	}
	fmt.Fprintf(stdout, "Switchyard is an L7 proxy and routing tier for hosted deployments.\n\n")
	fmt.Fprintf(stdout, "usage: switchyard SUBCOMMAND [flags]\n\nsubcommands:\n")
	for _, c := range commands {
		fmt.Fprintf(stdout, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(stdout, "\nRun \"switchyard help SUBCOMMAND\" or \"switchyard SUBCOMMAND --help\" for its flags.\n")
	fmt.Fprintf(stdout, "Exit codes: 0 success, 1 runtime failure, 2 bad usage or bad input.\n")
	return nil
}

func runVersion(args []string, stdout, _ io.Writer) error {
	if len(args) > 0 {
		if args[0] == "-h" || args[0] == "--help" {
			return flag.ErrHelp
		}
		return usagef("unexpected argument %q", args[0])
	}
	fmt.Fprintln(stdout, "switchyard", versionString())
	return nil
}

func versionString() string {
	v, goVersion := Version, ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
		if v == "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " " + s.Value[:12]
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	return strings.TrimSpace(v + " " + goVersion)
}

// newLogger returns the operational logger: JSON lines on w.
func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// onSignals calls handle for each of sigs received, one at a time, until
// the returned function is called, which waits for a call in progress.
// The signals' default actions (for SIGHUP and SIGUSR1: ending the
// process) no longer apply meanwhile.
func onSignals(handle func(os.Signal), sigs ...os.Signal) (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sigs...)
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case sig := <-ch:
				handle(sig)
			case <-quit:
				return
			}
		}
	}()
	return func() {
		signal.Stop(ch)
		close(quit)
		<-done
	}
}

// ignoreSignals logs each of sigs received instead of letting it end the
// process: a reload (SIGHUP) or a log rotation (SIGUSR1) sent by a service
// manager or logrotate to a process with nothing to reload or reopen must
// not stop it.
func ignoreSignals(logger *slog.Logger, why string, sigs ...os.Signal) (stop func()) {
	return onSignals(func(sig os.Signal) {
		logger.Info("signal ignored: "+why, "signal", signalName(sig))
	}, sigs...)
}

func signalName(sig os.Signal) string {
	switch sig {
	case syscall.SIGHUP:
		return "SIGHUP"
	case syscall.SIGUSR1:
		return "SIGUSR1"
	}
	return sig.String()
}

// signalContext returns a context cancelled by SIGINT or SIGTERM. After the
// first signal the handler is removed, so a second one kills the process.
func signalContext() (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	return ctx, stop
}
