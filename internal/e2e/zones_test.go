package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
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
	waitUntil(t, 5*time.Second, "requests are answered from zone-b only", func() bool {
		for i := 0; i < 20; i++ {
			if got := answeredBy(p); !strings.HasPrefix(got, "b") {
				return false
			}
		}
		return true
	})
	t.Logf("answered only from zone-b %v after the kill", time.Since(killed))
	checkNoFailures(t, "zone-a killed", l.Wait())
}

// Every instance of one zone is SIGSTOPped (accepts, never answers) under
// load: requests time out into retries on the other zone, and the p99 stays
// within the response-header timeout plus one retry.
func TestZoneStoppedUnderLoad(t *testing.T) {
	const headerTimeout = 500 * time.Millisecond
	p, a, _, _ := twoZones(t, "--response-header-timeout", headerTimeout.String())
	// 200 req/s, some waiting a header timeout: 200 connections.
	l := constantLoadConns(t, p, 200, 6*time.Second, 200)
	time.Sleep(time.Second)
	for _, in := range a {
		in.cmd.Process.Signal(syscall.SIGSTOP)
	}
	r := l.Wait()
	checkNoFailures(t, "zone-a stopped", r)
	// One timeout, then a retry that answers at once (plus scheduling slack).
	if bound := headerTimeout + 250*time.Millisecond; r.Latency.P99 > bound {
		t.Errorf("p99 %v during the fault; want within %v (header timeout plus one retry)", r.Latency.P99, bound)
	}
}
