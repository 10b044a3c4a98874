package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/switchyard/switchyard/loadtest"
)

// scenario is one kind of traffic, run against every target.
type scenario struct {
	name        string
	title       string
	path        string // on the backend
	bodySize    int    // response body
	deployments int    // in the table; each request picks one at random
	connections int    // wrk and open-loop connections; 0 means -connections
	streams     int    // h2 and h3: requests in flight per connection
	rateDiv     float64
	kind        string // how the load reaches the targets: kindHTTP, ...

	// Set up by the run.
	dir       string   // generated files
	ids       []string // deployment IDs
	luaScript string   // wrk script picking random keys; "" with one ID
}

// Kinds of scenario: how the load reaches the targets.
const (
	kindHTTP      = ""          // HTTP/1.1 keep-alive, wrk
	kindTLS       = "tls"       // HTTP/1.1 keep-alive over TLS, wrk
	kindHandshake = "handshake" // a new TLS connection per request, full handshakes (runHandshakes)
	kindResume    = "resume"    // the same, resuming sessions with tickets
	kindH2        = "h2"        // HTTP/2 over TLS, h2load
	kindH3        = "h3"        // HTTP/3 over QUIC, the loadtest package
)

// tls reports whether the scenario's load goes to the targets' TLS
// listeners.
func (sc *scenario) tls() bool { return sc.kind != kindHTTP }

// serves reports whether target (a target kind: "switchyard" for every
// Switchyard target) takes part in sc: direct serves plain HTTP only,
// nginx is not set up for TLS, HAProxy cannot splice TLS, and HAProxy
// (Debian's build) has no QUIC.
func (sc *scenario) serves(target string) bool {
	switch sc.kind {
	case kindHTTP:
		return true
	case kindH3:
		return target == "caddy" || target == "switchyard"
	default:
		return target == "haproxy" || target == "caddy" || target == "switchyard"
	}
}

// targetsOf are the targets of o that take part in sc, in o's order.
func (sc *scenario) targetsOf(o *options) []string {
	var out []string
	for _, t := range o.targets {
		kind := t
		if slices.Contains(o.switchyardTargets(), t) {
			kind = "switchyard"
		}
		if sc.serves(kind) {
			out = append(out, t)
		}
	}
	return out
}

// allScenarios, in report order.
var allScenarios = []scenario{
	{name: "small", title: "small body (2 B)", path: "/small", bodySize: 2, deployments: 1},
	{name: "4k", title: "4 KiB body", path: "/4k", bodySize: 4 << 10, deployments: 1},
	// 1 MiB at -rate would be GB/s: it runs at rate/25 over 8 connections.
	{name: "1m", title: "1 MiB body", path: "/1m", bodySize: 1 << 20, deployments: 1, connections: 8, rateDiv: 25},
	{name: "1000keys", title: "1000 deployments, random key per request (small body)", path: "/small", bodySize: 2, deployments: 1000},
	// The open loop's rate (the p99) stays below what the slowest peer
	// serves in each edge scenario (Caddy's: about 3 000 req/s over TLS
	// and HTTP/2, 1 000 handshakes/s), or its p99 measures a queue.
	{name: "tls", title: "small body over TLS, keep-alive (wrk)", path: "/small", bodySize: 2, deployments: 1, kind: kindTLS, rateDiv: 2.5},
	// A handshake costs the client about what it costs the server: few
	// connections at once are enough to keep the load CPU busy.
	{name: "handshake", title: "a new TLS connection per request, full handshake (small body)", path: "/small", bodySize: 2, deployments: 1, connections: 16, kind: kindHandshake, rateDiv: 10},
	{name: "resume", title: "a new TLS connection per request, resumed session (small body)", path: "/small", bodySize: 2, deployments: 1, connections: 16, kind: kindResume, rateDiv: 10},
	{name: "h2", title: "small body over HTTP/2 (h2load)", path: "/small", bodySize: 2, deployments: 1, connections: 10, streams: 10, kind: kindH2, rateDiv: 5},
	{name: "h3", title: "small body over HTTP/3 (the loadtest package)", path: "/small", bodySize: 2, deployments: 1, connections: 10, streams: 10, kind: kindH3, rateDiv: 5},
}

func scenarioNames() []string {
	var out []string
	for _, s := range allScenarios {
		out = append(out, s.name)
	}
	return out
}

func pickScenarios(s string) ([]*scenario, error) {
	var out []*scenario
	seen := map[string]bool{}
	for _, name := range splitList(s) {
		i := -1
		for j := range allScenarios {
			if allScenarios[j].name == name {
				i = j
			}
		}
		if i < 0 {
			return nil, fmt.Errorf("-scenarios: unknown scenario %q (known: %s)", name, strings.Join(scenarioNames(), ", "))
		}
		if !seen[name] {
			seen[name] = true
			sc := allScenarios[i]
			out = append(out, &sc)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("-scenarios: empty")
	}
	return out, nil
}

func (sc *scenario) conns(o *options) int {
	if sc.connections > 0 {
		return sc.connections
	}
	return o.connections
}

func (sc *scenario) rate(o *options) float64 {
	if sc.rateDiv > 0 {
		return o.rate / sc.rateDiv
	}
	return o.rate
}

// sample is what one run of one target measured.
type sample struct {
	rps      float64 // closed loop
	cpuUS    float64 // proxy CPU µs per request; NaN for direct
	busy     float64 // proxy CPU time per wall time during wrk; NaN for direct
	loadBusy float64 // busy share of the load CPU during wrk; NaN when unread
	loadUS   float64 // load CPU busy µs per request during wrk; NaN when unread
	// Wake-up interrupts (rescheduling and function-call) that the proxy
	// CPU and the load CPU received per request during wrk; NaN when
	// unread. A CPU gets one when a task on it is woken from the other
	// CPU while it halted or ran another task.
	wakeProxy, wakeLoad float64
	p99                 time.Duration // open loop at the fixed rate
	problems            []string      // errors and non-2xx responses seen
}

// toolPaths are the programs a run uses.
type toolPaths struct{ nginx, haproxy, caddy, wrk, h2load, switchyard string }

// bench is one peerbench run.
type bench struct {
	o           *options
	procs       *procs
	dir         string
	tools       toolPaths
	clk         uint64 // clock ticks per second of /proc/PID/stat
	backend     *proc
	backendPort int
	certs       *benchCerts // the TLS targets' certificate; nil without TLS scenarios
	opensslConf string      // OPENSSL_CONF of wrk and h2load
	started     time.Time
	machine     machine
	warnings    []string
	results     map[string]map[string][]sample // scenario, target
	// CPU seconds that the targets not under load used during the
	// closed-loop runs, and the wall seconds of those runs.
	idleCPU, idleWall float64
}

// runBench runs everything o asks for, prints the report, and writes it
// to the results directory unless o.out is "-".
func runBench(ctx context.Context, o *options, stdout, stderr io.Writer) (err error) {
	b := &bench{o: o, procs: newProcs(), started: time.Now().UTC(), results: map[string]map[string][]sample{}}
	defer b.procs.stopAll()
	if err := b.findTools(); err != nil {
		return err
	}
	if others := foreignProcs(func(int) bool { return false }); len(others) > 0 {
		w := "other processes named like the targets are running and compete for the CPUs: " + strings.Join(others, ", ")
		b.warnings = append(b.warnings, w)
		fmt.Fprintln(stderr, "peerbench: warning:", w)
	}
	if b.dir, err = os.MkdirTemp("", "peerbench-"); err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintln(stderr, "peerbench: files in", b.dir)
	} else {
		defer os.RemoveAll(b.dir)
	}
	// nginx workers run as nobody when started by root: they must reach
	// the static files and temporary paths.
	if err := os.Chmod(b.dir, 0o755); err != nil {
		return err
	}
	if slices.ContainsFunc(o.scenarios, (*scenario).tls) {
		if b.certs, err = writeBenchCerts(b.dir); err != nil {
			return err
		}
		b.opensslConf = filepath.Join(b.dir, "openssl.cnf")
		if err := writeOpenSSLConf(b.opensslConf); err != nil {
			return err
		}
	}
	b.clk = clockTicks(ctx, b.procs)
	b.machine = b.describeMachine(ctx)
	if slices.ContainsFunc(b.o.switchyardTargets(), b.hasTarget) {
		if err := b.buildSwitchyard(ctx); err != nil {
			return err
		}
	}
	if err := b.startBackend(ctx); err != nil {
		return fmt.Errorf("nginx backend: %w", err)
	}
	for _, sc := range o.scenarios {
		sc.dir = filepath.Join(b.dir, sc.name)
		if err := writeScenarioFiles(sc, fmt.Sprintf("127.0.0.1:%d", b.backendPort)); err != nil {
			return err
		}
		b.results[sc.name] = map[string][]sample{}
	}
	total := 0
	for _, sc := range o.scenarios {
		total += o.rounds * len(sc.targetsOf(o))
	}
	perRun := o.duration.Round(time.Second) + o.latDuration + time.Second/2
	fmt.Fprintf(stderr, "peerbench: %d scenario(s), about %v: up to %d target(s) × %d round(s) of %v closed loop and %v open loop each\n",
		len(o.scenarios), (time.Duration(total) * perRun).Round(time.Second), len(o.targets), o.rounds, o.duration.Round(time.Second), o.latDuration)
	n := 0
	for _, sc := range o.scenarios {
		if err := b.runScenario(ctx, sc, stderr, &n, total); err != nil {
			return fmt.Errorf("%s: %w", sc.name, err)
		}
	}
	b.procs.stopAll()
	report := b.report()
	fmt.Fprintln(stdout, report)
	if o.out == "-" {
		return nil
	}
	path, err := writeResults(o.out, b.started, report)
	if err != nil {
		return fmt.Errorf("writing the results: %w", err)
	}
	fmt.Fprintf(stderr, "peerbench: wrote %s and %s\n", path, filepath.Join(o.out, "latest.md"))
	return nil
}

func (b *bench) hasTarget(name string) bool {
	for _, t := range b.o.targets {
		if t == name {
			return true
		}
	}
	return false
}

func (b *bench) findTools() (err error) {
	if b.tools.nginx, err = lookTool("nginx"); err != nil {
		return err
	}
	if b.tools.wrk, err = lookTool("wrk"); err != nil {
		return err
	}
	if _, err = lookTool("taskset"); err != nil {
		return err
	}
	if b.hasTarget("haproxy") || b.hasTarget("haproxy-splice") {
		if b.tools.haproxy, err = lookTool("haproxy"); err != nil {
			return err
		}
	}
	if b.hasTarget("caddy") {
		if b.tools.caddy, err = lookTool("caddy"); err != nil {
			return err
		}
	}
	if slices.ContainsFunc(b.o.scenarios, func(sc *scenario) bool { return sc.kind == kindH2 }) {
		if b.tools.h2load, err = lookTool("h2load"); err != nil {
			return err
		}
	}
	for _, name := range []string{"backend.nginx.conf", "proxy.nginx.conf", "haproxy.cfg", "Caddyfile"} {
		if _, err := os.Stat(filepath.Join(b.o.configDir, name)); err != nil {
			return fmt.Errorf("peer configuration: %w (run from the repository root, or set -configs)", err)
		}
	}
	return nil
}

// buildSwitchyard builds cmd/switchyard into the temporary directory, on
// both CPUs.
func (b *bench) buildSwitchyard(ctx context.Context) error {
	taskset, _ := lookTool("taskset")
	goTool, err := lookTool("go")
	if err != nil {
		return err
	}
	b.tools.switchyard = filepath.Join(b.dir, "switchyard")
	cpus := fmt.Sprintf("%d,%d", b.o.proxyCPU, b.o.loadCPU)
	if _, err := b.procs.runCmd(ctx, taskset, "-c", cpus, goTool, "build", "-o", b.tools.switchyard, "./cmd/switchyard"); err != nil {
		return fmt.Errorf("building switchyard (run from the repository root): %w", err)
	}
	return nil
}

// target is one target started for a scenario.
type target struct {
	name string
	p    *proc // nil for direct
	url  string
}

// runScenario starts every target of sc at once, all pinned to the proxy
// CPU, warms each, and then measures them in rounds: each round runs every
// target's closed-loop run one after the other, then every target's
// open-loop run, in an order that turns with the round. Runs of different
// targets are seconds apart, so that the machine's drift (its speed moves
// by a third over tens of seconds on a shared VM) falls on all of them
// alike rather than on whichever target ran during a slow stretch. The
// targets not under load sit idle on the proxy CPU meanwhile; the CPU they
// use is counted (bench.idleCPU) and reported.
func (b *bench) runScenario(ctx context.Context, sc *scenario, stderr io.Writer, n *int, total int) error {
	var ts []*target
	defer func() {
		for _, t := range ts {
			if t.p != nil {
				b.procs.stop(t.p, 3*time.Second)
			}
		}
	}()
	for _, name := range sc.targetsOf(b.o) {
		p, url, err := b.startTarget(ctx, sc, name)
		if err != nil {
			return err
		}
		ts = append(ts, &target{name: name, p: p, url: url})
	}
	if b.o.warmup > 0 {
		// Unmeasured: fills the connection pools, the caches and the Go
		// heap before the first measured run.
		for _, t := range ts {
			cfg := b.loadConfig(sc, t)
			cfg.Duration = b.o.warmup
			rep, err := loadtest.Run(ctx, cfg)
			if err != nil {
				return fmt.Errorf("%s: warm-up: %w", t.name, err)
			}
			if rep.Status[200] == 0 {
				return fmt.Errorf("%s: warm-up: no response 200 (status %v, errors %v)", t.name, rep.Status, rep.Errors)
			}
		}
	}
	for r := range b.o.rounds {
		// order[i] is ts[(i+r) % len]; samples[i] is order[i]'s.
		order := append(slices.Clone(ts[r%len(ts):]), ts[:r%len(ts)]...)
		samples := make([]sample, len(order))
		for i, t := range order {
			s, err := b.runClosed(ctx, sc, t, ts)
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", r+1, t.name, err)
			}
			samples[i] = s
		}
		for i, t := range order {
			s := &samples[i]
			if err := b.runOpen(ctx, sc, t, s); err != nil {
				return fmt.Errorf("round %d, %s: %w", r+1, t.name, err)
			}
			b.results[sc.name][t.name] = append(b.results[sc.name][t.name], *s)
			*n++
			fmt.Fprintf(stderr, "[%d/%d] round %d %-8s %-14s %9.0f req/s  %s  load CPU %s  wake-ups/req %s / %s  p99 %s%s\n",
				*n, total, r+1, sc.name, t.name, s.rps, fmtCPU(s.cpuUS, s.busy), fmtCPU(s.loadUS, s.loadBusy),
				fmtWake(s.wakeProxy), fmtWake(s.wakeLoad), fmtP99(s.p99), problemSuffix(s.problems))
		}
	}
	return nil
}

// runClosed measures t with wrk: req/s, the proxy's CPU per request and
// the load CPU's. The other targets' CPU during the run goes to
// b.idleCPU.
func (b *bench) runClosed(ctx context.Context, sc *scenario, t *target, all []*target) (sample, error) {
	s := sample{cpuUS: math.NaN(), busy: math.NaN(), loadBusy: math.NaN(), loadUS: math.NaN(),
		wakeProxy: math.NaN(), wakeLoad: math.NaN()}
	if b.backend.exited() {
		return s, b.backend.failure()
	}
	idle0, err := b.idleTicks(t, all)
	if err != nil {
		return s, err
	}
	var before uint64
	if t.p != nil {
		if before, err = groupCPU(t.p.pgid); err != nil {
			return s, fmt.Errorf("%w (did %s exit?)", err, t.name)
		}
	}
	// The load CPU's busy share tells whether req/s was the proxy's limit
	// or the load side's (wrk and the backend at 100 %).
	load0, loadErr := readCPUTimes(b.o.loadCPU)
	wakeProxy, wakeLoad := wakeupsSince(b.o.proxyCPU), wakeupsSince(b.o.loadCPU)
	start := time.Now()
	w, err := b.runLoad(ctx, sc, t, &s)
	if err != nil {
		return s, err
	}
	wall := time.Since(start)
	s.wakeProxy, s.wakeLoad = wakeProxy(w.requests), wakeLoad(w.requests)
	if load1, err := readCPUTimes(b.o.loadCPU); err == nil && loadErr == nil {
		s.loadBusy = busyBetween(load0, load1)
		if w.requests > 0 {
			s.loadUS = float64(load1.busy-load0.busy) / float64(b.clk) * 1e6 / float64(w.requests)
		}
	}
	if t.p != nil {
		after, err := groupCPU(t.p.pgid)
		if err != nil {
			return s, fmt.Errorf("%w (did %s exit?)", err, t.name)
		}
		cpu := float64(after-before) / float64(b.clk) // seconds
		s.busy = cpu / wall.Seconds()
		if w.requests > 0 {
			s.cpuUS = cpu * 1e6 / float64(w.requests)
		}
	}
	idle1, err := b.idleTicks(t, all)
	if err != nil {
		return s, err
	}
	b.idleCPU += float64(idle1-idle0) / float64(b.clk)
	b.idleWall += wall.Seconds()
	s.rps = w.rps
	if w.socketErrors > 0 {
		s.problems = append(s.problems, fmt.Sprintf("closed loop: %d socket errors", w.socketErrors))
	}
	if w.non2xx > 0 {
		s.problems = append(s.problems, fmt.Sprintf("closed loop: %d non-2xx/3xx responses", w.non2xx))
	}
	return s, ctx.Err()
}

// wakeupsSince reads CPU cpu's wake-up interrupts now, and returns a
// function that gives how many more came per request since: NaN when
// either reading failed or there were no requests.
func wakeupsSince(cpu int) func(requests int64) float64 {
	n0, err0 := readWakeups(cpu)
	return func(requests int64) float64 {
		n1, err1 := readWakeups(cpu)
		if err0 != nil || err1 != nil || requests <= 0 {
			return math.NaN()
		}
		return float64(n1-n0) / float64(requests)
	}
}

// idleTicks sums the CPU ticks of every started target but t.
func (b *bench) idleTicks(t *target, all []*target) (uint64, error) {
	var sum uint64
	for _, o := range all {
		if o == t || o.p == nil {
			continue
		}
		c, err := groupCPU(o.p.pgid)
		if err != nil {
			return 0, fmt.Errorf("%w (did %s exit?)", err, o.name)
		}
		sum += c
	}
	return sum, nil
}

// runLoad runs sc's closed-loop load against t with the scenario's
// generator. Problems it alone sees go to s.
func (b *bench) runLoad(ctx context.Context, sc *scenario, t *target, s *sample) (wrkResult, error) {
	switch sc.kind {
	case kindHandshake, kindResume:
		u, err := url.Parse(t.url)
		if err != nil {
			return wrkResult{}, err
		}
		h := runHandshakes(ctx, u.Host, u.Path, sc.ids[0], sc.conns(b.o), b.o.duration, sc.kind == kindResume)
		if h.errors > 0 {
			s.problems = append(s.problems, fmt.Sprintf("handshakes: %d errors, the first: %s", h.errors, h.firstErr))
		}
		if sc.kind == kindResume && h.resumed < h.requests*9/10 {
			s.problems = append(s.problems, fmt.Sprintf("handshakes: only %d of %d resumed", h.resumed, h.requests))
		}
		if sc.kind == kindHandshake && h.resumed > 0 {
			s.problems = append(s.problems, fmt.Sprintf("handshakes: %d resumed; want none", h.resumed))
		}
		return wrkResult{requests: h.requests, rps: h.rps, socketErrors: h.errors}, ctx.Err()
	case kindH2:
		return b.runH2load(ctx, t.url, sc.conns(b.o), sc.streams, b.o.duration, sc)
	case kindH3:
		cfg := b.loadConfig(sc, t)
		cfg.Duration = b.o.duration
		rep, err := loadtest.Run(ctx, cfg)
		if err != nil {
			return wrkResult{}, err
		}
		var non2xx int64
		for code, n := range rep.Status {
			if code >= 400 {
				non2xx += n
			}
		}
		var errs int64
		for _, n := range rep.Errors {
			errs += n
		}
		return wrkResult{requests: rep.Completed, rps: rep.RPS, socketErrors: errs, non2xx: non2xx}, ctx.Err()
	}
	return b.runWrk(ctx, t.url, sc.conns(b.o), b.o.duration, sc)
}

// loadConfig is the loadtest configuration of sc against t: the warm-up,
// the open loop, and the closed loop of h3.
func (b *bench) loadConfig(sc *scenario, t *target) loadtest.Config {
	cfg := loadtest.Config{URL: t.url, Keys: sc.ids, Connections: sc.conns(b.o)}
	if sc.tls() {
		cfg.TLSConfig = b.certs.clientTLS()
	}
	switch sc.kind {
	case kindH2:
		cfg.Protocol, cfg.Streams = loadtest.HTTP2, sc.streams
	case kindH3:
		cfg.Protocol, cfg.Streams = loadtest.HTTP3, sc.streams
	}
	return cfg
}

// runOpen measures t's p99 at the scenario's fixed rate into s. Handshake
// scenarios have none: the loadtest package keeps its connections.
func (b *bench) runOpen(ctx context.Context, sc *scenario, t *target, s *sample) error {
	if sc.kind == kindHandshake || sc.kind == kindResume {
		s.p99 = -1
		return ctx.Err()
	}
	cfg := b.loadConfig(sc, t)
	cfg.Rate, cfg.Duration, cfg.Timeout = sc.rate(b.o), b.o.latDuration, 5*time.Second
	rep, err := loadtest.Run(ctx, cfg)
	if err != nil {
		return err
	}
	s.p99 = rep.Latency.P99
	s.problems = append(s.problems, openLoopProblems(rep)...)
	if t.p != nil && t.p.exited() {
		return t.p.failure()
	}
	return ctx.Err()
}

// openLoopProblems lists what went wrong in an open-loop run: errors,
// responses other than 2xx, and requests never sent.
func openLoopProblems(rep *loadtest.Report) []string {
	var out []string
	for kind, n := range rep.Errors {
		out = append(out, fmt.Sprintf("open loop: %d %s errors", n, kind))
	}
	for code, n := range rep.Status {
		if code < 200 || code > 299 {
			out = append(out, fmt.Sprintf("open loop: %d responses %d", n, code))
		}
	}
	if rep.Unsent > 0 {
		out = append(out, fmt.Sprintf("open loop: %d requests unsent (target fell behind the rate)", rep.Unsent))
	}
	return out
}

func problemSuffix(p []string) string {
	if len(p) == 0 {
		return ""
	}
	return "  ! " + strings.Join(p, "; ")
}

// machine describes where the run happened, for the report.
type machine struct {
	cpus                     int
	model, kernel, goVersion string
	nginx, haproxy, wrk      string
	caddy, h2load            string // "" when not run
	revision                 string // of the Switchyard measured
}

func (b *bench) describeMachine(ctx context.Context) machine {
	m := machine{model: "unknown", kernel: "unknown"}
	if info, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.cpus, m.model = parseCPUInfo(string(info))
	}
	if k, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(k))
	}
	m.goVersion = strings.TrimPrefix(goVersion(ctx, b.procs), "go version ")
	m.nginx = versionLine(ctx, b.procs, "nginx version: nginx/", b.tools.nginx, "-v")
	if b.tools.haproxy != "" {
		m.haproxy = versionLine(ctx, b.procs, "HAProxy version ", b.tools.haproxy, "-v")
	}
	m.wrk = versionLine(ctx, b.procs, "wrk ", b.tools.wrk, "-v")
	if b.tools.caddy != "" {
		m.caddy = versionLine(ctx, b.procs, "", b.tools.caddy, "version")
	}
	if b.tools.h2load != "" {
		m.h2load = versionLine(ctx, b.procs, "nghttp2/", b.tools.h2load, "--version")
	}
	m.revision = "unknown"
	if out, err := b.procs.runCmd(ctx, "git", "describe", "--always", "--dirty=+uncommitted changes"); err == nil {
		m.revision = strings.TrimSpace(string(out))
	}
	return m
}

// versionLine runs a tool's version flag and returns the line that starts
// with prefix, from stdout or stderr (tools differ, and wrk -v exits 1).
func versionLine(ctx context.Context, ps *procs, prefix string, argv ...string) string {
	out, err := ps.runCmd(ctx, append([]string{"sh", "-c", `"$0" "$@" 2>&1`}, argv...)...)
	text := string(out)
	if err != nil {
		text += " " + err.Error()
	}
	if i := strings.Index(text, prefix); i >= 0 {
		line := text[i+len(prefix):]
		if j := strings.IndexAny(line, "\n"); j >= 0 {
			line = line[:j]
		}
		f := strings.Fields(line)
		if len(f) > 0 {
			return f[0]
		}
	}
	return "unknown"
}

func goVersion(ctx context.Context, ps *procs) string {
	goTool, err := lookTool("go")
	if err != nil {
		return "unknown"
	}
	out, err := ps.runCmd(ctx, goTool, "env", "GOVERSION")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

// parseCPUInfo returns the number of processors and the first model name
// of a /proc/cpuinfo text.
func parseCPUInfo(info string) (cpus int, model string) {
	model = "unknown"
	for _, line := range strings.Split(info, "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(key) {
		case "processor":
			cpus++
		case "model name":
			if model == "unknown" {
				model = strings.TrimSpace(val)
			}
		}
	}
	return cpus, model
}
