package placement

import (
	"cmp"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

var strategies = []Strategy{BestFit, FirstFit, Random}

// randomCase is a valid snapshot of up to maxAllocators allocators in up
// to four zones, and a valid request against it: sizes of a few GiB so
// that allocators fill, a few down, in maintenance, excluded or holding
// the deployment, preferred zones known and unknown.
func randomCase(rng *rand.Rand, maxAllocators int) (*Snapshot, Request) {
	zones := 1 + rng.IntN(4)
	maxAllocators = min(maxAllocators, 100)
	n := rng.IntN(maxAllocators + 1)
	if rng.IntN(4) > 0 {
		n = maxAllocators/2 + rng.IntN(maxAllocators/2+1) // mostly enough allocators for a few zones
	}
	s := &Snapshot{}
	for _, num := range rng.Perm(n) {
		a := Allocator{
			ID:          fmt.Sprintf("a-%d", num*7%100), // distinct for n <= 100, of varying width
			Zone:        fmt.Sprintf("z%d", rng.IntN(zones)),
			Capacity:    []int64{0, 2, 4, 8, 16, 16}[rng.IntN(6)] * GiB,
			Live:        rng.IntN(100) < 85,
			Maintenance: rng.IntN(100) < 10,
		}
		a.Used = rng.Int64N(a.Capacity/GiB+3) * GiB // now and then more than Capacity
		if rng.IntN(4) == 0 {
			a.Used = rng.Int64N(a.Capacity + 1) // any byte count
		}
		switch rng.IntN(10) {
		case 0, 1:
			a.Deployments = map[string]int{"d-1": 1 + rng.IntN(2)}
		case 2:
			a.Deployments = map[string]int{"d-2": 1, "d-1": 0}
		}
		s.Allocators = append(s.Allocators, a)
	}
	r := Request{
		Deployment:  "d-1",
		Zones:       1 + rng.IntN(min(zones, 3)),
		PerZone:     1 + rng.IntN(2) + rng.IntN(2),
		MemoryBytes: []int64{GiB, 2 * GiB, 3 * GiB / 2, 4 * GiB, 8 * GiB}[rng.IntN(5)],
	}
	for _, a := range s.Allocators {
		if rng.IntN(10) == 0 {
			r.Exclude = append(r.Exclude, a.ID)
		}
	}
	if rng.IntN(2) == 0 {
		r.Exclude = append(r.Exclude, "not-there")
	}
	for _, z := range rng.Perm(zones + 1) {
		if rng.IntN(3) == 0 {
			r.PreferZones = append(r.PreferZones, fmt.Sprintf("z%d", z)) // z<zones> is unknown
		}
	}
	return s, r
}

// fits is the feasibility rule, written out again.
func fits(a Allocator, r Request) bool {
	return a.Live && !a.Maintenance && !slices.Contains(r.Exclude, a.ID) &&
		a.Deployments[r.Deployment] == 0 && a.Used+r.MemoryBytes <= a.Capacity
}

// exists says, by trying every set of Zones×PerZone allocators, whether
// any valid placement of r exists. Only for small snapshots.
func exists(s *Snapshot, r Request) bool {
	n, k := len(s.Allocators), r.Zones*r.PerZone
	if k > n {
		return false
	}
next:
	for set := uint(0); set < 1<<n; set++ {
		if bits.OnesCount(set) != k {
			continue
		}
		perZone := map[string]int{}
		for i, a := range s.Allocators {
			if set&(1<<i) == 0 {
				continue
			}
			if !fits(a, r) {
				continue next
			}
			perZone[a.Zone]++
		}
		if len(perZone) != r.Zones {
			continue
		}
		for _, c := range perZone {
			if c != r.PerZone {
				continue next
			}
		}
		return true
	}
	return false
}

// zoneStats is, by zone, the feasible allocators sorted by (free, ID) and
// their total free memory.
type zoneStats struct {
	feasible []Allocator
	free     int64
}

func statsOf(s *Snapshot, r Request) map[string]*zoneStats {
	m := map[string]*zoneStats{}
	for _, a := range s.Allocators {
		z := m[a.Zone]
		if z == nil {
			z = &zoneStats{}
			m[a.Zone] = z
		}
		if fits(a, r) {
			z.feasible = append(z.feasible, a)
			z.free += a.Capacity - a.Used
		}
	}
	for _, z := range m {
		slices.SortFunc(z.feasible, func(a, b Allocator) int {
			return cmp.Or(cmp.Compare(a.Capacity-a.Used, b.Capacity-b.Used), cmp.Compare(a.ID, b.ID))
		})
	}
	return m
}

// checkPlaced checks a successful placement against the rules.
func checkPlaced(t *testing.T, s *Snapshot, r Request, st Strategy, got []Placement) {
	t.Helper()
	if len(got) != r.Zones*r.PerZone {
		t.Fatalf("%d placements; want %d×%d", len(got), r.Zones, r.PerZone)
	}
	byID := map[string]Allocator{}
	for _, a := range s.Allocators {
		byID[a.ID] = a
	}
	used := map[string]bool{}
	perZone := map[string][]string{}
	var zoneOrder []string
	for _, p := range got {
		a, ok := byID[p.Allocator]
		switch {
		case !ok:
			t.Fatalf("placed on %q, not in the snapshot", p.Allocator)
		case a.Zone != p.Zone:
			t.Fatalf("placed on %q in zone %q; it is in %q", a.ID, p.Zone, a.Zone)
		case used[a.ID]:
			t.Fatalf("two instances on %q", a.ID)
		case a.Used+r.MemoryBytes > a.Capacity:
			t.Fatalf("overcommits %q: used %d + %d > capacity %d", a.ID, a.Used, r.MemoryBytes, a.Capacity)
		case !a.Live || a.Maintenance:
			t.Fatalf("placed on %q: live %v, maintenance %v", a.ID, a.Live, a.Maintenance)
		case slices.Contains(r.Exclude, a.ID):
			t.Fatalf("placed on excluded %q", a.ID)
		case a.Deployments[r.Deployment] > 0:
			t.Fatalf("placed on %q, which has an instance of %s", a.ID, r.Deployment)
		}
		used[a.ID] = true
		if perZone[p.Zone] == nil {
			zoneOrder = append(zoneOrder, p.Zone)
		} else if zoneOrder[len(zoneOrder)-1] != p.Zone {
			t.Fatalf("zone %q's placements not together: %v", p.Zone, got)
		}
		perZone[p.Zone] = append(perZone[p.Zone], p.Allocator)
	}
	if len(perZone) != r.Zones {
		t.Fatalf("%d zones; want %d: %v", len(perZone), r.Zones, got)
	}

	// Zones: no zone left out ranks before one chosen.
	stats := statsOf(s, r)
	rank := func(z string) int {
		if i := slices.Index(r.PreferZones, z); i >= 0 {
			return i
		}
		return len(r.PreferZones)
	}
	before := func(a, b string) bool { // a ranks before b
		return cmp.Or(cmp.Compare(rank(a), rank(b)), cmp.Compare(stats[b].free, stats[a].free), cmp.Compare(a, b)) < 0
	}
	for i := 1; i < len(zoneOrder); i++ {
		if !before(zoneOrder[i-1], zoneOrder[i]) {
			t.Fatalf("zone %q placed before %q", zoneOrder[i-1], zoneOrder[i])
		}
	}
	for z, zs := range stats {
		if perZone[z] != nil || len(zs.feasible) < r.PerZone {
			continue
		}
		if last := zoneOrder[len(zoneOrder)-1]; before(z, last) {
			t.Fatalf("zone %q (rank %d, free %d) left out, %q (rank %d, free %d) chosen",
				z, rank(z), zs.free, last, rank(last), stats[last].free)
		}
	}

	// Within a zone: best fit and first fit take a known order.
	for z, ids := range perZone {
		var want []string
		switch st {
		case BestFit:
			for _, a := range stats[z].feasible[:r.PerZone] {
				want = append(want, a.ID)
			}
		case FirstFit:
			for _, a := range stats[z].feasible {
				want = append(want, a.ID)
			}
			slices.Sort(want)
			want = want[:r.PerZone]
		default:
			continue
		}
		if !slices.Equal(ids, want) {
			t.Fatalf("%v in zone %q: got %v; want %v", st, z, ids, want)
		}
	}
}

// checkRefused checks a refusal: every zone said to be short is, with the
// counts it gives, and the zones not listed have room.
func checkRefused(t *testing.T, s *Snapshot, r Request, err error) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrNoRoom) {
		t.Fatalf("got %v; want an *Error wrapping ErrNoRoom", err)
	}
	stats := statsOf(s, r)
	have := 0
	for _, z := range stats {
		if len(z.feasible) >= r.PerZone {
			have++
		}
	}
	if have >= r.Zones || e.Have != have || e.Wanted != r.Zones || e.Known != len(stats) {
		t.Fatalf("refused: have %d, wanted %d, known %d; zones with room %d of %d known, %d wanted: %v",
			e.Have, e.Wanted, e.Known, have, len(stats), r.Zones, err)
	}
	short := map[string]bool{}
	for _, sh := range e.Short {
		short[sh.Zone] = true
		var want Shortage
		want.Zone, want.Deployment, want.Want, want.MemoryBytes = sh.Zone, r.Deployment, r.PerZone, r.MemoryBytes
		for _, a := range s.Allocators {
			if a.Zone != sh.Zone {
				continue
			}
			switch {
			case !a.Live:
				want.Down++
			case a.Maintenance:
				want.Maintenance++
			case slices.Contains(r.Exclude, a.ID):
				want.Excluded++
			case a.Deployments[r.Deployment] > 0:
				want.Holding++
			default:
				want.Open++
				if fits(a, r) {
					want.Fit++
				} else {
					want.LargestFree = max(want.LargestFree, a.Capacity-a.Used)
				}
			}
		}
		if sh != want || sh.Fit >= r.PerZone || sh.Fit != len(stats[sh.Zone].feasible) {
			t.Fatalf("zone %q: got %+v; want %+v", sh.Zone, sh, want)
		}
	}
	for z, zs := range stats {
		if !short[z] && len(zs.feasible) < r.PerZone {
			t.Fatalf("zone %q not listed, has %d feasible allocators of %d wanted: %v", z, len(zs.feasible), r.PerZone, err)
		}
	}
}

func shuffled(rng *rand.Rand, s *Snapshot) *Snapshot {
	c := clone(s)
	rng.Shuffle(len(c.Allocators), func(i, j int) { c.Allocators[i], c.Allocators[j] = c.Allocators[j], c.Allocators[i] })
	return c
}

// TestProperties runs the rules over random snapshots: small ones, where
// trying every set of allocators shows whether a placement exists, and
// larger ones.
func TestProperties(t *testing.T) {
	for _, c := range []struct {
		seed          uint64
		cases, maxAll int
		bruteForce    bool
	}{
		{1, 2000, 10, true},
		{2, 500, 60, false},
	} {
		rng := rand.New(rand.NewPCG(c.seed, 0))
		placed := 0
		for i := range c.cases {
			s, r := randomCase(rng, c.maxAll)
			orig := clone(s)
			var failed []bool
			for _, st := range strategies {
				o := Options{Strategy: st, Seed: int64(i)}
				got, err := PlaceWith(s, r, o)
				if !reflect.DeepEqual(s, orig) {
					t.Fatalf("seed %d case %d: %v changed the snapshot", c.seed, i, st)
				}
				again, err2 := PlaceWith(shuffled(rng, s), r, o)
				if !reflect.DeepEqual(got, again) || fmt.Sprint(err) != fmt.Sprint(err2) {
					t.Fatalf("seed %d case %d, %v: got %v, %v; shuffled %v, %v", c.seed, i, st, got, err, again, err2)
				}
				failed = append(failed, err != nil)
				if err != nil {
					checkRefused(t, s, r, err)
					if c.bruteForce && exists(s, r) {
						t.Fatalf("seed %d case %d: refused (%v), but a placement exists: %+v %+v", c.seed, i, err, s, r)
					}
					continue
				}
				checkPlaced(t, s, r, st, got)
			}
			if !slices.Equal(failed, []bool{failed[0], failed[0], failed[0]}) {
				t.Fatalf("seed %d case %d: strategies disagree on whether there is room: %v", c.seed, i, failed)
			}
			if !failed[0] {
				placed++
			}
		}
		// The cases must exercise both outcomes.
		t.Logf("seed %d: %d of %d cases placed", c.seed, placed, c.cases)
		if placed < c.cases/5 || placed > c.cases*4/5 {
			t.Errorf("seed %d: %d of %d cases placed; the generator is lopsided", c.seed, placed, c.cases)
		}
	}
}
