package zones

import (
	"sync"
	"sync/atomic"

	"github.com/switchyard/switchyard/routes"
)

// Balancer is the zone-aware Picker with instance health (see the package
// doc). It is safe for concurrent use: Pick, PickOther, Begin and End take
// no lock and do not allocate (except to rebuild a deployment's view after
// a health change), while Prepare swaps in the structures of a new table.
type Balancer struct {
	cfg Config

	snap    atomic.Pointer[snapshot]
	prepMu  sync.Mutex // serializes Prepare
	ejectMu sync.Mutex // serializes ejection decisions

	// flips counts health changes, so that Prepare notices one that
	// happened while it built views from the old state.
	flips atomic.Uint64
	// suspects are the instances whose health changed since they were
	// last seen healthy: those that may be unhealthy now, so that Status
	// looks at them and not at every instance. Status drops the ones it
	// finds healthy again, or gone from the table.
	suspectMu sync.Mutex
	suspects  map[*instState]struct{}

	changed chan struct{} // a new table, for the active checker
	stats   counters
}

// snapshot is what the balancer derives from one table. It is immutable
// once published, but for the atomics of the structures it points to.
type snapshot struct {
	table *routes.Table
	deps  map[*routes.Deployment]*depState
	byPtr map[*routes.Instance]*entry
	byKey map[instKey]*entry
	// zones counts, for each zone of the table's instances, the
	// instances eligible in some deployment (each once, in the zone it
	// has in the first deployment, by ID, that has it eligible).
	zones map[string]int
	// prev is the snapshot this one replaced, so that requests that looked
	// a deployment up in the previous table are still balanced; it is
	// cleared when this snapshot is replaced in turn.
	prev atomic.Pointer[snapshot]
}

// entry is one instance of a snapshot: its shared state and the
// deployments that have it eligible.
type entry struct {
	st   *instState
	deps []*depState
	zone string // where snapshot.zones counts it, once deps is not empty
}

// depState is a deployment of a snapshot.
type depState struct {
	d     *routes.Deployment
	insts []*instState // parallel to d.Eligible
	zone  []int32      // parallel to d.Eligible: index in zones
	gen   []int32      // parallel to d.Eligible: generation, as an index
	zones []string     // zones of d.Eligible, local zone first if any
	local bool         // zones[0] is the local zone

	// version grows with each health change of an instance of d; view
	// is rebuilt when it was built from an older version, or when an
	// ejection it counted ends.
	version atomic.Uint64
	view    atomic.Pointer[view]
}

// NewBalancer returns a Balancer for cfg (see Config for defaults). It
// picks nothing until Prepare gives it a table.
func NewBalancer(cfg Config) *Balancer {
	cfg.setDefaults()
	return &Balancer{cfg: cfg, changed: make(chan struct{}, 1), suspects: map[*instState]struct{}{}}
}

func (b *Balancer) now() int64 { return b.cfg.Clock().UnixNano() }

// Prepare makes the balancer ready to pick in t's deployments. The proxy
// calls it with every new table before serving it; it is safe to call
// while picks run. Instances of t that an earlier table had (same address
// and ID) keep their state; the state of the others is forgotten.
func (b *Balancer) Prepare(t *routes.Table) {
	b.prepMu.Lock()
	defer b.prepMu.Unlock()
	old := b.snap.Load()
	flips := b.flips.Load()
	s := &snapshot{
		table: t,
		deps:  make(map[*routes.Deployment]*depState, len(t.Deployments)),
		byPtr: make(map[*routes.Instance]*entry),
		byKey: make(map[instKey]*entry),
		zones: make(map[string]int),
	}
	now := b.now()
	for _, d := range t.Deployments {
		ds := b.newDepState(d, s, old)
		s.deps[d] = ds
		ds.view.Store(b.buildView(ds, now))
	}
	if old != nil {
		old.prev.Store(nil)
		s.prev.Store(old)
	}
	b.snap.Store(s)
	if b.flips.Load() != flips {
		// Health changed while the views were built: they may not show it.
		for _, ds := range s.deps {
			ds.version.Add(1)
		}
	}
	select {
	case b.changed <- struct{}{}:
	default:
	}
}

func (b *Balancer) newDepState(d *routes.Deployment, s, old *snapshot) *depState {
	ds := &depState{
		d:     d,
		insts: make([]*instState, len(d.Eligible)),
		zone:  make([]int32, len(d.Eligible)),
		gen:   make([]int32, len(d.Eligible)),
	}
	gens := map[string]int32{}
	for i, in := range d.Eligible {
		g, ok := gens[in.Generation]
		if !ok {
			g = int32(len(gens))
			gens[in.Generation] = g
		}
		ds.gen[i] = g
	}
	for _, in := range d.Eligible {
		if in.Zone == b.cfg.LocalZone && b.cfg.LocalZone != "" {
			ds.zones, ds.local = []string{in.Zone}, true
			break
		}
	}
	eligible := make(map[*routes.Instance]int, len(d.Eligible))
	for i, in := range d.Eligible {
		eligible[in] = i
		z := -1
		for j, name := range ds.zones {
			if name == in.Zone {
				z = j
				break
			}
		}
		if z < 0 {
			z = len(ds.zones)
			ds.zones = append(ds.zones, in.Zone)
		}
		ds.zone[i] = int32(z)
	}
	for _, in := range d.Instances {
		k := keyOf(in)
		e := s.byKey[k]
		if e == nil {
			e = &entry{}
			if oe := old.entry(k); oe != nil {
				e.st = oe.st
			} else {
				e.st = &instState{key: k}
			}
			s.byKey[k] = e
		}
		s.byPtr[in] = e
		n := s.zones[in.Zone]
		if i, ok := eligible[in]; ok {
			ds.insts[i] = e.st
			if len(e.deps) == 0 {
				e.zone = in.Zone
				n++
			}
			e.deps = append(e.deps, ds)
		}
		s.zones[in.Zone] = n
	}
	return ds
}

// entry finds an instance of s by key; nil for a nil s.
func (s *snapshot) entry(k instKey) *entry {
	if s == nil {
		return nil
	}
	return s.byKey[k]
}

// lookup finds the entry of in in the current table, by pointer or else
// by address and ID; nil when in is no longer in the table.
func (b *Balancer) lookup(in *routes.Instance) *entry {
	s := b.snap.Load()
	if s == nil || in == nil {
		return nil
	}
	if e := s.byPtr[in]; e != nil {
		return e
	}
	return s.byKey[instKey{in.Addr, in.ID}]
}

// depOf finds d's state in the current or the previous table.
func (b *Balancer) depOf(d *routes.Deployment) *depState {
	s := b.snap.Load()
	if s == nil {
		return nil
	}
	if ds := s.deps[d]; ds != nil {
		return ds
	}
	if p := s.prev.Load(); p != nil {
		return p.deps[d]
	}
	return nil
}

// invalidate makes the deployments that have the instance st rebuild
// their views at their next pick, and marks it a suspect for Status. The
// instance's state has changed already.
func (b *Balancer) invalidate(st *instState) {
	k := st.key
	b.suspectMu.Lock()
	b.suspects[st] = struct{}{}
	b.suspectMu.Unlock()
	b.flips.Add(1)
	s := b.snap.Load()
	for _, s := range [2]*snapshot{s, s.prevOrNil()} {
		if e := s.entry(k); e != nil {
			for _, ds := range e.deps {
				ds.version.Add(1)
			}
		}
	}
}

func (s *snapshot) prevOrNil() *snapshot {
	if s == nil {
		return nil
	}
	return s.prev.Load()
}

// Begin records that a request starts on in.
func (b *Balancer) Begin(in *routes.Instance) {
	if e := b.lookup(in); e != nil {
		e.st.begin()
	}
}

// End records that a request on in ended, with outcome o, for passive
// health. Each Begin is paired with one End.
func (b *Balancer) End(in *routes.Instance, o Outcome) {
	if e := b.lookup(in); e != nil {
		b.outcome(e, o)
	}
}
