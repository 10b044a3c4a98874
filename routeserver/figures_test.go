package routeserver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/cowmap"
	"github.com/switchyard/switchyard/internal/testing/testutil"
	"github.com/switchyard/switchyard/internal/testing/zktest"
	"github.com/switchyard/switchyard/routes"
	"github.com/switchyard/switchyard/routes/wire"
	"github.com/switchyard/switchyard/routes/zkstore"
)

// TestHistoryFigures measures the route server's memory and CPU per
// change in process, at the scale: a table of N deployments × 3
// instances (default 100 000; SWITCHYARD_BENCH_DEPLOYMENTS sets another),
// then 100 single-deployment changes, each handed as the store watcher
// hands them: a new version of the persistent set of deployments, with
// the IDs that changed from the one before. It reports the live
// heap (after a GC) after the load and after the changes, and the time of
// each Update. A benchmark, not a test: it runs only with
// SWITCHYARD_BENCH=1; SWITCHYARD_BENCH_TABLE_HASH=sum hashes the tables
// with wire.HashSum.
//
//	SWITCHYARD_BENCH=1 go test ./routeserver/ -run HistoryFigures -v
func TestHistoryFigures(t *testing.T) {
	if os.Getenv("SWITCHYARD_BENCH") != "1" {
		t.Skip("benchmark: set SWITCHYARD_BENCH=1")
	}
	n := 100000
	if v, err := strconv.Atoi(os.Getenv("SWITCHYARD_BENCH_DEPLOYMENTS")); err == nil {
		n = v
	}
	cfg := Config{Name: "rs", Logger: quiet}
	if h := os.Getenv("SWITCHYARD_BENCH_TABLE_HASH"); h != "" {
		scheme, err := wire.ParseHashScheme(h)
		if err != nil {
			t.Fatal(err)
		}
		cfg.TableHash = scheme
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ed := cowmap.New[string, *routes.DeploymentSpec](cowmap.String).Edit()
	ids := make([]string, n)
	for i := range ids {
		d := benchDeployment(i)
		ed.Set(d.ID, d)
		ids[i] = d.ID
	}
	deps := ed.Done()
	start := time.Now()
	s.Update(Input{Version: 1, Domain: "example.test", Synced: true, Set: deps})
	t.Logf("%d deployments: first table published in %v; live heap %.1f MiB", n, time.Since(start), liveHeapMiB())

	const changes = 100
	var took time.Duration
	for i := 0; i < changes; i++ {
		id := ids[(i*97)%n]
		old, _ := deps.Get(id)
		c := *old
		c.Serving = map[string]int{"blue": 100 - i%2 - 1}
		ed := deps.Edit()
		ed.Set(id, &c)
		base := deps
		deps = ed.Done()
		start := time.Now()
		s.Update(Input{Version: uint64(i + 2), Domain: "example.test", Synced: true, Set: deps, Base: base, Changed: []string{id}})
		took += time.Since(start)
	}
	if st := s.Status(); st.Version != changes+1 {
		t.Fatalf("version %d after the changes; want %d", st.Version, changes+1)
	}
	t.Logf("%d single-deployment changes: Update %v each; live heap %.1f MiB", changes, took/changes, liveHeapMiB())
	runtime.KeepAlive(s)
}

// liveHeapMiB is the heap in use after a full collection, in MiB.
func liveHeapMiB() float64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapAlloc) / (1 << 20)
}

// TestStoreFigures measures the route server as the route-server command
// runs it, in process: a real ZooKeeper holding N deployments × 3
// instances (default 100 000; SWITCHYARD_BENCH_DEPLOYMENTS sets another;
// the test ZooKeeper needs a larger heap from about 20 000,
// SWITCHYARD_ZK_HEAP), a zkstore.Watcher that hands its states to a
// Server, and 100 single-deployment writes. It reports the time from the
// watcher's start to the server's first table, the process's CPU per
// change (the writes' own ZooKeeper client included), the lag from a
// write to the server's table, and the RSS after the load and after the
// changes. SWITCHYARD_BENCH_MAPS=1 hands the states as maps (the
// Snapshot's Deployments) instead of Deps and Changed.
//
//	SWITCHYARD_BENCH=1 SWITCHYARD_BENCH_TABLE_HASH=sum SWITCHYARD_ZK_HEAP=3g \
//	    go test ./routeserver/ -run StoreFigures -v -timeout 30m
func TestStoreFigures(t *testing.T) {
	if os.Getenv("SWITCHYARD_BENCH") != "1" {
		t.Skip("benchmark: set SWITCHYARD_BENCH=1")
	}
	n := 100000
	if v, err := strconv.Atoi(os.Getenv("SWITCHYARD_BENCH_DEPLOYMENTS")); err == nil {
		n = v
	}
	maps := os.Getenv("SWITCHYARD_BENCH_MAPS") == "1"
	cfg := Config{Name: "rs", Logger: quiet}
	if h := os.Getenv("SWITCHYARD_BENCH_TABLE_HASH"); h != "" {
		scheme, err := wire.ParseHashScheme(h)
		if err != nil {
			t.Fatal(err)
		}
		cfg.TableHash = scheme
	}
	e := zktest.Start(t)
	conn := zktest.Connect(t, e.Servers(), 10*time.Second)
	store, err := zkstore.New(conn, zkstore.DefaultRoot)
	if err != nil {
		t.Fatal(err)
	}
	deps := make([]*routes.DeploymentSpec, n)
	for i := range deps {
		deps[i] = benchDeployment(i)
	}
	tbl, err := routes.NewTable("example.test", nil, deps)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Apply(context.Background(), tbl, zkstore.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	tbl, deps = nil, nil
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &zkstore.Watcher{Servers: e.Servers(), SessionTimeout: 10 * time.Second, Logger: quiet, DepsOnly: !maps}
	start := time.Now()
	go w.Run(ctx, func(st zkstore.State) {
		in := Input{Version: uint64(max(st.Version, 0)), Domain: st.Domain, Zones: st.Zones,
			Invalid: st.Invalid, Stale: st.Stale, Synced: st.Synced}
		if maps {
			in.Deployments = st.Deployments
		} else {
			in.Set, in.Base, in.Changed = st.Deps, st.Base, st.Changed
		}
		s.Update(in)
	})
	testutil.Eventually(t, 10*time.Minute, "the first table", func() bool { return s.Status().Deployments == n })
	t.Logf("%d deployments: watcher start to the server's first table %v; RSS %.1f MiB, live heap %.1f MiB",
		n, time.Since(start), rssMiB(t), liveHeapMiB())
	loaded := rssMiB(t)
	if dir := os.Getenv("SWITCHYARD_BENCH_PROFILE"); dir != "" {
		writeHeapProfile(t, filepath.Join(dir, "route-server-heap.pprof"))
	}

	const changes = 100
	var lag []time.Duration
	cpu := processCPU()
	for i := 0; i < changes; i++ {
		id := fmt.Sprintf("%016x", (i*97)%n+1)
		written := time.Now()
		zxid, err := store.SetServing(context.Background(), id, map[string]int{"blue": 100 - i%2})
		if err != nil {
			t.Fatal(err)
		}
		for {
			s.mu.Lock()
			v, changed := s.snap.Version, s.changed
			s.mu.Unlock()
			if v >= uint64(zxid) {
				break
			}
			select {
			case <-changed:
			case <-time.After(time.Minute):
				t.Fatalf("change %d (zxid %d) not in the server's table within a minute", i, zxid)
			}
		}
		lag = append(lag, time.Since(written))
	}
	cpu = processCPU() - cpu
	slices.Sort(lag)
	t.Logf("%d single-deployment changes: process CPU %v per change; write to the server's table p50 %v, p99 %v",
		changes, cpu/changes, lag[changes/2], lag[changes*99/100])
	t.Logf("RSS after the load %.1f MiB, after %d changes %.1f MiB; live heap %.1f MiB", loaded, changes, rssMiB(t), liveHeapMiB())
}

// writeHeapProfile writes the heap's profile, after a collection, to p.
func writeHeapProfile(t *testing.T, p string) {
	runtime.GC()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		t.Fatal(err)
	}
	t.Logf("heap profile: %s", p)
}

// benchDeployment is the figures' deployment i: three instances in
// three zones.
func benchDeployment(i int) *routes.DeploymentSpec {
	d := &routes.DeploymentSpec{ID: fmt.Sprintf("%016x", i+1), Kind: "es", Serving: map[string]int{"blue": 100}}
	for j := 0; j < 3; j++ {
		d.Instances = append(d.Instances, &routes.Instance{ID: fmt.Sprintf("i-%d", j), Addr: fmt.Sprintf("127.0.0.1:%d", 20000+j),
			Zone: fmt.Sprintf("zone-%c", 'a'+j), Generation: "blue"})
	}
	return d
}

// processCPU is the CPU time the process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rssMiB is the process's resident set, in MiB.
func rssMiB(t *testing.T) float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}
