package e2e

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestFanOutFigures measures a fleet under a steady stream of changes:
// 20 proxies (SWITCHYARD_BENCH_PROXIES) on 2 route servers, over 10 000
// deployments (SWITCHYARD_BENCH_DEPLOYMENTS), with 50 single-deployment
// changes a second (SWITCHYARD_BENCH_RATE) written to ZooKeeper for 60 s
// (SWITCHYARD_BENCH_SECONDS). It reports the time from each write to
// every proxy having applied it, the route servers' CPU and bytes per
// change, the full tables they had to send, and that every proxy ends on
// the last version. A benchmark: it runs only with SWITCHYARD_BENCH=1.
//
//	SWITCHYARD_BENCH=1 go test ./internal/e2e/ -run 'FanOutFigures$' -v -timeout 30m
//	SWITCHYARD_BENCH=1 SWITCHYARD_BENCH_DEPLOYMENTS=100000 SWITCHYARD_ZK_HEAP=3g \
//	    go test ./internal/e2e/ -run 'FanOutFigures$' -v -timeout 60m
func TestFanOutFigures(t *testing.T) {
	if os.Getenv("SWITCHYARD_BENCH") != "1" {
		t.Skip("benchmark: set SWITCHYARD_BENCH=1")
	}
	deployments, nProxies := envInt("SWITCHYARD_BENCH_DEPLOYMENTS", 10000), envInt("SWITCHYARD_BENCH_PROXIES", 20)
	rate, seconds := envInt("SWITCHYARD_BENCH_RATE", 50), envInt("SWITCHYARD_BENCH_SECONDS", 60)
	rp, store, deps := scaleStore(t, deployments)
	rss := []*proc{rp.startRouteServer("rs1"), rp.startRouteServer("rs2")}
	ps, healthy := launchProxies(t, rp, nProxies)
	t.Logf("%d proxies on 2 route servers: all have the table %v after start", nProxies, healthy)

	counters := func() (cpu time.Duration, sent, fulls, deltas float64) {
		for _, rs := range rss {
			cpu += rs.cpu(t)
			sent += metricValue(t, rs, "switchyard_routeserver_sent_bytes_total")
			fulls += metricValue(t, rs, "switchyard_routeserver_full_tables_total")
			deltas += metricValue(t, rs, "switchyard_routeserver_deltas_total")
		}
		return
	}
	cpu0, sent0, fulls0, deltas0 := counters()
	pCPU0 := sumOf(ps, (*proc).cpu, t)

	type write struct {
		zxid uint64
		at   time.Time
		took time.Duration // the write itself, until ZooKeeper answered
	}
	// The writes keep to the rate whatever one takes: each tick starts
	// one, with up to writersInFlight at once (each on a deployment of
	// its own), so that a slow write does not lower the rate.
	const writersInFlight = 16
	var (
		mu     sync.Mutex
		writes []write
		wg     sync.WaitGroup
		failed error
	)
	// A write that changes nothing returns the zxid of an older one: the
	// writes must all come after this one.
	base, err := store.SetServing(context.Background(), deps[deployments-1].ID, map[string]int{"blue": 97})
	if err != nil {
		t.Fatal(err)
	}
	slots := make(chan struct{}, writersInFlight)
	profiled := profile(t, ps[0]) // SWITCHYARD_BENCH_PROFILE: the first proxy's CPU, 10 s
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	end := time.Now().Add(time.Duration(seconds) * time.Second)
	for i := 0; time.Now().Before(end); i++ {
		<-tick.C
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			id := deps[(i*97)%deployments].ID
			at := time.Now()
			// Each pass over the deployments writes a weight that
			// differs from the one before it (100, 99, 98, 99, …):
			// every write is a change, with a zxid of its own.
			zxid, err := store.SetServing(context.Background(), id, map[string]int{"blue": 99 - i/deployments%2})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = fmt.Errorf("write %d: %w", i, err)
				return
			}
			writes = append(writes, write{uint64(zxid), at, time.Since(at)})
		}()
	}
	wg.Wait()
	profiled()
	took := time.Since(end.Add(-time.Duration(seconds) * time.Second))
	if failed != nil {
		t.Fatal(failed)
	}
	slices.SortFunc(writes, func(a, b write) int { return cmp.Compare(a.zxid, b.zxid) })
	for i, w := range writes {
		if w.zxid <= uint64(base) || i > 0 && w.zxid == writes[i-1].zxid {
			t.Fatalf("a write changed nothing (zxid %d)", w.zxid)
		}
	}

	logs := make([]*appliedLog, len(ps))
	for i, p := range ps {
		logs[i] = &appliedLog{p: p}
		logs[i].waitFor(t, writes[len(writes)-1].zxid, 2*time.Minute) // none left behind
	}
	cpu1, sent1, fulls1, deltas1 := counters()
	pCPU1 := sumOf(ps, (*proc).cpu, t)

	var conv []time.Duration
	for _, w := range writes {
		var last time.Time
		for _, l := range logs {
			at, _ := l.firstAt(w.zxid)
			if at.After(last) {
				last = at
			}
		}
		conv = append(conv, last.Sub(w.at))
	}
	slices.Sort(conv)
	n := len(writes)
	t.Logf("%d changes in %v (%.1f/s): write to all %d proxies applied p50 %v, p99 %v, max %v", n, took.Round(time.Millisecond),
		float64(n)/took.Seconds(), nProxies, conv[n/2], conv[n*99/100], conv[n-1])
	own := make([]time.Duration, n)
	for i, w := range writes {
		own[i] = w.took
	}
	slices.Sort(own)
	t.Logf("the writes themselves (until ZooKeeper answered): p50 %v, p99 %v, max %v", own[n/2], own[n*99/100], own[n-1])
	t.Logf("route servers (both) per change: CPU %v, %.0f bytes sent (%.0f per proxy); %.0f deltas and %.0f full tables sent in all",
		(cpu1-cpu0)/time.Duration(n), (sent1-sent0)/float64(n), (sent1-sent0)/float64(n)/float64(nProxies), deltas1-deltas0, fulls1-fulls0)
	t.Logf("proxies: CPU per change %v each; every proxy ended on version %d", (pCPU1-pCPU0)/time.Duration(n*nProxies), writes[n-1].zxid)
	t.Logf("RSS at the end: route servers %.1f and %.1f MiB, proxies up to %.1f MiB", mib(rss[0].rss(t)), mib(rss[1].rss(t)), mib(maxOf(ps, (*proc).rss, t)))
}
