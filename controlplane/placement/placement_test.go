package placement

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
)

const (
	MiB = 1 << 20
	GiB = 1 << 30
)

// al is a live allocator with capacity and used given in GiB; opts change it.
func al(id, zone string, capacity, used int64, opts ...func(*Allocator)) Allocator {
	a := Allocator{ID: id, Zone: zone, Capacity: capacity * GiB, Used: used * GiB, Live: true}
	for _, o := range opts {
		o(&a)
	}
	return a
}

func down(a *Allocator)  { a.Live = false }
func maint(a *Allocator) { a.Maintenance = true }

// holds gives the allocator n instances of deployment d.
func holds(d string, n int) func(*Allocator) {
	return func(a *Allocator) {
		if a.Deployments == nil {
			a.Deployments = map[string]int{}
		}
		a.Deployments[d] = n
	}
}

// req asks for d-1: zones × perZone instances of mem GiB.
func req(zones, perZone int, mem int64) Request {
	return Request{Deployment: "d-1", Zones: zones, PerZone: perZone, MemoryBytes: mem * GiB}
}

func snap(as ...Allocator) *Snapshot { return &Snapshot{Allocators: as} }

func pl(zone, alloc string) Placement { return Placement{Zone: zone, Allocator: alloc} }

func TestPlace(t *testing.T) {
	withExclude := func(r Request, ids ...string) Request { r.Exclude = ids; return r }
	withPrefer := func(r Request, zones ...string) Request { r.PreferZones = zones; return r }
	tests := []struct {
		name string
		s    *Snapshot
		r    Request
		want []Placement
	}{
		// Feasibility: each rule rules out the allocator that best fit
		// would take otherwise.
		{"dead allocator ruled out", snap(al("a", "z", 4, 0, down), al("b", "z", 8, 0)), req(1, 1, 4),
			[]Placement{pl("z", "b")}},
		{"maintenance ruled out", snap(al("a", "z", 4, 0, maint), al("b", "z", 8, 0)), req(1, 1, 4),
			[]Placement{pl("z", "b")}},
		{"excluded ruled out", snap(al("a", "z", 4, 0), al("b", "z", 8, 0)), withExclude(req(1, 1, 4), "x", "a"),
			[]Placement{pl("z", "b")}},
		{"too little free ruled out", snap(al("a", "z", 8, 5), al("b", "z", 8, 0)), req(1, 1, 4),
			[]Placement{pl("z", "b")}},
		{"used over capacity ruled out", snap(al("a", "z", 8, 9), al("b", "z", 8, 0)), req(1, 1, 4),
			[]Placement{pl("z", "b")}},
		{"instance of the deployment ruled out", snap(al("a", "z", 4, 0, holds("d-1", 1)), al("b", "z", 8, 0)), req(1, 1, 4),
			[]Placement{pl("z", "b")}},
		{"exactly enough free is enough", snap(al("a", "z", 8, 4), al("b", "z", 8, 0)), req(1, 1, 4),
			[]Placement{pl("z", "a")}},
		{"other deployments do not matter", snap(al("a", "z", 8, 4, holds("d-2", 3)), al("b", "z", 8, 0)), req(1, 1, 4),
			[]Placement{pl("z", "a")}},
		{"a count of 0 holds nothing", snap(al("a", "z", 8, 4, holds("d-1", 0)), al("b", "z", 8, 0)), req(1, 1, 4),
			[]Placement{pl("z", "a")}},
		{"long exclude list", snap(al("a", "z", 4, 0), al("b", "z", 8, 0)),
			withExclude(req(1, 1, 4), "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9", "a"),
			[]Placement{pl("z", "b")}},

		// Bin packing: best fit, ties to the smaller ID.
		{"best fit", snap(al("a", "z", 16, 0), al("b", "z", 16, 10), al("c", "z", 16, 11), al("d", "z", 16, 13)), req(1, 1, 4),
			[]Placement{pl("z", "c")}},
		{"tie to smaller ID", snap(al("b", "z", 8, 2), al("a-9", "z", 8, 2), al("a-10", "z", 8, 2)), req(1, 1, 4),
			[]Placement{pl("z", "a-10")}},
		{"per zone: distinct allocators, best fit first", snap(al("a", "z", 16, 0), al("b", "z", 16, 10), al("c", "z", 16, 11)), req(1, 2, 4),
			[]Placement{pl("z", "c"), pl("z", "b")}},
		{"per zone: never the same allocator twice", snap(al("a", "z", 64, 0), al("b", "z", 8, 0)), req(1, 2, 4),
			[]Placement{pl("z", "b"), pl("z", "a")}},

		// Zone spread.
		{"zones with most free first", snap(al("a1", "a", 8, 0), al("b1", "b", 16, 0), al("c1", "c", 8, 4), al("c2", "c", 8, 0)), req(2, 1, 4),
			[]Placement{pl("b", "b1"), pl("c", "c1")}},
		{"free counts feasible allocators only", snap(al("a1", "a", 8, 0), al("b1", "b", 64, 0, maint), al("b2", "b", 4, 0)), req(1, 1, 4),
			[]Placement{pl("a", "a1")}},
		{"equal free: zone name", snap(al("b1", "b", 8, 0), al("a1", "a", 8, 0), al("c1", "c", 8, 0)), req(2, 1, 4),
			[]Placement{pl("a", "a1"), pl("b", "b1")}},
		{"zone without enough allocators skipped", snap(al("a1", "a", 64, 0), al("b1", "b", 8, 0), al("b2", "b", 8, 0)), req(1, 2, 4),
			[]Placement{pl("b", "b1"), pl("b", "b2")}},
		{"preferred zone first", snap(al("a1", "a", 64, 0), al("b1", "b", 8, 0), al("c1", "c", 16, 0)), withPrefer(req(2, 1, 4), "b"),
			[]Placement{pl("b", "b1"), pl("a", "a1")}},
		{"preferred zones in their order", snap(al("a1", "a", 64, 0), al("b1", "b", 8, 0), al("c1", "c", 16, 0)), withPrefer(req(2, 1, 4), "b", "c"),
			[]Placement{pl("b", "b1"), pl("c", "c1")}},
		{"preferred zones beyond Zones unused", snap(al("a1", "a", 64, 0), al("b1", "b", 8, 0), al("c1", "c", 16, 0)), withPrefer(req(1, 1, 4), "c", "b"),
			[]Placement{pl("c", "c1")}},
		{"infeasible or unknown preferred zone skipped", snap(al("a1", "a", 64, 0), al("b1", "b", 8, 6), al("c1", "c", 16, 0)),
			withPrefer(req(2, 1, 4), "x", "b", "c"),
			[]Placement{pl("c", "c1"), pl("a", "a1")}},
		{"preferred zone still bin-packs", snap(al("a1", "a", 64, 0), al("b1", "b", 8, 0), al("b2", "b", 8, 3)), withPrefer(req(1, 1, 4), "b"),
			[]Placement{pl("b", "b2")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := clone(tt.s)
			got, err := Place(tt.s, tt.r)
			if err != nil {
				t.Fatalf("Place: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v; want %v", got, tt.want)
			}
			if !reflect.DeepEqual(tt.s, before) {
				t.Errorf("Place changed the snapshot")
			}
		})
	}
}

func TestStrategies(t *testing.T) {
	s := snap(al("c", "z", 16, 0), al("b", "z", 16, 10), al("a", "z", 16, 1), al("d", "z", 16, 11), al("e", "z", 4, 2))
	r := req(1, 2, 4)
	for _, tt := range []struct {
		o    Options
		want []Placement
	}{
		{Options{}, []Placement{pl("z", "d"), pl("z", "b")}},
		{Options{Strategy: BestFit}, []Placement{pl("z", "d"), pl("z", "b")}},
		{Options{Strategy: FirstFit}, []Placement{pl("z", "a"), pl("z", "b")}},
	} {
		got, err := PlaceWith(s, r, tt.o)
		if err != nil {
			t.Fatalf("%v: %v", tt.o.Strategy, err)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%v: got %v; want %v", tt.o.Strategy, got, tt.want)
		}
	}

	// Random: the same seed draws the same; over seeds, every feasible
	// allocator is drawn, and no other.
	drawn := map[string]int{}
	for seed := range int64(200) {
		o := Options{Strategy: Random, Seed: seed}
		got, err := PlaceWith(s, r, o)
		if err != nil {
			t.Fatal(err)
		}
		again, _ := PlaceWith(snap(reversed(s.Allocators)...), r, o)
		if !reflect.DeepEqual(got, again) {
			t.Fatalf("seed %d: got %v, then %v with the allocators reversed", seed, got, again)
		}
		for _, p := range got {
			drawn[p.Allocator]++
		}
	}
	if len(drawn) != 4 || drawn["e"] != 0 {
		t.Errorf("random draws %v; want a, b, c and d, never e", drawn)
	}
}

func TestErrors(t *testing.T) {
	ok := snap(al("a1", "zone-a", 8, 0))
	named := func(r Request) Request { r.Deployment = "d-1"; return r }
	tests := []struct {
		name string
		s    *Snapshot
		r    Request
		o    Options
		is   error
		want string
	}{
		{"no deployment", ok, Request{Zones: 1, PerZone: 1, MemoryBytes: 1}, Options{}, ErrInvalid,
			"deployment: empty"},
		{"no zones", ok, named(Request{PerZone: 1, MemoryBytes: 1}), Options{}, ErrInvalid,
			"d-1: zones 0: want at least 1"},
		{"no per zone", ok, named(Request{Zones: 1, PerZone: -1, MemoryBytes: 1}), Options{}, ErrInvalid,
			"d-1: per_zone -1: want at least 1"},
		{"no memory", ok, named(Request{Zones: 1, PerZone: 1}), Options{}, ErrInvalid,
			"d-1: memory_bytes 0: want more than 0"},
		{"unknown strategy", ok, req(1, 1, 1), Options{Strategy: 7}, ErrInvalid,
			"d-1: strategy 7: unknown"},
		{"allocator without ID", snap(al("a1", "zone-a", 8, 0), al("", "zone-a", 8, 0)), req(1, 1, 1), Options{}, ErrInvalid,
			"d-1: snapshot: allocator 2 of 2: id empty"},
		{"allocator without zone", snap(al("a1", "", 8, 0)), req(1, 1, 1), Options{}, ErrInvalid,
			`d-1: snapshot: allocator "a1": zone empty`},
		{"negative capacity", snap(al("a1", "zone-a", -1, 0)), req(1, 1, 1), Options{}, ErrInvalid,
			`d-1: snapshot: allocator "a1": capacity -1073741824: want at least 0`},
		{"negative used", snap(al("a1", "zone-a", 8, -1)), req(1, 1, 1), Options{}, ErrInvalid,
			`d-1: snapshot: allocator "a1": used -1073741824: want at least 0`},
		{"allocator twice", snap(al("a1", "zone-a", 8, 0), al("a1", "zone-b", 8, 0)), req(1, 1, 1), Options{}, ErrInvalid,
			`d-1: snapshot: allocator "a1" listed twice`},

		{"empty snapshot", &Snapshot{}, req(2, 1, 4), Options{}, ErrNoRoom,
			"d-1: no zone has room; 2 wanted; there are no allocators"},
		{"nil snapshot", nil, req(1, 1, 4), Options{}, ErrNoRoom,
			"d-1: no zone has room; 1 wanted; there are no allocators"},
		{"too few zones", snap(al("a1", "zone-a", 8, 0), al("b1", "zone-b", 8, 0)), req(3, 1, 4), Options{}, ErrNoRoom,
			"d-1: only 2 zones have room; 3 wanted; allocators exist in 2 zones only"},
		{"one zone short", snap(
			al("a1", "zone-a", 8, 0), al("a2", "zone-a", 8, 0),
			al("b1", "zone-b", 8, 0), al("b2", "zone-b", 8, 6), al("b3", "zone-b", 8, 7),
			al("c1", "zone-c", 8, 0), al("c2", "zone-c", 8, 0)),
			req(3, 2, 4), Options{}, ErrNoRoom,
			"d-1: only 2 zones have room; 3 wanted; zone-b: 1 of 2 instances of 4 GiB fit (largest free 2 GiB on 3 live allocators)"},
		{"zones short for each reason", snap(
			al("a1", "zone-a", 8, 0),
			al("b1", "zone-b", 64, 0), al("b2", "zone-b", 64, 0, holds("d-1", 1)),
			al("c1", "zone-c", 64, 0, down), al("c2", "zone-c", 64, 0, down), al("c3", "zone-c", 64, 0, maint),
			al("d1", "zone-d", 64, 0, maint), al("d2", "zone-d", 64, 0), al("d3", "zone-d", 64, 0, down), al("d4", "zone-d", 3, 0)),
			func() Request { r := req(2, 2, 4); r.Exclude = []string{"d2"}; return r }(), Options{}, ErrNoRoom,
			"d-1: no zone has room; 2 wanted" +
				"; zone-a: 1 of 2 instances of 4 GiB fit (only 1 live allocator)" +
				"; zone-b: 1 of 2 instances of 4 GiB fit (only 1 live allocator; 1 with an instance of d-1)" +
				"; zone-c: 0 of 2 instances of 4 GiB fit (no live allocator; 2 down, 1 in maintenance)" +
				"; zone-d: 0 of 2 instances of 4 GiB fit (largest free 3 GiB on 1 live allocator; 1 down, 1 in maintenance, 1 excluded)"},
		{"one instance, odd sizes", snap(al("a1", "zone-a", 2, 0), func() Allocator {
			a := al("a2", "zone-a", 2, 0)
			a.Used = 512*MiB + 1
			return a
		}()), Request{Deployment: "d-1", Zones: 1, PerZone: 1, MemoryBytes: 2*GiB + 512*MiB}, Options{}, ErrNoRoom,
			"d-1: no zone has room; 1 wanted; zone-a: 0 of 1 instance of 2.5 GiB fits (largest free 2 GiB on 2 live allocators)"},
		{"only one zone has room", snap(al("a1", "zone-a", 8, 0), al("b1", "zone-b", 8, 8)), req(2, 1, 4), Options{}, ErrNoRoom,
			"d-1: only 1 zone has room; 2 wanted; zone-b: 0 of 1 instance of 4 GiB fits (largest free 0 B on 1 live allocator)"},
		{"the other strategies fail alike", snap(al("a1", "zone-a", 8, 0), al("b1", "zone-b", 8, 8)), req(2, 1, 4), Options{Strategy: Random}, ErrNoRoom,
			"d-1: only 1 zone has room; 2 wanted; zone-b: 0 of 1 instance of 4 GiB fits (largest free 0 B on 1 live allocator)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := PlaceWith(tt.s, tt.r, tt.o)
			if err == nil {
				t.Fatalf("got %v; want an error", got)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("got %T %v; want *Error", err, err)
			}
			if !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
			if err.Error() != tt.want {
				t.Errorf("got error\n\t%s\nwant\n\t%s", err, tt.want)
			}
			if got != nil {
				t.Errorf("got placements %v with the error", got)
			}
		})
	}
}

func TestFormatBytes(t *testing.T) {
	for _, tt := range []struct {
		n    int64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1 KiB"}, {1536, "1.5 KiB"}, {16 * MiB, "16 MiB"},
		{GiB, "1 GiB"}, {2*GiB - 1, "1.99 GiB"}, {GiB + GiB/4, "1.25 GiB"}, {GiB * 3 / 2, "1.5 GiB"}, {GiB + GiB/10, "1.09 GiB"},
		{GiB + 1, "1 GiB"}, {64 * GiB, "64 GiB"}, {-2 * GiB, "-2 GiB"},
	} {
		if got := formatBytes(tt.n); got != tt.want {
			t.Errorf("formatBytes(%d) = %q; want %q", tt.n, got, tt.want)
		}
	}
}

func TestStrategyString(t *testing.T) {
	for s, want := range map[Strategy]string{BestFit: "best-fit", FirstFit: "first-fit", Random: "random", 9: "unknown"} {
		if got := fmt.Sprint(s); got != want {
			t.Errorf("Strategy(%d) = %q; want %q", int(s), got, want)
		}
	}
}

// clone copies s deeply, maps included.
func clone(s *Snapshot) *Snapshot {
	if s == nil {
		return nil
	}
	c := &Snapshot{Allocators: make([]Allocator, len(s.Allocators))}
	for i, a := range s.Allocators {
		if a.Deployments != nil {
			m := make(map[string]int, len(a.Deployments))
			for k, v := range a.Deployments {
				m[k] = v
			}
			a.Deployments = m
		}
		c.Allocators[i] = a
	}
	if s.Allocators == nil {
		c.Allocators = nil
	}
	return c
}

func reversed(as []Allocator) []Allocator {
	out := make([]Allocator, len(as))
	for i, a := range as {
		out[len(as)-1-i] = a
	}
	return out
}

// TestConcurrentCalls: Place only reads the snapshot, so calls on one
// snapshot from many goroutines agree (run with -race).
func TestConcurrentCalls(t *testing.T) {
	s, _ := benchFleet(300, 64*GiB)
	reqs := benchRequests(50)
	want := make([][]Placement, len(reqs))
	for i, r := range reqs {
		want[i], _ = Place(s, r)
	}
	done := make(chan error)
	for g := range 4 {
		go func() {
			for i, r := range reqs {
				got, err := PlaceWith(s, r, Options{})
				if err != nil || !reflect.DeepEqual(got, want[i]) {
					done <- fmt.Errorf("goroutine %d, %s: got %v, %v; want %v", g, r.Deployment, got, err, want[i])
					return
				}
			}
			done <- nil
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
