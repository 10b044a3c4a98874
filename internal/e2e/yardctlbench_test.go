package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testing/zktest"
)

// TestYardctlFigures measures yardctl's commands against a large store:
// SWITCHYARD_BENCH_DEPLOYMENTS (default 10 000) deployments × 2 instances
// (blue and green), each with an alias, one route server and one proxy.
// Each command runs as the operator runs it (the yardctl binary, a new
// session); a command about one deployment must not cost the whole
// store. A benchmark: it runs only with SWITCHYARD_BENCH=1.
//
//	SWITCHYARD_BENCH=1 go test -count=1 ./internal/e2e/ -run YardctlFigures -v -timeout 60m
func TestYardctlFigures(t *testing.T) {
	if os.Getenv("SWITCHYARD_BENCH") != "1" {
		t.Skip("benchmark: set SWITCHYARD_BENCH=1")
	}
	deployments := 10000
	if n, err := strconv.Atoi(os.Getenv("SWITCHYARD_BENCH_DEPLOYMENTS")); err == nil {
		deployments = n
	}
	zk := zktest.Start(t)
	zkFlag := strings.Join(zk.Servers(), ",")
	var b strings.Builder
	b.WriteString("domain: example.test\ndeployments:\n")
	for i := 1; i <= deployments; i++ {
		fmt.Fprintf(&b, "  - id: %016x\n    kind: es\n    aliases: [d%d]\n    serving: {blue: 100, green: 0}\n    instances:\n", i, i)
		fmt.Fprintf(&b, "      - {id: i-b, addr: 127.0.0.1:20000, zone: zone-a, generation: blue}\n")
		fmt.Fprintf(&b, "      - {id: i-g, addr: 127.0.0.1:20001, zone: zone-b, generation: green}\n")
	}
	file := filepath.Join(t.TempDir(), "routes.yaml")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	timeout := fmt.Sprint(max(5*time.Second, time.Duration(deployments)*time.Millisecond))
	run := func(args ...string) (time.Duration, string) {
		t.Helper()
		cmd := exec.Command(yardctl, append([]string{"--zk", zkFlag, "--timeout", timeout}, args...)...)
		start := time.Now()
		out, err := cmd.Output()
		d := time.Since(start)
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			t.Fatalf("yardctl %s: %v after %v: %s\n%.2000s", strings.Join(args, " "), err, d, stderr, out)
		}
		return d, string(out)
	}
	figure := func(what string, args ...string) {
		t.Helper()
		d, _ := run(args...)
		t.Logf("%-58s %8.0f ms", "yardctl "+strings.Join(args, " ")+what, float64(d.Microseconds())/1000)
	}

	d, _ := run("apply", "-f", file)
	t.Logf("%d deployments × 2 instances", deployments)
	t.Logf("%-58s %8.0f ms", "yardctl apply -f routes.yaml (first write)", float64(d.Microseconds())/1000)
	d, out := run("apply", "-f", file)
	t.Logf("%-58s %8.0f ms  (%s)", "yardctl apply -f routes.yaml (again: no change)", float64(d.Microseconds())/1000, strings.TrimSpace(out))
	// The whole-table reads before the route server and the proxy start:
	// what they cost is the store's, and they do not wait on a proxy.
	d, out = run("routes")
	t.Logf("%-58s %8.0f ms  (%d lines)", "yardctl routes > file", float64(d.Microseconds())/1000, strings.Count(out, "\n"))
	d, out = run("-o", "json", "routes")
	t.Logf("%-58s %8.0f ms  (%d bytes)", "yardctl -o json routes > file", float64(d.Microseconds())/1000, len(out))

	// The route server reads the whole store before it serves: a minute
	// per 10 000 deployments is a generous bound on a shared machine.
	rp := &routePath{t: t, zk: zk, startWait: time.Duration(deployments/10000+1) * time.Minute}
	start := time.Now()
	rp.startRouteServer("rs1")
	startProxyArgs(t, "--route-servers", rp.rsURLs(), "--proxy-id", "p1")
	t.Logf("route server and proxy up after %v", time.Since(start).Round(time.Millisecond))

	mid := fmt.Sprintf("%016x", deployments/2)
	alias := fmt.Sprintf("d%d.es", deployments/3)
	figure("", "cutover", mid, "--to", "green")
	figure("", "cutover", mid, "--to", "blue", "--wait")
	figure(" (by alias)", "cutover", alias, "--to", "green")
	figure("", "weights", mid, "blue=90,green=10")
	figure("", "rollback", mid)
	figure("", "maintenance", mid, "i-g", "on")
	figure("", "zone", "zone-b", "up")
	figure("", "status")
	figure("", "routes", mid)
	figure(" (by alias)", "routes", alias)
}
