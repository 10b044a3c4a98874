package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"strings"

	"github.com/switchyard/switchyard/internal/cmdline"
)

// Version is reported by "switchyard version". Release builds set it with
// -ldflags "-X github.com/switchyard/switchyard/internal/cli.Version=v1.2.3".
var Version = ""

// command is one subcommand. run returns a cmdline.UsageError for bad
// usage or input, flag.ErrHelp for -h or --help (Main prints the help), and
// any other error for a runtime failure.
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
		{name: "allocator", summary: "run the instances assigned to this host, each in its own cgroup", run: runAllocator, usage: allocatorUsage},
		{name: "constructor", summary: "carry plans out: place instances and swap generations with no failed request", run: runConstructor, usage: constructorUsage},
		{name: "instance", summary: "the built-in instance program that allocators run", run: runInstance, usage: instanceUsage},
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
		return cmdline.ExitCode(stderr, "switchyard", cmdline.Usagef(`missing subcommand (run "switchyard help")`))
	}
	name := args[0]
	if name == "-h" || name == "-help" || name == "--help" {
		name = "help"
	}
	cmd := lookup(name)
	if cmd == nil {
		return cmdline.ExitCode(stderr, "switchyard", cmdline.Usagef(`unknown subcommand %q (run "switchyard help")`, name))
	}
	err := cmd.run(args[1:], stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		cmd.usage(stdout)
	}
	return cmdline.ExitCode(stderr, "switchyard "+cmd.name, err)
}

// instanceExec is the allocator's shim (allocator.Shim); not listed in
// help, being for the allocator only.
var instanceExec = &command{name: "instance-exec", run: runInstanceExec,
	usage: func(w io.Writer) {
		fmt.Fprintln(w, "usage: switchyard instance-exec COMMAND [ARG...] (run by the allocator)")
	}}

func lookup(name string) *command {
	if name == instanceExec.name {
		return instanceExec
	}
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

func runHelp(args []string, stdout, _ io.Writer) error {
	switch {
	case len(args) > 1:
		return cmdline.Usagef("unexpected argument %q", args[1])
	case len(args) == 1:
		c := lookup(args[0])
		if c == nil {
			return cmdline.Usagef("unknown subcommand %q", args[0])
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
		return cmdline.Usagef("unexpected argument %q", args[0])
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

// orDefault is logger, or slog.Default() if it is nil.
func orDefault(logger *slog.Logger) *slog.Logger {
	if logger == nil {
		return slog.Default()
	}
	return logger
}
