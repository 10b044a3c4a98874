package zkstore

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"

	"github.com/switchyard/switchyard/internal/cowmap"
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

// Deployments is a version of a persistent map of deployments by ID
// (internal/cowmap): a new version shares every shard a change did not
// touch with the one it came from, and no version is modified once made.
type Deployments = cowmap.Map[string, *routes.DeploymentSpec]

// evaluator turns trees into snapshots, keeping the last good version of
// each part when the store's copy is invalid or missing. It keeps what it
// evaluated, so that evaluating a tree again after a change costs what
// changed: the deployments whose znodes changed are decoded again, and
// those that share an alias key with them (which may win or lose the key
// by the change) evaluated again; the others keep their result.
type evaluator struct {
	l layout
	// keepOnEmpty treats a deployments container without deployments as
	// an error that keeps the previous snapshot (an empty table is never
	// served), as a missing one.
	keepOnEmpty bool
	// noMaps leaves the Snapshot's Deployments and Versions nil: the
	// deployments are in deps, and a whole-table map per evaluation is
	// what evaluating only the change avoids.
	noMaps bool
	built  map[string]builtDep
	prev   *Snapshot // the last result: the last good data; nil at first

	deps    *Deployments // the valid (or last good) deployments
	base    *Deployments // deps before the last evaluation
	changed []string     // the IDs whose entry differs between base and deps, sorted
	// Alias keys: who holds each key, and who may (a deployment whose
	// decoded spec or kept one has the key); keys holds what each
	// deployment is listed under in wanting.
	claimed map[string]string
	wanting map[string]map[string]struct{}
	keys    map[string][]string
	// invalid holds the deployments' entries of Snapshot.Invalid;
	// invalidChanged is set when it changed since the last Snapshot.
	invalid        map[string]string
	invalidChanged bool
}

type builtDep struct {
	version int64
	dep     *routes.DeploymentSpec
	err     error
	sum     uint64 // rawSum of what it was built from; 0 when not taken
}

func newEvaluator(l layout) *evaluator {
	return &evaluator{l: l, built: map[string]builtDep{}}
}

// eval returns the snapshot of t, evaluating every deployment. When t has
// no root or no deployments container it returns the previous snapshot
// unchanged (nil at first) and an error wrapping ErrNoRoot
// (routes.ErrEmptyTable for no deployments with keepOnEmpty): never a
// wipe.
func (ev *evaluator) eval(t *tree) (*Snapshot, error) { return ev.evalChanged(t, nil, true) }

// evalChanged is eval when only the deployments in dirty (all: any) may
// have changed in t since the last evaluation that returned no error.
func (ev *evaluator) evalChanged(t *tree, dirty map[string]struct{}, all bool) (*Snapshot, error) {
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
	s := &Snapshot{Domain: prev.Domain, Zones: map[string]routes.ZoneState{}}
	if !ev.noMaps {
		s.Versions = make(map[string]int64, len(t.deps)+2)
	}
	head := map[string]string{} // the invalid entries of config and zones

	if t.hasConfig {
		if s.Versions != nil {
			s.Versions["config"] = t.config.stat.Mzxid
		}
		d, err := domainOf(ev.l.config(), t.config.data)
		if err != nil {
			head["config"] = errText(err)
		} else {
			s.Domain = d
		}
	} else {
		head["config"] = ev.l.config() + ": does not exist"
	}

	if t.hasZones {
		if s.Versions != nil {
			s.Versions["zones"] = t.zonesVersion()
		}
		for _, z := range slices.Sorted(maps.Keys(t.zones)) {
			p := ev.l.zone(z)
			st, err := zoneState(p, t.zones[z].data)
			if err == nil {
				err = checkZoneName(p, z)
			}
			if err != nil {
				head["zones/"+z] = errText(err)
				if old, ok := prev.Zones[z]; ok {
					s.Zones[z] = old
				}
				continue
			}
			s.Zones[z] = st
		}
	} else {
		head["zones"] = ev.l.zones() + ": does not exist"
		maps.Copy(s.Zones, prev.Zones)
	}

	v := ev.evalDeployments(t, dirty, all)
	if all {
		v = t.version()
	} else {
		// The deployments that did not change are in prev.Version; one
		// removed leaves the container's pzxid above its own zxids.
		v = max(v, t.depsStat.Pzxid)
		if t.hasConfig {
			v = max(v, t.config.stat.Mzxid)
		}
		if t.hasZones {
			v = max(v, t.zonesVersion())
		}
	}
	s.Version = max(v, prev.Version)
	s.Invalid = ev.invalidOf(head, prev)
	if !ev.noMaps {
		s.Deployments = make(map[string]*routes.DeploymentSpec, ev.deps.Len())
		for id, d := range ev.deps.All() {
			s.Deployments[id] = d
		}
		for id, b := range ev.built { // as t.deps: what was evaluated
			s.Versions[id] = b.version
		}
	}
	ev.prev = s
	return s, nil
}

// invalidOf is the Snapshot's Invalid: head's entries and the
// deployments'. It is prev's when neither changed.
func (ev *evaluator) invalidOf(head map[string]string, prev *Snapshot) map[string]string {
	if !ev.invalidChanged && prev.Invalid != nil && len(prev.Invalid) == len(head)+len(ev.invalid) {
		same := true
		for k, v := range head {
			if old, ok := prev.Invalid[k]; !ok || old != v {
				same = false
				break
			}
		}
		if same {
			return prev.Invalid
		}
	}
	ev.invalidChanged = false
	out := make(map[string]string, len(head)+len(ev.invalid))
	maps.Copy(out, ev.invalid)
	maps.Copy(out, head)
	return out
}

// evalDeployments brings deps up to date with t, given that only the
// deployments in dirty (all: any) changed since the last evaluation, and
// returns the highest version of those in t among them.
//
// Deployments claim their alias keys in the order they were last written
// (then by ID), so that a deployment that takes a key already in use is
// the one refused. Whether a deployment gets a key depends only on the
// deployments that may have it (in a decoded spec or a kept one) and on
// those that may have the keys these may have, and so on: a change is
// evaluated again with that group, in that order, and the other
// deployments keep their result.
func (ev *evaluator) evalDeployments(t *tree, dirty map[string]struct{}, all bool) int64 {
	if ev.deps == nil {
		ev.deps = cowmap.New[string, *routes.DeploymentSpec](cowmap.String)
		ev.claimed, ev.wanting, ev.keys = map[string]string{}, map[string]map[string]struct{}{}, map[string][]string{}
		ev.invalid = map[string]string{}
	}
	base := ev.deps
	var queue []string
	seen := map[string]bool{}
	add := func(id string) {
		if !seen[id] {
			seen[id] = true
			queue = append(queue, id)
		}
	}
	if all {
		for id := range t.deps {
			add(id)
		}
		for id := range base.All() {
			add(id)
		}
		for id := range ev.keys {
			add(id)
		}
		for id := range ev.built { // an invalid one with nothing kept is only here
			add(id)
		}
	} else {
		for id := range dirty {
			add(id)
		}
	}
	var version int64
	for _, id := range queue {
		dt, ok := t.deps[id]
		if !ok {
			delete(ev.built, id)
			continue
		}
		v := dt.version()
		version = max(version, v)
		switch b, ok := ev.built[id]; {
		case dt.sealed != 0:
			// Sealed with what it built (the Watcher's keepRead and
			// seal): the cache takes that, whatever it held.
			if !ok || b != dt.built {
				ev.built[id] = dt.built
			}
		case !ok || b.version != v:
			d, err := buildDeployment(ev.l, id, dt.raw())
			ev.built[id] = builtDep{version: v, dep: d, err: err}
		}
	}
	// The group: the changed deployments and, through the keys they had
	// or may have now, every deployment that may hold one of them.
	for i := 0; i < len(queue); i++ {
		id := queue[i]
		ks := ev.keys[id]
		if b, ok := ev.built[id]; ok && b.err == nil {
			ks = append(slices.Clip(ks), aliasKeys(b.dep)...)
		}
		for _, k := range ks {
			for other := range ev.wanting[k] {
				add(other)
			}
		}
	}
	for _, id := range queue {
		for _, k := range ev.keys[id] {
			if w := ev.wanting[k]; w != nil {
				delete(w, id)
				if len(w) == 0 {
					delete(ev.wanting, k)
				}
			}
			if ev.claimed[k] == id {
				delete(ev.claimed, k)
			}
		}
		delete(ev.keys, id)
	}
	order := make([]string, 0, len(queue))
	for _, id := range queue {
		if _, ok := t.deps[id]; ok {
			order = append(order, id)
		}
	}
	sort.Slice(order, func(i, j int) bool {
		a, b := t.deps[order[i]].written(), t.deps[order[j]].written()
		if a != b {
			return a < b
		}
		return order[i] < order[j]
	})
	fits := func(d *routes.DeploymentSpec) (string, string) {
		for _, k := range aliasKeys(d) {
			if other, ok := ev.claimed[k]; ok {
				return k, other
			}
		}
		return "", ""
	}
	ed := base.Edit()
	for _, id := range queue {
		if _, ok := t.deps[id]; !ok {
			ed.Delete(id)
			ev.setInvalid(id, "")
		}
	}
	for _, id := range order {
		b := ev.built[id]
		d := b.dep
		invalid := ""
		if b.err != nil {
			invalid = errText(b.err)
		} else if k, other := fits(d); k != "" {
			invalid = fmt.Sprintf("%s: alias key %q is already used by deployment %s", ev.l.deployment(id), k, other)
			d = nil
		}
		ev.setInvalid(id, invalid)
		old, _ := base.Get(id)
		if d == nil && old != nil {
			// The last good version, if it still fits.
			if k, _ := fits(old); k == "" {
				d = old
			}
		}
		var ks []string
		if b.err == nil {
			ks = aliasKeys(b.dep)
		}
		if d != nil {
			for _, k := range aliasKeys(d) {
				ev.claimed[k] = id
			}
			if d != b.dep {
				ks = append(ks, aliasKeys(d)...)
			}
		}
		ev.want(id, ks)
		switch {
		case d == nil:
			ed.Delete(id)
		case d != old:
			ed.Set(id, d)
		}
	}
	ev.base, ev.deps = base, ed.Done()
	ev.changed = ev.changed[:0:0]
	for _, id := range queue {
		before, _ := base.Get(id)
		after, _ := ev.deps.Get(id)
		if before != after {
			ev.changed = append(ev.changed, id)
		}
	}
	slices.Sort(ev.changed)
	return version
}

// want lists deployment id under each of its keys ks in wanting.
func (ev *evaluator) want(id string, ks []string) {
	if len(ks) == 0 {
		return
	}
	ev.keys[id] = ks
	for _, k := range ks {
		w := ev.wanting[k]
		if w == nil {
			w = map[string]struct{}{}
			ev.wanting[k] = w
		}
		w[id] = struct{}{}
	}
}

// setInvalid sets (or, with "", removes) a deployment's invalid entry.
func (ev *evaluator) setInvalid(id, why string) {
	old, had := ev.invalid[id]
	switch {
	case why == "" && had:
		delete(ev.invalid, id)
	case why == "" || (had && old == why):
		return
	default:
		ev.invalid[id] = why
	}
	ev.invalidChanged = true
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
