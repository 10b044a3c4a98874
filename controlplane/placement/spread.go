package placement

import (
	"cmp"
	"slices"
)

// spread is the pipeline's third step: it keeps the zones that can take
// PerZone instances (as many feasible allocators, since each instance
// needs one of its own) and chooses r.Zones of them: the zones of
// r.PreferZones first, in that order, then the most free memory on
// feasible allocators, then the zone name. Fewer than r.Zones returned
// means there is no room.
func spread(zones []*zone, r Request) []*zone {
	ok := make([]*zone, 0, len(zones))
	for _, z := range zones {
		if z.n >= r.PerZone {
			ok = append(ok, z)
		}
	}
	rank := func(name string) int {
		if i := slices.Index(r.PreferZones, name); i >= 0 {
			return i // the first occurrence, should a zone be listed twice
		}
		return len(r.PreferZones)
	}
	slices.SortFunc(ok, func(a, b *zone) int {
		return cmp.Or(
			cmp.Compare(rank(a.name), rank(b.name)),
			cmp.Compare(b.free, a.free),
			cmp.Compare(a.name, b.name),
		)
	})
	return ok[:min(len(ok), r.Zones)]
}
