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

// changeBuilder collects a Change while NextSnapshot builds a snapshot
// from its predecessor.
type changeBuilder struct {
	ts []touched
}

type touched struct {
	id            string
	before, after []byte
}

// touch records a deployment that was given a new spec (after non-nil) or
// removed (after nil); before is its encoding in the predecessor, had
// whether it was there. A new spec with the same encoding is not a
// change.
func (b *changeBuilder) touch(id string, before, after []byte, had bool) {
	if had && after != nil && string(before) == string(after) {
		return
	}
	b.ts = append(b.ts, touched{id, before, after})
}

// finish returns the Change, its deployments sorted by ID.
func (b *changeBuilder) finish() *Change {
	slices.SortFunc(b.ts, func(x, y touched) int { return strings.Compare(x.id, y.id) })
	c := &Change{IDs: make([]string, len(b.ts)), Before: make([][]byte, len(b.ts)), After: make([][]byte, len(b.ts))}
	for i, t := range b.ts {
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
		now, present := s.Encoding(id)
		switch {
		case present && (old == nil || string(old) != string(now)):
			m.Deployments = append(m.Deployments, now)
		case !present && old != nil:
			m.Deleted = append(m.Deleted, id)
		}
	}
	return mustMarshal(m), true
}
