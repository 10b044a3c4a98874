package zones

import (
	"math"
	"math/bits"

	"github.com/switchyard/switchyard/routes"
)

// view is what picks in a deployment use, derived from the health of its
// instances at one moment. It is immutable.
type view struct {
	version uint64
	// until is when the first ejection that the view counts ends (Unix
	// nanoseconds); math.MaxInt64 if it counts none.
	until int64
	panic bool
	// localP is the probability of the local group, in units of 1/2^32.
	localP       uint64
	local, other group
	healthyShare float64
	localShare   float64 // a
	zoneHealthy  []uint64
	zoneTotal    []uint64
	// states are the states of the deployment's eligible instances,
	// parallel to depState.insts: made at the view's first build, so
	// that a deployment that is never picked costs none.
	states []*instState
}

// group is a set of candidates drawn in proportion to their weights with
// Vose's alias method: O(1) per draw whatever the group's size.
type group struct {
	idx   []int32  // indexes in d.Eligible
	w     []uint64 // weights, while the group is built
	prob  []uint32 // alias table: keep column k when the coin is below prob[k]
	alias []int32  // else take alias[k]
	total uint64
}

func (g *group) add(i int32, w uint64) {
	g.idx = append(g.idx, i)
	g.w = append(g.w, w)
	g.total += w
}

// finish builds the alias table once every candidate is added.
func (g *group) finish() {
	n := len(g.idx)
	if n == 0 {
		return
	}
	g.prob, g.alias = make([]uint32, n), make([]int32, n)
	// Scaled weights: column k holds n·w[k]/total of the unit mass.
	scaled := make([]float64, n)
	var small, large []int
	for k, w := range g.w {
		scaled[k] = float64(w) * float64(n) / float64(g.total)
		if scaled[k] < 1 {
			small = append(small, k)
		} else {
			large = append(large, k)
		}
	}
	for len(small) > 0 && len(large) > 0 {
		s, l := small[len(small)-1], large[len(large)-1]
		small = small[:len(small)-1]
		g.prob[s] = uint32(scaled[s] * (1 << 32))
		g.alias[s] = int32(l)
		scaled[l] -= 1 - scaled[s]
		if scaled[l] < 1 {
			large = large[:len(large)-1]
			small = append(small, l)
		}
	}
	for _, k := range append(small, large...) { // full columns (rounding leftovers)
		g.prob[k], g.alias[k] = math.MaxUint32, int32(k)
	}
	g.w = nil
}

// draw returns the candidate that r (uniform over 64 bits) selects, in
// proportion to the weights. g is not empty and finished.
func (g *group) draw(r uint64) int32 {
	col, _ := bits.Mul64(r, uint64(len(g.idx))) // high bits: the column
	if uint32(r) < g.prob[col] {                // low bits: the coin
		return g.idx[col]
	}
	return g.idx[g.alias[col]]
}

// buildView derives ds's view from the health of its instances at now.
func (b *Balancer) buildView(ds *depState, now int64) *view {
	v := &view{
		version:     ds.version.Load(),
		until:       math.MaxInt64,
		zoneHealthy: make([]uint64, len(ds.zones)),
		zoneTotal:   make([]uint64, len(ds.zones)),
		states:      make([]*instState, len(ds.insts)),
	}
	d := ds.d
	healthy := make([]bool, len(ds.insts))
	var healthyW uint64
	for i, ei := range ds.insts {
		st := b.stateOf(ei.e)
		v.states[i] = st
		if u := st.ejectedUntil.Load(); now < u && u < v.until {
			v.until = u
		}
		z, w := ei.zone, d.Weights[i]
		v.zoneTotal[z] += w
		if st.healthy(now) {
			healthy[i] = true
			v.zoneHealthy[z] += w
			healthyW += w
		}
	}
	if d.TotalWeight > 0 {
		v.healthyShare = float64(healthyW) / float64(d.TotalWeight)
	}
	v.panic = v.healthyShare < b.cfg.PanicThreshold
	switch {
	case !ds.local:
		v.localShare = 0
	case healthyW == 0:
		v.localShare = 1 // nothing healthy: panic, local first
	default:
		v.localShare = min(1, Overprovisioning*float64(v.zoneHealthy[0])/float64(v.zoneTotal[0]))
	}
	v.localP = uint64(v.localShare * (1 << 32))
	for i := range ds.insts {
		z := ds.insts[i].zone
		in := healthy[i]
		if v.panic {
			// Health ignored, but not in a zone observed down, unless
			// every zone is.
			in = v.zoneHealthy[z] > 0 || healthyW == 0
		}
		if !in {
			continue
		}
		if ds.local && z == 0 {
			v.local.add(int32(i), d.Weights[i])
		} else {
			v.other.add(int32(i), d.Weights[i])
		}
	}
	v.local.finish()
	v.other.finish()
	return v
}

// viewOf returns ds's view: built at the deployment's first pick, and
// rebuilt if health changed since it was built.
func (b *Balancer) viewOf(ds *depState) *view {
	v := ds.view.Load()
	if v != nil && v.version == ds.version.Load() {
		if v.until == math.MaxInt64 {
			return v
		}
		now := b.now()
		if now < v.until {
			return v
		}
		v = b.buildView(ds, now)
	} else {
		v = b.buildView(ds, b.now())
	}
	ds.view.Store(v)
	return v
}

// Pick implements Picker: an instance of d for a new request, or nil when
// none can take it (see the package doc for the rule).
func (b *Balancer) Pick(d *routes.Deployment) *routes.Instance {
	ds := b.depOf(d)
	if ds == nil {
		return b.pickUnprepared(d)
	}
	v := b.viewOf(ds)
	g := &v.other
	if len(v.local.idx) > 0 && (len(v.other.idx) == 0 || b.cfg.Rand()>>32 < v.localP) {
		g = &v.local
	}
	if len(g.idx) == 0 {
		b.stats.noInstance.Add(1)
		return nil
	}
	if v.panic {
		b.stats.panicPicks.Add(1)
	}
	i, j := g.draw(b.cfg.Rand()), g.draw(b.cfg.Rand())
	if i != j && lessLoaded(ds, v, j, i) {
		i = j
	}
	return d.Eligible[i]
}

// lessLoaded reports whether instance j of ds (whose view is v) should
// win the draw against i: both of the same generation, and j has fewer
// outstanding requests for its weight, out[j]/w[j] < out[i]/w[i].
func lessLoaded(ds *depState, v *view, j, i int32) bool {
	if ds.insts[j].gen != ds.insts[i].gen {
		// Candidates of two generations: the first draw stands, so each
		// generation gets exactly its weight's share (a canary split is
		// a contract); load decides only within a generation.
		return false
	}
	oj, oi := float64(v.states[j].outstanding.Load()), float64(v.states[i].outstanding.Load())
	return oj*float64(ds.d.Weights[i]) < oi*float64(ds.d.Weights[j])
}

// PickOther chooses where to retry a request of d that failed on the tried
// instances: an instance not in tried, in a zone none of them is in if
// there is one, else in any zone; nil if none. It draws among the
// instances that Pick may return, two by weight and the less loaded. In a
// deployment of a table Prepare has not seen, it returns nil.
func (b *Balancer) PickOther(d *routes.Deployment, tried []*routes.Instance) *routes.Instance {
	ds := b.depOf(d)
	if ds == nil {
		b.stats.unprepared.Add(1)
		return nil
	}
	v := b.viewOf(ds)
	for _, otherZone := range [2]bool{true, false} {
		total := b.sumOthers(ds, v, tried, otherZone)
		if total == 0 {
			continue
		}
		i := b.nthOther(ds, v, tried, otherZone, b.cfg.Rand(), total)
		j := b.nthOther(ds, v, tried, otherZone, b.cfg.Rand(), total)
		if i != j && lessLoaded(ds, v, j, i) {
			i = j
		}
		if v.panic {
			b.stats.panicPicks.Add(1)
		}
		return d.Eligible[i]
	}
	return nil
}

// allowed reports whether instance i of ds may be a retry: not tried, and
// if otherZone, in no tried instance's zone.
func allowed(ds *depState, i int32, tried []*routes.Instance, otherZone bool) bool {
	in := ds.d.Eligible[i]
	return !triedIn(tried, in) && !(otherZone && zoneTried(tried, in.Zone))
}

func (b *Balancer) sumOthers(ds *depState, v *view, tried []*routes.Instance, otherZone bool) uint64 {
	var total uint64
	for _, g := range [2]*group{&v.local, &v.other} {
		for _, i := range g.idx {
			if allowed(ds, i, tried, otherZone) {
				total += ds.d.Weights[i]
			}
		}
	}
	return total
}

// nthOther draws one allowed candidate by weight; total is their weight.
func (b *Balancer) nthOther(ds *depState, v *view, tried []*routes.Instance, otherZone bool, r, total uint64) int32 {
	x, _ := bits.Mul64(r, total)
	last := int32(-1)
	for _, g := range [2]*group{&v.local, &v.other} {
		for _, i := range g.idx {
			if !allowed(ds, i, tried, otherZone) {
				continue
			}
			w := ds.d.Weights[i]
			if x < w {
				return i
			}
			x -= w
			last = i
		}
	}
	return last
}

// pickUnprepared picks in a deployment of a table that Prepare has not
// seen: by weight among the instances whose state says healthy, without
// zone preference. It should not happen; Stats counts it.
func (b *Balancer) pickUnprepared(d *routes.Deployment) *routes.Instance {
	b.stats.unprepared.Add(1)
	s := b.snap.Load()
	now := b.now()
	var total uint64
	for i, in := range d.Eligible {
		if e := s.entry(keyOf(in)); e == nil || e.state().healthy(now) {
			total += d.Weights[i]
		}
	}
	if total == 0 {
		return Weighted{}.Pick(d)
	}
	x, _ := bits.Mul64(b.cfg.Rand(), total)
	for i, in := range d.Eligible {
		if e := s.entry(keyOf(in)); e == nil || e.state().healthy(now) {
			if x < d.Weights[i] {
				return in
			}
			x -= d.Weights[i]
		}
	}
	return nil
}
