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
// deployment's canonical JSON by ID. It is immutable once built.
type Snapshot struct {
	Version uint64
	Hash    string
	Domain  string
	Zones   map[string]string // zone -> "up"|"down"; only listed zones
	Deps    map[string][]byte // deployment ID -> canonical JSON
	IDs     []string          // sorted keys of Deps

	src    map[string]*routes.DeploymentSpec // what Deps were encoded from
	change *Change                           // from the snapshot this one was built from
	sum    *digestSum                        // with HashSum: the sum of the deployments' hashes
}

// NewSnapshot encodes a table's content. Deployments that are the same
// *routes.DeploymentSpec as in prev (nil: none) keep prev's encoding: a store
// watcher that shares unchanged deployments between tables makes each new
// snapshot cost only what changed (plus the hash). With a prev, the
// snapshot also records what changed from it (Change).
func NewSnapshot(prev *Snapshot, version uint64, domain string, zones map[string]routes.ZoneState, deps map[string]*routes.DeploymentSpec) *Snapshot {
	return NewHashedSnapshot(HashSHA256, prev, version, domain, zones, deps)
}

// NewHashedSnapshot is NewSnapshot with the table hashed by scheme. With
// HashSum and a prev hashed the same way, the hash costs only the
// deployments that changed.
func NewHashedSnapshot(scheme HashScheme, prev *Snapshot, version uint64, domain string, zones map[string]routes.ZoneState, deps map[string]*routes.DeploymentSpec) *Snapshot {
	s := &Snapshot{Version: version, Domain: domain, Zones: make(map[string]string, len(zones)),
		Deps: make(map[string][]byte, len(deps)), src: make(map[string]*routes.DeploymentSpec, len(deps))}
	for z, st := range zones {
		s.Zones[z] = st.String()
	}
	var ch changeBuilder
	for id, d := range deps {
		s.src[id] = d
		if prev == nil {
			s.Deps[id] = EncodeDeployment(d)
			continue
		}
		before, had := prev.Deps[id]
		if had && prev.src[id] == d {
			s.Deps[id] = before
			continue
		}
		enc := EncodeDeployment(d)
		s.Deps[id] = enc
		ch.touch(id, before, enc, had)
	}
	if prev != nil && ch.added == 0 && len(deps) == len(prev.IDs) {
		// The same IDs: share the sorted list.
		s.IDs = prev.IDs
	} else {
		s.IDs = make([]string, 0, len(deps))
		for id := range deps {
			s.IDs = append(s.IDs, id)
		}
		sort.Strings(s.IDs)
		if prev != nil && len(prev.IDs)+ch.added != len(deps) {
			for _, id := range prev.IDs {
				if _, ok := deps[id]; !ok {
					ch.touch(id, prev.Deps[id], nil, true)
				}
			}
		}
	}
	switch {
	case scheme != HashSum:
		s.Hash = tableHash(s.Domain, s.Zones, s.IDs, s.Deps)
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
		for _, enc := range s.Deps {
			sum.add(enc)
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

// tableHash is the SHA-256 of a table's canonical form.
func tableHash(domain string, zones map[string]string, ids []string, deps map[string][]byte) string {
	h := sha256.New()
	h.Write([]byte("domain " + domain + "\n"))
	writeZones(h, zones)
	for _, id := range ids {
		h.Write(deps[id])
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
		for _, id := range s.IDs {
			if !yield(s.Deps[id]) {
				return
			}
		}
	})
}

// Delta encodes the changes from base to s.
func (s *Snapshot) Delta(base *Snapshot, stale bool) []byte {
	m := Message{Version: s.Version, Hash: s.Hash, Base: base.Version, BaseHash: base.Hash, Stale: stale,
		Domain: s.Domain, Zones: s.Zones, Deployments: []json.RawMessage{}}
	for _, id := range s.IDs {
		if old, ok := base.Deps[id]; !ok || string(old) != string(s.Deps[id]) {
			m.Deployments = append(m.Deployments, s.Deps[id])
		}
	}
	for _, id := range base.IDs {
		if _, ok := s.Deps[id]; !ok {
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
