package placement

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The benchmark's fleet and workload (docs/placement.md, "Benchmark").
const (
	benchAllocators  = 1000
	benchDeployments = 10000
)

var benchZones = []string{"zone-a", "zone-b", "zone-c"}

// benchMix is the deployments' instance sizes, in GiB, with their share
// in percent.
var benchMix = []struct{ gib, percent int64 }{
	{1, 50}, {2, 20}, {4, 15}, {8, 10}, {16, 4}, {32, 1},
}

// benchFleet is n live allocators of capacity bytes each, round-robin over
// the three zones, and the index of their IDs.
func benchFleet(n int, capacity int64) (*Snapshot, map[string]int) {
	s := &Snapshot{Allocators: make([]Allocator, n)}
	index := make(map[string]int, n)
	for i := range s.Allocators {
		id := fmt.Sprintf("alloc-%04d", i)
		s.Allocators[i] = Allocator{ID: id, Zone: benchZones[i%len(benchZones)], Capacity: capacity, Live: true}
		index[id] = i
	}
	return s, index
}

// benchRequests is the workload: n deployments, sizes drawn from benchMix,
// each 2 or 3 zones × 1 instance; the same for every strategy.
func benchRequests(n int) []Request {
	rng := rand.New(rand.NewPCG(42, 0))
	reqs := make([]Request, n)
	for i := range reqs {
		p := rng.Int64N(100)
		var gib int64
		for _, m := range benchMix {
			if p < m.percent {
				gib = m.gib
				break
			}
			p -= m.percent
		}
		reqs[i] = Request{Deployment: fmt.Sprintf("dep-%05d", i), Zones: 2 + rng.IntN(2), PerZone: 1, MemoryBytes: gib * GiB}
	}
	return reqs
}

// BenchmarkPlace times one Place call (a deployment of 2 or 3 instances)
// on the benchmark's fleet of 64 GiB allocators, half full.
//
//	go test -run '^$' -bench Place -benchmem ./controlplane/placement/
func BenchmarkPlace(b *testing.B) {
	reqs := benchRequests(benchDeployments)
	for _, st := range strategies {
		b.Run(st.String(), func(b *testing.B) {
			s, index := benchFleet(benchAllocators, 64*GiB)
			for _, r := range reqs[:benchDeployments/2] {
				if ps, err := PlaceWith(s, r, Options{Strategy: st}); err == nil {
					assign(s, index, r, ps)
				}
			}
			rest := reqs[benchDeployments/2:]
			instances := 0
			i := 0
			for b.Loop() {
				r := rest[i%len(rest)]
				ps, err := PlaceWith(s, r, Options{Strategy: st, Seed: int64(i)})
				if err != nil {
					b.Fatal(err)
				}
				instances += len(ps)
				i++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(instances), "ns/instance")
		})
	}
}

// TestPlacementFigures places the benchmark's 10 000 deployments one after
// another on 1 000 allocators, for each strategy, and reports the time per
// instance placed and the hosts in use against the lower bound. It is a
// benchmark, not a test: it runs only with SWITCHYARD_BENCH=1.
//
//	SWITCHYARD_BENCH=1 go test ./controlplane/placement/ -run PlacementFigures -v -count=1
//
// SWITCHYARD_BENCH_CAPACITY_GIB sets the allocators' capacity (default
// 128 GiB, where the whole workload fits; at 64 GiB it does not).
func TestPlacementFigures(t *testing.T) {
	if os.Getenv("SWITCHYARD_BENCH") != "1" {
		t.Skip("benchmark: set SWITCHYARD_BENCH=1")
	}
	capacity := int64(128) * GiB
	if n, err := strconv.ParseInt(os.Getenv("SWITCHYARD_BENCH_CAPACITY_GIB"), 10, 64); err == nil {
		capacity = n * GiB
	}
	reqs := benchRequests(benchDeployments)
	var demand int64
	for _, r := range reqs {
		demand += r.MemoryBytes * int64(r.Zones*r.PerZone)
	}
	t.Logf("%d allocators × %s in %d zones; %d deployments, %s asked for (%.0f%% of capacity)",
		benchAllocators, formatBytes(capacity), len(benchZones), len(reqs), formatBytes(demand),
		100*float64(demand)/float64(capacity*benchAllocators))
	var lines []string
	for _, st := range strategies {
		f := fill(t, st, capacity, reqs)
		lines = append(lines, f.String())
		if st == BestFit && f.refused == 0 {
			if f.p99 >= time.Millisecond {
				t.Errorf("best fit: p99 %v per instance; goal under 1 ms", f.p99)
			}
			if ratio := float64(f.hosts) / float64(f.bound); ratio > 1.10 {
				t.Errorf("best fit: %d hosts in use, %.3f× the lower bound %d; goal at most 1.10×", f.hosts, ratio, f.bound)
			}
		}
	}
	t.Logf("\n| strategy | placed | refused | first refused | p50 | p99 | max | hosts in use | lower bound | ratio |\n|---|---|---|---|---|---|---|---|---|---|\n%s",
		strings.Join(lines, "\n"))
}

// figures are one strategy's results.
type figures struct {
	strategy              Strategy
	placed, refused       int
	firstRefused          int     // deployment number, 0 for none
	fullAtFirst           float64 // fraction of capacity used then
	p50, p99, max         time.Duration
	hosts, bound          int
	perZoneHosts, perZone []int
}

func (f figures) String() string {
	first := "none"
	if f.firstRefused > 0 {
		first = fmt.Sprintf("#%d (%.1f%% used)", f.firstRefused, 100*f.fullAtFirst)
	}
	return fmt.Sprintf("| %v | %d | %d | %s | %v | %v | %v | %d (%v) | %d (%v) | %.3f |",
		f.strategy, f.placed, f.refused, first, f.p50, f.p99, f.max,
		f.hosts, f.perZoneHosts, f.bound, f.perZone, float64(f.hosts)/float64(f.bound))
}

// fill places reqs one after another on a fresh fleet.
func fill(t *testing.T, st Strategy, capacity int64, reqs []Request) figures {
	s, index := benchFleet(benchAllocators, capacity)
	f := figures{strategy: st}
	perInstance := make([]time.Duration, 0, 3*len(reqs))
	var used int64
	for i, r := range reqs {
		start := time.Now()
		ps, err := PlaceWith(s, r, Options{Strategy: st, Seed: 1})
		took := time.Since(start)
		if errors.Is(err, ErrNoRoom) {
			if f.refused == 0 {
				f.firstRefused = i + 1
				f.fullAtFirst = float64(used) / float64(capacity*benchAllocators)
			}
			f.refused++
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for range ps {
			perInstance = append(perInstance, took/time.Duration(len(ps)))
		}
		assign(s, index, r, ps)
		used += r.MemoryBytes * int64(len(ps))
		f.placed++
	}
	slices.Sort(perInstance)
	f.p50 = perInstance[len(perInstance)/2].Round(100 * time.Nanosecond)
	f.p99 = perInstance[len(perInstance)*99/100].Round(100 * time.Nanosecond)
	f.max = perInstance[len(perInstance)-1].Round(time.Microsecond)

	// Hosts in use against ⌈Σ used in the zone / capacity⌉, zone by zone.
	for _, z := range benchZones {
		hosts := 0
		var sum int64
		for _, a := range s.Allocators {
			if a.Zone != z {
				continue
			}
			if a.Used > a.Capacity {
				t.Fatalf("%s overcommitted: %d of %d", a.ID, a.Used, a.Capacity)
			}
			if a.Used > 0 {
				hosts++
			}
			sum += a.Used
		}
		bound := int((sum + capacity - 1) / capacity)
		f.hosts += hosts
		f.bound += bound
		f.perZoneHosts = append(f.perZoneHosts, hosts)
		f.perZone = append(f.perZone, bound)
	}
	return f
}
