package wire

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"

	"github.com/switchyard/switchyard/routes"
)

// State is what a receiver holds: the decoded table content with each
// deployment's encoding, so deltas apply without re-encoding. It is
// immutable; Apply returns a new one.
type State struct {
	Version uint64
	Hash    string
	Domain  string
	Zones   map[string]string
	Raw     map[string][]byte
	Deps    map[string]*routes.DeploymentSpec

	ids []string   // the sorted keys of Raw, when Apply built it
	sum *digestSum // the sum of Raw's hashes (HashSum), once a message asked for it
}

// Apply applies m to s (nil for a receiver that has nothing) and returns
// the new state. A delta whose base is not s, or a result whose hash is not
// m's, is an error: the receiver then asks for a full table. Each
// deployment's JSON is kept, and hashed, compact with <, > and & escaped,
// as json.Marshal writes it and as Full writes it again.
func Apply(s *State, m *Message) (*State, error) {
	n := &State{Version: m.Version, Hash: m.Hash, Domain: m.Domain, Zones: m.Zones}
	if n.Zones == nil {
		n.Zones = map[string]string{}
	}
	if m.Full {
		n.Raw = make(map[string][]byte, len(m.Deployments))
		n.Deps = make(map[string]*routes.DeploymentSpec, len(m.Deployments))
	} else {
		if s == nil || s.Version != m.Base || s.Hash != m.BaseHash {
			return nil, fmt.Errorf("%w: delta from version %d does not apply", ErrHashMismatch, m.Base)
		}
		n.Raw = make(map[string][]byte, len(s.Raw)+len(m.Deployments))
		n.Deps = make(map[string]*routes.DeploymentSpec, len(s.Deps)+len(m.Deployments))
		for id, raw := range s.Raw {
			n.Raw[id], n.Deps[id] = raw, s.Deps[id]
		}
		if s.sum != nil {
			sum := *s.sum
			n.sum = &sum
		}
		for _, id := range m.Deleted {
			if old, ok := n.Raw[id]; ok && n.sum != nil {
				n.sum.sub(old)
			}
			delete(n.Raw, id)
			delete(n.Deps, id)
		}
	}
	// The IDs in order: those of a full table as it lists them when
	// that is sorted (route servers send them so), the base's when a
	// delta adds and removes none; otherwise sorted again below.
	var ids []string
	sameIDs := !m.Full && len(m.Deleted) == 0 && len(s.ids) == len(s.Raw)
	if m.Full {
		ids = make([]string, 0, len(m.Deployments))
	}
	for _, raw := range m.Deployments {
		d, err := DecodeDeployment(raw)
		if err != nil {
			return nil, err
		}
		if m.Full {
			ids = append(ids, d.ID)
		} else if _, ok := s.Raw[d.ID]; !ok {
			sameIDs = false
		}
		if n.sum != nil {
			if old, ok := n.Raw[d.ID]; ok {
				n.sum.sub(old)
			}
		}
		// Keep and hash the deployment as json.Marshal writes it
		// (compact, <, > and & escaped), which is how Full writes it to
		// the snapshot on disk: a table accepted here is then accepted
		// again from that snapshot. What route servers send is in this
		// form already.
		enc, err := json.Marshal(raw)
		if err != nil {
			return nil, fmt.Errorf("wire: deployment: %w", err)
		}
		n.Raw[d.ID], n.Deps[d.ID] = enc, d
		if n.sum != nil {
			n.sum.add(enc)
		}
	}
	switch {
	case sameIDs:
		ids = s.ids
	case m.Full && len(ids) == len(n.Raw) && slices.IsSorted(ids):
		// Sorted and as many as the distinct IDs: no ID is listed twice.
	default:
		ids = make([]string, 0, len(n.Raw))
		for id := range n.Raw {
			ids = append(ids, id)
		}
		sort.Strings(ids)
	}
	var h string
	if isSumHash(m.Hash) {
		if n.sum == nil {
			// A full table, or the first delta hashed this way: sum
			// every deployment once; later deltas add and subtract.
			var sum digestSum
			for _, enc := range n.Raw {
				sum.add(enc)
			}
			n.sum = &sum
		}
		h = sumHash(n.Domain, n.Zones, *n.sum)
	} else {
		h = tableHash(n.Domain, n.Zones, ids, n.Raw)
	}
	if h != m.Hash {
		return nil, fmt.Errorf("%w: got %s, message says %s", ErrHashMismatch, shortHash(h), shortHash(m.Hash))
	}
	n.ids = ids
	return n, nil
}

func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// Full encodes s as a full message (for the snapshot on disk), from the
// encodings it holds.
func (s *State) Full(stale bool) []byte {
	ids := s.ids
	if len(ids) != len(s.Raw) {
		ids = make([]string, 0, len(s.Raw))
		for id := range s.Raw {
			ids = append(ids, id)
		}
		sort.Strings(ids)
	}
	return encodeFull(s.Version, s.Hash, stale, s.Domain, s.Zones, func(yield func([]byte) bool) {
		for _, id := range ids {
			if !yield(s.Raw[id]) {
				return
			}
		}
	})
}

// Table builds the routes.Table of s: validated, indexed, ready to serve.
func (s *State) Table() (*routes.Table, error) {
	zones := make(map[string]routes.ZoneState, len(s.Zones))
	for z, st := range s.Zones {
		switch st {
		case "up":
			zones[z] = routes.ZoneUp
		case "down":
			zones[z] = routes.ZoneDown
		default:
			return nil, fmt.Errorf("wire: zone %s: unknown state %q", z, st)
		}
	}
	deps := make([]*routes.DeploymentSpec, 0, len(s.Deps))
	for _, d := range s.Deps {
		deps = append(deps, d)
	}
	t, err := routes.NewTable(s.Domain, zones, deps)
	if err != nil {
		return nil, err
	}
	t.Version = s.Version
	return t, nil
}
