package e2e

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testing/testutil"
)

// writeZonedRoutes writes a routes file with one deployment on the given
// instance processes, with their zones.
func writeZonedRoutes(t *testing.T, path string, zoneStates map[string]string, insts ...*instanceProc) {
	t.Helper()
	var b strings.Builder
	b.WriteString("domain: example.test\n")
	if len(zoneStates) > 0 {
		b.WriteString("zones:\n")
		for z, st := range zoneStates {
			fmt.Fprintf(&b, "  %s: %s\n", z, st)
		}
	}
	fmt.Fprintf(&b, "deployments:\n  - id: %s\n    kind: es\n    serving: {blue: 100}\n    instances:\n", depID)
	for _, in := range insts {
		fmt.Fprintf(&b, "      - {id: %s, addr: %q, zone: %s, generation: blue}\n", in.name, in.addr, in.zone)
	}
	writeFileAtomic(t, path, b.String())
}

// twoZones starts two instance processes in each of zone-a and zone-b and
// a proxy in zone-a over them.
func twoZones(t *testing.T, extra ...string) (p *proc, a, b []*instanceProc, routes string) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts instance processes")
	}
	a = []*instanceProc{startInstance(t, "a1", "zone-a"), startInstance(t, "a2", "zone-a")}
	b = []*instanceProc{startInstance(t, "b1", "zone-b"), startInstance(t, "b2", "zone-b")}
	routes = filepath.Join(t.TempDir(), "routes.yaml")
	writeZonedRoutes(t, routes, nil, append(append([]*instanceProc{}, a...), b...)...)
	p = startProxy(t, routes, append([]string{"--zone", "zone-a", "--drain-delay", "0s"}, extra...)...)
	return p, a, b, routes
}

// Every instance of one zone is SIGKILLed under load: no idempotent GET
// fails (refused connections are retried in the other zone).
func TestZoneKilledUnderLoad(t *testing.T) {
	p, a, _, _ := twoZones(t)
	l := constantLoad(t, p, 300, 6*time.Second)
	time.Sleep(2 * time.Second)
	for _, in := range a {
		in.cmd.Process.Signal(syscall.SIGKILL)
	}
	killed := time.Now()
	// Outlier detection ejects both dead instances: no attempt goes to
	// zone-a any more.
	took := testutil.Eventually(t, 5*time.Second, "both zone-a instances are ejected", func() bool {
		return adminMetric(t, p, "switchyard_ejections_total") >= 2
	})
	t.Logf("zone-a fully out of rotation %v after the kill (target 1s)", took)
	// It takes well under a second, but a loaded machine can stall the
	// proxy or this test for another second or two.
	if took > 3*time.Second {
		t.Errorf("failover took %v; want within 1s", took)
	}
	testutil.Eventually(t, 5*time.Second, "requests are answered from zone-b only", func() bool {
		for i := 0; i < 20; i++ {
			if got := answeredBy(p); !strings.HasPrefix(got, "b") {
				return false
			}
		}
		return true
	})
	t.Logf("answered only from zone-b %v after the kill", time.Since(killed))
	t.Logf("retries %v, refused by the budget %v", adminMetric(t, p, "switchyard_retries_total"), adminMetric(t, p, "switchyard_retry_budget_exhausted_total"))
	checkNoFailures(t, "zone-a killed", l.Wait())
}

// Every instance of one zone is SIGSTOPped (accepts, never answers) under
// load: requests time out into retries on the other zone, and the p99 stays
// within the response-header timeout plus one retry.
func TestZoneStoppedUnderLoad(t *testing.T) {
	const headerTimeout = time.Second
	p, a, _, _ := twoZones(t, "--response-header-timeout", headerTimeout.String())
	// 200 req/s, some waiting a header timeout: 400 connections.
	l := constantLoadConns(t, p, 200, 6*time.Second, 400)
	time.Sleep(time.Second)
	for _, in := range a {
		in.cmd.Process.Signal(syscall.SIGSTOP)
	}
	r := l.Wait()
	t.Logf("retries %v, refused by the budget %v, ejections %v", adminMetric(t, p, "switchyard_retries_total"),
		adminMetric(t, p, "switchyard_retry_budget_exhausted_total"), adminMetric(t, p, "switchyard_ejections_total"))
	checkNoFailures(t, "zone-a stopped", r)
	// One timeout, then a retry that answers at once, plus the slack a
	// loaded machine needs; two timeouts would be over the bound.
	if bound := headerTimeout + 700*time.Millisecond; r.Latency.P99 > bound {
		t.Errorf("p99 %v during the fault; want within %v (header timeout plus one retry)", r.Latency.P99, bound)
	}
}

// countByInstance sends n requests and counts who answered.
func countByInstance(t *testing.T, p *proc, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for i := 0; i < n; i++ {
		status, body := httpGet("http://"+p.addr+"/", "X-Found-Cluster", depID)
		if status != 200 {
			t.Fatalf("request %d: status %d %s", i, status, body)
		}
		got[body]++
	}
	return got
}

// While its zone is healthy, a proxy keeps ≥ 95% of requests there; a zone
// marked down gets none.
func TestLocalPreferenceAndZoneDown(t *testing.T) {
	p, a, b, routes := twoZones(t)
	got := countByInstance(t, p, 1000)
	local := got["a1"] + got["a2"]
	t.Logf("zone-a proxy, both zones healthy: %v", got)
	if local < 950 {
		t.Errorf("%d of 1000 requests stayed in the proxy's zone; want ≥ 95%%", local)
	}

	writeZonedRoutes(t, routes, map[string]string{"zone-a": "down"}, a[0], a[1], b[0], b[1])
	testutil.Eventually(t, 15*time.Second, "the zone-down table is applied", func() bool { return strings.HasPrefix(answeredBy(p), "b") })
	got = countByInstance(t, p, 500)
	if n := got["a1"] + got["a2"]; n != 0 {
		t.Errorf("%d requests reached zone-a while it was down; want 0 (%v)", n, got)
	}
}

// adminMetric reads one metric from the proxy's admin listener.
func adminMetric(t *testing.T, p *proc, name string) float64 {
	t.Helper()
	_, body := httpGet("http://" + p.admin + "/metrics")
	for _, line := range strings.Split(body, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == name {
			v, _ := strconv.ParseFloat(f[1], 64)
			return v
		}
	}
	return 0
}
