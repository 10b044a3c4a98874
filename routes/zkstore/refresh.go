package zkstore

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/go-zookeeper/zk"
)

// refresh reads again the znode p that an event named, re-arming its
// watch, and updates the tree. With one-shot watches, a znode that the
// tree does not hold is left to its parent's child watch (which reads new
// children); a change of the root's children calls for a full read. With
// the persistent watch, whose events name the znodes created and deleted
// rather than their parents, an event under zones/ reads the zones again,
// and events under a deployment were taken by refreshTouched.
func (r *run) refresh(p string) error {
	if r.reg != nil && p == r.l.routeServer(r.reg.Name) {
		return r.checkRegistration()
	}
	t := r.t
	if t == nil {
		r.needFull = true
		return nil
	}
	if p == r.l.root {
		r.needFull = true
		return nil
	}
	rel, ok := strings.CutPrefix(p, r.l.root+"/")
	if !ok || !t.hasRoot {
		return nil
	}
	parts := strings.Split(rel, "/")
	switch {
	case rel == configNode:
		n, ok, err := r.r.get(p)
		if err != nil {
			return err
		}
		t.config, t.hasConfig, r.treeChanged = n, ok, true
	case rel == zonesNode || r.persistent && parts[0] == zonesNode:
		return r.refreshZones()
	case len(parts) == 2 && parts[0] == zonesNode:
		if _, ok := t.zones[parts[1]]; !ok {
			return nil
		}
		n, ok, err := r.r.get(p)
		if err != nil {
			return err
		}
		if ok {
			t.zones[parts[1]] = n
		} else {
			delete(t.zones, parts[1])
		}
		r.treeChanged = true
	case rel == deploymentsNode:
		return r.refreshDeployments()
	case len(parts) >= 2 && parts[0] == deploymentsNode:
		return r.refreshDeployment(parts[1:], p)
	}
	return nil
}

func (r *run) refreshZones() error {
	t := r.t
	names, st, ok, err := r.r.children(r.l.zones(), false)
	if err != nil {
		return err
	}
	r.treeChanged = true
	if !ok {
		t.hasZones, t.zones = false, nil
		return nil
	}
	old := t.zones
	if r.persistent {
		old = nil // no watch per zone: read each again
	}
	t.hasZones, t.zonesStat, t.zones = true, st, make(map[string]znode, len(names))
	for _, z := range names {
		if n, ok := old[z]; ok {
			t.zones[z] = n
			continue
		}
		n, ok, err := r.r.get(r.l.zone(z))
		if err != nil {
			return err
		}
		if ok {
			t.zones[z] = n
		}
	}
	return nil
}

func (r *run) refreshDeployments() error {
	t := r.t
	ids, st, ok, err := r.r.children(r.l.deployments(), false)
	if err != nil {
		return err
	}
	r.treeChanged = true
	if !ok {
		t.hasDeps, t.deps = false, nil
		r.allDirty = true
		return nil
	}
	old := t.deps
	t.hasDeps, t.depsStat, t.deps = true, st, make(map[string]*depTree, len(ids))
	var added []string
	for _, id := range ids {
		if d, ok := old[id]; ok {
			t.deps[id] = d
		} else {
			added = append(added, id)
			r.dirty[id] = struct{}{}
		}
	}
	if len(old)+len(added) != len(ids) {
		for id := range old {
			if _, ok := t.deps[id]; !ok {
				r.dirty[id] = struct{}{} // removed
			}
		}
	}
	if len(added) == 0 {
		return nil
	}
	deps, err := r.r.readDeploymentSet(r.l, added)
	for id, d := range deps {
		t.deps[id] = d
	}
	if err != nil {
		// Read again the whole container: what was read stays.
		return err
	}
	return nil
}

// refreshTouched takes, with the persistent watch, the pending events
// under deployments/<id>/: it reads each deployment named, with its
// instances, again (in batches), and updates the tree; then, if
// deployments came or went, the container's stat (its pzxid is part of
// the table's version).
func (r *run) refreshTouched() error {
	prefix := r.l.deployments() + "/"
	var ids []string
	seen := map[string]bool{}
	for p := range r.pending {
		rel, ok := strings.CutPrefix(p, prefix)
		if !ok {
			continue
		}
		id, _, _ := strings.Cut(rel, "/")
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	t := r.t
	if !t.hasRoot || !t.hasDeps {
		// The container's own event reads it whole.
		for p := range r.pending {
			if strings.HasPrefix(p, prefix) {
				delete(r.pending, p)
			}
		}
		return nil
	}
	slices.Sort(ids)
	deps, err := r.r.readDeploymentSet(r.l, ids)
	if err != nil {
		return err
	}
	membership := false
	for _, id := range ids {
		d, now := deps[id]
		_, before := t.deps[id]
		if now {
			t.deps[id] = d
		} else {
			delete(t.deps, id)
		}
		membership = membership || now != before
		r.dirty[id] = struct{}{}
	}
	if membership {
		ok, st, err := r.conn.Exists(r.l.deployments())
		if err != nil {
			return wrapRead(r.l.deployments(), err)
		}
		if ok {
			t.depsStat = *st
		} // else the container's deletion event reads it
	}
	r.treeChanged = true
	for p := range r.pending {
		if strings.HasPrefix(p, prefix) {
			delete(r.pending, p)
		}
	}
	return nil
}

// refreshDeployment handles an event under deployments/: parts are the
// path's components after "deployments".
func (r *run) refreshDeployment(parts []string, p string) error {
	d := r.t.deps[parts[0]]
	if d == nil {
		return nil // gone, or new: the container's watch reads it
	}
	id := parts[0]
	r.dirty[id] = struct{}{}
	switch {
	case len(parts) == 1:
		n, ok, err := r.r.get(p)
		if err != nil {
			return err
		}
		if ok {
			d.node = n
		} else {
			delete(r.t.deps, id)
		}
		r.treeChanged = true
	case len(parts) == 2 && parts[1] == instancesNode:
		names, st, ok, err := r.r.children(p, true)
		if err != nil {
			return err
		}
		r.treeChanged = true
		old := d.instances
		d.hasInsts, d.instsStat, d.instances = ok, st, make(map[string]znode, len(names))
		for _, in := range names {
			if n, ok := old[in]; ok {
				d.instances[in] = n
				continue
			}
			n, ok, err := r.r.get(r.l.instance(id, in))
			if err != nil {
				return err
			}
			if ok {
				d.instances[in] = n
			}
		}
	case len(parts) == 3 && parts[1] == instancesNode:
		if _, ok := d.instances[parts[2]]; !ok {
			return nil
		}
		n, ok, err := r.r.get(p)
		if err != nil {
			return err
		}
		if ok {
			d.instances[parts[2]] = n
		} else {
			delete(d.instances, parts[2])
		}
		r.treeChanged = true
	}
	return nil
}

// register creates the registration's ephemeral znode (and the
// routeservers container), replacing one left by an older session, and
// watches it. Without a root it waits: the root's creation brings a full
// read, after which it is tried again.
func (r *run) register() error {
	p := r.l.routeServer(r.reg.Name)
	data := encode(RouteServerData{URL: r.reg.URL, StartedAt: r.reg.StartedAt})
	if ok, _, err := r.conn.Exists(r.l.root); err != nil {
		return err
	} else if !ok {
		return nil // regDue stays set
	}
	if _, err := r.conn.Create(r.l.routeServers(), nil, 0, acl); err != nil && !errors.Is(err, zk.ErrNodeExists) {
		return fmt.Errorf("creating %s: %w", r.l.routeServers(), err)
	}
	done := false
	for attempt := 0; attempt < 3 && !done; attempt++ {
		_, err := r.conn.Create(p, data, zk.FlagEphemeral, acl)
		if err == nil {
			r.log.Info("registered", "path", p, "url", r.reg.URL)
			done = true
			break
		}
		if !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("creating %s: %w", p, err)
		}
		ok, st, err := r.conn.Exists(p)
		if err != nil {
			return fmt.Errorf("reading %s: %w", p, err)
		}
		if ok && st.EphemeralOwner == r.conn.SessionID() {
			done = true // ours already
			break
		}
		if ok {
			// Left by an older session that has not expired yet.
			if err := r.conn.Delete(p, st.Version); err != nil && !errors.Is(err, zk.ErrNoNode) && !errors.Is(err, zk.ErrBadVersion) {
				return fmt.Errorf("deleting %s: %w", p, err)
			}
		}
	}
	if !done {
		return fmt.Errorf("%s: %w", p, ErrConflict)
	}
	if _, err := r.r.exists(p); err != nil {
		return err
	}
	r.regDue = false
	return nil
}

// checkRegistration runs on an event on the registration's znode:
// recreate it when it is gone.
func (r *run) checkRegistration() error {
	p := r.l.routeServer(r.reg.Name)
	ok, err := r.r.exists(p)
	if err != nil {
		return err
	}
	if !ok {
		r.regDue = true
	}
	return nil
}
