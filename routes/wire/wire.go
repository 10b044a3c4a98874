// Package wire encodes route tables for the route stream between route
// servers and proxies: a canonical encoding of each deployment, a content
// hash of a whole table, full and delta messages, and the client side that
// applies them.
//
// A table is identified by (version, hash): the version is the highest
// ZooKeeper zxid behind its content, the hash a SHA-256 over its canonical
// encoding. A delta from version A to version B lists the deployments that
// were added or changed and the IDs of those removed; it carries the zones
// and domain whole (they are small). A receiver checks the hash of the table
// it builds against the message's, so a delta applied to the wrong base is
// caught and a full table requested instead.
package wire

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/switchyard/switchyard/routes"
)

// ErrHashMismatch is returned when a message applied to a state does not
// produce the table the message describes.
var ErrHashMismatch = errors.New("wire: table hash mismatch")

// Message is one answer of the route stream.
type Message struct {
	Version uint64 `json:"version"`
	Hash    string `json:"hash"`
	// Full is true when Deployments is the whole table; otherwise the
	// message is a delta from (Base, BaseHash).
	Full     bool   `json:"full"`
	Base     uint64 `json:"base,omitempty"`
	BaseHash string `json:"base_hash,omitempty"`
	// Stale is true when the route server has lost ZooKeeper and serves
	// the last table it had.
	Stale       bool              `json:"stale"`
	Domain      string            `json:"domain"`
	Zones       map[string]string `json:"zones"`
	Deployments []json.RawMessage `json:"deployments"`
	Deleted     []string          `json:"deleted,omitempty"`

	// decoded are the deployments DecodeMessage decoded while it read
	// them, for Apply; nil if it did not.
	decoded *decodedDeps
}

// UnmarshalJSON decodes a message as encoding/json does, and forgets what
// DecodeMessage decoded of the message it replaces: the deployments'
// JSON may be overwritten where it was.
func (m *Message) UnmarshalJSON(b []byte) error {
	type plain Message
	m.decoded = nil
	return json.Unmarshal(b, (*plain)(m))
}

// EncodeDeployment returns the canonical JSON of d, its spec's JSON
// (routes.DeploymentSpec): fields in a fixed order, serving keys sorted,
// instances sorted by ID, a missing serving map or instance list written
// empty.
func EncodeDeployment(d *routes.DeploymentSpec) []byte {
	c := *d
	c.Instances = slices.Clone(d.Instances)
	slices.SortStableFunc(c.Instances, func(a, b *routes.Instance) int { return strings.Compare(instanceID(a), instanceID(b)) })
	if c.Serving == nil {
		c.Serving = map[string]int{}
	}
	if c.Instances == nil {
		c.Instances = []*routes.Instance{}
	}
	b, err := json.Marshal(&c)
	if err != nil {
		panic("wire: encoding a deployment: " + err.Error()) // only plain types: cannot happen
	}
	return b
}

// instanceID is in's ID; a null instance (which does not validate) sorts
// first.
func instanceID(in *routes.Instance) string {
	if in == nil {
		return ""
	}
	return in.ID
}

// DecodeDeployment parses one deployment's JSON. It does not validate;
// routes.NewTable does.
func DecodeDeployment(b []byte) (*routes.DeploymentSpec, error) {
	var d routes.DeploymentSpec
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("wire: deployment: %w", err)
	}
	return &d, nil
}

// Snapshot is a table in encoded form, as a route server keeps it: each
// deployment's canonical JSON by ID. It is immutable once built, and
// persistent: a snapshot built from another shares the encodings, and
// the storage, of every deployment it did not change.
type Snapshot struct {
	Version uint64
	Hash    string
	Domain  string
	Zones   map[string]string // zone -> "up"|"down"; only listed zones

	deps   depList    // by ID: each deployment's encoding and its spec
	change *Change    // from the snapshot this one was built from
	sum    *digestSum // with HashSum: the sum of the deployments' hashes
}

// Len is the number of deployments.
func (s *Snapshot) Len() int { return s.deps.len() }

// Encoding returns the canonical JSON of deployment id.
func (s *Snapshot) Encoding(id string) ([]byte, bool) {
	e, ok := s.deps.get(id)
	return e.enc, ok
}

// All yields each deployment's ID and canonical JSON, in ID order.
func (s *Snapshot) All() iter.Seq2[string, []byte] {
	return func(yield func(string, []byte) bool) {
		for e := range s.deps.all() {
			if !yield(e.id, e.enc) {
				return
			}
		}
	}
}

// NewSnapshot encodes a table's content. Deployments that are the same
// *routes.DeploymentSpec as in prev (nil: none) keep prev's encoding: a store
// watcher that shares unchanged deployments between tables makes each new
// snapshot cost only what changed (plus the hash). With a prev, the
// snapshot also records what changed from it (Change).
func NewSnapshot(prev *Snapshot, version uint64, domain string, zones map[string]routes.ZoneState, deps map[string]*routes.DeploymentSpec) *Snapshot {
	return NewHashedSnapshot(HashSHA256, prev, version, domain, zones, deps)
}

// NewHashedSnapshot is NewSnapshot with the table hashed by scheme. It
// looks at every deployment of deps to find what changed from prev; a
// caller that knows what changed calls NextSnapshot instead.
func NewHashedSnapshot(scheme HashScheme, prev *Snapshot, version uint64, domain string, zones map[string]routes.ZoneState, deps map[string]*routes.DeploymentSpec) *Snapshot {
	if prev == nil {
		return NextSnapshot(scheme, nil, version, domain, zones, deps)
	}
	// Walk prev's deployments and look each up in deps (a map lookup is
	// cheaper than a search of prev); only deps beyond them are added.
	changes := map[string]*routes.DeploymentSpec{}
	kept := 0
	for e := range prev.deps.all() {
		d, ok := deps[e.id]
		switch {
		case !ok:
			changes[e.id] = nil
		case d != e.src:
			changes[e.id] = d
		}
		if ok {
			kept++
		}
	}
	if kept != len(deps) {
		for id, d := range deps {
			if _, had := prev.deps.get(id); !had {
				changes[id] = d
			}
		}
	}
	return NextSnapshot(scheme, prev, version, domain, zones, changes)
}

// NextSnapshot is the snapshot that follows prev (nil: an empty table)
// with the deployments in changes set: each ID to its spec, or removed
// where the spec is nil. Its cost is what changed: the deployments in
// changes are encoded (those that are the same *routes.DeploymentSpec as
// in prev are not), a few chunks of the sorted table are copied, and with
// HashSum and a prev hashed the same way the hash adds and subtracts the
// hashes of the deployments that changed; with HashSHA256 the hash is
// over the whole table. With a prev, the snapshot also records what
// changed from it (Change).
func NextSnapshot(scheme HashScheme, prev *Snapshot, version uint64, domain string, zones map[string]routes.ZoneState, changes map[string]*routes.DeploymentSpec) *Snapshot {
	s := &Snapshot{Version: version, Domain: domain, Zones: make(map[string]string, len(zones))}
	for z, st := range zones {
		s.Zones[z] = st.String()
	}
	var base depList
	if prev != nil {
		base = prev.deps
	}
	ids := make([]string, 0, len(changes))
	for id := range changes {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var ch changeBuilder
	edits := make([]edit, 0, len(ids))
	for _, id := range ids {
		d := changes[id]
		old, had := base.get(id)
		switch {
		case d == nil && !had:
			continue
		case d == nil:
			edits = append(edits, edit{e: depEntry{id: id}, del: true})
			ch.touch(id, old.enc, nil, true)
			continue
		case had && old.src == d:
			continue
		}
		enc := EncodeDeployment(d)
		if had && string(enc) == string(old.enc) {
			enc = old.enc // the same bytes: share them
		}
		edits = append(edits, edit{e: depEntry{id: id, enc: enc, src: d}})
		ch.touch(id, old.enc, enc, had)
	}
	s.deps = base.with(edits)
	switch {
	case prev != nil && len(ch.ts) == 0 && prev.Domain == s.Domain && maps.Equal(prev.Zones, s.Zones) &&
		isSumHash(prev.Hash) == (scheme == HashSum):
		// The same content (a staleness change, a znode written again
		// with the same data): the same hash.
		s.Hash, s.sum = prev.Hash, prev.sum
	case scheme != HashSum:
		s.Hash = hashTable(s.Domain, s.Zones, func(yield func([]byte) bool) {
			for e := range s.deps.all() {
				if !yield(e.enc) {
					return
				}
			}
		})
	case prev != nil && prev.sum != nil:
		sum := *prev.sum
		for _, t := range ch.ts {
			if t.before != nil {
				sum.sub(t.before)
			}
			if t.after != nil {
				sum.add(t.after)
			}
		}
		s.sum = &sum
	default:
		var sum digestSum
		for e := range s.deps.all() {
			sum.add(e.enc)
		}
		s.sum = &sum
	}
	if s.sum != nil {
		s.Hash = sumHash(s.Domain, s.Zones, *s.sum)
	}
	if prev != nil {
		s.change = ch.finish()
	}
	return s
}

// Change is what s changed from the snapshot it was built from; nil when
// it was built without one.
func (s *Snapshot) Change() *Change { return s.change }

// tableHash is the SHA-256 of a table's canonical form, given its
// deployments' encodings and their IDs in order.
func tableHash(domain string, zones map[string]string, ids []string, deps map[string][]byte) string {
	return hashTable(domain, zones, func(yield func([]byte) bool) {
		for _, id := range ids {
			if !yield(deps[id]) {
				return
			}
		}
	})
}

// hashTable is the SHA-256 of a table's canonical form: the domain, the
// zones, and the deployments' encodings in ID order.
func hashTable(domain string, zones map[string]string, deps iter.Seq[[]byte]) string {
	h := sha256.New()
	h.Write([]byte("domain " + domain + "\n"))
	writeZones(h, zones)
	for enc := range deps {
		h.Write(enc)
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// writeZones writes the zones and their states to h, one line each, in
// name order: the zones' part of both table hashes.
func writeZones(h io.Writer, zones map[string]string) {
	zs := make([]string, 0, len(zones))
	for z := range zones {
		zs = append(zs, z)
	}
	sort.Strings(zs)
	for _, z := range zs {
		io.WriteString(h, "zone "+z+" "+zones[z]+"\n")
	}
}

// Full encodes s as a full message.
func (s *Snapshot) Full(stale bool) []byte {
	return encodeFull(s.Version, s.Hash, stale, s.Domain, s.Zones, func(yield func([]byte) bool) {
		for e := range s.deps.all() {
			if !yield(e.enc) {
				return
			}
		}
	})
}

// Delta encodes the changes from base to s, comparing every deployment
// of both (DeltaOver costs only what changed).
func (s *Snapshot) Delta(base *Snapshot, stale bool) []byte {
	m := Message{Version: s.Version, Hash: s.Hash, Base: base.Version, BaseHash: base.Hash, Stale: stale,
		Domain: s.Domain, Zones: s.Zones, Deployments: []json.RawMessage{}}
	for id, enc := range s.All() {
		if old, ok := base.Encoding(id); !ok || string(old) != string(enc) {
			m.Deployments = append(m.Deployments, enc)
		}
	}
	for id := range base.All() {
		if _, ok := s.Encoding(id); !ok {
			m.Deleted = append(m.Deleted, id)
		}
	}
	return mustMarshal(m)
}

func mustMarshal(m Message) []byte {
	b, err := json.Marshal(m)
	if err != nil {
		panic("wire: encoding a message: " + err.Error())
	}
	return b
}

// Report is what a proxy posts to a route server's /v1/report: its
// cumulative per-generation counts for the deployments with more than one
// generation. Counts restart from 0 when the proxy restarts.
type Report struct {
	Proxy       string                   `json:"proxy"`
	Zone        string                   `json:"zone,omitempty"`
	Generations []routes.GenerationCount `json:"generations"`
}
