package wire

import (
	"encoding/json"
	"fmt"
	"iter"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/switchyard/switchyard/internal/cowmap"
	"github.com/switchyard/switchyard/routes"
)

// State is what a receiver holds: the decoded table content with each
// deployment's encoding, so deltas apply without re-encoding. It is
// immutable; Apply returns a new one, which shares with s everything the
// message did not change (cowmap), so a delta costs about what it changes
// (with the sum hash; a SHA-256 table hash is over the whole table).
type State struct {
	Version uint64
	Hash    string
	Domain  string
	Zones   map[string]string

	raw  *cowmap.Map[string, []byte]                 // ID -> encoding
	deps *cowmap.Map[string, *routes.DeploymentSpec] // ID -> decoded
	ids  []string                                    // the sorted IDs
	sum  *digestSum                                  // the sum of raw's hashes (HashSum), once a message asked for it

	// What Table derives the table from: the base state's table (when it
	// was built) and what the message changed. Dropped once the table is
	// built.
	tableOnce sync.Once
	table     *routes.Table
	tableErr  error
	base      *routes.Table
	upsert    []*routes.DeploymentSpec
	deleted   []string
}

// Len is the number of deployments.
func (s *State) Len() int { return s.raw.Len() }

// IDs are the deployments' IDs, sorted. The caller must not modify them.
func (s *State) IDs() []string { return s.ids }

// Deployment returns the deployment id, decoded and as encoded.
func (s *State) Deployment(id string) (*routes.DeploymentSpec, []byte, bool) {
	d, ok := s.deps.Get(id)
	if !ok {
		return nil, nil, false
	}
	raw, _ := s.raw.Get(id)
	return d, raw, true
}

// All yields the deployments' IDs and encodings, in ID order.
func (s *State) All() iter.Seq2[string, []byte] {
	return func(yield func(string, []byte) bool) {
		for _, id := range s.ids {
			raw, _ := s.raw.Get(id)
			if !yield(id, raw) {
				return
			}
		}
	}
}

// encodings yields the deployments' encodings, in ID order.
func (s *State) encodings() iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		for _, enc := range s.All() {
			if !yield(enc) {
				return
			}
		}
	}
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
	var raw *cowmap.Editor[string, []byte]
	var deps *cowmap.Editor[string, *routes.DeploymentSpec]
	if m.Full {
		raw = cowmap.New[string, []byte](cowmap.String).Edit()
		deps = cowmap.New[string, *routes.DeploymentSpec](cowmap.String).Edit()
	} else {
		if s == nil || s.Version != m.Base || s.Hash != m.BaseHash {
			return nil, fmt.Errorf("%w: delta from version %d does not apply", ErrHashMismatch, m.Base)
		}
		raw, deps = s.raw.Edit(), s.deps.Edit()
		if s.sum != nil {
			sum := *s.sum
			n.sum = &sum
		}
		if s.table != nil {
			n.base = s.table
		}
	}
	var gone []string // IDs of the base that go
	for _, id := range m.Deleted {
		old, ok := raw.Get(id)
		if !ok {
			continue
		}
		if n.sum != nil {
			n.sum.sub(old)
		}
		raw.Delete(id)
		deps.Delete(id)
		gone = append(gone, id)
	}
	var added []string // IDs the base does not have, for a delta
	var ids []string   // every ID in message order, for a full message
	if m.Full {
		ids = make([]string, 0, len(m.Deployments))
	}
	at := make(map[string]int, len(m.Deployments)) // ID -> index in n.upsert
	decoded, err := decodeAll(m.Deployments)
	if err != nil {
		return nil, err
	}
	for k, d := range decoded.specs {
		enc := decoded.encs[k]
		old, had := raw.Get(d.ID)
		if m.Full {
			ids = append(ids, d.ID)
		} else if _, ok := s.raw.Get(d.ID); !ok && !had {
			added = append(added, d.ID)
		}
		if had && n.sum != nil {
			n.sum.sub(old)
		}
		raw.Set(d.ID, enc)
		deps.Set(d.ID, d)
		if n.sum != nil {
			n.sum.add(enc)
		}
		if i, ok := at[d.ID]; ok {
			n.upsert[i] = d // a later one of the same ID wins
		} else {
			at[d.ID] = len(n.upsert)
			n.upsert = append(n.upsert, d)
		}
	}
	n.raw, n.deps = raw.Done(), deps.Done()
	n.deleted = gone
	switch {
	case m.Full && len(ids) == n.raw.Len() && slices.IsSorted(ids):
		// Sorted and as many as the distinct IDs: no ID is listed twice.
		n.ids = ids
	case !m.Full && len(s.ids) == s.raw.Len():
		n.ids = spliceIDs(s.ids, gone, added)
	default:
		n.ids = make([]string, 0, n.raw.Len())
		for id := range n.raw.All() {
			n.ids = append(n.ids, id)
		}
		sort.Strings(n.ids)
	}
	var h string
	if isSumHash(m.Hash) {
		if n.sum == nil {
			// A full table, or the first delta hashed this way: sum
			// every deployment once; later deltas add and subtract.
			var sum digestSum
			for _, enc := range n.raw.All() {
				sum.add(enc)
			}
			n.sum = &sum
		}
		h = sumHash(n.Domain, n.Zones, *n.sum)
	} else {
		h = hashTable(n.Domain, n.Zones, n.encodings())
	}
	if h != m.Hash {
		return nil, fmt.Errorf("%w: got %s, message says %s", ErrHashMismatch, shortHash(h), shortHash(m.Hash))
	}
	if m.Full {
		n.base, n.upsert = nil, nil
	}
	return n, nil
}

// decoded is a message's deployments, decoded and in the form they are
// kept in.
type decoded struct {
	specs []*routes.DeploymentSpec
	encs  [][]byte
}

// decodeAll decodes msgs, on every CPU when there are many (each in the
// form route servers write by a fastDecoder, else by json.Unmarshal), and keeps
// each one's JSON as json.Marshal writes it (compact, <, > and &
// escaped), which is how Full writes it to the snapshot on disk: a table
// accepted here is then accepted again from that snapshot. What route
// servers send is in this form already, and is kept as it is. The error
// is the first deployment's, in message order.
func decodeAll(msgs []json.RawMessage) (decoded, error) {
	out := decoded{specs: make([]*routes.DeploymentSpec, len(msgs)), encs: make([][]byte, len(msgs))}
	errs := make([]error, len(msgs))
	one := func(f *fastDecoder, i int) {
		var err error
		d, ok := f.decode(msgs[i])
		if !ok {
			if d, err = DecodeDeployment(msgs[i]); err != nil {
				errs[i] = err
				return
			}
		}
		enc := []byte(msgs[i])
		if !inMarshalForm(enc) {
			if enc, err = json.Marshal(msgs[i]); err != nil {
				errs[i] = fmt.Errorf("wire: deployment: %w", err)
				return
			}
		}
		out.specs[i], out.encs[i] = d, enc
	}
	const perWorker = 512
	workers := min(runtime.GOMAXPROCS(0), len(msgs)/perWorker)
	if workers <= 1 {
		f := newFastDecoder()
		for i := range msgs {
			if one(f, i); errs[i] != nil {
				return decoded{}, errs[i]
			}
		}
		return out, nil
	}
	var wg sync.WaitGroup
	chunk := (len(msgs) + workers - 1) / workers
	for w := range workers {
		wg.Go(func() {
			f := newFastDecoder()
			for i := w * chunk; i < min(len(msgs), (w+1)*chunk); i++ {
				if one(f, i); errs[i] != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return decoded{}, err
		}
	}
	return out, nil
}

// inMarshalForm reports whether b, valid JSON, is as json.Marshal would
// write it again: no space outside strings, and none of <, >, & or the
// line and paragraph separators (U+2028, U+2029), which it escapes.
func inMarshalForm(b []byte) bool {
	inString, escaped := false, false
	for i, c := range b {
		switch {
		case c == '<' || c == '>' || c == '&':
			return false
		case c == 0xE2 && i+2 < len(b) && b[i+1] == 0x80 && b[i+2]&^1 == 0xA8:
			return false
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			return false
		}
	}
	return true
}

// spliceIDs returns the sorted ids without gone (each in ids) and with
// added (none in ids): a copy when anything changes, ids itself when
// nothing does. A few changes cost a copy; many, a sort.
func spliceIDs(ids, gone, added []string) []string {
	if len(gone) == 0 && len(added) == 0 {
		return ids
	}
	if len(gone)+len(added) > 64 {
		drop := make(map[string]bool, len(gone))
		for _, id := range gone {
			drop[id] = true
		}
		out := make([]string, 0, len(ids)-len(gone)+len(added))
		for _, id := range ids {
			if !drop[id] {
				out = append(out, id)
			}
		}
		out = append(out, added...)
		sort.Strings(out)
		return out
	}
	out := slices.Clone(ids)
	for _, id := range gone {
		if i, ok := slices.BinarySearch(out, id); ok {
			out = slices.Delete(out, i, i+1)
		}
	}
	for _, id := range added {
		i, _ := slices.BinarySearch(out, id)
		out = slices.Insert(out, i, id)
	}
	return out
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
	return encodeFull(s.Version, s.Hash, stale, s.Domain, s.Zones, s.encodings())
}

// Table returns the routes.Table of s: validated, indexed, ready to
// serve, with s's Version. When s came from a delta applied to a state
// whose table was built, the table is derived from that one
// (routes.Table.With: it costs what the delta changed, and records the
// Change); otherwise it is built whole. The table is built once: every
// call returns the same table (or error), whose Source and LoadedAt the
// caller may set before anyone else reads it.
func (s *State) Table() (*routes.Table, error) {
	s.tableOnce.Do(func() {
		s.table, s.tableErr = s.buildTable()
		s.base, s.upsert, s.deleted = nil, nil, nil
	})
	return s.table, s.tableErr
}

func (s *State) buildTable() (*routes.Table, error) {
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
	var t *routes.Table
	var err error
	if s.base != nil && s.base.Domain == strings.TrimPrefix(strings.ToLower(s.Domain), ".") {
		t, err = s.base.With(zones, s.upsert, s.deleted)
	} else {
		deps := make([]*routes.DeploymentSpec, 0, s.deps.Len())
		for _, d := range s.deps.All() {
			deps = append(deps, d)
		}
		t, err = routes.NewTable(s.Domain, zones, deps)
	}
	if err != nil {
		return nil, err
	}
	t.Version = s.Version
	return t, nil
}
