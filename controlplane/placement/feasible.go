package placement

import "slices"

// candidate is a feasible allocator: it can take one instance.
type candidate struct {
	id   string
	free int64 // Capacity-Used, less what this placement put on it
	zone int   // index in the zones of feasible
}

// zone is one zone's feasible allocators.
type zone struct {
	name  string
	cands []candidate // in the snapshot's order, until pick reorders them
	n     int         // len(cands), counted before they are laid out
	free  int64       // Σ free of cands
}

// feasible is the pipeline's second step: one pass over the snapshot that
// keeps, zone by zone, the allocators able to take an instance of r. The
// cheap tests come first; the deployment's map is read last. Zones come
// out in the order first seen (spread orders them); their candidate lists
// are slices of sc's buffers.
func feasible(s *Snapshot, r Request, sc *scratch) []*zone {
	ex := excluded(r.Exclude)
	var zones []*zone
	all := sc.cands[:0]
	last := -1 // the zone of the allocator before: fleets list a zone's allocators together
	for i := range s.Allocators {
		a := &s.Allocators[i]
		if !a.Live || a.Maintenance || a.free() < r.MemoryBytes ||
			ex.has(a.ID) || a.Deployments[r.Deployment] > 0 {
			continue
		}
		if last < 0 || zones[last].name != a.Zone {
			last = slices.IndexFunc(zones, func(z *zone) bool { return z.name == a.Zone })
			if last < 0 {
				last = len(zones)
				zones = append(zones, &zone{name: a.Zone})
			}
		}
		all = append(all, candidate{id: a.ID, free: a.free(), zone: last})
		zones[last].n++
		zones[last].free += a.free()
	}
	sc.cands = all

	// Lay the candidates out zone by zone in the second buffer.
	byZone := slices.Grow(sc.byZone[:0], len(all))[:len(all)]
	sc.byZone = byZone
	off := 0
	for _, z := range zones {
		z.cands = byZone[off : off : off+z.n]
		off += z.n
	}
	for _, c := range all {
		z := zones[c.zone]
		z.cands = append(z.cands, c)
	}
	return zones
}

// exclusion is the set of excluded allocator IDs: a short list is
// scanned, a long one hashed.
type exclusion struct {
	list []string
	set  map[string]struct{}
}

func excluded(ids []string) exclusion {
	if len(ids) <= 8 {
		return exclusion{list: ids}
	}
	set := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		set[id] = struct{}{}
	}
	return exclusion{set: set}
}

func (e exclusion) has(id string) bool {
	if e.set != nil {
		_, ok := e.set[id]
		return ok
	}
	return slices.Contains(e.list, id)
}
