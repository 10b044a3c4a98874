package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testing/testutil"
	"github.com/switchyard/switchyard/internal/testing/zktest"
	"github.com/switchyard/switchyard/routes"
	"github.com/switchyard/switchyard/routes/routeclient"
	"github.com/switchyard/switchyard/routes/zkstore"
)

// TestRoutePathFigures measures the route path at scale: 10 000
// deployments × 3 instances in ZooKeeper (SWITCHYARD_BENCH_DEPLOYMENTS
// sets another size; from about 20 000 the test ZooKeeper needs a larger
// heap, zktest.HeapEnv), one route server and 10 proxies
// (SWITCHYARD_BENCH_PROXIES), each with a disk copy. It reports every
// figure of the scale table in docs/benchmarks.md: the route server's
// first table, memory and CPU per change, the proxies' first table,
// memory, CPU per change and restart from disk, the time from a
// ZooKeeper write to every proxy having applied it, the bytes sent per
// change, /status and ZooKeeper's watch count, and the CPU each proxy
// spent to have its first table. SWITCHYARD_BENCH_PROXY_GOMEMLIMIT
// gives the proxies (only) that GOMEMLIMIT. It is a benchmark, not a
// test: it runs only with SWITCHYARD_BENCH=1 and reports with t.Logf.
//
//	SWITCHYARD_BENCH=1 go test ./internal/e2e/ -run 'RoutePathFigures$' -v -timeout 30m
//	SWITCHYARD_BENCH=1 SWITCHYARD_BENCH_DEPLOYMENTS=100000 SWITCHYARD_ZK_HEAP=3g \
//	    go test ./internal/e2e/ -run 'RoutePathFigures$' -v -timeout 60m
func TestRoutePathFigures(t *testing.T) {
	if os.Getenv("SWITCHYARD_BENCH") != "1" {
		t.Skip("benchmark: set SWITCHYARD_BENCH=1")
	}
	deployments, nProxies := envInt("SWITCHYARD_BENCH_DEPLOYMENTS", 10000), envInt("SWITCHYARD_BENCH_PROXIES", 10)
	rp, store, deps := scaleStore(t, deployments)

	start := time.Now()
	rs := rp.startRouteServer("rs1")
	t.Logf("route server: start to first complete table %v, peak RSS %.1f MiB", time.Since(start), mib(rs.peakRSS(t)))
	for _, line := range strings.Split(rs.stderr.String(), "\n") {
		if strings.Contains(line, "read the whole layout") || strings.Contains(line, "table published") || strings.Contains(line, "listening") {
			t.Logf("route server: %s", line)
		}
	}
	rsLoaded := rs.rss(t)
	t.Logf("ZooKeeper watches with 1 route server (proxies make none): %s", zkMetric(t, rp, "zk_watch_count"))

	ps, healthy := launchProxies(t, rp, nProxies)
	t.Logf("%d proxies: start to all having the table %v; full table %.0f bytes each", nProxies, healthy,
		metricValue(t, rs, "switchyard_routeserver_sent_bytes_total")/float64(nProxies))
	t.Logf("proxy CPU (user and system) from start to the table on disk: %.0f–%.0f ms",
		ms(minOf(ps, func(p *proc, t *testing.T) int64 { return int64(p.cpu(t)) }, t)),
		ms(maxOf(ps, func(p *proc, t *testing.T) int64 { return int64(p.cpu(t)) }, t)))
	t.Logf("proxy RSS with the table: %.1f–%.1f MiB (peak up to %.1f MiB)", mib(minOf(ps, (*proc).rss, t)), mib(maxOf(ps, (*proc).rss, t)),
		mib(maxOf(ps, (*proc).peakRSS, t)))

	statusFigures(t, ps[0], deps[deployments/2].ID)

	const changes = 100
	var lat []time.Duration
	sentBefore := metricValue(t, rs, "switchyard_routeserver_sent_bytes_total")
	rsCPU, pCPU := rs.cpu(t), sumOf(ps, (*proc).cpu, t)
	logs := make([]*appliedLog, len(ps))
	for i, p := range ps {
		logs[i] = &appliedLog{p: p}
	}
	profiled := profile(t, ps[0])
	var lastZxid uint64
	for i := 0; i < changes; i++ {
		id := deps[(i*97)%deployments].ID
		written := time.Now()
		zxid, err := store.SetServing(context.Background(), id, map[string]int{"blue": 99 - i/deployments%2})
		if err != nil {
			t.Fatal(err)
		}
		// Each pass over the deployments writes a weight that differs
		// from the one before it (100, 99, 98, 99, …): every write is a
		// change, with a zxid of its own.
		if uint64(zxid) <= lastZxid {
			t.Fatalf("write %d changed nothing (zxid %d)", i, zxid)
		}
		lastZxid = uint64(zxid)
		var last time.Time
		for _, l := range logs {
			at := l.waitFor(t, uint64(zxid), time.Minute)
			if at.After(last) {
				last = at
			}
		}
		lat = append(lat, last.Sub(written))
	}
	sent := metricValue(t, rs, "switchyard_routeserver_sent_bytes_total") - sentBefore
	rsCPU, pCPU = rs.cpu(t)-rsCPU, sumOf(ps, (*proc).cpu, t)-pCPU
	profiled()
	slices.Sort(lat)
	t.Logf("%d single-deployment changes: ZooKeeper write to all %d proxies applied p50 %v, p99 %v, max %v; %.0f bytes sent per change per proxy",
		changes, nProxies, lat[changes/2], lat[changes*99/100], lat[changes-1], sent/changes/float64(nProxies))
	t.Logf("CPU per change: route server %v, each proxy %v", rsCPU/changes, pCPU/changes/time.Duration(nProxies))
	t.Logf("RSS after load → after %d changes: route server %.1f → %.1f MiB; proxies up to %.1f MiB", changes,
		mib(rsLoaded), mib(rs.rss(t)), mib(maxOf(ps, (*proc).rss, t)))

	// Restart from disk: a proxy killed, started again with no route
	// server to answer, serves its disk copy.
	p := ps[0]
	p.signal(t, syscall.SIGKILL)
	p.wait(t, 10*time.Second)
	start = time.Now()
	again := launchProxy(t, "--route-servers", "http://127.0.0.1:1", "--proxy-id", "p1", "--cache-dir", p.cacheDir)
	again.waitHealthy(t, 5*time.Minute)
	took := logField(t, again, "serving the snapshot from disk", "took")
	t.Logf("proxy restart from disk: read, apply and build %s; healthy %v after start (which waits up to 3 s for a route server)",
		took, time.Since(start))
}

// profile, when SWITCHYARD_BENCH_PROFILE names a directory, takes a 10 s
// CPU profile of the proxy from now, into proxy.pprof there; the
// returned function waits for it.
func profile(t *testing.T, p *proc) (wait func()) {
	dir := os.Getenv("SWITCHYARD_BENCH_PROFILE")
	if dir == "" {
		return func() {}
	}
	var wg sync.WaitGroup
	for name, url := range map[string]string{"proxy": "http://" + p.admin} {
		wg.Go(func() {
			resp, err := http.Get(url + "/debug/pprof/profile?seconds=10")
			if err != nil {
				t.Logf("profile of the %s: %v", name, err)
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if err := os.WriteFile(filepath.Join(dir, name+".pprof"), b, 0o644); err != nil {
				t.Logf("profile of the %s: %v", name, err)
			}
		})
	}
	return wg.Wait
}

// scaleStore starts ZooKeeper and writes n deployments × 3 instances,
// each deployment with instances of its own.
func scaleStore(t *testing.T, n int) (*routePath, *zkstore.Store, []*routes.DeploymentSpec) {
	t.Helper()
	zk := zktest.Start(t)
	conn := zktest.Connect(t, zk.Servers(), 10*time.Second)
	store, err := zkstore.New(conn, zkstore.DefaultRoot)
	if err != nil {
		t.Fatal(err)
	}
	deps := make([]*routes.DeploymentSpec, n)
	for i := range deps {
		d := &routes.DeploymentSpec{ID: fmt.Sprintf("%016x", i+1), Kind: "es", Serving: map[string]int{"blue": 100}}
		for j := 0; j < 3; j++ {
			// Each deployment its own instances, as in a region: the
			// addresses are never dialled (the figures send no traffic).
			d.Instances = append(d.Instances, &routes.Instance{ID: fmt.Sprintf("i-%d", j),
				Addr: fmt.Sprintf("10.%d.%d.%d:9200", 16*j+i/62500, i/250%250, i%250+1), Zone: fmt.Sprintf("zone-%c", 'a'+j), Generation: "blue"})
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
	t.Logf("wrote %d deployments × 3 instances to ZooKeeper in %v", n, time.Since(start))
	// The route server reads the whole table before it serves: allow a
	// minute per 10 000 deployments.
	rp := &routePath{t: t, zk: zk, startWait: time.Duration(n/10000+1) * time.Minute}
	if h := os.Getenv("SWITCHYARD_BENCH_TABLE_HASH"); h != "" {
		rp.rsArgs = []string{"--table-hash", h} // sha256 or sum
	}
	return rp, store, deps
}

// launchProxies starts n proxies following rp's route servers, each with
// its own disk copy, waits until all are healthy (have a table) and
// returns how long that took; then it waits for their first disk writes.
func launchProxies(t *testing.T, rp *routePath, n int) ([]*proc, time.Duration) {
	t.Helper()
	start := time.Now()
	ps := make([]*proc, n)
	for i := range ps {
		dir := t.TempDir()
		ps[i] = launchProxy(t, "--route-servers", rp.rsURLs(), "--proxy-id", fmt.Sprint("p", i+1), "--cache-dir", dir)
		ps[i].cacheDir = dir
	}
	for _, p := range ps {
		p.waitHealthy(t, rp.startWait)
	}
	healthy := time.Since(start)
	// The first table is written to disk at once: let those writes end
	// before anything is measured.
	for _, p := range ps {
		testutil.EventuallyErr(t, 2*time.Minute, "the proxy's disk copy", func() error {
			_, err := os.Stat(filepath.Join(p.cacheDir, routeclient.SnapshotFile))
			if err == nil {
				return nil
			}
			select {
			case err := <-p.done:
				t.Fatalf("proxy %s exited: %v\n%s", p.addr, err, p.stderr.String())
			default:
			}
			return fmt.Errorf("%v; proxy log:\n%s", err, p.stderr.String())
		})
	}
	return ps, healthy
}

// appliedLog reads the tables a proxy applied from its log ("route table
// applied", with the time and version).
type appliedLog struct {
	p       *proc
	off     int
	applied []applied // in log order
}

type applied struct {
	version uint64
	at      time.Time
}

// read takes in the log lines written since the last read.
func (l *appliedLog) read() {
	s := l.p.stderr.String()
	rest := s[l.off:]
	end := strings.LastIndexByte(rest, '\n')
	if end < 0 {
		return
	}
	l.off += end + 1
	for _, line := range strings.Split(rest[:end], "\n") {
		var e struct {
			Time    time.Time `json:"time"`
			Msg     string    `json:"msg"`
			Version uint64    `json:"version"`
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.Msg == "route table applied" {
			l.applied = append(l.applied, applied{e.Version, e.Time})
		}
	}
}

// firstAt returns when the proxy first applied a table of version v or
// later, and whether it has.
func (l *appliedLog) firstAt(v uint64) (time.Time, bool) {
	l.read()
	for _, a := range l.applied {
		if a.version >= v {
			return a.at, true
		}
	}
	return time.Time{}, false
}

// waitFor waits until the proxy has applied version v or later and
// returns when it did, by its log.
func (l *appliedLog) waitFor(t *testing.T, v uint64, within time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if at, ok := l.firstAt(v); ok {
			return at
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxy %s did not apply version %d within %v", l.p.addr, v, within)
		}
		time.Sleep(time.Millisecond)
	}
}

// logField waits for a log line whose message holds msg and returns its
// field.
func logField(t *testing.T, p *proc, msg, field string) string {
	t.Helper()
	var v string
	testutil.EventuallyErr(t, 10*time.Second, "a log line "+msg, func() error {
		for _, line := range strings.Split(p.stderr.String(), "\n") {
			var e map[string]any
			if json.Unmarshal([]byte(line), &e) == nil && strings.Contains(fmt.Sprint(e["msg"]), msg) {
				v = fmt.Sprint(e[field])
				return nil
			}
		}
		return fmt.Errorf("no %q in the log", msg)
	})
	return v
}

// zkMetric is one value of ZooKeeper's mntr.
func zkMetric(t *testing.T, rp *routePath, name string) string {
	t.Helper()
	out, err := zktest.FourLetterWord(rp.zk.Server(0), "mntr", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == name {
			return f[1]
		}
	}
	return "?"
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func maxOf(ps []*proc, f func(*proc, *testing.T) int64, t *testing.T) int64 {
	var m int64
	for _, p := range ps {
		m = max(m, f(p, t))
	}
	return m
}

func minOf(ps []*proc, f func(*proc, *testing.T) int64, t *testing.T) int64 {
	m := f(ps[0], t)
	for _, p := range ps[1:] {
		m = min(m, f(p, t))
	}
	return m
}

func sumOf(ps []*proc, f func(*proc, *testing.T) time.Duration, t *testing.T) time.Duration {
	var s time.Duration
	for _, p := range ps {
		s += f(p, t)
	}
	return s
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

// ms is n nanoseconds in milliseconds.
func ms(n int64) float64 { return float64(n) / 1e6 }
