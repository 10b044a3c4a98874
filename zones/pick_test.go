package zones

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/switchyard/switchyard/routes"
)

const nPicks = 10000

// share is a zone's expected share of picks, within tol.
type share struct {
	want, tol float64
}

func TestZoneShares(t *testing.T) {
	three := map[string]int{"zone-a": 4, "zone-b": 4, "zone-c": 4}
	for _, tc := range []struct {
		name    string
		local   string
		counts  map[string]int
		down    map[string]routes.ZoneState
		ejected []string
		want    map[string]share
	}{
		{
			name: "local healthy stays local", local: "zone-a", counts: three,
			want: map[string]share{"zone-a": {1, 0.05}},
		},
		{
			name: "1 of 4 local ejected: 1.4 × 0.75 ≥ 1", local: "zone-a", counts: three,
			ejected: []string{"zone-a-1"},
			want:    map[string]share{"zone-a": {1, 0.05}},
		},
		{
			name: "2 of 4 local ejected: 1.4 × 0.5 = 0.7", local: "zone-a", counts: three,
			ejected: []string{"zone-a-1", "zone-a-2"},
			want:    map[string]share{"zone-a": {0.7, 0.03}, "zone-b": {0.15, 0.03}, "zone-c": {0.15, 0.03}},
		},
		{
			name: "3 of 4 local ejected: 1.4 × 0.25 = 0.35", local: "zone-a", counts: three,
			ejected: []string{"zone-a-1", "zone-a-2", "zone-a-3"},
			want:    map[string]share{"zone-a": {0.35, 0.03}, "zone-b": {0.325, 0.03}, "zone-c": {0.325, 0.03}},
		},
		{
			name: "all local ejected", local: "zone-a", counts: map[string]int{"zone-a": 2, "zone-b": 3, "zone-c": 3},
			ejected: []string{"zone-a-1", "zone-a-2"},
			want:    map[string]share{"zone-a": {0, 0}, "zone-b": {0.5, 0.03}, "zone-c": {0.5, 0.03}},
		},
		{
			name: "other zone all ejected gets nothing", local: "zone-a", counts: map[string]int{"zone-a": 2, "zone-b": 2, "zone-c": 2},
			ejected: []string{"zone-a-1", "zone-b-1", "zone-b-2"},
			want:    map[string]share{"zone-a": {0.7, 0.03}, "zone-b": {0, 0}, "zone-c": {0.3, 0.03}},
		},
		{
			name: "no local zone: by weight", counts: three,
			want: map[string]share{"zone-a": {1.0 / 3, 0.03}, "zone-b": {1.0 / 3, 0.03}, "zone-c": {1.0 / 3, 0.03}},
		},
		{
			name: "local zone without instances: by weight", local: "zone-x", counts: map[string]int{"zone-a": 1, "zone-b": 3},
			want: map[string]share{"zone-a": {0.25, 0.03}, "zone-b": {0.75, 0.03}},
		},
		{
			name: "operator down zone gets nothing", counts: three,
			down: map[string]routes.ZoneState{"zone-b": routes.ZoneDown},
			want: map[string]share{"zone-a": {0.5, 0.03}, "zone-b": {0, 0}, "zone-c": {0.5, 0.03}},
		},
		{
			name: "local zone down by operator", local: "zone-a", counts: three,
			down: map[string]routes.ZoneState{"zone-a": routes.ZoneDown},
			want: map[string]share{"zone-a": {0, 0}, "zone-b": {0.5, 0.03}, "zone-c": {0.5, 0.03}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := testBalancer(Config{LocalZone: tc.local})
			tbl, d := oneDep(t, tc.down, nil, layout(tc.counts))
			b.Prepare(tbl)
			for _, id := range tc.ejected {
				fail(b, byID(t, d, id), 5)
			}
			if got := b.Stats().Ejections; got != uint64(len(tc.ejected)) {
				t.Fatalf("ejections = %d; want %d", got, len(tc.ejected))
			}
			byInst, byZone := picks(t, b, d, nPicks)
			for _, id := range tc.ejected {
				if byInst[id] != 0 {
					t.Errorf("ejected %s got %d picks; want 0", id, byInst[id])
				}
			}
			for z, w := range tc.want {
				got := float64(byZone[z]) / nPicks
				if math.Abs(got-w.want) > w.tol || (w.want == 0 && byZone[z] != 0) {
					t.Errorf("%s share = %.3f; want %.3f ± %.2f", z, got, w.want, w.tol)
				}
			}
		})
	}
}

func TestZoneStatus(t *testing.T) {
	b, _ := testBalancer(Config{LocalZone: "zone-a"})
	tbl, d := oneDep(t, map[string]routes.ZoneState{"zone-c": routes.ZoneDown}, nil,
		layout(map[string]int{"zone-a": 2, "zone-b": 2, "zone-c": 2}))
	b.Prepare(tbl)
	fail(b, byID(t, d, "zone-b-1"), 5)
	if z := zoneStatus(t, allStatus(b), "zone-b"); z.State != StateUp {
		t.Errorf("zone-b with 1 of 2 ejected: state %q; want up", z.State)
	}
	fail(b, byID(t, d, "zone-b-2"), 5)
	s := allStatus(b)
	for _, tc := range []struct {
		zone, state, reason string
		eligible, healthy   int
	}{
		{"zone-a", StateUp, "", 2, 2},
		{"zone-b", StateDown, ReasonObserved, 2, 0},
		{"zone-c", StateDown, ReasonOperator, 0, 0},
	} {
		z := zoneStatus(t, s, tc.zone)
		if z.State != tc.state || z.Reason != tc.reason || z.Eligible != tc.eligible || z.Healthy != tc.healthy {
			t.Errorf("%s: got %+v; want state %q reason %q eligible %d healthy %d", tc.zone, z, tc.state, tc.reason, tc.eligible, tc.healthy)
		}
		if z.State == StateDown && z.Why == "" {
			t.Errorf("%s: down without a reason in words", tc.zone)
		}
	}
	if len(s.Deployments) != 1 || s.Deployments[0].Panic || s.Deployments[0].HealthyShare != 0.5 ||
		len(s.Deployments[0].DownZones) != 1 || s.Deployments[0].DownZones[0] != "zone-b" {
		t.Errorf("deployments = %+v; want one, not in panic, healthy share 0.5, down zone zone-b", s.Deployments)
	}
	if _, byZone := picks(t, b, d, nPicks); byZone["zone-b"] != 0 || byZone["zone-c"] != 0 {
		t.Errorf("picks by zone = %v; want none in zone-b (observed down) or zone-c (operator)", byZone)
	}
}

// Generations weigh differently: picks follow the weights, and local
// availability is computed on weights, not counts.
func TestWeights(t *testing.T) {
	ins := layout(map[string]int{"zone-a": 2, "zone-b": 2})
	ins[0].Generation, ins[2].Generation = "green", "green" // zone-a-1, zone-b-1
	serving := map[string]int{"blue": 75, "green": 25}
	tbl, d := oneDep(t, nil, serving, ins)

	b, _ := testBalancer(Config{})
	b.Prepare(tbl)
	byInst, _ := picks(t, b, d, nPicks)
	for id, want := range map[string]float64{"zone-a-1": 0.125, "zone-a-2": 0.375, "zone-b-1": 0.125, "zone-b-2": 0.375} {
		if got := float64(byInst[id]) / nPicks; math.Abs(got-want) > 0.03 {
			t.Errorf("%s share = %.3f; want %.3f", id, got, want)
		}
	}

	// zone-a-2 (blue, 3/4 of zone-a's weight) ejected: a = 1.4 × 0.25.
	b, _ = testBalancer(Config{LocalZone: "zone-a"})
	b.Prepare(tbl)
	fail(b, byID(t, d, "zone-a-2"), 5)
	if _, byZone := picks(t, b, d, nPicks); math.Abs(float64(byZone["zone-a"])/nPicks-0.35) > 0.03 {
		t.Errorf("local share = %.3f; want 0.35", float64(byZone["zone-a"])/nPicks)
	}
}

func TestPowerOfTwoChoices(t *testing.T) {
	b, _ := testBalancer(Config{})
	tbl, d := oneDep(t, nil, nil, layout(map[string]int{"zone-a": 2}))
	b.Prepare(tbl)
	busy := byID(t, d, "zone-a-1")
	for _, tc := range []struct {
		name     string
		inFlight int
		lo, hi   float64 // share of busy
	}{
		{"idle: even", 0, 0.47, 0.53},
		// busy wins only when both draws are it: 1/4.
		{"busy: picks shift away", 10, 0.22, 0.28},
		{"idle again", 0, 0.47, 0.53},
	} {
		for range tc.inFlight {
			b.Begin(d, busy)
		}
		byInst, _ := picks(t, b, d, nPicks)
		if got := float64(byInst[busy.ID]) / nPicks; got < tc.lo || got > tc.hi {
			t.Errorf("%s: busy share = %.3f; want %.2f to %.2f", tc.name, got, tc.lo, tc.hi)
		}
		for range tc.inFlight {
			b.End(d, busy, OutcomeSuccess)
		}
	}
	if got := instStatus(t, allStatus(b), busy.ID).Outstanding; got != 0 {
		t.Errorf("outstanding after all End = %d; want 0", got)
	}
}

func TestPanic(t *testing.T) {
	for _, tc := range []struct {
		name       string
		cfg        Config
		counts     map[string]int
		ejected    []string
		panic      bool
		wantInst   map[string]share // share per instance
		wantZone   map[string]share
		wantNoPick bool
	}{
		{
			name: "half healthy: not in panic", cfg: Config{MaxEjectedPercent: 100},
			counts: map[string]int{"zone-a": 4}, ejected: []string{"zone-a-1", "zone-a-2"},
			wantInst: map[string]share{"zone-a-1": {0, 0}, "zone-a-2": {0, 0}, "zone-a-3": {0.5, 0.03}, "zone-a-4": {0.5, 0.03}},
		},
		{
			name: "a quarter healthy: panic spreads over all", cfg: Config{MaxEjectedPercent: 100},
			counts: map[string]int{"zone-a": 4}, ejected: []string{"zone-a-1", "zone-a-2", "zone-a-3"}, panic: true,
			wantInst: map[string]share{"zone-a-1": {0.25, 0.03}, "zone-a-2": {0.25, 0.03}, "zone-a-3": {0.25, 0.03}, "zone-a-4": {0.25, 0.03}},
		},
		{
			name: "panic disabled", cfg: Config{MaxEjectedPercent: 100, PanicThreshold: -1},
			counts: map[string]int{"zone-a": 4}, ejected: []string{"zone-a-1", "zone-a-2", "zone-a-3"},
			wantInst: map[string]share{"zone-a-4": {1, 0}},
		},
		{
			name: "higher threshold", cfg: Config{MaxEjectedPercent: 100, PanicThreshold: 0.8},
			counts: map[string]int{"zone-a": 4}, ejected: []string{"zone-a-1"}, panic: true,
			wantInst: map[string]share{"zone-a-1": {0.25, 0.03}},
		},
		{
			name:    "panic keeps zone preference and skips zones observed down",
			cfg:     Config{MaxEjectedPercent: 100, LocalZone: "zone-a"},
			counts:  map[string]int{"zone-a": 2, "zone-b": 2, "zone-c": 2},
			ejected: []string{"zone-a-1", "zone-b-1", "zone-b-2", "zone-c-1"}, panic: true,
			// a = 1.4 × 1/2; zone-b has nothing healthy.
			wantZone: map[string]share{"zone-a": {0.7, 0.03}, "zone-b": {0, 0}, "zone-c": {0.3, 0.03}},
			wantInst: map[string]share{"zone-a-1": {0.35, 0.03}, "zone-c-1": {0.15, 0.03}},
		},
		{
			name:    "nothing healthy: all of the local zone",
			cfg:     Config{MaxEjectedPercent: 100, LocalZone: "zone-a"},
			counts:  map[string]int{"zone-a": 2, "zone-b": 2},
			ejected: []string{"zone-a-1", "zone-a-2", "zone-b-1", "zone-b-2"}, panic: true,
			wantZone: map[string]share{"zone-a": {1, 0}},
			wantInst: map[string]share{"zone-a-1": {0.5, 0.03}},
		},
		{
			name:    "nothing healthy, no local zone: everywhere",
			cfg:     Config{MaxEjectedPercent: 100},
			counts:  map[string]int{"zone-a": 2, "zone-b": 2},
			ejected: []string{"zone-a-1", "zone-a-2", "zone-b-1", "zone-b-2"}, panic: true,
			wantZone: map[string]share{"zone-a": {0.5, 0.03}},
		},
		{
			name:   "nothing healthy, panic disabled: no instance",
			cfg:    Config{MaxEjectedPercent: 100, PanicThreshold: -1},
			counts: map[string]int{"zone-a": 2}, ejected: []string{"zone-a-1", "zone-a-2"},
			wantNoPick: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := testBalancer(tc.cfg)
			tbl, d := oneDep(t, nil, nil, layout(tc.counts))
			b.Prepare(tbl)
			for _, id := range tc.ejected {
				fail(b, byID(t, d, id), 5)
			}
			if tc.wantNoPick {
				if in := b.Pick(d); in != nil {
					t.Fatalf("Pick = %s; want nil", in.ID)
				}
				if b.Stats().NoInstance != 1 {
					t.Errorf("NoInstance = %d; want 1", b.Stats().NoInstance)
				}
				return
			}
			byInst, byZone := picks(t, b, d, nPicks)
			wantPanic := uint64(0)
			if tc.panic {
				wantPanic = nPicks
			}
			if got := b.Stats().PanicPicks; got != wantPanic {
				t.Errorf("PanicPicks = %d; want %d", got, wantPanic)
			}
			check := func(what string, got map[string]int, want map[string]share) {
				for k, w := range want {
					g := float64(got[k]) / nPicks
					if math.Abs(g-w.want) > w.tol || (w.want == 0 && got[k] != 0) {
						t.Errorf("%s %s share = %.3f; want %.3f ± %.2f", what, k, g, w.want, w.tol)
					}
				}
			}
			check("instance", byInst, tc.wantInst)
			check("zone", byZone, tc.wantZone)
			var inPanic bool
			for _, ds := range allStatus(b).Deployments {
				inPanic = inPanic || ds.Panic
			}
			if inPanic != tc.panic {
				t.Errorf("status panic = %v; want %v", inPanic, tc.panic)
			}
		})
	}
}

func TestPickOther(t *testing.T) {
	b, _ := testBalancer(Config{LocalZone: "zone-a"})
	tbl, d := oneDep(t, nil, nil, layout(map[string]int{"zone-a": 2, "zone-b": 2, "zone-c": 1}))
	b.Prepare(tbl)
	in := func(id string) *routes.Instance { return byID(t, d, id) }
	for _, tc := range []struct {
		name  string
		tried []*routes.Instance
		zones map[string]bool // zones allowed for the answer; nil: want nil
	}{
		{"leaves the local zone", []*routes.Instance{in("zone-a-1")}, map[string]bool{"zone-b": true, "zone-c": true}},
		{"leaves both tried zones", []*routes.Instance{in("zone-a-1"), in("zone-b-2")}, map[string]bool{"zone-c": true}},
		{"same zone when every zone was tried", []*routes.Instance{in("zone-a-1"), in("zone-b-1"), in("zone-c-1")},
			map[string]bool{"zone-a": true, "zone-b": true}},
		{"nil when all were tried", []*routes.Instance{in("zone-a-1"), in("zone-a-2"), in("zone-b-1"), in("zone-b-2"), in("zone-c-1")}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seen := map[string]bool{}
			for range 2000 {
				got := b.PickOther(d, tc.tried)
				if tc.zones == nil {
					if got != nil {
						t.Fatalf("PickOther = %s; want nil", got.ID)
					}
					return
				}
				if got == nil {
					t.Fatal("PickOther = nil")
				}
				for _, tr := range tc.tried {
					if got.ID == tr.ID {
						t.Fatalf("PickOther returned tried instance %s", got.ID)
					}
				}
				if !tc.zones[got.Zone] {
					t.Fatalf("PickOther = %s in %s; want a zone in %v", got.ID, got.Zone, tc.zones)
				}
				seen[got.ID] = true
			}
			if len(seen) < 2 && len(tc.zones) > 1 {
				t.Errorf("PickOther always returned %v; want a spread", seen)
			}
		})
	}

	// Tried instances from an older table (other objects, same address
	// and ID) are still recognised; ejected instances are not retried.
	tried := clone([]*routes.Instance{in("zone-a-1"), in("zone-b-1")})
	fail(b, in("zone-c-1"), 5)
	for range 1000 {
		got := b.PickOther(d, tried)
		if got == nil || got.Zone == "zone-c" || got.ID == "zone-a-1" || got.ID == "zone-b-1" {
			t.Fatalf("PickOther = %v; want zone-a-2 or zone-b-2", got)
		}
	}
}

// A deployment of the table before the current one is still balanced; one
// of a table never prepared falls back to weights, and is counted.
func TestPickAcrossTables(t *testing.T) {
	b, _ := testBalancer(Config{LocalZone: "zone-a"})
	ins := layout(map[string]int{"zone-a": 2, "zone-b": 2})
	t1, d1 := oneDep(t, nil, nil, ins)
	t2, _ := oneDep(t, nil, nil, clone(ins))
	t3, d3 := oneDep(t, nil, nil, clone(ins))
	b.Prepare(t1)
	b.Prepare(t2)
	if _, byZone := picks(t, b, d1, 1000); byZone["zone-a"] != 1000 {
		t.Errorf("previous table: picks by zone %v; want all in zone-a", byZone)
	}
	if b.Stats().Unprepared != 0 {
		t.Errorf("Unprepared = %d; want 0", b.Stats().Unprepared)
	}
	fail(b, byID(t, d1, "zone-b-1"), 5) // old pointer, same instance
	byInst, _ := picks(t, b, d3, 1000)
	if b.Stats().Unprepared != 1000 || byInst["zone-b-1"] != 0 || byInst["zone-a-1"] == 0 || byInst["zone-b-2"] == 0 {
		t.Errorf("unprepared table: Unprepared = %d, picks %v; want 1000 and none on the ejected zone-b-1", b.Stats().Unprepared, byInst)
	}
	b.Prepare(t3)
	if in := b.Pick(d1); in == nil || b.Stats().Unprepared != 1001 {
		t.Errorf("table two reloads old: Pick = %v, Unprepared = %d; want an instance and 1001", in, b.Stats().Unprepared)
	}
}

func TestAliasGroupDrawsInProportion(t *testing.T) {
	for _, weights := range [][]uint64{{1}, {1, 1}, {1, 2, 3, 4}, {1000, 1, 1}, {7, 0, 3}, {720720, 240240, 5}} {
		var g group
		var total uint64
		for i, w := range weights {
			g.add(int32(i), w)
			total += w
		}
		g.finish()
		counts := make([]int, len(weights))
		rng := rand.New(rand.NewPCG(1, 2))
		const n = 200000
		for i := 0; i < n; i++ {
			counts[g.draw(rng.Uint64())]++
		}
		for i, w := range weights {
			want := float64(w) / float64(total)
			got := float64(counts[i]) / n
			if diff := got - want; diff > 0.01 || diff < -0.01 {
				t.Errorf("weights %v: candidate %d drawn %.4f of the time; want %.4f", weights, i, got, want)
			}
		}
	}
}

// A canary split holds under load: the lightly weighted generation idle
// and the heavy one busy does not pull traffic to the canary. Within a
// generation, load still decides.
func TestGenerationSplitHoldsUnderLoad(t *testing.T) {
	b, _ := testBalancer(Config{})
	ins := layout(map[string]int{"zone-a": 4})
	ins[2].Generation, ins[3].Generation = "green", "green"
	tb, d := oneDep(t, nil, map[string]int{"blue": 90, "green": 10}, ins)
	b.Prepare(tb)
	blue1, blue2 := byID(t, d, "zone-a-1"), byID(t, d, "zone-a-2")
	for i := 0; i < 50; i++ {
		b.Begin(d, blue1) // blue-1 busy; green idle
	}
	byInst, _ := picks(t, b, d, 100000)
	green := float64(byInst["zone-a-3"]+byInst["zone-a-4"]) / 100000
	if math.Abs(green-0.10) > 0.01 {
		t.Errorf("green got %.2f%% of picks with blue busy; want 10%% ± 1%%", 100*green)
	}
	// Two choices avoid blue-1 only when both draws are blue and differ:
	// blue-1 gets 0.45 × (0.45 + 0.10) ≈ 25%, blue-2 the other 65%.
	if byInst[blue1.ID] >= byInst[blue2.ID]/2 {
		t.Errorf("busy blue-1 got %d picks, idle blue-2 %d; want the idle one to get well over twice as many", byInst[blue1.ID], byInst[blue2.ID])
	}
}

// A deployment that a derived table removes is balanced while the table
// before it is the previous one, and no longer after; one that it
// replaces likewise. Its state is kept with the deployment, so what ends
// it is the count of tables, not a map.
func TestPickAcrossDerivedTables(t *testing.T) {
	b, _ := testBalancer(Config{LocalZone: "zone-a"})
	ins := layout(map[string]int{"zone-a": 2, "zone-b": 2})
	spec := func(id string) *routes.DeploymentSpec {
		return &routes.DeploymentSpec{ID: id, Kind: "es", Serving: map[string]int{"blue": 100}, Instances: clone(ins)}
	}
	t1, err := routes.NewTable("example.test", nil, []*routes.DeploymentSpec{spec("aaaaaaaa"), spec("bbbbbbbb"), spec("cccccccc")})
	if err != nil {
		t.Fatal(err)
	}
	b.Prepare(t1)
	a1 := t1.Lookup([]byte("aaaaaaaa"))
	c1 := t1.Lookup([]byte("cccccccc"))
	t2, err := t1.With(nil, []*routes.DeploymentSpec{spec("cccccccc")}, []string{"aaaaaaaa"})
	if err != nil {
		t.Fatal(err)
	}
	b.Prepare(t2)
	for _, d := range []*routes.Deployment{a1, c1} {
		if b.depOf(d) == nil || b.Pick(d) == nil {
			t.Fatalf("%s, of the previous table: not balanced", d.ID)
		}
	}
	if b.Stats().Unprepared != 0 {
		t.Fatalf("Unprepared = %d; want 0", b.Stats().Unprepared)
	}
	t3, err := t2.With(nil, []*routes.DeploymentSpec{spec("dddddddd")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.Prepare(t3)
	for _, d := range []*routes.Deployment{a1, c1} {
		if b.depOf(d) != nil {
			t.Errorf("%s, two tables back: still has a state", d.ID)
		}
	}
	for _, id := range []string{"bbbbbbbb", "cccccccc", "dddddddd"} {
		if d := t3.Lookup([]byte(id)); b.depOf(d) == nil {
			t.Errorf("%s of the current table: no state", id)
		}
	}
	// A table prepared whole starts a new line: the one before it is
	// still the previous table, the one before that is not.
	b2 := t1.Lookup([]byte("bbbbbbbb"))
	t4, _ := oneDep(t, nil, nil, clone(ins))
	b.Prepare(t4)
	if d := t3.Lookup([]byte("dddddddd")); b.depOf(d) == nil || b.depOf(b2) == nil {
		t.Errorf("deployments of the previous table, of its line's first and last tables: no state")
	}
	t5, _ := oneDep(t, nil, nil, clone(ins))
	b.Prepare(t5)
	if d := t3.Lookup([]byte("dddddddd")); b.depOf(d) != nil || b.depOf(b2) != nil {
		t.Errorf("deployments two tables back still have a state")
	}
}

// Two balancers over the same table each keep their own state: the one
// that prepares it second finds the first's with the deployment and
// keeps its own beside it.
func TestTwoBalancersOneTable(t *testing.T) {
	ins := layout(map[string]int{"zone-a": 2, "zone-b": 2})
	tb, d := oneDep(t, nil, nil, ins)
	b1, _ := testBalancer(Config{LocalZone: "zone-a"})
	b2, _ := testBalancer(Config{LocalZone: "zone-b"})
	b1.Prepare(tb)
	b2.Prepare(tb)
	if s1, s2 := b1.depOf(d), b2.depOf(d); s1 == nil || s2 == nil || s1 == s2 || s1.b != b1 || s2.b != b2 {
		t.Fatalf("states %p and %p; want one of each balancer's", s1, s2)
	}
	if _, byZone := picks(t, b1, d, 200); byZone["zone-a"] != 200 {
		t.Errorf("first balancer picks by zone %v; want its local zone-a", byZone)
	}
	if _, byZone := picks(t, b2, d, 200); byZone["zone-b"] != 200 {
		t.Errorf("second balancer picks by zone %v; want its local zone-b", byZone)
	}
	// A change the second derives keeps its state beside the first's.
	tb2, err := tb.With(nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	b2.Prepare(tb2)
	if _, byZone := picks(t, b2, d, 200); byZone["zone-b"] != 200 || b2.Stats().Unprepared != 0 {
		t.Errorf("second balancer after a change: picks by zone %v, %d unprepared", byZone, b2.Stats().Unprepared)
	}
}
