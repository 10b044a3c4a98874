package wire

import (
	"bytes"
	"encoding/json"
	"errors"
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
// deployment's hash, so deltas apply without re-encoding. It is
// immutable; Apply returns a new one, which shares with s everything the
// message did not change (cowmap), so a delta costs about what it changes
// (with the sum hash; a SHA-256 table hash is over the whole table).
//
// A deployment's encoding is kept only when encoding its decoded spec
// again (EncodeDeployment) would not give the same bytes; what route
// servers send is in that form, so a table costs its decoded specs and a
// hash per deployment, not its encoding too. The encodings are made
// again for Full and for a SHA-256 table hash.
type State struct {
	Version uint64
	Hash    string
	Domain  string
	Zones   map[string]string

	deps *cowmap.Map[string, *stateDep] // by ID
	ids  []string                       // the sorted IDs
	sum  digestSum                      // the sum of the deployments' hashes

	// What Table derives the table from: the base state's table (when it
	// was built) and what the message changed. Dropped once the table is
	// built.
	tableOnce sync.Once
	table     *routes.Table
	tableErr  error
	base      *routes.Table
	upsert    []*routes.Deployment
	deleted   []string
}

// stateDep is a deployment of a State: its spec is dep's, and dep is
// made for a table to take (routes.NewTableOf), so that the state and
// its table hold the spec once.
type stateDep struct {
	dep  *routes.Deployment
	enc  []byte    // the encoding, when appendEncoding(spec) is not it; else nil
	hash digestSum // the SHA-256 of the encoding
}

// encoding appends e's encoding to b.
func (e *stateDep) encoding(b []byte) []byte {
	if e.enc != nil {
		return append(b, e.enc...)
	}
	return appendEncoding(b, &e.dep.DeploymentSpec)
}

// Len is the number of deployments.
func (s *State) Len() int { return s.deps.Len() }

// IDs are the deployments' IDs, sorted. The caller must not modify them.
func (s *State) IDs() []string { return s.ids }

// Deployment returns the deployment id, decoded and as encoded. The
// caller must not modify either.
func (s *State) Deployment(id string) (*routes.DeploymentSpec, []byte, bool) {
	e, ok := s.deps.Get(id)
	if !ok {
		return nil, nil, false
	}
	return &e.dep.DeploymentSpec, e.encoding(nil), true
}

// All yields the deployments' IDs and encodings, in ID order.
func (s *State) All() iter.Seq2[string, []byte] {
	return func(yield func(string, []byte) bool) {
		for _, id := range s.ids {
			e, _ := s.deps.Get(id)
			if !yield(id, e.encoding(nil)) {
				return
			}
		}
	}
}

// encodings yields the deployments' encodings, in ID order, each valid
// until the next.
func (s *State) encodings() iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		var buf []byte
		for _, id := range s.ids {
			e, _ := s.deps.Get(id)
			buf = e.encoding(buf[:0])
			if !yield(buf) {
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
	var deps *cowmap.Editor[string, *stateDep]
	if m.Full {
		deps = cowmap.Build[string, *stateDep](cowmap.String, len(m.Deployments))
	} else {
		if s == nil || s.Version != m.Base || s.Hash != m.BaseHash {
			return nil, fmt.Errorf("%w: delta from version %d does not apply", ErrHashMismatch, m.Base)
		}
		deps = s.deps.Edit()
		n.sum = s.sum
		if s.table != nil {
			n.base = s.table
		}
	}
	var gone []string // IDs of the base that go
	for _, id := range m.Deleted {
		old, ok := deps.Get(id)
		if !ok {
			continue
		}
		n.sum.subDigest(old.hash)
		deps.Delete(id)
		gone = append(gone, id)
	}
	var added []string // IDs the base does not have, for a delta
	var ids []string   // every ID in message order, for a full message
	if m.Full {
		ids = make([]string, 0, len(m.Deployments))
	}
	decoded, err := m.decodedDeployments()
	if err != nil {
		return nil, err
	}
	if m.Full {
		// No base: what a deployment replaces is an earlier one of the
		// same ID in the message, and the table is built from the
		// state's deployments, not from a list of changes.
		for _, e := range decoded {
			id := e.dep.ID
			ids = append(ids, id)
			if old, had := deps.Swap(id, e); had {
				n.sum.subDigest(old.hash)
			}
			n.sum.addDigest(e.hash)
		}
	} else {
		at := make(map[string]int, len(m.Deployments)) // ID -> index in n.upsert
		for _, e := range decoded {
			d := e.dep
			old, had := deps.Get(d.ID)
			if _, ok := s.deps.Get(d.ID); !ok && !had {
				added = append(added, d.ID)
			}
			if had {
				n.sum.subDigest(old.hash)
			}
			deps.Set(d.ID, e)
			n.sum.addDigest(e.hash)
			if i, ok := at[d.ID]; ok {
				n.upsert[i] = d // a later one of the same ID wins
			} else {
				at[d.ID] = len(n.upsert)
				n.upsert = append(n.upsert, d)
			}
		}
	}
	n.deps = deps.Done()
	n.deleted = gone
	switch {
	case m.Full && len(ids) == n.deps.Len() && slices.IsSorted(ids):
		// Sorted and as many as the distinct IDs: no ID is listed twice.
		n.ids = ids
	case !m.Full && len(s.ids) == s.deps.Len():
		n.ids = spliceIDs(s.ids, gone, added)
	default:
		n.ids = make([]string, 0, n.deps.Len())
		for id := range n.deps.All() {
			n.ids = append(n.ids, id)
		}
		sort.Strings(n.ids)
	}
	var h string
	if isSumHash(m.Hash) {
		h = sumHash(n.Domain, n.Zones, n.sum)
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

// decodeAll decodes msgs, on every CPU when there are many (each in the
// form route servers write by a fastDecoder, else by json.Unmarshal), and
// hashes each one's JSON as json.Marshal writes it (compact, <, > and &
// escaped), which is how Full writes it to the snapshot on disk: a table
// accepted here is then accepted again from that snapshot. What route
// servers send is in this form already. The encoding is kept (a copy,
// not a slice of the message) only when encoding the decoded spec again
// does not give it. The error is the first deployment's, in message
// order.
//
// unchecked says the pieces' JSON has not been checked (splitDeployments):
// a piece that the fast decoder does not take is then checked as
// DecodeMessage checks a deployment (skipValue) before it is decoded.
func decodeAll(msgs []json.RawMessage, unchecked bool) ([]*stateDep, error) {
	out := make([]*stateDep, len(msgs))
	all := make([]stateDep, len(msgs)) // one allocation for all
	errs := make([]error, len(msgs))
	one := func(f *fastDecoder, i int) {
		var err error
		dep := new(routes.Deployment)
		d := &dep.DeploymentSpec
		e := &all[i]
		e.dep = dep
		enc := []byte(msgs[i])
		if f.decodeInto(msgs[i], d) {
			// In the form appendEncoding writes: nothing to keep.
			e.hash = digestOf(enc)
			out[i] = e
			return
		}
		if unchecked {
			if end, ok := skipValue(msgs[i], 0, 0); !ok || end != len(msgs[i]) {
				errs[i] = errors.New("wire: deployment: not one JSON value within the nesting DecodeMessage takes")
				return
			}
		}
		spec, err := DecodeDeployment(msgs[i])
		if err != nil {
			errs[i] = err
			return
		}
		*d = *spec
		// The spec's encoding made again is in json.Marshal's form: when
		// it is the message's, there is nothing to keep; else the
		// message's, compacted and escaped, is kept.
		if f.enc = appendEncoding(f.enc[:0], d); string(f.enc) != string(enc) {
			if !inMarshalForm(enc) {
				if enc, err = json.Marshal(msgs[i]); err != nil {
					errs[i] = fmt.Errorf("wire: deployment: %w", err)
					return
				}
			}
			if string(f.enc) != string(enc) {
				e.enc = bytes.Clone(enc)
			}
		}
		e.hash = digestOf(enc)
		out[i] = e
	}
	const perWorker = 512
	workers := min(runtime.GOMAXPROCS(0), len(msgs)/perWorker)
	if workers <= 1 {
		f := newFastDecoder()
		for i := range msgs {
			if one(f, i); errs[i] != nil {
				return nil, errs[i]
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
			return nil, err
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
		t, err = s.base.WithOf(zones, s.upsert, s.deleted)
	} else {
		// In ID order, which the table keeps them in: it need not sort.
		deps := make([]*routes.Deployment, 0, s.deps.Len())
		for _, id := range s.ids {
			e, _ := s.deps.Get(id)
			deps = append(deps, e.dep)
		}
		t, err = routes.NewTableOf(s.Domain, zones, deps)
	}
	if err != nil {
		return nil, err
	}
	t.Version = s.Version
	return t, nil
}
