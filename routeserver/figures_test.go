package routeserver

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/cowmap"
	"github.com/switchyard/switchyard/routes"
	"github.com/switchyard/switchyard/routes/wire"
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
		d := &routes.DeploymentSpec{ID: fmt.Sprintf("%016x", i+1), Kind: "es", Serving: map[string]int{"blue": 100}}
		for j := 0; j < 3; j++ {
			d.Instances = append(d.Instances, &routes.Instance{ID: fmt.Sprintf("i-%d", j), Addr: fmt.Sprintf("127.0.0.1:%d", 20000+j),
				Zone: fmt.Sprintf("zone-%c", 'a'+j), Generation: "blue"})
		}
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
