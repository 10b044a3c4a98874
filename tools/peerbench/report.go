package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The goal the report is read against (not asserted).
const (
	goalCPURatio = 0.95 // Switchyard CPU per request ≤ this × HAProxy's
	goalRPSRatio = 1.0  // Switchyard req/s ≥ this × HAProxy's
)

// goalOf is the goal a scenario is read against: the peer, and the
// bounds on the ratios of req/s (at least) and CPU per request (at most)
// to it, NaN where none. Plain HTTP/1.1: HAProxy's req/s and 0.95× its
// CPU; keep-alive over TLS: 0.95× HAProxy's CPU; HTTP/2 and HTTP/3:
// Caddy's req/s. The handshake scenarios have none.
func goalOf(sc *scenario) (peer string, rps, cpu float64) {
	switch sc.kind {
	case kindHTTP:
		return "haproxy", goalRPSRatio, goalCPURatio
	case kindTLS:
		return "haproxy", math.NaN(), goalCPURatio
	case kindH2, kindH3:
		return "caddy", goalRPSRatio, math.NaN()
	}
	return "", math.NaN(), math.NaN()
}

// goalMet tells whether the ratios rr (req/s) and cr (CPU) meet the
// goal of sc: "yes", "no", or "–" without a goal or a measure.
func goalMet(sc *scenario, rr, cr float64) string {
	_, rg, cg := goalOf(sc)
	if math.IsNaN(rg) && math.IsNaN(cg) {
		return "–"
	}
	if (!math.IsNaN(rg) && math.IsNaN(rr)) || (!math.IsNaN(cg) && math.IsNaN(cr)) {
		return "–"
	}
	if (!math.IsNaN(rg) && rr < rg) || (!math.IsNaN(cg) && cr > cg) {
		return "no"
	}
	return "yes"
}

// goalText says the goal of sc in words.
func goalText(sc *scenario) string {
	switch sc.kind {
	case kindHTTP:
		return fmt.Sprintf("req/s ≥ %.2f× and CPU/req ≤ %.2f× HAProxy's", goalRPSRatio, goalCPURatio)
	case kindTLS:
		return fmt.Sprintf("CPU/req ≤ %.2f× HAProxy's", goalCPURatio)
	case kindH2, kindH3:
		return fmt.Sprintf("req/s ≥ %.2f× Caddy's", goalRPSRatio)
	}
	return "none (measured against HAProxy and Caddy)"
}

// spread is the min, median and max of some values; NaN when there were
// none.
type spread struct{ min, med, max float64 }

// summarize returns the spread of xs, ignoring NaNs. The median of an even
// count is the mean of the two middle values.
func summarize(xs []float64) spread {
	var v []float64
	for _, x := range xs {
		if !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return spread{math.NaN(), math.NaN(), math.NaN()}
	}
	slices.Sort(v)
	n := len(v)
	med := v[n/2]
	if n%2 == 0 {
		med = (v[n/2-1] + v[n/2]) / 2
	}
	return spread{v[0], med, v[n-1]}
}

// format writes "min / **median** / max" with f, or "–" without values.
func (s spread) format(f func(float64) string) string {
	if math.IsNaN(s.med) {
		return "–"
	}
	return f(s.min) + " / **" + f(s.med) + "** / " + f(s.max)
}

func fmtRPS(x float64) string { return strconv.FormatFloat(x, 'f', 0, 64) }
func fmtUS(x float64) string  { return strconv.FormatFloat(x, 'f', 1, 64) }
func fmtMS(x float64) string  { return strconv.FormatFloat(x, 'f', 2, 64) }

func fmtCPU(us, busy float64) string {
	if math.IsNaN(us) {
		return "     – µs/req (    – busy)"
	}
	return fmt.Sprintf("%6.1f µs/req (%3.0f %% busy)", us, busy*100)
}

// fmtWake formats wake-up interrupts per request.
func fmtWake(x float64) string {
	if math.IsNaN(x) {
		return "–"
	}
	return strconv.FormatFloat(x, 'f', 2, 64)
}

func fmtPct(x float64) string {
	if math.IsNaN(x) {
		return "–"
	}
	return strconv.FormatFloat(x*100, 'f', 0, 64) + " %"
}

// fmtP99 formats a p99; a negative one is none (handshake scenarios).
func fmtP99(d time.Duration) string {
	if d < 0 {
		return "–"
	}
	return fmtMS(float64(d)/1e6) + " ms"
}

// p99ms is a sample's p99 in ms, NaN when it has none.
func p99ms(d time.Duration) float64 {
	if d < 0 {
		return math.NaN()
	}
	return float64(d) / 1e6
}

// ratio is a/b, NaN when either is missing.
func ratio(a, b float64) float64 {
	if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
		return math.NaN()
	}
	return a / b
}

func fmtRatio(x float64) string {
	if math.IsNaN(x) {
		return "–"
	}
	return strconv.FormatFloat(x, 'f', 2, 64) + "×"
}

// fmtGoalRatio is fmtRatio with a third decimal when two would round
// onto the goal, so that a "no" never stands beside a ratio that reads
// as meeting it (0.997 is not 1.00).
func fmtGoalRatio(x, goal float64) string {
	if !math.IsNaN(x) && math.Abs(x-goal) < 0.005 && x != goal {
		return strconv.FormatFloat(x, 'f', 3, 64) + "×"
	}
	return fmtRatio(x)
}

func fmtRatioBare(x float64) string { return strconv.FormatFloat(x, 'f', 2, 64) }

// paired returns the spread of Switchyard / HAProxy ratios of req/s and of
// CPU per request for one Switchyard target, taken round by round (a
// failed run ends the benchmark, so the samples of one scenario line up by
// round).
func (b *bench) paired(sc, target string) (rps, cpu spread) {
	sy, hp := b.results[sc][target], b.results[sc]["haproxy"]
	var rr, cr []float64
	for i := range min(len(sy), len(hp)) {
		rr = append(rr, ratio(sy[i].rps, hp[i].rps))
		cr = append(cr, ratio(sy[i].cpuUS, hp[i].cpuUS))
	}
	return summarize(rr), summarize(cr)
}

// medians are the medians of one target in one scenario.
type medians struct{ rps, cpu float64 }

func (b *bench) medians(sc, target string) medians {
	ss, ok := b.results[sc][target]
	if !ok {
		return medians{math.NaN(), math.NaN()}
	}
	var rps, cpu []float64
	for _, s := range ss {
		rps, cpu = append(rps, s.rps), append(cpu, s.cpuUS)
	}
	return medians{summarize(rps).med, summarize(cpu).med}
}

// report renders the run's results as a Markdown document.
func (b *bench) report() string {
	o, m := b.o, b.machine
	var w strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&w, format, a...) }

	p("# Peer benchmark results\n\n")
	p("Run on %s with:\n\n", b.started.Format("2006-01-02 15:04 MST"))
	p("```sh\n%s\n```\n\n", commandLine(o.args))
	p("%d round(s). Per scenario, every target is started once and warmed up for %v; each round then runs wrk -t1 for %v against every target in turn (closed loop), then %v of open loop at a fixed rate against every target in turn for the p99, the order turning with the round.\n\n",
		o.rounds, o.warmup, o.duration.Round(time.Second), o.latDuration)
	haproxy := m.haproxy
	if haproxy == "" {
		haproxy = "not run"
	}
	p("Machine: %d CPUs, %s; Linux %s; %s; nginx %s; HAProxy %s; Caddy %s; wrk %s; h2load %s; Switchyard at %s. ", m.cpus, m.model, m.kernel, m.goVersion, m.nginx, haproxy, orNotRun(m.caddy), m.wrk, orNotRun(m.h2load), m.revision)
	syWith := "GOMAXPROCS=1"
	if len(o.syFlags) > 0 {
		syWith += " and `" + strings.Join(o.syFlags, " ") + "`"
	}
	if b.hasTarget("switchyard-nap") {
		syWith += "; switchyard-nap adds `--idle-nap " + o.nap.String() + "`"
	}
	for _, v := range o.variants {
		if b.hasTarget(v.target) {
			syWith += "; " + v.target + " adds `" + strings.Join(v.flags, " ") + "`"
		}
	}
	p("The proxies run on CPU %d (Switchyard with %s; Caddy with GOMAXPROCS=1; nginx with 1 worker, HAProxy with 1 thread), all of a scenario's at once, one under load at a time: the idle ones used %s of that CPU during the closed-loop runs. The nginx backend, wrk, the open-loop generator and peerbench share CPU %d.\n\n", o.proxyCPU, syWith, fmtIdle(b.idleCPU, b.idleWall), o.loadCPU)
	p("Goals, at one core: plain HTTP/1.1, Switchyard's CPU per request ≤ %.2f× HAProxy's and its req/s ≥ %.2f× HAProxy's; keep-alive over TLS, CPU per request ≤ %.2f× HAProxy's; HTTP/2 and HTTP/3, req/s ≥ %.2f× Caddy's.\n\n", goalCPURatio, goalRPSRatio, goalCPURatio, goalRPSRatio)
	if slices.ContainsFunc(o.scenarios, (*scenario).tls) {
		p("TLS: every TLS target serves the same certificate (ECDSA P-256, signed by a CA made for the run), with TLS 1.2 and 1.3 and session tickets on; every client asks for TLS 1.3 with X25519 and TLS_AES_128_GCM_SHA256 (wrk and h2load through an OpenSSL configuration, the Go clients through their tls.Config), so every target does the same cryptography. HAProxy and Caddy are also held to X25519 by their configurations.\n\n")
	}

	p("Scenarios:\n\n")
	for _, sc := range o.scenarios {
		p("- **%s**: %s; %s; targets %s.\n", sc.name, sc.title, loadText(sc, o), strings.Join(sc.targetsOf(o), ", "))
	}
	p("\nCells are min / **median** / max over the rounds. CPU is the proxy's user + system time (all its processes and threads) per request completed by wrk; busy is that CPU time over the wall time of the wrk run (median), 100 %% being the whole proxy core. Both are – for direct, which has no proxy. Load CPU is the same for CPU %d, where wrk and the backend run: its busy time per request, and (median) how busy it was during the wrk run. Near 100 %% the load side, not the proxy, set the req/s, and a proxy that makes the load side's work dearer per request (more wake-ups, more segments) gets fewer requests through. Wake-ups are the interrupts by which one CPU wakes a task on the other while that one halted or ran another task (rescheduling and function-call interrupts, /proc/interrupts), per request received by the proxy CPU and by the load CPU (medians): near 0, each CPU found work waiting whenever it looked; near 1 or more, one of them went to sleep between requests and the other paid for waking it, which on a virtual machine is a trip through the hypervisor.\n\n", o.loadCPU)
	p("| scenario | target | req/s | CPU µs/req | busy | load CPU µs/req | load busy | wake-ups/req proxy / load CPU | p99 ms at fixed rate | runs with errors |\n")
	p("| --- | --- | --: | --: | --: | --: | --: | --: | --: | --: |\n")
	var problems []string
	for _, sc := range o.scenarios {
		for _, t := range sc.targetsOf(o) {
			ss := b.results[sc.name][t]
			var rps, cpu, busy, loadUS, loadBusy, wakeP, wakeL, p99 []float64
			bad := 0
			for i, s := range ss {
				rps, cpu, p99 = append(rps, s.rps), append(cpu, s.cpuUS), append(p99, p99ms(s.p99))
				busy, loadBusy = append(busy, s.busy), append(loadBusy, s.loadBusy)
				loadUS = append(loadUS, s.loadUS)
				wakeP, wakeL = append(wakeP, s.wakeProxy), append(wakeL, s.wakeLoad)
				if len(s.problems) > 0 {
					bad++
					problems = append(problems, fmt.Sprintf("%s, %s, round %d: %s", sc.name, t, i+1, strings.Join(s.problems, "; ")))
				}
			}
			badCell := "0"
			if bad > 0 {
				badCell = fmt.Sprintf("**%d** ⚠", bad)
			}
			p("| %s | %s | %s | %s | %s | %s | %s | %s / %s | %s | %s |\n", sc.name, t, summarize(rps).format(fmtRPS),
				summarize(cpu).format(fmtUS), fmtPct(summarize(busy).med),
				summarize(loadUS).format(fmtUS), fmtPct(summarize(loadBusy).med),
				fmtWake(summarize(wakeP).med), fmtWake(summarize(wakeL).med),
				summarize(p99).format(fmtMS), badCell)
		}
	}
	p("\n")

	var sys []string // the Switchyard targets of this run
	for _, t := range o.switchyardTargets() {
		if b.hasTarget(t) {
			sys = append(sys, t)
		}
	}
	if len(sys) > 0 && (b.hasTarget("haproxy") || b.hasTarget("nginx") || b.hasTarget("caddy")) {
		p("Ratios of medians from this run (Switchyard / peer), and each scenario's goal.\n\n")
		p("| scenario | target | req/s vs HAProxy | CPU vs HAProxy | req/s vs Caddy | CPU vs Caddy | req/s vs nginx | CPU vs nginx | goal | goal met |\n")
		p("| --- | --- | --: | --: | --: | --: | --: | --: | --- | --- |\n")
		for _, sc := range o.scenarios {
			hp, cd, ng := b.medians(sc.name, "haproxy"), b.medians(sc.name, "caddy"), b.medians(sc.name, "nginx")
			peer, _, _ := goalOf(sc)
			for _, t := range sys {
				sy := b.medians(sc.name, t)
				if _, ok := b.results[sc.name][t]; !ok {
					continue
				}
				rh, ch := ratio(sy.rps, hp.rps), ratio(sy.cpu, hp.cpu)
				rc, cc := ratio(sy.rps, cd.rps), ratio(sy.cpu, cd.cpu)
				met := goalMet(sc, rh, ch)
				if peer == "caddy" {
					met = goalMet(sc, rc, cc)
				}
				p("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", sc.name, t,
					fmtGoalRatio(rh, goalRPSRatio), fmtGoalRatio(ch, goalCPURatio),
					fmtGoalRatio(rc, goalRPSRatio), fmtGoalRatio(cc, goalCPURatio),
					fmtRatio(ratio(sy.rps, ng.rps)), fmtRatio(ratio(sy.cpu, ng.cpu)), goalText(sc), met)
			}
		}
		p("\n")
	}
	if len(sys) > 0 && b.hasTarget("haproxy") && o.rounds > 1 {
		p("Ratios round by round (each round's Switchyard run against the HAProxy run of the same round and scenario, seconds apart), min / **median** / max: less exposed to the machine's drift than the ratios of medians above, which the goal is read on.\n\n")
		p("| scenario | target | req/s vs HAProxy | CPU vs HAProxy |\n")
		p("| --- | --- | --: | --: |\n")
		for _, sc := range o.scenarios {
			for _, t := range sys {
				rr, cr := b.paired(sc.name, t)
				p("| %s | %s | %s | %s |\n", sc.name, t, rr.format(fmtRatioBare), cr.format(fmtRatioBare))
			}
		}
		p("\n")
	}
	if len(sys) > 0 && b.hasTarget("haproxy-splice") {
		p("Ratios of medians against HAProxy with `option splice-response` (haproxy-splice; not the goal's peer, which leaves it off as HAProxy does by default):\n\n")
		p("| scenario | target | req/s vs HAProxy splicing | CPU vs HAProxy splicing |\n")
		p("| --- | --- | --: | --: |\n")
		for _, sc := range o.scenarios {
			hs := b.medians(sc.name, "haproxy-splice")
			for _, t := range sys {
				sy := b.medians(sc.name, t)
				p("| %s | %s | %s | %s |\n", sc.name, t, fmtRatio(ratio(sy.rps, hs.rps)), fmtRatio(ratio(sy.cpu, hs.cpu)))
			}
		}
		p("\n")
	}
	if len(problems) > 0 {
		p("Runs with errors (their numbers are in the table, but read them with care):\n\n")
		for _, s := range problems {
			p("- %s\n", s)
		}
		p("\n")
	}
	for _, s := range b.warnings {
		p("Warning: %s.\n\n", s)
	}
	return strings.TrimRight(w.String(), "\n")
}

// loadText says how sc loads a target, for the report.
func loadText(sc *scenario, o *options) string {
	p99 := "p99 at " + fmtRPS(sc.rate(o)) + " req/s"
	switch sc.kind {
	case kindHandshake, kindResume:
		return fmt.Sprintf("peerbench's own Go client, %d connections at a time, each a TLS handshake (certificate not verified), one request with Connection: close, and the server's close; no p99", sc.conns(o))
	case kindH2:
		return fmt.Sprintf("h2load with %d connections × %d streams; %s (the loadtest package over HTTP/2)", sc.conns(o), sc.streams, p99)
	case kindH3:
		return fmt.Sprintf("the loadtest package (quic-go) with %d connections × %d streams; %s", sc.conns(o), sc.streams, p99)
	}
	return fmt.Sprintf("wrk with %d connections; %s", sc.conns(o), p99)
}

func orNotRun(s string) string {
	if s == "" {
		return "not run"
	}
	return s
}

// commandLine is how this run was invoked, quoted for a shell.
func commandLine(args []string) string {
	parts := []string{"go run ./tools/peerbench"}
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \t'\"$\\*?;&|<>()") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// resultsName is the file name of a run's report in the results
// directory: its UTC start time, to the second, so that names sort as the
// runs were made.
func resultsName(started time.Time) string {
	return started.UTC().Format("2006-01-02T150405Z") + ".md"
}

// writeResults writes report to dir (created if missing) as the file
// named for started and as latest.md, and returns the first one's path.
// An earlier run's file is never overwritten: a name already taken is an
// error, and latest.md is then left as it was.
func writeResults(dir string, started time.Time, report string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	data := []byte(report + "\n")
	path := filepath.Join(dir, resultsName(started))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	latest := filepath.Join(dir, "latest.md")
	tmp := latest + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, latest); err != nil {
		return "", err
	}
	return path, nil
}

// fmtIdle gives the share of the proxy CPU that idle targets used.
func fmtIdle(cpu, wall float64) string {
	if wall <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f %%", 100*cpu/wall)
}
