package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testing/zktest"
	"github.com/switchyard/switchyard/routes"
	"github.com/switchyard/switchyard/routes/zkstore"
)

// TestRoutePathFigures measures the route path at scale: 10 000
// deployments × 3 instances in ZooKeeper (SWITCHYARD_BENCH_DEPLOYMENTS
// sets another size; from about 20 000 the test ZooKeeper needs a larger
// heap, zktest.HeapEnv). It is a benchmark, not a test: it runs only with
// SWITCHYARD_BENCH=1 and reports figures with t.Logf.
//
//	SWITCHYARD_BENCH=1 go test ./internal/e2e/ -run RoutePathFigures -v -timeout 30m
//	SWITCHYARD_BENCH=1 SWITCHYARD_BENCH_DEPLOYMENTS=100000 SWITCHYARD_ZK_HEAP=2g \
//	    go test ./internal/e2e/ -run RoutePathFigures -v -timeout 60m
func TestRoutePathFigures(t *testing.T) {
	if os.Getenv("SWITCHYARD_BENCH") != "1" {
		t.Skip("benchmark: set SWITCHYARD_BENCH=1")
	}
	deployments := 10000
	if n, err := strconv.Atoi(os.Getenv("SWITCHYARD_BENCH_DEPLOYMENTS")); err == nil {
		deployments = n
	}
	zk := zktest.Start(t)
	conn := zktest.Connect(t, zk.Servers(), 10*time.Second)
	store, err := zkstore.New(conn, zkstore.DefaultRoot)
	if err != nil {
		t.Fatal(err)
	}
	deps := make([]*routes.DeploymentSpec, deployments)
	for i := range deps {
		d := &routes.DeploymentSpec{ID: fmt.Sprintf("%016x", i+1), Kind: "es", Serving: map[string]int{"blue": 100}}
		for j := 0; j < 3; j++ {
			d.Instances = append(d.Instances, &routes.Instance{ID: fmt.Sprintf("i-%d", j), Addr: fmt.Sprintf("127.0.0.1:%d", 20000+j),
				Zone: fmt.Sprintf("zone-%c", 'a'+j), Generation: "blue"})
		}
		deps[i] = d
	}
	tbl, err := routes.NewTable("example.test", nil, deps)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := store.Apply(context.Background(), tbl, zkstore.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %d deployments × 3 instances to ZooKeeper in %v", deployments, time.Since(start))

	// The route server reads the whole table before it serves: allow a
	// minute per 10 000 deployments.
	rp := &routePath{t: t, zk: zk, startWait: time.Duration(deployments/10000+1) * time.Minute}
	if h := os.Getenv("SWITCHYARD_BENCH_TABLE_HASH"); h != "" {
		rp.rsArgs = []string{"--table-hash", h} // sha256 or sum
	}
	start = time.Now()
	rs := rp.startRouteServer("rs1")
	t.Logf("route server initial load: ready after %v, peak RSS %.1f MiB", time.Since(start), float64(rs.peakRSS(t))/(1<<20))
	rsLoaded := rs.rss(t)

	start = time.Now()
	p := startProxyArgs(t, "--route-servers", rp.rsURLs(), "--proxy-id", "p1")
	t.Logf("proxy: first full table applied after %v, peak RSS %.1f MiB; full table %s", time.Since(start),
		float64(p.peakRSS(t))/(1<<20), metric(t, rs, "switchyard_routeserver_sent_bytes_total"))

	statusFigures(t, p, deps[deployments/2].ID)

	const changes = 100
	var lat []time.Duration
	sentBefore := metricValue(t, rs, "switchyard_routeserver_sent_bytes_total")
	rsCPU, pCPU := rs.cpu(t), p.cpu(t)
	for i := 0; i < changes; i++ {
		id := deps[(i*97)%deployments].ID
		w := 100 - i%2
		written := time.Now()
		zxid, err := store.SetServing(context.Background(), id, map[string]int{"blue": w})
		if err != nil {
			t.Fatal(err)
		}
		for proxyVersion(t, p) < uint64(zxid) {
			if time.Since(written) > time.Minute {
				t.Fatalf("change %d (zxid %d) not applied within a minute", i, zxid)
			}
			time.Sleep(200 * time.Microsecond)
		}
		lat = append(lat, time.Since(written))
	}
	sent := metricValue(t, rs, "switchyard_routeserver_sent_bytes_total") - sentBefore
	rsCPU, pCPU = rs.cpu(t)-rsCPU, p.cpu(t)-pCPU
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	t.Logf("%d single-deployment changes: ZooKeeper write to proxy applied p50 %v, p99 %v, max %v; %.0f bytes sent per change to one proxy",
		changes, lat[changes/2], lat[changes*99/100], lat[changes-1], sent/changes)
	t.Logf("CPU per change (with the /status polls that time it): route server %v, proxy %v", rsCPU/changes, pCPU/changes)
	t.Logf("route server peak RSS after the changes %.1f MiB; proxy %.1f MiB", float64(rs.peakRSS(t))/(1<<20), float64(p.peakRSS(t))/(1<<20))
	t.Logf("route server RSS after load %.1f MiB, after %d changes %.1f MiB", float64(rsLoaded)/(1<<20), changes, float64(rs.rss(t))/(1<<20))
}

// statusFigures times the proxy's admin /status: the default document,
// one deployment, and a page.
func statusFigures(t *testing.T, p *proc, id string) {
	t.Helper()
	for _, q := range []string{"", "?deployment=" + id, "?after=" + id + "&limit=100"} {
		start := time.Now()
		code, body := httpGet("http://" + p.admin + "/status" + q)
		if code != 200 {
			t.Fatalf("/status%s: %d %.200s", q, code, body)
		}
		t.Logf("proxy /status%s: %d bytes in %v", q, len(body), time.Since(start))
	}
}

// proxyVersion is the table version the proxy's admin status reports.
func proxyVersion(t *testing.T, p *proc) uint64 {
	_, body := httpGet("http://" + p.admin + "/status")
	var st struct {
		Table *struct {
			Version uint64 `json:"version"`
		} `json:"table"`
	}
	if json.Unmarshal([]byte(body), &st) != nil || st.Table == nil {
		return 0
	}
	return st.Table.Version
}

func metric(t *testing.T, p *proc, name string) string {
	return strconv.FormatFloat(metricValue(t, p, name), 'f', 0, 64) + " bytes"
}

func metricValue(t *testing.T, p *proc, name string) float64 {
	t.Helper()
	_, body := httpGet("http://" + p.addr + "/metrics")
	for _, line := range strings.Split(body, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == name {
			v, _ := strconv.ParseFloat(f[1], 64)
			return v
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestCutoverFigures measures how long a cutover takes to reach a fleet:
// from the ZooKeeper write of `serving` to every one of 10 proxy
// processes having applied it, over 60 cutovers back and forth, with two
// route servers. A benchmark: it runs only with SWITCHYARD_BENCH=1.
//
//	SWITCHYARD_BENCH=1 go test ./internal/e2e/ -run CutoverFigures -v
func TestCutoverFigures(t *testing.T) {
	if os.Getenv("SWITCHYARD_BENCH") != "1" {
		t.Skip("benchmark: set SWITCHYARD_BENCH=1")
	}
	const proxies, cutovers = 10, 60
	rp := newRoutePath(t, 1)
	var b strings.Builder
	fmt.Fprintf(&b, "domain: example.test\ndeployments:\n  - id: %s\n    kind: es\n    serving: {blue: 100, green: 0}\n    instances:\n", depID)
	for i, gen := range []string{"blue", "blue", "green", "green"} {
		fmt.Fprintf(&b, "      - {id: i-%d, addr: \"127.0.0.1:%d\", zone: zone-%c, generation: %s}\n", i, 20000+i, 'a'+i%2, gen)
	}
	writeFileAtomic(t, rp.routes, b.String())
	if out, err := exec.Command(yardctl, "--zk", rp.zkFlag(), "apply", "-f", rp.routes).CombinedOutput(); err != nil {
		t.Fatalf("yardctl apply: %v\n%s", err, out)
	}
	rp.startRouteServer("rs1")
	rp.startRouteServer("rs2")
	var ps []*proc
	for i := 0; i < proxies; i++ {
		ps = append(ps, startProxyArgs(t, "--route-servers", rp.rsURLs(), "--proxy-id", fmt.Sprintf("p%d", i+1)))
	}
	conn := zktest.Connect(t, rp.zk.Servers(), 10*time.Second)
	store, err := zkstore.New(conn, zkstore.DefaultRoot)
	if err != nil {
		t.Fatal(err)
	}
	var all, first []time.Duration
	for i := 0; i < cutovers; i++ {
		serving := map[string]int{"blue": 100, "green": 0}
		if i%2 == 0 {
			serving = map[string]int{"blue": 0, "green": 100}
		}
		written := time.Now()
		zxid, err := store.SetServing(context.Background(), depID, serving)
		if err != nil {
			t.Fatal(err)
		}
		took := make([]time.Duration, proxies)
		var wg sync.WaitGroup
		for j, p := range ps {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for proxyVersion(t, p) < uint64(zxid) {
					if time.Since(written) > 10*time.Second {
						t.Errorf("cutover %d not applied by p%d within 10s", i, j+1)
						return
					}
					time.Sleep(500 * time.Microsecond)
				}
				took[j] = time.Since(written)
			}()
		}
		wg.Wait()
		slices.Sort(took)
		first, all = append(first, took[0]), append(all, took[proxies-1])
		time.Sleep(50 * time.Millisecond)
	}
	slices.Sort(all)
	slices.Sort(first)
	t.Logf("%d cutovers, %d proxies, 2 route servers: ZooKeeper write to every proxy applied p50 %v, p99 %v, max %v (first proxy p50 %v)",
		cutovers, proxies, all[cutovers/2], all[cutovers*99/100], all[cutovers-1], first[cutovers/2])
}
