package main

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseWrk(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		want    wrkResult
		wantErr bool
	}{
		{
			name: "clean",
			out: `Running 1s test @ http://127.0.0.1:45735/small
  1 threads and 5 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   131.00us  358.37us   4.95ms   97.47%
    Req/Sec    42.57k     2.68k   46.76k    72.73%
  46490 requests in 1.10s, 6.61MB read
Requests/sec:  42262.91
Transfer/sec:      6.01MB
`,
			want: wrkResult{requests: 46490, rps: 42262.91},
		},
		{
			name: "non-2xx",
			out: `Running 1s test @ http://127.0.0.1:45735/nope
  1 threads and 5 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   166.64us  340.08us   5.27ms   97.35%
    Req/Sec    38.05k    11.46k   57.18k    72.73%
  41520 requests in 1.10s, 12.20MB read
  Non-2xx or 3xx responses: 41520
Requests/sec:  37691.49
Transfer/sec:     11.07MB
`,
			want: wrkResult{requests: 41520, rps: 37691.49, non2xx: 41520},
		},
		{
			name: "socket errors",
			out: `Running 10s test @ http://127.0.0.1:9200/small
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.61ms  312.10us  12.03ms   90.12%
    Req/Sec    31.02k     1.10k   33.50k    70.00%
  308812 requests in 10.00s, 40.05MB read
  Socket errors: connect 2, read 12, write 0, timeout 3
  Non-2xx or 3xx responses: 7
Requests/sec:  30877.40
Transfer/sec:      4.00MB
`,
			want: wrkResult{requests: 308812, rps: 30877.40, socketErrors: 17, non2xx: 7},
		},
		{name: "refused", out: "unable to connect to 127.0.0.1:1 Connection refused\n", wantErr: true},
		{name: "no rate", out: "  12 requests in 1.00s, 1.00KB read\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseWrk(tt.out)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseWrk: error %v; want error %v", err, tt.wantErr)
			}
			if !tt.wantErr && got != tt.want {
				t.Errorf("parseWrk = %+v; want %+v", got, tt.want)
			}
		})
	}
}

func TestParseProcStat(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		want    procStat
		wantErr bool
	}{
		{
			name: "haproxy",
			line: "25484 (haproxy) S 25480 25480 25480 0 -1 4194560 2153 0 0 0 1523 2741 0 0 20 0 1 0 914421 60940288 3164 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 0 0 0 0 0 0\n",
			want: procStat{pid: 25484, pgrp: 25480, comm: "haproxy", utime: 1523, stime: 2741},
		},
		{
			name: "comm with spaces and parentheses",
			line: "42 (a (b) c) R 1 40 40 0 -1 0 0 0 0 0 7 8 0 0 20 0 4 0 1 0 0",
			want: procStat{pid: 42, pgrp: 40, comm: "a (b) c", utime: 7, stime: 8},
		},
		{name: "truncated", line: "42 (x) R 1 40 40 0", wantErr: true},
		{name: "no comm", line: "42 x R 1 40 40", wantErr: true},
		{name: "bad utime", line: "42 (x) R 1 40 40 0 -1 0 0 0 0 0 u 8", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseProcStat(tt.line)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseProcStat: error %v; want error %v", err, tt.wantErr)
			}
			if !tt.wantErr && got != tt.want {
				t.Errorf("parseProcStat = %+v; want %+v", got, tt.want)
			}
		})
	}
}

func TestParseCPUTimes(t *testing.T) {
	const stat = `cpu  2255 34 2290 22625563 6290 127 456 0 0 0
cpu0 1132 34 1441 11311432 3063 63 222 5 0 0
cpu1 1123 0 849 11314131 3227 64 234 7 100 0
intr 114930548 113199788 3 0 5 263 0 4 [...]
`
	tests := []struct {
		name    string
		stat    string
		cpu     int
		want    cpuTimes
		wantErr bool
	}{
		// busy: user nice system irq softirq steal; guest not counted twice.
		{name: "cpu1", stat: stat, cpu: 1, want: cpuTimes{busy: 1123 + 849 + 64 + 234 + 7, total: 1123 + 849 + 11314131 + 3227 + 64 + 234 + 7}},
		{name: "cpu0", stat: stat, cpu: 0, want: cpuTimes{busy: 1132 + 34 + 1441 + 63 + 222 + 5, total: 1132 + 34 + 1441 + 11311432 + 3063 + 63 + 222 + 5}},
		{name: "no such CPU", stat: stat, cpu: 2, wantErr: true},
		{name: "cpu1 is not cpu10", stat: "cpu10 1 2 3 4 5 6 7 8\n", cpu: 1, wantErr: true},
		{name: "short line", stat: "cpu1 1 2 3\n", cpu: 1, wantErr: true},
		{name: "bad number", stat: "cpu1 1 2 x 4 5 6 7 8\n", cpu: 1, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseCPUTimes(tt.stat, tt.cpu)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseCPUTimes: error %v; want error %v", err, tt.wantErr)
			}
			if !tt.wantErr && got != tt.want {
				t.Errorf("parseCPUTimes = %+v; want %+v", got, tt.want)
			}
		})
	}
	if got := busyBetween(cpuTimes{busy: 10, total: 100}, cpuTimes{busy: 85, total: 200}); got != 0.75 {
		t.Errorf("busyBetween = %v; want 0.75", got)
	}
	if got := busyBetween(cpuTimes{busy: 10, total: 100}, cpuTimes{busy: 10, total: 100}); !math.IsNaN(got) {
		t.Errorf("busyBetween with no time passed = %v; want NaN", got)
	}
	if _, err := readCPUTimes(0); err != nil {
		t.Errorf("readCPUTimes(0): %v", err)
	}
}

func TestParseWakeups(t *testing.T) {
	const x86 = `            CPU0       CPU1
   0:         41          0   IO-APIC   2-edge      timer
 LOC:    8775550   18414191   Local timer interrupts
 RES:     245917    3834767   Rescheduling interrupts
 CAL:    7659967   10129848   Function call interrupts
 TLB:          0          0   TLB shootdowns
`
	const arm64 = `           CPU0       CPU1       CPU2
IPI0:        10         20         30       Rescheduling interrupts
IPI1:         1          2          3       Function call interrupts
IPI2:         0          0          0       CPU stop interrupts
`
	tests := []struct {
		name    string
		text    string
		cpu     int
		want    uint64
		wantErr bool
	}{
		{name: "x86 cpu0", text: x86, cpu: 0, want: 245917 + 7659967},
		{name: "x86 cpu1", text: x86, cpu: 1, want: 3834767 + 10129848},
		{name: "arm64 cpu2", text: arm64, cpu: 2, want: 33},
		{name: "no such CPU", text: x86, cpu: 2, wantErr: true},
		{name: "a kind missing", text: "CPU0\nRES: 1 Rescheduling interrupts\n", cpu: 0, wantErr: true},
		{name: "bad number", text: "CPU0\nRES: x Rescheduling interrupts\nCAL: 1 Function call interrupts\n", cpu: 0, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseWakeups(tt.text, tt.cpu)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseWakeups: error %v; want error %v", err, tt.wantErr)
			}
			if !tt.wantErr && got != tt.want {
				t.Errorf("parseWakeups = %d; want %d", got, tt.want)
			}
		})
	}
	if _, err := readWakeups(0); err != nil {
		t.Errorf("readWakeups(0): %v", err)
	}
	since := wakeupsSince(0)
	if got := since(0); !math.IsNaN(got) {
		t.Errorf("wakeupsSince with no requests = %v; want NaN", got)
	}
	if got := since(1); math.IsNaN(got) || got < 0 {
		t.Errorf("wakeupsSince for one request = %v; want a count", got)
	}
	if got := wakeupsSince(-1)(1); !math.IsNaN(got) {
		t.Errorf("wakeupsSince of no such CPU = %v; want NaN", got)
	}
}

func TestSummarize(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name string
		in   []float64
		want spread
	}{
		{"one", []float64{3}, spread{3, 3, 3}},
		{"odd", []float64{5, 1, 3}, spread{1, 3, 5}},
		{"even", []float64{4, 1, 2, 8}, spread{1, 3, 8}},
		{"NaN ignored", []float64{nan, 2, 6, nan}, spread{2, 4, 6}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := summarize(tt.in); got != tt.want {
				t.Errorf("summarize(%v) = %v; want %v", tt.in, got, tt.want)
			}
		})
	}
	for _, in := range [][]float64{nil, {nan}} {
		if got := summarize(in); !math.IsNaN(got.min) || !math.IsNaN(got.med) || !math.IsNaN(got.max) {
			t.Errorf("summarize(%v) = %v; want all NaN", in, got)
		}
	}
	if got, want := summarize([]float64{1, 2, 4}).format(fmtRPS), "1 / **2** / 4"; got != want {
		t.Errorf("format = %q; want %q", got, want)
	}
	if got, want := summarize(nil).format(fmtRPS), "–"; got != want {
		t.Errorf("format of nothing = %q; want %q", got, want)
	}
}

// TestWriteResults: each run gets a file of its own, named for its start
// time, and latest.md follows the newest; no earlier run is overwritten.
func TestWriteResults(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bench", "results") // not there yet
	first := time.Date(2026, 12, 5, 7, 20, 12, 0, time.UTC)
	second := first.Add(25 * time.Minute).In(time.FixedZone("CET", 3600))
	read := func(name string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	path, err := writeResults(dir, first, "# Peer benchmark results\n\nA")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "2026-12-05T072012Z.md"); path != want {
		t.Errorf("path = %q; want %q", path, want)
	}
	if got, want := read("2026-12-05T072012Z.md"), "# Peer benchmark results\n\nA\n"; got != want {
		t.Errorf("first run's file = %q; want %q", got, want)
	}
	if got := read("latest.md"); got != read("2026-12-05T072012Z.md") {
		t.Errorf("latest.md = %q; want the first run's file", got)
	}

	// A start time in another zone is named in UTC.
	if _, err := writeResults(dir, second, "B"); err != nil {
		t.Fatal(err)
	}
	if got := read("2026-12-05T074512Z.md"); got != "B\n" {
		t.Errorf("second run's file = %q; want %q", got, "B\n")
	}
	if got := read("latest.md"); got != "B\n" {
		t.Errorf("latest.md = %q; want the second run's", got)
	}

	// The same start time again: refused, and nothing changes.
	if _, err := writeResults(dir, first, "C"); err == nil {
		t.Error("a second run with the first one's start time: no error")
	}
	if got := read("2026-12-05T072012Z.md"); got != "# Peer benchmark results\n\nA\n" {
		t.Errorf("first run's file after a clash = %q", got)
	}
	if got := read("latest.md"); got != "B\n" {
		t.Errorf("latest.md after a clash = %q; want the second run's", got)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"2026-12-05T072012Z.md", "2026-12-05T074512Z.md", "latest.md"}; !slices.Equal(names, want) {
		t.Errorf("results directory holds %q; want %q", names, want)
	}
}

func TestHelpers(t *testing.T) {
	status := "Name:\tpeerbench\nCpus_allowed:\t2\nCpus_allowed_list:\t1\nMems_allowed:\t1\n"
	if got := cpusAllowed(status); got != "1" {
		t.Errorf("cpusAllowed = %q; want %q", got, "1")
	}
	cpus, model := parseCPUInfo("processor\t: 0\nmodel name\t: AMD EPYC\n\nprocessor\t: 1\nmodel name\t: AMD EPYC\n")
	if cpus != 2 || model != "AMD EPYC" {
		t.Errorf("parseCPUInfo = %d, %q; want 2, %q", cpus, model, "AMD EPYC")
	}
	ids := deploymentIDs(1000)
	seen := map[string]bool{}
	for _, id := range ids {
		if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" || seen[id] {
			t.Fatalf("deploymentIDs: bad or repeated ID %q", id)
		}
		seen[id] = true
	}
	if again := deploymentIDs(3); again[0] != ids[0] || again[2] != ids[2] {
		t.Errorf("deploymentIDs is not deterministic: %v, %v", again, ids[:3])
	}
	if got, want := commandLine([]string{"-rounds", "5", "-scenarios", "small, 4k"}), "go run ./tools/peerbench -rounds 5 -scenarios 'small, 4k'"; got != want {
		t.Errorf("commandLine = %q; want %q", got, want)
	}
	if got, want := fmtIdle(0.03, 120), "0.03 %"; got != want {
		t.Errorf("fmtIdle = %q; want %q", got, want)
	}
	if got, want := fmtIdle(0, 0), "–"; got != want {
		t.Errorf("fmtIdle with no runs = %q; want %q", got, want)
	}
}

// A ratio that rounds onto the goal shows its third decimal.
func TestFmtGoalRatio(t *testing.T) {
	for _, c := range []struct {
		x, goal float64
		want    string
	}{
		{0.997, 1, "0.997×"}, {1.003, 1, "1.003×"}, {1, 1, "1.00×"}, {1.2, 1, "1.20×"},
		{0.953, 0.95, "0.953×"}, {0.9, 0.95, "0.90×"}, {math.NaN(), 1, "–"},
	} {
		if got := fmtGoalRatio(c.x, c.goal); got != c.want {
			t.Errorf("fmtGoalRatio(%v, %v) = %q; want %q", c.x, c.goal, got, c.want)
		}
	}
}

func TestParseArgs(t *testing.T) {
	o, err := parseArgs([]string{"-quick", "-duration", "3s", "-scenarios", "1m,small,1m", "-targets", "switchyard,haproxy"})
	if err != nil {
		t.Fatal(err)
	}
	if o.rounds != 1 || o.duration != 3*time.Second || o.latDuration != time.Second {
		t.Errorf("-quick with -duration 3s: rounds %d, duration %v, latency %v; want 1, 3s, 1s", o.rounds, o.duration, o.latDuration)
	}
	if len(o.scenarios) != 2 || o.scenarios[0].name != "1m" || o.scenarios[1].name != "small" {
		t.Errorf("scenarios = %v; want [1m small]", o.scenarios)
	}
	if got := o.scenarios[0].rate(o); got != 200 {
		t.Errorf("1m rate = %v; want 200", got)
	}
	if o, err := parseArgs([]string{"-switchyard-flags", " --idle-nap  30us "}); err != nil || !slices.Equal(o.syFlags, []string{"--idle-nap", "30us"}) {
		t.Errorf("-switchyard-flags: %v, %q", err, o.syFlags)
	}
	if o, err := parseArgs([]string{"-nap", "50us"}); err != nil || o.nap != 50*time.Microsecond || !slices.Contains(o.targets, "switchyard-nap") {
		t.Errorf("-nap 50us: %v, %v, targets %v", err, o.nap, o.targets)
	}
	// -variant adds a Switchyard target of its own, also when -targets
	// does not name it, and -targets may name it.
	o, err = parseArgs([]string{"-targets", "haproxy,switchyard", "-variant", "w64=--response-write-size 64KiB", "-variant", "big-2=--response-write-size  1MiB --idle-nap 10us"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"haproxy", "switchyard", "switchyard-w64", "switchyard-big-2"}; !slices.Equal(o.targets, want) {
		t.Errorf("targets with variants = %v; want %v", o.targets, want)
	}
	if got := o.variantFlags("switchyard-big-2"); !slices.Equal(got, []string{"--response-write-size", "1MiB", "--idle-nap", "10us"}) {
		t.Errorf("flags of switchyard-big-2 = %q", got)
	}
	if o.variantFlags("switchyard") != nil || o.variantFlags("switchyard-nap") != nil {
		t.Error("the built-in Switchyard targets have variant flags")
	}
	if want := []string{"switchyard", "switchyard-nap", "switchyard-w64", "switchyard-big-2"}; !slices.Equal(o.switchyardTargets(), want) {
		t.Errorf("switchyardTargets = %v; want %v", o.switchyardTargets(), want)
	}
	if o, err := parseArgs([]string{"-variant", "a=--x 1", "-targets", "switchyard-a,haproxy"}); err != nil || !slices.Equal(o.targets, []string{"switchyard-a", "haproxy"}) {
		t.Errorf("-targets naming a variant: %v, %v", err, o.targets)
	}
	// A variant may run another build: "@PATH" first, then its flags.
	if o, err := parseArgs([]string{"-variant", "base=@/tmp/sy-base --idle-nap 10us", "-variant", "old=@/tmp/sy-old"}); err != nil {
		t.Errorf("-variant with a binary: %v", err)
	} else if o.variantBinary("switchyard-base") != "/tmp/sy-base" || !slices.Equal(o.variantFlags("switchyard-base"), []string{"--idle-nap", "10us"}) ||
		o.variantBinary("switchyard-old") != "/tmp/sy-old" || len(o.variantFlags("switchyard-old")) != 0 || o.variantBinary("switchyard") != "" {
		t.Errorf("variant binaries: base %q %q, old %q %q", o.variantBinary("switchyard-base"), o.variantFlags("switchyard-base"),
			o.variantBinary("switchyard-old"), o.variantFlags("switchyard-old"))
	}
	for _, bad := range [][]string{
		{"-variant", "w64"}, {"-variant", "w64= "}, {"-variant", "a=@"}, {"-variant", "a=@ --x"}, {"-variant", "W64=--x"}, {"-variant", "-a=--x"},
		{"-variant", "nap=--x"}, {"-variant", "a=--x", "-variant", "a=--y"}, {"-targets", "switchyard-a"},
		{"-scenarios", "nope"}, {"-targets", "envoy"}, {"-rounds", "0"},
		{"-nap", "0s"}, {"-nap", "2ms"},
		{"-proxy-cpu", "1", "-load-cpu", "1"}, {"extra"},
	} {
		if _, err := parseArgs(bad); err == nil {
			t.Errorf("parseArgs(%q): no error", bad)
		}
	}
}

// Round-by-round ratios pair each Switchyard run with the HAProxy run of
// the same round, not the medians of the two.
func TestPairedRatios(t *testing.T) {
	b := &bench{results: map[string]map[string][]sample{"small": {
		"switchyard": {{rps: 30, cpuUS: 30}, {rps: 20, cpuUS: 40}, {rps: 40, cpuUS: 20}},
		"haproxy":    {{rps: 30, cpuUS: 40}, {rps: 10, cpuUS: 20}, {rps: 40, cpuUS: 40}},
	}}}
	rps, cpu := b.paired("small", "switchyard")
	if rps != (spread{1, 1, 2}) {
		t.Errorf("req/s ratios %+v; want 1 / 1 / 2", rps)
	}
	if cpu != (spread{0.5, 0.75, 2}) {
		t.Errorf("CPU ratios %+v; want 0.5 / 0.75 / 2", cpu)
	}
	if rps, _ := b.paired("small", "switchyard-nap"); !math.IsNaN(rps.med) {
		t.Errorf("no runs of the target: %+v; want NaN", rps)
	}
	if rps, _ := b.paired("4k", "switchyard"); !math.IsNaN(rps.med) {
		t.Errorf("no runs: %+v; want NaN", rps)
	}
}

// TestCheckHeaders runs checkHeaders against a stand-in proxy that adds
// the headers Switchyard adds, and against ones that leave one out.
func TestCheckHeaders(t *testing.T) {
	const key = "5f6f1081193b058eddb260be2f734abd"
	proxy := func(drop string, id2 string) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sent := map[string]string{
				"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "http",
				"X-Forwarded-Host": r.Host, "X-Cloud-Request-Id": "id1",
			}
			resp := map[string]string{
				"X-Cloud-Request-Id": "id1", "X-Found-Handling-Cluster": r.Header.Get(keyHeader),
				"X-Found-Handling-Instance": "i0",
			}
			delete(sent, drop)
			delete(resp, drop)
			if id2 != "" {
				resp["X-Cloud-Request-Id"] = id2
			}
			for k, v := range resp {
				w.Header().Set(k, v)
			}
			for _, h := range forwardedHeaders {
				fmt.Fprintf(w, "%s\n", sent[h]) // as the backend's /_headers answers
			}
		}))
	}
	cases := []struct {
		name, drop, id2, want string
	}{
		{"all", "", "", ""},
		{"no X-Forwarded-Host", "X-Forwarded-Host", "", "no request X-Forwarded-Host"},
		{"no handling instance", "X-Found-Handling-Instance", "", "no response X-Found-Handling-Instance"},
		{"no request ID", "X-Cloud-Request-Id", "", "no request X-Cloud-Request-Id, response X-Cloud-Request-Id"},
		{"two request IDs", "", "id2", `request ID "id2" in the response, "id1" sent`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := proxy(c.drop, c.id2)
			defer srv.Close()
			err := checkHeaders(context.Background(), checkClient(nil), srv.URL+headersPath, key, false)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("checkHeaders: %v; want nil", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("checkHeaders: %v; want an error with %q", err, c.want)
			}
		})
	}
}
