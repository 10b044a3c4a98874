package routes

import (
	"net/netip"
	"slices"
	"strings"
)

// weightUnit scales generation weights so that splitting a generation's
// weight over its instances stays integral for any realistic count.
const weightUnit = 720720 // lcm(1..16)

// NewTable validates the domain, zones and deployment specs and compiles
// them into an immutable snapshot. It takes ownership of zones. Each
// Deployment of the table holds a copy of its spec (sharing the spec's
// slices, maps and instances, which it never modifies) and what the table
// computes from it, so specs may be shared with tables that are still
// being read (a delta reuses the unchanged specs of the live table). A zone
// that zones does not list is up.
//
// An empty set of deployments is ErrEmptyTable; anything invalid (see
// ValidateDeployment; also the domain, a zone name, a deployment ID or an
// "<alias>.<kind>" key used twice) is an *Error wrapping ErrInvalid, and no
// table is built.
func NewTable(domain string, zones map[string]ZoneState, deps []*DeploymentSpec) (*Table, error) {
	return newTable(domain, zones, deps, nil)
}

// NewTableOf is NewTable for deployments made to be given whole: each
// one's spec (DeploymentSpec) filled by the caller, which never changes
// it afterwards, and nothing else set. The table takes as its own each
// one that no table has taken before, instead of a copy of its spec, so
// that a receiver that decodes specs into deployments (wire.State) and
// its table hold each spec once; the others it copies, as NewTable does.
func NewTableOf(domain string, zones map[string]ZoneState, deps []*Deployment) (*Table, error) {
	return newTable(domain, zones, specsOf(deps), deps)
}

// specsOf returns the specs of deps.
func specsOf(deps []*Deployment) []*DeploymentSpec {
	specs := make([]*DeploymentSpec, len(deps))
	for i, d := range deps {
		if d != nil { // add refuses a nil spec
			specs[i] = &d.DeploymentSpec
		}
	}
	return specs
}

// newTable builds a table of deps; owns, when not nil, holds for each
// spec the deployment it is the spec of, for the table to take.
func newTable(domain string, zones map[string]ZoneState, deps []*DeploymentSpec, owns []*Deployment) (*Table, error) {
	if len(deps) == 0 {
		return nil, ErrEmptyTable
	}
	keys := 0
	for _, d := range deps {
		if d != nil { // add refuses a nil spec
			keys += 1 + len(d.Aliases)
		}
	}
	b, err := newBuilder(domain, zones, len(deps), keys)
	if err != nil {
		return nil, err
	}
	for i, d := range deps {
		if i%readAhead == 0 {
			b.readAhead(deps[i:min(len(deps), i+readAhead)])
		}
		var own *Deployment
		if owns != nil {
			own = owns[i]
		}
		if err := b.add(d, own); err != nil {
			return nil, err
		}
	}
	return b.finish(), nil
}

// take returns d for a table to hold as its own, or nil when d is nil or
// a table has taken it before.
func (d *Deployment) take() *Deployment {
	if d == nil || !d.taken.CompareAndSwap(false, true) {
		return nil
	}
	return d
}

// Builder builds a Table from specs given one at a time, for a parser
// that reports the first problem of its input in input order: the domain
// and zones are checked when the Builder is made, each deployment when it
// is added. NewTable is a Builder used at once.
type Builder struct {
	t    *Table
	deps []*Deployment // added so far
	key  []byte        // scratch for an alias key
	// touched is what readAhead read, kept so that the reads are made.
	touched uint32
	hashes  []uint64 // readAhead's
}

// NewBuilder checks the domain and zones of a table (see NewTable) and
// returns a Builder for about n deployments. It takes ownership of zones.
// The error is an *Error wrapping ErrInvalid.
func NewBuilder(domain string, zones map[string]ZoneState, n int) (*Builder, error) {
	b, err := newBuilder(domain, zones, n, 2*n)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// Add validates spec, on its own and against the deployments added before
// (IDs and "<alias>.<kind>" keys), and adds it; an invalid spec is an
// *Error wrapping ErrInvalid, and is not added.
func (b *Builder) Add(spec *DeploymentSpec) error {
	if err := b.add(spec, nil); err != nil {
		return err
	}
	return nil
}

// Table returns the table of the deployments added, or ErrEmptyTable when
// there are none. The Builder must not be used afterwards.
func (b *Builder) Table() (*Table, error) {
	if len(b.deps) == 0 {
		return nil, ErrEmptyTable
	}
	return b.finish(), nil
}

// newBuilder makes a Builder for n deployments with keys route keys
// (estimates, as Builder.Add may get more).
func newBuilder(domain string, zones map[string]ZoneState, n, keys int) (*Builder, *Error) {
	domain = strings.TrimPrefix(strings.ToLower(domain), ".")
	if err := validateDomain(domain); err != nil {
		return nil, err
	}
	if zones == nil {
		zones = map[string]ZoneState{}
	}
	if err := validateZones(zones); err != nil {
		return nil, err
	}
	return &Builder{t: &Table{
		Domain: domain,
		Zones:  zones,
		index:  newIndex(keys),
	}, deps: make([]*Deployment, 0, n)}, nil
}

// add validates spec and indexes its keys: its ID and "<alias>.<kind>" for
// each alias. The two kinds of key cannot collide: IDs have no dot. own,
// if not nil, is the deployment spec is the spec of, which the table
// takes if no table has (see NewTableOf).
func (b *Builder) add(spec *DeploymentSpec, own *Deployment) *Error {
	if err := validateDeployment(spec); err != nil {
		return err
	}
	x := &b.t.index
	if x.lookup([]byte(spec.ID)) != nil {
		return invalidf(Ref{Deployment: spec, Field: "id"}, "deployment %s is listed twice", spec.ID)
	}
	for i, a := range spec.Aliases {
		if other := x.lookup(b.aliasKey(a, spec.Kind)); other != nil {
			return invalidf(Ref{Deployment: spec, Field: "aliases", Index: i},
				"deployment %s: alias key %q is already used by deployment %s", spec.ID, b.key, other.ID)
		}
	}
	size := len(spec.ID)
	for _, a := range spec.Aliases {
		size += len(a) + 1 + len(spec.Kind)
	}
	if !x.fits(size) {
		return invalidf(Ref{Deployment: spec, Field: "id"}, "deployment %s: the table has too many route keys", spec.ID)
	}
	d := own.take()
	if d == nil {
		d = &Deployment{DeploymentSpec: *spec}
		d.taken.Store(true)
	}
	x.insert([]byte(d.ID), d)
	for _, a := range d.Aliases {
		x.insert(b.aliasKey(a, d.Kind), d)
	}
	b.deps = append(b.deps, d)
	return nil
}

// readAhead is how many deployments' keys newTable reads the index slots
// of before it adds them one by one.
const readAhead = 16

// readAhead reads the index slots where the keys of deps go. The reads
// do not wait for one another, so the cache misses of a large table's
// random slots overlap, and add finds them in cache.
func (b *Builder) readAhead(deps []*DeploymentSpec) {
	x := &b.t.index
	hs := b.hashes[:0]
	for _, d := range deps {
		if d == nil {
			continue
		}
		hs = append(hs, x.hash([]byte(d.ID)))
		for _, a := range d.Aliases {
			hs = append(hs, x.hash(b.aliasKey(a, d.Kind)))
		}
	}
	b.hashes = hs
	b.touched ^= x.touch(hs)
}

// aliasKey returns the route key "<alias>.<kind>" in b's scratch buffer.
func (b *Builder) aliasKey(alias, kind string) []byte {
	b.key = append(append(append(b.key[:0], alias...), '.'), kind...)
	return b.key
}

// finish sorts the deployments by ID and computes who gets traffic. The
// caller has added at least one deployment.
func (b *Builder) finish() *Table {
	t := b.t
	t.index.trim()
	t.seq = tableSeq.Add(1)
	deps := b.deps
	if !slices.IsSortedFunc(deps, byID) { // added in ID order, as from a route server: no sort
		slices.SortFunc(deps, byID)
	}
	t.flat, t.list = deps, newDepList(deps)
	for _, d := range deps {
		d.computeEligible(t.Zones)
		d.computeAllow()
	}
	return t
}

// computeAllow fills AllowNets from Allow, which add validated.
func (d *Deployment) computeAllow() {
	d.AllowNets = nil
	if len(d.Allow) == 0 {
		return
	}
	d.AllowNets = make([]netip.Prefix, 0, len(d.Allow))
	for _, a := range d.Allow {
		if p, err := ParseAllow(a); err == nil {
			d.AllowNets = append(d.AllowNets, p)
		}
	}
}

// computeEligible fills Eligible, Weights and TotalWeight.
func (d *Deployment) computeEligible(zones map[string]ZoneState) {
	d.Eligible, d.Weights, d.TotalWeight = nil, nil, 0
	eligible := func(in *Instance) bool {
		return d.Serving[in.Generation] > 0 && !in.Maintenance && zones[in.Zone] != ZoneDown
	}
	// The eligible instances of each generation, counted with a slice:
	// deployments have a few generations.
	type genCount struct {
		gen string
		n   uint64
	}
	var counts []genCount
	for _, in := range d.Instances {
		if !eligible(in) {
			continue
		}
		i := slices.IndexFunc(counts, func(c genCount) bool { return c.gen == in.Generation })
		if i < 0 {
			i = len(counts)
			counts = append(counts, genCount{gen: in.Generation})
		}
		counts[i].n++
	}
	if len(counts) == 0 {
		return
	}
	n := uint64(0)
	for _, c := range counts {
		n += c.n
	}
	if n == uint64(len(d.Instances)) {
		// Every instance is eligible (the common case): the list is the
		// spec's, which neither the spec nor the table modifies.
		d.Eligible = d.Instances[:len(d.Instances):len(d.Instances)]
	} else {
		d.Eligible = make([]*Instance, 0, n)
	}
	d.Weights = make([]uint64, 0, n)
	for _, in := range d.Instances {
		if !eligible(in) {
			continue
		}
		i := slices.IndexFunc(counts, func(c genCount) bool { return c.gen == in.Generation })
		w := uint64(d.Serving[in.Generation]) * weightUnit / counts[i].n
		if w == 0 {
			w = 1
		}
		if n != uint64(len(d.Instances)) {
			d.Eligible = append(d.Eligible, in)
		}
		d.Weights = append(d.Weights, w)
		d.TotalWeight += w
	}
}

// Lookup finds the deployment for a route key: a deployment ID or
// "<alias>.<kind>". key must already be lowercase. Lookup does not allocate
// and takes no lock; a nil table finds nothing.
func (t *Table) Lookup(key []byte) *Deployment {
	if t == nil {
		return nil
	}
	return t.index.lookup(key)
}

// Len is the number of deployments.
func (t *Table) Len() int { return t.list.n }
