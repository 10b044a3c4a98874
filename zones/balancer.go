package zones

import (
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/switchyard/switchyard/internal/cowmap"
	"github.com/switchyard/switchyard/routes"
)

// Balancer is the zone-aware Picker with instance health (see the package
// doc). It is safe for concurrent use: Pick, PickOther, Begin and End take
// no lock and do not allocate (except to build a deployment's view at its
// first pick and after a health change), while Prepare swaps in the
// structures of a new table.
type Balancer struct {
	cfg Config

	snap    atomic.Pointer[snapshot]
	prepMu  sync.Mutex // serializes Prepare
	stateMu sync.Mutex // serializes making instance states (stateOf)
	ejectMu sync.Mutex // serializes ejection decisions

	// seq numbers the snapshots Prepare makes, from 1. Prepare's, under
	// prepMu.
	seq uint64
	// scanned is how many instances the last Prepare looked at to find
	// where an instance is counted (snapEdit.zoneOf), for tests.
	scanned int
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
	// testHookPrepared, when set, runs in Prepare once the new entries
	// are made, before the table is published.
	testHookPrepared func()
	stats            counters
}

// snapshot is what the balancer derives from one table. It is immutable
// once published, but for the atomics of the structures it points to.
// Its sets are persistent (entrySet, cowmap): a table derived from the
// previous one (routes.Table.ChangeFrom) gets a snapshot that shares all
// but what the change touched, so Prepare costs what changed.
//
// A deployment's state is kept with the deployment
// (routes.Deployment.PickerState), where a pick finds it without a
// lookup, and a full table's load sets it instead of filling a map.
// Which snapshots hold a state is told by numbers: the snapshot that
// made it (born), the one whose table no longer has the deployment
// (gone), and the first snapshot of the line of derived tables this one
// is in (base): see holds.
type snapshot struct {
	table *routes.Table
	seq   uint64 // the Prepare that made it
	base  uint64 // the seq of the snapshot of the last table prepared whole
	// prevBase is the base of the snapshot before this one: when this
	// one starts a line, the previous one ended the line that started
	// there.
	prevBase uint64
	// others holds the states of the deployments whose own place holds
	// another balancer's (tables prepared by two balancers); nil when
	// there are none.
	others *cowmap.Map[*routes.Deployment, *depState]
	byKey  *entrySet // the entries, by instance key
	// zones counts, for each zone of the table's instances, the
	// instances eligible in some deployment (each once, in the zone one
	// of those deployments lists it in: the first to make it eligible,
	// until that one goes).
	zones map[string]int
	// insts counts the table's instances in each zone: a zone is in
	// zones while it has some.
	insts map[string]int
	// prev is the snapshot this one replaced, so that requests that looked
	// a deployment up in the previous table are still balanced; it is
	// cleared when this snapshot is replaced in turn.
	prev atomic.Pointer[snapshot]
}

// entry is one instance (by address and ID) of the table: its shared
// state and the deployments that have it eligible. Entries live as long
// as some deployment of the table has the instance, across snapshots;
// Prepare updates them in place.
type entry struct {
	key instKey
	// st is the instance's state, made when something first needs to
	// write it (stateOf): a deployment's first pick, a request, a check.
	// Until then the instance is as a new state says (pristine), and a
	// table of deployments that get no requests holds no state for them.
	st   atomic.Pointer[instState]
	refs int32 // the table's instances with this key; Prepare's, under prepMu
	// home is, of the deployments that have the entry eligible, how many
	// list it in the zone it is counted in (eligibility.zone), or fewer:
	// while it is above 0 that zone holds the count. Prepare's, under
	// prepMu.
	home int32
	elig atomic.Pointer[eligibility]
	// fresh is the seq of the snapshot whose Prepare made the entry:
	// until it is published, that Prepare may change the entry's
	// eligibility in place. (A number, not the snapEdit, so that nothing
	// need be cleared at publication: a later Prepare has another seq.)
	fresh uint64
}

// eligibility is where an entry is eligible; replaced whole.
type eligibility struct {
	deps []*depState
	zone string // where snapshot.zones counts it, once deps is not empty
	// one holds deps while it has one deployment, so that the common
	// case (an instance of one deployment) costs no list of its own.
	one [1]*depState
}

// newEntry is an entry and its first eligibility, in one allocation.
type newEntry struct {
	e  entry
	el eligibility
}

var notEligible = &eligibility{}

// eligible returns the deployments that have e eligible, and the zone
// it is counted in.
func (e *entry) eligible() *eligibility { return e.elig.Load() }

// depState is a deployment of a snapshot.
type depState struct {
	b     *Balancer // whose state it is
	born  uint64    // the seq of the snapshot that made it
	gone  atomic.Uint64
	d     *routes.Deployment
	insts []eligInst // parallel to d.Eligible
	zones []string   // zones of d.Eligible, local zone first if any
	local bool       // zones[0] is the local zone

	// version grows with each health change of an instance of d; view
	// is built at the first pick, and rebuilt when it was built from an
	// older version, or when an ejection it counted ends.
	version atomic.Uint64
	view    atomic.Pointer[view]
}

// eligInst is an eligible instance of a deployment, as its picks use it.
type eligInst struct {
	e    *entry
	zone int32 // index in depState.zones
	gen  int32 // the instance's generation, as an index
}

// NewBalancer returns a Balancer for cfg (see Config for defaults). It
// picks nothing until Prepare gives it a table.
func NewBalancer(cfg Config) *Balancer {
	cfg.setDefaults()
	return &Balancer{cfg: cfg, changed: make(chan struct{}, 1), suspects: map[*instState]struct{}{}}
}

func (b *Balancer) now() int64 { return b.cfg.Clock().UnixNano() }

// snapEdit is a snapshot being built by Prepare.
type snapEdit struct {
	old    *snapshot                                     // the current one; nil before the first table
	seq    uint64                                        // the snapshot's
	others *cowmap.Editor[*routes.Deployment, *depState] // nil until needed
	byKey  *entryEditor
	zones  map[string]int
	insts  map[string]int
	built  []*depState // the deployments added

	// zoneLists are zone lists of deployments built, which the next
	// ones with the same list share (most deployments of a table list
	// the same zones); scratch is where a list is put together.
	zoneLists [][]string
	scratch   []string
	// counted are the counts by zone of the deployments added, not yet
	// added to insts and zones (see countZone).
	counted []zoneCount
	scanned int         // instances zoneOf looked at
	adopt   [][2]*entry // new entries, and the old entries of their instances, which had no state
	touched uint64      // what readAhead read, kept so that the reads are made
	hashes  []uint64    // readAhead's
	zoneIdx map[*depState]map[*entry]string
}

type zoneCount struct {
	zone            string
	insts, eligible int
}

// countZone counts, for an instance of a deployment added in zone, insts
// more instances in the table and eligible more instances eligible in
// some deployment. A table has few zones: the counts are kept in a short
// list and added to insts and zones once, by flushZones, after the
// deployments removed have been taken off.
func (x *snapEdit) countZone(zone string, insts, eligible int) {
	for i := range x.counted {
		if c := &x.counted[i]; c.zone == zone {
			c.insts += insts
			c.eligible += eligible
			return
		}
	}
	x.counted = append(x.counted, zoneCount{zone, insts, eligible})
}

// flushZones adds the counts of countZone to insts and zones.
func (x *snapEdit) flushZones() {
	for _, c := range x.counted {
		x.insts[c.zone] += c.insts
		x.zones[c.zone] += c.eligible // listed, eligible or not
	}
	x.counted = x.counted[:0]
}

// maxZoneLists bounds the zone lists a snapEdit keeps to share.
const maxZoneLists = 16

// zoneList returns a list equal to l, which is x's scratch: one it gave
// before, or a copy. The lists it gives are never modified.
func (x *snapEdit) zoneList(l []string) []string {
	for _, o := range x.zoneLists {
		if slices.Equal(o, l) {
			return o
		}
	}
	c := slices.Clone(l)
	if len(x.zoneLists) < maxZoneLists {
		x.zoneLists = append(x.zoneLists, c)
	} else {
		x.zoneLists[len(x.built)%maxZoneLists] = c
	}
	return c
}

// Prepare makes the balancer ready to pick in t's deployments. The proxy
// calls it with every new table before serving it; it is safe to call
// while picks run. Instances of t that an earlier table had (same address
// and ID) keep their state; the state of the others is forgotten. When t
// was derived from the current table (routes.Table.With), only the
// deployments it changed are looked at.
func (b *Balancer) Prepare(t *routes.Table) {
	b.prepMu.Lock()
	defer b.prepMu.Unlock()
	old := b.snap.Load()
	flips := b.flips.Load()
	b.seq++
	x := &snapEdit{old: old, seq: b.seq}
	base := b.seq
	var ch *routes.Change
	if old != nil {
		ch = t.ChangeFrom(old.table)
	}
	if ch != nil {
		base = old.base
		if old.others != nil {
			x.others = old.others.Edit()
		}
		x.byKey = old.byKey.edit()
		x.zones, x.insts = maps.Clone(old.zones), maps.Clone(old.insts)
		for _, d := range ch.Removed {
			x.remove(b, d)
		}
	} else {
		n := t.Len()
		x.byKey = buildEntries(3 * n)
		x.zones, x.insts = map[string]int{}, map[string]int{}
	}
	var added []*routes.Deployment
	if ch != nil {
		added = ch.Added
	} else {
		added = t.Deployments()
	}
	// A deployment's view is built at its first pick (viewOf), not
	// here: a proxy of a large table serves some of its deployments, and
	// a full load then costs no view for the others.
	for i, d := range added {
		if i%readAhead == 0 {
			x.readAhead(added[i:min(len(added), i+readAhead)])
		}
		ds := b.newDepState(d, x)
		x.keep(d, ds)
		x.built = append(x.built, ds)
	}
	x.flushZones()
	b.scanned = x.scanned
	if b.testHookPrepared != nil {
		b.testHookPrepared()
	}
	s := &snapshot{table: t, seq: x.seq, base: base, byKey: x.byKey.done(), zones: x.zones, insts: x.insts}
	if old != nil {
		s.prevBase = old.base
	}
	if x.others != nil {
		s.others = x.others.Done()
	}
	if old != nil {
		old.prev.Store(nil)
		s.prev.Store(old)
	}
	b.snap.Store(s)
	// A state made on an old entry while this table was prepared (by a
	// request that found the instance in the old table) is the new
	// entry's too. One made from now on is given to it by stateOf.
	for _, p := range x.adopt {
		if st := p[1].st.Load(); st != nil {
			p[0].st.CompareAndSwap(nil, st)
		}
	}
	if b.flips.Load() != flips {
		// Health changed while the views were built: they may not show it.
		for _, ds := range x.built {
			ds.version.Add(1)
		}
	}
	select {
	case b.changed <- struct{}{}:
	default:
	}
}

// readAhead is how many deployments' instances Prepare reads the entry
// slots of before it looks their instances up one by one.
const readAhead = 16

// readAhead reads the slots where the instances of deps will be looked
// for, in the set being built and in the old one. The reads do not wait
// for one another, so the cache misses of a large table's random slots
// overlap, and the lookups that follow find them in cache. A full load
// of 100 000 deployments spent a tenth of its time waiting for them.
func (x *snapEdit) readAhead(deps []*routes.Deployment) {
	hs := x.hashes[:0]
	for _, d := range deps {
		for _, in := range d.Instances {
			hs = append(hs, hashKey(keyOf(in)))
		}
	}
	x.hashes = hs
	// Only the reads in this loop: short, so that the processor has
	// many of them under way at once.
	var t uint64
	for _, h := range hs {
		t ^= x.byKey.s.touch(h)
	}
	if x.old != nil {
		for _, h := range hs {
			t ^= x.old.byKey.touch(h)
		}
	}
	x.touched ^= t
}

// zoneOf returns the zone ds lists the instance of entry e in, among
// those it has eligible (a deployment holds the entry of each of its
// instances for as long as it is in the table). A deployment of many
// instances is indexed once per Prepare, so that removing deployments
// that share its instances costs what they hold, not that times its
// size.
func (x *snapEdit) zoneOf(ds *depState, e *entry) (string, bool) {
	if len(ds.insts) <= 8 {
		for _, ei := range ds.insts {
			x.scanned++
			if ei.e == e {
				return ds.zones[ei.zone], true
			}
		}
		return "", false
	}
	m, ok := x.zoneIdx[ds]
	if !ok {
		m = make(map[*entry]string, len(ds.insts))
		for _, ei := range ds.insts {
			if _, dup := m[ei.e]; !dup {
				m[ei.e] = ds.zones[ei.zone]
			}
		}
		x.scanned += len(ds.insts)
		if x.zoneIdx == nil {
			x.zoneIdx = map[*depState]map[*entry]string{}
		}
		x.zoneIdx[ds] = m
	}
	z, ok := m[e]
	return z, ok
}

// keep keeps ds, made for d by the Prepare of x, where depOf finds it:
// with d, unless d holds another balancer's state.
func (x *snapEdit) keep(d *routes.Deployment, ds *depState) {
	for {
		cur := d.PickerState()
		if o, ok := cur.(*depState); cur != nil && (!ok || o.b != ds.b) {
			break // another picker's, or another balancer's
		}
		if d.CompareAndSwapPickerState(cur, ds) {
			return
		}
	}
	if x.others == nil {
		x.others = cowmap.Build[*routes.Deployment, *depState](cowmap.Pointer, 0)
	}
	x.others.Set(d, ds)
}

// remove takes d, a deployment of the current table that the new one
// does not have, out of the snapshot being built.
func (x *snapEdit) remove(b *Balancer, d *routes.Deployment) {
	ds, _ := d.PickerState().(*depState)
	if ds == nil || ds.b != b {
		ds = nil
		if x.others != nil {
			ds, _ = x.others.Get(d)
			x.others.Delete(d)
		}
	}
	if ds != nil {
		ds.gone.Store(x.seq)
	}
	for _, in := range d.Instances {
		k := keyOf(in)
		e := x.byKey.get(k)
		if e == nil {
			continue
		}
		if el := e.eligible(); ds != nil && slices.Contains(el.deps, ds) {
			rest := slices.DeleteFunc(slices.Clone(el.deps), func(o *depState) bool { return o == ds })
			if len(rest) == 0 {
				x.zones[el.zone]--
				e.elig.Store(notEligible)
			} else {
				// The instance stays eligible. It stays counted in its
				// zone while a deployment that keeps it lists it there;
				// when d may have been the last, the count moves to the
				// zone the first deployment that keeps it lists it in,
				// so that the zone it was counted in, which may have
				// been only d's, goes with its last instance.
				zone := el.zone
				if in.Zone == zone {
					e.home--
				}
				if e.home <= 0 {
					if z, ok := x.zoneOf(rest[0], e); ok && z != zone {
						x.zones[zone]--
						x.zones[z]++
						zone = z
					}
					e.home = 1 // rest[0] lists it there (others may too)
				}
				e.elig.Store(&eligibility{deps: rest, zone: zone})
			}
		}
		if e.refs--; e.refs == 0 {
			x.byKey.remove(k)
		}
		if x.insts[in.Zone]--; x.insts[in.Zone] == 0 {
			delete(x.insts, in.Zone)
			delete(x.zones, in.Zone)
		}
	}
}

func (b *Balancer) newDepState(d *routes.Deployment, x *snapEdit) *depState {
	ds := &depState{
		b:     b,
		born:  x.seq,
		d:     d,
		insts: make([]eligInst, len(d.Eligible)),
	}
	var gens []string // generation names, by index
	for i, in := range d.Eligible {
		g := slices.Index(gens, in.Generation)
		if g < 0 {
			g = len(gens)
			gens = append(gens, in.Generation)
		}
		ds.insts[i].gen = int32(g)
	}
	zones := x.scratch[:0]
	for _, in := range d.Eligible {
		if in.Zone == b.cfg.LocalZone && b.cfg.LocalZone != "" {
			zones, ds.local = append(zones, in.Zone), true
			break
		}
	}
	for i, in := range d.Eligible {
		z := slices.Index(zones, in.Zone)
		if z < 0 {
			z = len(zones)
			zones = append(zones, in.Zone)
		}
		ds.insts[i].zone = int32(z)
	}
	if len(zones) > 0 {
		ds.zones = x.zoneList(zones)
	}
	x.scratch = zones
	next := 0 // d.Eligible is in the order of d.Instances: the next one to meet
	for _, in := range d.Instances {
		k := keyOf(in)
		h := hashKey(k)
		e := x.byKey.s.getHashed(k, h)
		if e == nil {
			var oe *entry
			if x.old != nil {
				oe = x.old.byKey.getHashed(k, h)
			}
			ne := &newEntry{e: entry{key: k, fresh: x.seq}}
			e = &ne.e
			e.elig.Store(&ne.el)
			if oe != nil {
				// The state, if the old entry has one yet; one made
				// after this (by a request that found the old entry)
				// is taken over once this table is published.
				if st := oe.st.Load(); st != nil {
					e.st.Store(st)
				} else {
					x.adopt = append(x.adopt, [2]*entry{e, oe})
				}
			}
			x.byKey.addHashed(e, h)
		}
		e.refs++
		x.countZone(in.Zone, 1, 0)
		if next < len(d.Eligible) && d.Eligible[next] == in {
			i := next
			next++
			ds.insts[i].e = e
			el := e.eligible()
			zone := el.zone
			if len(el.deps) == 0 {
				zone = in.Zone
				x.countZone(in.Zone, 0, 1)
				e.home = 0
			}
			if in.Zone == zone {
				e.home++
			}
			if e.fresh == x.seq {
				// No reader has it yet: grow its list in place (an
				// instance that many deployments share must not cost
				// a copy of its list for each of them).
				if el.deps == nil {
					el.one[0] = ds
					el.deps = el.one[:]
				} else {
					el.deps = append(el.deps, ds)
				}
				el.zone = zone
			} else {
				e.elig.Store(&eligibility{deps: append(slices.Clip(el.deps), ds), zone: zone})
			}
		}
	}
	return ds
}

// entry finds an instance of s by key; nil for a nil s.
func (s *snapshot) entry(k instKey) *entry {
	if s == nil {
		return nil
	}
	return s.byKey.get(k)
}

// lookup finds the entry of in in the current table, by address and ID;
// nil when in is no longer in the table.
func (b *Balancer) lookup(in *routes.Instance) *entry {
	s := b.snap.Load()
	if s == nil || in == nil {
		return nil
	}
	return s.entry(keyOf(in))
}

// Serves implements AddrIndex: whether an instance at addr is eligible
// in some deployment of the current table.
func (b *Balancer) Serves(addr string) bool {
	s := b.snap.Load()
	return s != nil && s.byKey.anyAt(addr, func(e *entry) bool { return len(e.eligible().deps) > 0 })
}

// depOf finds d's state in the current or the previous table.
func (b *Balancer) depOf(d *routes.Deployment) *depState {
	s := b.snap.Load()
	if s == nil {
		return nil
	}
	ds, _ := d.PickerState().(*depState)
	if ds == nil || ds.b != b {
		ds = s.other(d)
	}
	if ds == nil || !s.holds(ds) {
		return nil
	}
	return ds
}

// other finds the state of d in others, of s or of the previous
// snapshot.
func (s *snapshot) other(d *routes.Deployment) *depState {
	for _, s := range [2]*snapshot{s, s.prevOrNil()} {
		if s != nil && s.others != nil {
			if ds, ok := s.others.Get(d); ok {
				return ds
			}
		}
	}
	return nil
}

// holds reports whether ds, a state of a deployment of some table this
// balancer prepared, is of s's table or of the previous one: the
// deployment was in one of them. A state made for a snapshot after s
// (being prepared) is held too: its deployment is of a newer table.
func (s *snapshot) holds(ds *depState) bool {
	if g := ds.gone.Load(); g != 0 && g < s.seq {
		// In the tables before the snapshot gone, the last of which is
		// older than s's previous one.
		return false
	}
	if ds.born >= s.base {
		return true // of s's line of tables
	}
	// Of a line before: only s's previous snapshot, the last of its
	// line, may have it, when s is the first of its own line.
	return s.seq == s.base && ds.born >= s.prevBase
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
			for _, ds := range e.eligible().deps {
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

// stateOf returns the state of e's instance, and makes it if e has
// none yet. The state is shared by every table that has the instance
// (same address and ID): an entry of the current or the previous table
// for the same instance that has one gives it, and one made for an entry
// of an older table is given to the current table's entry too (a
// request that found the instance before a new table came in). States
// are made under stateMu, so that two entries of an instance never make
// one each; Prepare's copies between entries only fill one that has
// none.
func (b *Balancer) stateOf(e *entry) *instState {
	if st := e.st.Load(); st != nil {
		return st
	}
	b.stateMu.Lock()
	defer b.stateMu.Unlock()
	st := b.otherState(e)
	if st == nil {
		// Allocated on its own: the state outlives this entry (a whole
		// table makes new entries for it), and must not keep the
		// entry, and the deployments it lists, alive.
		st = &instState{key: e.key}
	}
	if !e.st.CompareAndSwap(nil, st) {
		return e.st.Load()
	}
	if cur := b.snap.Load().entry(e.key); cur != nil && cur != e {
		cur.st.CompareAndSwap(nil, st)
	}
	return st
}

// otherState is the state of another entry of e's instance in the
// current or the previous table, or nil. For an entry of a table being
// prepared, the current table is the previous one: the table before
// that, which the new table does not follow, gives nothing (an instance
// it dropped comes back with a fresh state).
func (b *Balancer) otherState(e *entry) *instState {
	s := b.snap.Load()
	for i, o := range [2]*snapshot{s, s.prevOrNil()} {
		if i == 1 && s != nil && e.fresh > s.seq {
			break
		}
		if o := o.entry(e.key); o != nil && o != e {
			if st := o.st.Load(); st != nil {
				return st
			}
		}
	}
	return nil
}

// state returns the state of e's instance to read: pristine while it
// has none.
func (e *entry) state() *instState {
	if st := e.st.Load(); st != nil {
		return st
	}
	return &pristine
}

// pristine is the state of an instance that nothing has written yet.
// It is only read.
var pristine instState

// Begin records that a request starts on in, an instance of d as Pick
// or PickOther gave it (d may be nil: in is then found by address and
// ID).
func (b *Balancer) Begin(d *routes.Deployment, in *routes.Instance) {
	if st := b.stateFor(d, in); st != nil {
		st.begin()
	}
}

// End records that a request on in, an instance of d, ended with outcome
// o, for passive health. Each Begin is paired with one End.
func (b *Balancer) End(d *routes.Deployment, in *routes.Instance, o Outcome) {
	if st := b.stateFor(d, in); st != nil {
		b.outcome(st, o)
	}
}

// viewScan bounds how many of a deployment's eligible instances
// stateFor looks through for the instance of a request.
const viewScan = 32

// stateFor returns the state to count a request on in, an instance of d,
// by: the state d's view holds for it, which the pick that gave in has
// just read (d and its view are in cache, where looking in up by
// address and ID costs a few cache misses in a large table); else, when
// d is not balanced or in is not among its first viewScan eligible
// instances, the state of in's entry in the current table, or nil when
// the table no longer has in. Both give an instance's one state: a
// view's states are its instances' entries' states, which every table
// that has the instance shares (stateOf).
func (b *Balancer) stateFor(d *routes.Deployment, in *routes.Instance) *instState {
	if d != nil {
		if ds := b.depOf(d); ds != nil {
			if v := ds.view.Load(); v != nil {
				for i, el := range d.Eligible[:min(len(d.Eligible), viewScan)] {
					if el == in {
						return v.states[i]
					}
				}
			}
		}
	}
	if e := b.lookup(in); e != nil {
		return b.stateOf(e)
	}
	return nil
}
