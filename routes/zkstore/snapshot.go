package zkstore

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"

	"github.com/switchyard/switchyard/routes"
)

// Snapshot is the routing table as the store holds it. A Snapshot and
// everything it points to are immutable once published: share them, never
// modify them (build a routes.Table with Table, which copies what it
// needs).
type Snapshot struct {
	// Version is the highest zxid that produced the content: the maximum
	// mzxid of the data znodes and pzxid of the containers
	// (docs/zookeeper.md, "Versions").
	Version int64
	Domain  string                      // lowercase; "" if never read
	Zones   map[string]routes.ZoneState // as stored; a zone not listed is up
	// Deployments holds the valid deployments by ID. A deployment whose
	// znodes are invalid is here in its last good version, if it had one.
	Deployments map[string]*routes.DeploymentSpec
	// Invalid says what is wrong with each invalid part, in one line that
	// names the znode. Keys are deployment IDs, "config", "zones" and
	// "zones/<zone>".
	Invalid map[string]string
	// Versions holds the version of each part as Version is the whole's:
	// the highest zxid of its znodes. Keys are the IDs of the deployments
	// in the store (valid or not), "config" and "zones" (the container
	// and every zone), each when it exists. A table of Version v holds
	// every change of a part whose version is at most v.
	Versions map[string]int64
}

// Table builds the routing table of the snapshot; its Version is the
// snapshot's.
func (s *Snapshot) Table() (*routes.Table, error) {
	deps := make([]*routes.DeploymentSpec, 0, len(s.Deployments))
	for _, id := range slices.Sorted(maps.Keys(s.Deployments)) {
		deps = append(deps, s.Deployments[id])
	}
	t, err := routes.NewTable(s.Domain, maps.Clone(s.Zones), deps)
	if err != nil {
		return nil, err
	}
	t.Version = uint64(s.Version)
	return t, nil
}

// evaluator turns trees into snapshots, keeping the last good version of
// each part when the store's copy is invalid or missing. It caches decoded
// deployments by their subtree's version, so that re-evaluating a large
// table decodes only what changed.
type evaluator struct {
	l layout
	// keepOnEmpty treats a deployments container without deployments as
	// an error that keeps the previous snapshot (an empty table is never
	// served), as a missing one.
	keepOnEmpty bool
	built       map[string]builtDep
	prev        *Snapshot // the last result: the last good data; nil at first
}

type builtDep struct {
	version int64
	dep     *routes.DeploymentSpec
	err     error
}

func newEvaluator(l layout) *evaluator {
	return &evaluator{l: l, built: map[string]builtDep{}}
}

// eval returns the snapshot of t. When t has no root or no deployments
// container it returns the previous snapshot unchanged (nil at first) and
// an error wrapping ErrNoRoot (routes.ErrEmptyTable for no deployments with
// keepOnEmpty): never a wipe.
func (ev *evaluator) eval(t *tree) (*Snapshot, error) {
	switch {
	case !t.hasRoot:
		return ev.prev, fmt.Errorf("%w: %s does not exist", ErrNoRoot, ev.l.root)
	case !t.hasDeps:
		return ev.prev, fmt.Errorf("%w: %s does not exist", ErrNoRoot, ev.l.deployments())
	case ev.keepOnEmpty && len(t.deps) == 0:
		return ev.prev, fmt.Errorf("%w: %s has no deployments", routes.ErrEmptyTable, ev.l.deployments())
	}
	prev := ev.prev
	if prev == nil {
		prev = &Snapshot{}
	}
	s := &Snapshot{
		Domain:      prev.Domain,
		Zones:       map[string]routes.ZoneState{},
		Deployments: make(map[string]*routes.DeploymentSpec, len(t.deps)),
		Invalid:     map[string]string{},
		Versions:    make(map[string]int64, len(t.deps)+2),
	}

	if t.hasConfig {
		s.Versions["config"] = t.config.stat.Mzxid
		d, err := domainOf(ev.l.config(), t.config.data)
		if err != nil {
			s.Invalid["config"] = errText(err)
		} else {
			s.Domain = d
		}
	} else {
		s.Invalid["config"] = ev.l.config() + ": does not exist"
	}

	if t.hasZones {
		s.Versions["zones"] = t.zonesVersion()
		for _, z := range slices.Sorted(maps.Keys(t.zones)) {
			p := ev.l.zone(z)
			st, err := zoneState(p, t.zones[z].data)
			if err == nil {
				err = checkZoneName(p, z)
			}
			if err != nil {
				s.Invalid["zones/"+z] = errText(err)
				if old, ok := prev.Zones[z]; ok {
					s.Zones[z] = old
				}
				continue
			}
			s.Zones[z] = st
		}
	} else {
		s.Invalid["zones"] = ev.l.zones() + ": does not exist"
		maps.Copy(s.Zones, prev.Zones)
	}

	ev.evalDeployments(t, prev, s)
	s.Version = max(t.version(), prev.Version)
	ev.prev = s
	return s, nil
}

// evalDeployments fills s.Deployments. Deployments claim their alias keys
// in the order they were last written (then by ID), so that a deployment
// that takes a key already in use is the one refused.
func (ev *evaluator) evalDeployments(t *tree, prev, s *Snapshot) {
	ids := slices.Collect(maps.Keys(t.deps))
	sort.Slice(ids, func(i, j int) bool {
		a, b := t.deps[ids[i]].node.stat.Mzxid, t.deps[ids[j]].node.stat.Mzxid
		if a != b {
			return a < b
		}
		return ids[i] < ids[j]
	})
	claimed := map[string]string{} // alias key -> deployment ID
	fits := func(d *routes.DeploymentSpec) (string, string) {
		for _, k := range aliasKeys(d) {
			if other, ok := claimed[k]; ok {
				return k, other
			}
		}
		return "", ""
	}
	for _, id := range ids {
		dt := t.deps[id]
		v := dt.version()
		s.Versions[id] = v
		b, ok := ev.built[id]
		if !ok || b.version != v {
			d, err := buildDeployment(ev.l, id, dt.raw())
			b = builtDep{version: v, dep: d, err: err}
			ev.built[id] = b
		}
		d := b.dep
		if b.err != nil {
			s.Invalid[id] = errText(b.err)
		} else if k, other := fits(d); k != "" {
			s.Invalid[id] = fmt.Sprintf("%s: alias key %q is already used by deployment %s", ev.l.deployment(id), k, other)
			d = nil
		}
		if d == nil {
			// The last good version, if it still fits.
			if old := prev.Deployments[id]; old != nil {
				if k, _ := fits(old); k == "" {
					d = old
				}
			}
		}
		if d == nil {
			continue
		}
		s.Deployments[id] = d
		for _, k := range aliasKeys(d) {
			claimed[k] = id
		}
	}
	for id := range ev.built {
		if _, ok := t.deps[id]; !ok {
			delete(ev.built, id)
		}
	}
}

// errText is an error's text without the sentinel's prefix: it already
// names the znode.
func errText(err error) string {
	s := err.Error()
	for _, sentinel := range []error{ErrInvalid} {
		if errors.Is(err, sentinel) {
			p := sentinel.Error() + ": "
			if len(s) > len(p) && s[:len(p)] == p {
				s = s[len(p):]
			}
		}
	}
	return oneLine(s)
}
