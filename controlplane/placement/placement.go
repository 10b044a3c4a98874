package placement

// Allocator is one allocator as the snapshot holds it.
type Allocator struct {
	// ID names the allocator; unique in a snapshot. Zone is where it is.
	ID, Zone string
	// Capacity is the memory, in bytes, the allocator offers to instances.
	Capacity int64
	// Used is the memory, in bytes, already assigned to instances on it.
	// It may exceed Capacity (the allocator then takes nothing more).
	Used int64
	// Live: the allocator's live node exists.
	Live bool
	// Maintenance: operators took the allocator out of placement; the
	// instances on it stay.
	Maintenance bool
	// Deployments counts the instances already on the allocator, by
	// deployment ID. A nil map, or a count of 0, means none.
	Deployments map[string]int
}

// free is what the allocator has left for new instances.
func (a *Allocator) free() int64 { return a.Capacity - a.Used }

// Snapshot is the allocators as read at one moment. Place only reads it;
// the order of Allocators does not matter to the result.
type Snapshot struct{ Allocators []Allocator }

// Request asks for a deployment's instances: Zones zones, PerZone instances
// in each, every instance on an allocator of its own.
type Request struct {
	// Deployment is the deployment's ID; required.
	Deployment string
	// Zones is how many distinct zones to use; at least 1.
	Zones int
	// PerZone is how many instances to place in each zone, each on a
	// distinct allocator; at least 1.
	PerZone int
	// MemoryBytes is the memory of each instance; more than 0.
	MemoryBytes int64
	// Exclude lists allocator IDs not to use (being vacated, say). IDs not
	// in the snapshot are ignored.
	Exclude []string
	// PreferZones lists zones to choose first, in this order, when they
	// can take PerZone instances (re-placing a lost instance in its own
	// zone, say). Zones not in the snapshot are ignored.
	PreferZones []string
}

// Placement is where one instance goes.
type Placement struct{ Zone, Allocator string }

// Strategy is how an instance's allocator is chosen among the feasible
// ones of its zone.
type Strategy int

// The strategies. BestFit, the zero value, is what Place uses; the others
// are there to compare with.
const (
	// BestFit takes the allocator with the least free memory left after
	// placing the instance, so that whole allocators stay free for large
	// instances.
	BestFit Strategy = iota
	// FirstFit takes the feasible allocator with the smallest ID.
	FirstFit
	// Random takes a feasible allocator at random, drawn from a generator
	// seeded by Options.Seed and the deployment ID.
	Random
)

func (s Strategy) String() string {
	switch s {
	case BestFit:
		return "best-fit"
	case FirstFit:
		return "first-fit"
	case Random:
		return "random"
	}
	return "unknown"
}

// Options tune PlaceWith. The zero value is what Place uses.
type Options struct {
	// Strategy chooses the allocator within a zone; zero: BestFit.
	Strategy Strategy
	// Seed seeds the Random strategy; the other strategies ignore it.
	Seed int64
}

// Place returns Zones*PerZone placements for r over s with the BestFit
// strategy, or an *Error saying why not. Placements come zone by zone, in
// the order the zones were chosen (see the package comment). s is not
// changed; a nil s is an empty snapshot.
func Place(s *Snapshot, r Request) ([]Placement, error) {
	return PlaceWith(s, r, Options{})
}

// PlaceWith is Place with a choice of strategy.
func PlaceWith(s *Snapshot, r Request, o Options) ([]Placement, error) {
	if s == nil {
		s = &Snapshot{}
	}
	sc := getScratch()
	defer sc.put()
	if err := validate(s, r, o, sc); err != nil {
		return nil, err
	}
	zones := feasible(s, r, sc)
	chosen := spread(zones, r)
	if len(chosen) < r.Zones {
		return nil, noRoom(s, r, len(chosen))
	}
	out := make([]Placement, 0, r.Zones*r.PerZone)
	p := newPicker(o, r)
	for _, z := range chosen {
		out = p.pick(out, z)
	}
	return out, nil
}
