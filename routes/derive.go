package routes

import (
	"hash/maphash"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
)

// tableSeq numbers tables, so that a table knows the one it was derived
// from without holding it.
var tableSeq atomic.Uint64

// Change is how a table differs from the table it was derived from by
// With: the deployments the base served that it no longer serves as they
// were (removed, or replaced), and its own that the base does not have
// (new, or replacements). A consumer that keeps state per deployment
// (the balancer, the per-generation counters) updates only these.
type Change struct {
	Removed []*Deployment // sorted by ID
	Added   []*Deployment // sorted by ID
}

// ChangeFrom returns what t changed from base when With derived t from
// base, and nil otherwise (t was built whole, or from another table):
// then everything must be taken as changed.
func (t *Table) ChangeFrom(base *Table) *Change {
	if t == nil || base == nil || t.change == nil || t.base != base.seq {
		return nil
	}
	return t.change
}

// With returns a table with t's domain and the zones given, where the
// deployments of upsert replace those of the same ID (or are added), and
// the IDs in deleted are removed (an ID that t does not have is ignored;
// an ID both deleted and upserted is upserted). t is not modified, and
// the new table shares with it every deployment and index shard the
// change does not touch: it costs about what the change touches, unless
// the zones' states differ from t's, which changes who gets traffic in
// every deployment: then it is built whole, as NewTable builds it.
//
// The specs are validated as NewTable validates them, each on its own and
// against the table's other deployments (an ID or "<alias>.<kind>" key
// used twice); on an error no table is returned. The result has no
// Version, Source or LoadedAt: the caller sets them.
func (t *Table) With(zones map[string]ZoneState, upsert []*DeploymentSpec, deleted []string) (*Table, error) {
	return t.with(zones, upsert, nil, deleted)
}

// WithOf is With for deployments made to be given whole, which the new
// table takes as its own as NewTableOf does.
func (t *Table) WithOf(zones map[string]ZoneState, upsert []*Deployment, deleted []string) (*Table, error) {
	return t.with(zones, specsOf(upsert), upsert, deleted)
}

// with is With; owns, when not nil, holds the deployment of each spec of
// upsert, for the new table to take.
func (t *Table) with(zones map[string]ZoneState, upsert []*DeploymentSpec, owns []*Deployment, deleted []string) (*Table, error) {
	if zones == nil {
		zones = map[string]ZoneState{}
	}
	if !maps.Equal(zones, t.Zones) {
		return t.rebuild(zones, upsert, owns, deleted)
	}
	for _, spec := range upsert {
		if err := validateDeployment(spec); err != nil {
			return nil, err
		}
	}
	// What goes: the deleted and the replaced deployments.
	removed := map[*Deployment]bool{}
	var gone []*Deployment
	drop := func(id string) {
		if d := t.index.lookup([]byte(id)); d != nil && d.ID == id && !removed[d] {
			removed[d] = true
			gone = append(gone, d)
		}
	}
	for _, id := range deleted {
		drop(id)
	}
	for _, spec := range upsert {
		drop(spec.ID)
	}
	// What comes, checked against what stays and against each other.
	added := make([]*Deployment, 0, len(upsert))
	newKeys := make(map[string]string, len(upsert)) // key -> deployment ID
	var key []byte
	for j, spec := range upsert {
		if other, ok := newKeys[spec.ID]; ok && other == spec.ID {
			return nil, invalidf(Ref{Deployment: spec, Field: "id"}, "deployment %s is listed twice", spec.ID)
		}
		newKeys[spec.ID] = spec.ID
		for i, a := range spec.Aliases {
			key = append(append(append(key[:0], a...), '.'), spec.Kind...)
			other, ok := newKeys[string(key)]
			if !ok {
				if d := t.index.lookup(key); d != nil && !removed[d] {
					other, ok = d.ID, true
				}
			}
			if ok {
				return nil, invalidf(Ref{Deployment: spec, Field: "aliases", Index: i},
					"deployment %s: alias key %q is already used by deployment %s", spec.ID, key, other)
			}
			newKeys[string(key)] = spec.ID
		}
		var d *Deployment
		if owns != nil {
			d = owns[j].take()
		}
		if d == nil {
			d = &Deployment{DeploymentSpec: *spec}
			d.taken.Store(true)
		}
		d.computeEligible(zones)
		d.computeAllow()
		added = append(added, d)
	}
	n := &Table{Domain: t.Domain, Zones: t.Zones, seq: tableSeq.Add(1), base: t.seq}
	var err *Error
	if n.index, err = t.index.derive(gone, added, upsert); err != nil {
		return nil, err
	}
	slices.SortFunc(gone, byID)
	slices.SortFunc(added, byID)
	n.list = t.list.splice(gone, added)
	if n.list.n == 0 {
		return nil, ErrEmptyTable
	}
	n.change = &Change{Removed: gone, Added: added}
	return n, nil
}

func byID(a, b *Deployment) int { return strings.Compare(a.ID, b.ID) }

// rebuild builds t's successor whole, for a change of the zones.
func (t *Table) rebuild(zones map[string]ZoneState, upsert []*DeploymentSpec, owns []*Deployment, deleted []string) (*Table, error) {
	skip := make(map[string]bool, len(upsert)+len(deleted))
	for _, id := range deleted {
		skip[id] = true
	}
	for _, s := range upsert {
		skip[s.ID] = true
	}
	specs := make([]*DeploymentSpec, 0, t.Len()+len(upsert))
	for d := range t.All() {
		if !skip[d.ID] {
			specs = append(specs, &d.DeploymentSpec)
		}
	}
	var all []*Deployment // the deployment of each spec, to take
	if owns != nil {
		all = make([]*Deployment, len(specs), len(specs)+len(owns))
		all = append(all, owns...)
	}
	specs = append(specs, upsert...)
	return newTable(t.Domain, zones, specs, all)
}

// derive returns an index with the keys of gone's deployments removed
// and those of added inserted, copying only the shards they hash to.
// specs are added's specs, for errors.
func (x *index) derive(gone, added []*Deployment, specs []*DeploymentSpec) (index, *Error) {
	n := index{seed: x.seed, blocks: x.blocks, n: x.n, keyBytes: x.keyBytes, hint: x.hint}
	var touched [indexShards / 64]uint64
	removed := make(map[*Deployment]bool, len(gone))
	var key []byte
	keys := func(d *Deployment, f func(key []byte)) {
		f([]byte(d.ID))
		for _, a := range d.Aliases {
			key = append(append(append(key[:0], a...), '.'), d.Kind...)
			f(key)
		}
	}
	for _, d := range gone {
		removed[d] = true
		keys(d, func(k []byte) {
			i := shardOf(maphash.Bytes(x.seed, k))
			touched[i/64] |= 1 << (i % 64)
			n.n--
			n.keyBytes -= uint64(len(k))
		})
	}
	for _, d := range added {
		keys(d, func(k []byte) {
			i := shardOf(maphash.Bytes(x.seed, k))
			touched[i/64] |= 1 << (i % 64)
		})
	}
	// Copy the touched shards without the keys that go, and the blocks
	// of their headers.
	var copied [indexBlocks]bool
	for i := range indexShards {
		if touched[i/64]&(1<<(i%64)) == 0 {
			continue
		}
		if b := i >> blockBits; !copied[b] {
			nb := *x.blocks[b]
			n.blocks[b], copied[b] = &nb, true
		}
		old := x.shard(i)
		sh := newShard(x.seed, old.n+1)
		for j := range old.slots {
			if s := &old.slots[j]; s.dep != nil && !removed[s.dep] {
				sh.insert(old.key(s), maphash.Bytes(x.seed, old.key(s)), s.dep)
			}
		}
		*n.shard(i) = sh
	}
	for k, d := range added {
		size := len(d.ID)
		for _, a := range d.Aliases {
			size += len(a) + 1 + len(d.Kind)
		}
		if !n.fits(size) {
			return index{}, invalidf(Ref{Deployment: specs[k], Field: "id"}, "deployment %s: the table has too many route keys", d.ID)
		}
		keys(d, func(k []byte) { n.insert(k, d) })
	}
	for i := range indexShards {
		if touched[i/64]&(1<<(i%64)) != 0 && n.shard(i).n == 0 {
			*n.shard(i) = shard{}
		}
	}
	return n, nil
}
