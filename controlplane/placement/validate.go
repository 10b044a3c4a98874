package placement

import "fmt"

// validate is the pipeline's first step: the request, the options and the
// snapshot, whole. The first problem is an *Error wrapping ErrInvalid whose
// text names the field as a plan spells it (zones, per_zone,
// memory_bytes).
func validate(s *Snapshot, r Request, o Options, sc *scratch) error {
	bad := func(format string, args ...any) error {
		return &Error{Err: ErrInvalid, Deployment: r.Deployment, Problem: fmt.Sprintf(format, args...)}
	}
	switch {
	case r.Deployment == "":
		return bad("deployment: empty")
	case r.Zones < 1:
		return bad("zones %d: want at least 1", r.Zones)
	case r.PerZone < 1:
		return bad("per_zone %d: want at least 1", r.PerZone)
	case r.MemoryBytes < 1:
		return bad("memory_bytes %d: want more than 0", r.MemoryBytes)
	case o.Strategy < BestFit || o.Strategy > Random:
		return bad("strategy %d: unknown", int(o.Strategy))
	}
	for i := range s.Allocators {
		a := &s.Allocators[i]
		switch {
		case a.ID == "":
			return bad("snapshot: allocator %d of %d: id empty", i+1, len(s.Allocators))
		case a.Zone == "":
			return bad("snapshot: allocator %q: zone empty", a.ID)
		case a.Capacity < 0:
			return bad("snapshot: allocator %q: capacity %d: want at least 0", a.ID, a.Capacity)
		case a.Used < 0:
			return bad("snapshot: allocator %q: used %d: want at least 0", a.ID, a.Used)
		}
	}
	if id, dup := sc.duplicate(s.Allocators); dup {
		return bad("snapshot: allocator %q listed twice", id)
	}
	return nil
}
