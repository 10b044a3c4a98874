package placement

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

// assign records placements in the snapshot as the constructor's writes
// would: each allocator's Used grows by the instance's memory and it
// holds one more instance of the deployment. index maps IDs to positions.
func assign(s *Snapshot, index map[string]int, r Request, ps []Placement) {
	for _, p := range ps {
		a := &s.Allocators[index[p.Allocator]]
		a.Used += r.MemoryBytes
		if a.Deployments == nil {
			a.Deployments = map[string]int{}
		}
		a.Deployments[r.Deployment]++
	}
}

// TestFillGrowingSnapshot places deployments one after another, adding
// allocators whenever one is refused, until the snapshot is full; then
// every live allocator must be exactly full (sizes are whole GiB), and
// each allocator's Used must be the sum of what was placed on it.
func TestFillGrowingSnapshot(t *testing.T) {
	const maxAllocators = 60
	zones := []string{"zone-a", "zone-b", "zone-c"}
	for _, st := range strategies {
		t.Run(st.String(), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, uint64(st)))
			s := &Snapshot{}
			index := map[string]int{}
			grow := func() {
				for _, z := range zones {
					id := fmt.Sprintf("%s-%d", z, len(s.Allocators))
					a := Allocator{ID: id, Zone: z, Capacity: 16 * GiB, Live: true}
					switch len(s.Allocators) {
					case 4:
						a.Live = false
					case 7:
						a.Maintenance = true
					}
					index[id] = len(s.Allocators)
					s.Allocators = append(s.Allocators, a)
				}
			}
			grow()
			onHost := map[string]int64{}  // allocator → bytes placed on it
			instances := map[string]int{} // deployment → instances placed
			var total int64               // bytes placed
			refusedLast := 0              // refusals in a row, once grown to the end
			for d := 0; refusedLast < 50; d++ {
				r := Request{
					Deployment:  fmt.Sprintf("d-%d", d),
					Zones:       1 + rng.IntN(3),
					PerZone:     1 + rng.IntN(2),
					MemoryBytes: []int64{1, 1, 2, 4, 8}[rng.IntN(5)] * GiB,
				}
				if refusedLast > 30 {
					r.Zones, r.PerZone, r.MemoryBytes = 1, 1, GiB // the last crumbs
				}
				ps, err := PlaceWith(s, r, Options{Strategy: st, Seed: int64(d)})
				if errors.Is(err, ErrNoRoom) {
					if len(s.Allocators) < maxAllocators {
						grow()
					} else {
						refusedLast++
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				if refusedLast <= 30 {
					refusedLast = 0
				} // else the crumbs go on until one is refused 19 times more
				assign(s, index, r, ps)
				for _, p := range ps {
					onHost[p.Allocator] += r.MemoryBytes
				}
				instances[r.Deployment] += len(ps)
				total += r.MemoryBytes * int64(len(ps))
			}

			var used int64
			for _, a := range s.Allocators {
				used += a.Used
				if a.Used != onHost[a.ID] {
					t.Errorf("%s: used %d; placed %d", a.ID, a.Used, onHost[a.ID])
				}
				if a.Used > a.Capacity {
					t.Errorf("%s: used %d over capacity %d", a.ID, a.Used, a.Capacity)
				}
				if usable := a.Live && !a.Maintenance; usable && a.Used != a.Capacity || !usable && a.Used != 0 {
					t.Errorf("%s (live %v, maintenance %v): used %d of %d when full", a.ID, a.Live, a.Maintenance, a.Used, a.Capacity)
				}
				for dep, n := range a.Deployments {
					if n != 1 {
						t.Errorf("%s: %d instances of %s", a.ID, n, dep)
					}
					instances[dep]--
				}
			}
			for dep, n := range instances {
				if n != 0 {
					t.Errorf("%s: %d instances placed but not on an allocator", dep, n)
				}
			}
			if used != total {
				t.Errorf("Σ used %d; placed %d", used, total)
			}
			if want := int64(len(s.Allocators)-2) * 16 * GiB; used != want {
				t.Errorf("Σ used %d; want %d (every usable allocator full)", used, want)
			}
			t.Logf("%v: %d allocators full after %d deployments", st, len(s.Allocators), len(instances))
		})
	}
}
