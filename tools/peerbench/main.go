// Command peerbench measures Switchyard against its peers, nginx, HAProxy
// and Caddy, as reverse proxies on one machine, and writes the results to
// a file of their own under bench/results.
//
// It starts an nginx backend, then runs every scenario (a small body, 4 KiB,
// 1 MiB, 1000 deployments with random keys; over TLS: keep-alive, a full
// handshake per request, a resumed one per request; HTTP/2; HTTP/3)
// against every target that serves it (direct to the backend, nginx as a
// proxy, HAProxy, Caddy, Switchyard, and Switchyard with idle naps; the
// TLS scenarios run HAProxy, Caddy and Switchyard, HTTP/3 only Caddy and
// Switchyard) in interleaved rounds of short runs, so that drift of the
// machine hits all targets alike: a scenario's targets are started
// together, pinned to one CPU, and take turns under load while the others
// sit idle; the backend, the load generators and peerbench itself share
// the other CPU. Each run measures closed-loop throughput with wrk,
// the proxy's CPU time per request from /proc, and the p99 latency of an
// open-loop load at a fixed rate (the project's loadtest package). The
// report gives min/median/max over the rounds and the Switchyard/HAProxy
// ratios.
//
// Usage (from the repository root; "make bench" and "make bench-quick"
// install nginx-light, haproxy, caddy, wrk and h2load first when they are
// missing):
//
//	go run ./tools/peerbench [-rounds 10] [-duration 3s] [-rate 5000]
//	    [-scenarios small,4k,1m,1000keys,tls,handshake,resume,h2,h3]
//	    [-targets direct,nginx,haproxy,caddy,switchyard,switchyard-nap] (or haproxy-splice)
//	    [-nap 30us]
//	    [-switchyard-flags "..."] [-variant NAME=FLAGS ...]
//	    [-out bench/results | -out -] [-quick]
//
// The report is printed, and written to the -out directory as
// <UTC start time>.md (e.g. 2026-12-05T072012Z.md; an earlier run's file is
// never overwritten) and as latest.md; -out - only prints it. No document
// is edited: docs/benchmarks.md quotes the results it discusses. Every
// process peerbench starts runs in its own process group and is stopped at
// the end, on failure and on SIGINT.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"
)

// options are the command line, resolved.
type options struct {
	rounds      int
	duration    time.Duration // closed-loop (wrk) run
	warmup      time.Duration // unmeasured load on each target after it starts
	latDuration time.Duration // open-loop (p99) run
	rate        float64       // open-loop rate; see scenario.rateDiv
	connections int           // wrk connections; see scenario.connections
	scenarios   []*scenario
	targets     []string
	out         string // results directory; "-" means stdout only
	configDir   string
	proxyCPU    int
	loadCPU     int
	quick       bool
	keep        bool
	syFlags     []string      // extra flags for switchyard proxy
	variants    []variant     // more Switchyard targets (-variant)
	nap         time.Duration // --idle-nap of the switchyard-nap target
	args        []string      // as given, for the report
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseArgs(args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "peerbench: %v\n", err)
		return 2
	}
	if err := pinSelf(o.loadCPU, args); err != nil {
		fmt.Fprintf(stderr, "peerbench: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := runBench(ctx, o, stdout, stderr); err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "peerbench: interrupted; everything it started is stopped")
			return 1
		}
		fmt.Fprintf(stderr, "peerbench: %v\n", err)
		return 1
	}
	return 0
}

func parseArgs(args []string) (*options, error) {
	fs := flag.NewFlagSet("peerbench", flag.ContinueOnError)
	o := &options{args: args}
	var scen, targ string
	fs.IntVar(&o.rounds, "rounds", 10, "interleaved rounds; each runs every target once per scenario")
	fs.DurationVar(&o.duration, "duration", 3*time.Second, "closed-loop (wrk) run per target and round")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured load on each target after it starts")
	fs.DurationVar(&o.latDuration, "latency-duration", 2*time.Second, "open-loop run for the p99 per target and round")
	fs.Float64Var(&o.rate, "rate", 5000, "open-loop rate in req/s for the p99 (the 1m scenario uses rate/25)")
	fs.IntVar(&o.connections, "connections", 50, "wrk connections (the 1m scenario uses 8)")
	fs.StringVar(&scen, "scenarios", strings.Join(scenarioNames(), ","), "scenarios to run, comma-separated")
	fs.StringVar(&targ, "targets", strings.Join(defaultTargets, ","), "targets to run, comma-separated (also: haproxy-splice)")
	fs.StringVar(&o.out, "out", "bench/results", "directory that gets the report as <UTC start time>.md and latest.md; - prints it only")
	fs.StringVar(&o.configDir, "configs", "configs/bench", "directory of the peer configuration templates")
	fs.IntVar(&o.proxyCPU, "proxy-cpu", 0, "CPU of the proxy under test")
	fs.IntVar(&o.loadCPU, "load-cpu", 1, "CPU of the backend, the load generators and peerbench")
	fs.BoolVar(&o.quick, "quick", false, "smoke run: 1 round, 2s wrk runs, 1s p99 runs (explicit flags win)")
	var syFlags string
	fs.StringVar(&syFlags, "switchyard-flags", "", `extra flags for "switchyard proxy", space-separated (e.g. "--idle-nap 30us")`)
	fs.DurationVar(&o.nap, "nap", 30*time.Microsecond, `--idle-nap of the "switchyard-nap" target`)
	fs.Func("variant", `another Switchyard target, NAME=FLAGS: "switchyard-NAME" runs with these extra flags, space-separated (e.g. "w64=--response-write-size 64KiB"); FLAGS starting with @PATH run the binary at PATH instead (e.g. "base=@/tmp/switchyard-base", to compare two builds in one run); may be repeated`, func(v string) error {
		return o.addVariant(v)
	})
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (configs, logs) and print its path")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: go run ./tools/peerbench [flags]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	o.syFlags = strings.Fields(syFlags)
	if o.quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		quick := map[string]func(){
			"rounds":           func() { o.rounds = 1 },
			"duration":         func() { o.duration = 2 * time.Second },
			"warmup":           func() { o.warmup = 300 * time.Millisecond },
			"latency-duration": func() { o.latDuration = time.Second },
		}
		for name, apply := range quick {
			if !set[name] {
				apply()
			}
		}
	}
	switch {
	case o.rounds < 1:
		return nil, fmt.Errorf("-rounds %d: want at least 1", o.rounds)
	case o.duration < time.Second:
		return nil, fmt.Errorf("-duration %v: want at least 1s", o.duration)
	case o.latDuration < 100*time.Millisecond:
		return nil, fmt.Errorf("-latency-duration %v: want at least 100ms", o.latDuration)
	case o.warmup < 0:
		return nil, fmt.Errorf("-warmup %v: negative", o.warmup)
	case o.rate < 25:
		return nil, fmt.Errorf("-rate %v: want at least 25", o.rate)
	case o.connections < 1:
		return nil, fmt.Errorf("-connections %d: want at least 1", o.connections)
	case o.nap <= 0 || o.nap > time.Millisecond:
		return nil, fmt.Errorf("-nap %v: want above 0 and at most 1ms", o.nap)
	case o.proxyCPU == o.loadCPU || o.proxyCPU < 0 || o.loadCPU < 0:
		return nil, fmt.Errorf("-proxy-cpu %d, -load-cpu %d: want two different CPUs", o.proxyCPU, o.loadCPU)
	}
	var err error
	if o.scenarios, err = pickScenarios(scen); err != nil {
		return nil, err
	}
	if o.targets, err = pickTargets(targ, o.variantTargets()); err != nil {
		return nil, err
	}
	for _, t := range o.variantTargets() {
		if !slices.Contains(o.targets, t) {
			o.targets = append(o.targets, t)
		}
	}
	return o, nil
}

// A variant is a Switchyard target with flags of its own (-variant), to
// compare settings or builds' options in one run: "switchyard-NAME".
type variant struct {
	target string // "switchyard-NAME"
	binary string // another build of cmd/switchyard; "" for the one built here
	flags  []string
}

var variantName = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

func (o *options) addVariant(v string) error {
	name, flags, ok := strings.Cut(v, "=")
	switch {
	case !ok || strings.TrimSpace(flags) == "":
		return fmt.Errorf("invalid variant %q (want NAME=FLAGS, e.g. w64=--response-write-size 64KiB)", v)
	case !variantName.MatchString(name):
		return fmt.Errorf("invalid variant name %q (want lower-case letters, digits and inner dashes)", name)
	case slices.Contains(o.switchyardTargets(), "switchyard-"+name):
		return fmt.Errorf("variant name %q is taken", name)
	}
	vr := variant{target: "switchyard-" + name, flags: strings.Fields(flags)}
	if bin, ok := strings.CutPrefix(vr.flags[0], "@"); ok {
		if bin == "" {
			return fmt.Errorf("invalid variant %q: @ without a binary path", v)
		}
		vr.binary, vr.flags = bin, vr.flags[1:]
	}
	o.variants = append(o.variants, vr)
	return nil
}

// variantTargets are the -variant targets, in flag order.
func (o *options) variantTargets() []string {
	var out []string
	for _, v := range o.variants {
		out = append(out, v.target)
	}
	return out
}

// switchyardTargets are the targets that run Switchyard, each compared
// with the peers in the report.
func (o *options) switchyardTargets() []string {
	return append([]string{"switchyard", "switchyard-nap"}, o.variantTargets()...)
}

// variantBinary is the binary of a -variant target with its own build;
// "" for the others.
func (o *options) variantBinary(target string) string {
	for _, v := range o.variants {
		if v.target == target {
			return v.binary
		}
	}
	return ""
}

// variantFlags are the extra flags of a -variant target; nil for others.
func (o *options) variantFlags(target string) []string {
	for _, v := range o.variants {
		if v.target == target {
			return v.flags
		}
	}
	return nil
}

// splitList splits a comma-separated flag value, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func pickTargets(s string, variants []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	known := append(slices.Clone(targetNames), variants...)
	for _, name := range splitList(s) {
		if !slices.Contains(known, name) {
			return nil, fmt.Errorf("-targets: unknown target %q (known: %s)", name, strings.Join(known, ", "))
		}
		if !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("-targets: empty")
	}
	return out, nil
}

// pinSelf makes sure this process runs on cpu only, re-executing itself
// under taskset when it does not yet: threads that already exist would not
// follow a later sched_setaffinity. Children inherit the affinity.
func pinSelf(cpu int, args []string) error {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return fmt.Errorf("reading CPU affinity: %w", err)
	}
	if cpusAllowed(string(status)) == fmt.Sprint(cpu) {
		return nil
	}
	taskset, err := lookTool("taskset")
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	argv := append([]string{"taskset", "-c", fmt.Sprint(cpu), exe}, args...)
	return syscall.Exec(taskset, argv, os.Environ())
}

// cpusAllowed returns the Cpus_allowed_list value of a /proc/PID/status
// text, "" when absent.
func cpusAllowed(status string) string {
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
