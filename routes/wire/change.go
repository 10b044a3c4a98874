package wire

import (
	"encoding/json"
	"slices"
	"strings"
)

// Change is what one snapshot changed from the snapshot it was built
// from: each deployment added, changed or removed, with its encoding
// before and after. A route server keeps the changes of its recent
// snapshots instead of the snapshots themselves, so that its history costs
// what changed, not a table per version, and still composes a delta from
// any version it holds (DeltaOver).
type Change struct {
	// IDs are the deployments that changed, sorted.
	IDs []string
	// Before and After are parallel to IDs: the deployment's canonical
	// encoding before and after the change, nil where it was absent
	// (added) or is absent (removed). They share the snapshots' bytes.
	Before, After [][]byte
}

// Len is the number of deployments the change touches.
func (c *Change) Len() int {
	if c == nil {
		return 0
	}
	return len(c.IDs)
}

// diff is the change from prev to s: the deployments whose encoding
// differs, is new, or is gone. A deployment that is the same spec as in
// prev (NewSnapshot shared its encoding) is not compared.
func diff(prev, s *Snapshot) *Change {
	type touched struct {
		id            string
		before, after []byte
	}
	var ts []touched
	for _, id := range s.IDs {
		after := s.Deps[id]
		before, ok := prev.Deps[id]
		if ok && (prev.src[id] == s.src[id] || string(before) == string(after)) {
			continue
		}
		ts = append(ts, touched{id, before, after})
	}
	removed := false
	for _, id := range prev.IDs {
		if _, ok := s.Deps[id]; !ok {
			ts, removed = append(ts, touched{id, prev.Deps[id], nil}), true
		}
	}
	if removed {
		slices.SortFunc(ts, func(a, b touched) int { return strings.Compare(a.id, b.id) })
	}
	c := &Change{IDs: make([]string, len(ts)), Before: make([][]byte, len(ts)), After: make([][]byte, len(ts))}
	for i, t := range ts {
		c.IDs[i], c.Before[i], c.After[i] = t.id, t.before, t.after
	}
	return c
}

// DeltaOver encodes the delta from the table (baseVersion, baseHash) to
// s, given changes: the Change of every snapshot after the base up to and
// including s, oldest first. It is the message s.Delta(base) would give,
// at a cost proportional to the changes rather than to the table, and
// without holding the base table. A nil change in the chain (a snapshot
// built without its predecessor) cannot be composed: ok is false, and the
// caller sends the full table.
func (s *Snapshot) DeltaOver(baseVersion uint64, baseHash string, changes []*Change, stale bool) (b []byte, ok bool) {
	// before is each touched deployment's encoding in the base: its
	// Before in the first change that touches it.
	before := map[string][]byte{}
	for _, c := range changes {
		if c == nil {
			return nil, false
		}
		for i, id := range c.IDs {
			if _, seen := before[id]; !seen {
				before[id] = c.Before[i]
			}
		}
	}
	ids := make([]string, 0, len(before))
	for id := range before {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	m := Message{Version: s.Version, Hash: s.Hash, Base: baseVersion, BaseHash: baseHash, Stale: stale,
		Domain: s.Domain, Zones: s.Zones, Deployments: []json.RawMessage{}}
	for _, id := range ids {
		old := before[id]
		now, present := s.Deps[id]
		switch {
		case present && (old == nil || string(old) != string(now)):
			m.Deployments = append(m.Deployments, now)
		case !present && old != nil:
			m.Deleted = append(m.Deleted, id)
		}
	}
	return mustMarshal(m), true
}
