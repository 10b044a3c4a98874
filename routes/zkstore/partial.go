package zkstore

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"

	"github.com/switchyard/switchyard/routes"
)

// Reads of a part of the table: what a command about one deployment needs
// costs that deployment's znodes, the zones and config, never the whole
// tree; and a whole-table read that streams, InFlight requests at a time.

// readHead reads config and the zones (and whether the deployments
// container exists) into a tree without deployments.
func (s *Store) readHead(ctx context.Context) (*tree, *reader, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	r := newReader(s.conn, false)
	t := &tree{deps: map[string]*depTree{}}
	ok, _, err := s.conn.Exists(s.l.root)
	if err != nil || !ok {
		return t, r, wrapRead(s.l.root, err)
	}
	t.hasRoot = true
	if t.config, t.hasConfig, err = r.get(s.l.config()); err != nil {
		return nil, nil, err
	}
	if err := r.readZones(s.l, t); err != nil {
		return nil, nil, err
	}
	// The container's own pzxid is left out: it is the whole table's.
	if t.hasDeps, _, err = s.conn.Exists(s.l.deployments()); err != nil {
		return nil, nil, wrapRead(s.l.deployments(), err)
	}
	return t, r, nil
}

// ReadZones reads the zones as stored (a zone not listed is up); an
// invalid zone is left out. A missing layout is ErrNoRoot.
func (s *Store) ReadZones(ctx context.Context) (map[string]routes.ZoneState, error) {
	t, _, err := s.readHead(ctx)
	if err != nil {
		return nil, err
	}
	snap, err := newEvaluator(s.l).eval(t)
	if err != nil {
		return nil, err
	}
	return snap.Zones, nil
}

// ReadDeployment reads deployment id with what a view of it needs: the
// domain and the zones. The snapshot is Read's restricted to that
// deployment: Deployments holds it when valid, Invalid says why when not
// (with the alias index standing for the other deployments: a key whose
// entry names another deployment is taken), Versions has it, "config"
// and "zones", and Version is the highest of them (the last change of
// what it shows). A missing deployment is ErrNotFound.
func (s *Store) ReadDeployment(ctx context.Context, id string) (*Snapshot, error) {
	if err := checkName("deployment", id); err != nil {
		return nil, err
	}
	t, r, err := s.readHead(ctx)
	if err != nil {
		return nil, err
	}
	if t.hasRoot && t.hasDeps {
		dt, err := r.readDeployment(s.l, id)
		if err != nil {
			return nil, err
		}
		if dt == nil {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		t.deps[id] = dt
	}
	snap, err := newEvaluator(s.l).eval(t)
	if err != nil {
		return nil, err
	}
	if d := snap.Deployments[id]; d != nil {
		for _, k := range aliasKeys(d) {
			p := s.l.alias(k)
			n, ok, err := r.get(p)
			if err != nil {
				return nil, err
			}
			var a AliasData
			if ok && decode(p, n.data, &a) == nil && a.Deployment != id && a.Deployment != "" {
				snap.Invalid[id] = fmt.Sprintf("%s: alias key %q is already used by deployment %s", s.l.deployment(id), k, a.Deployment)
				delete(snap.Deployments, id)
				break
			}
		}
	}
	return snap, nil
}

// CountDeployments returns the number of deployments in the store (valid
// or not), from the deployments container's stat. A missing layout is
// ErrNoRoot.
func (s *Store) CountDeployments(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	ok, st, err := s.conn.Exists(s.l.deployments())
	if err != nil {
		return 0, wrapRead(s.l.deployments(), err)
	}
	if !ok {
		return 0, fmt.Errorf("%w: %s does not exist", ErrNoRoot, s.l.deployments())
	}
	return int(st.NumChildren), nil
}

// ScanOptions are the options of Scan.
type ScanOptions struct {
	// InFlight bounds the requests in flight; 0 means DefaultInFlight.
	InFlight int
	// Head, when set, is called once before any deployment with the
	// snapshot of the domain and zones (no deployments; Invalid may name
	// config and zones) and the IDs listed, sorted.
	Head func(head *Snapshot, ids []string) error
	// Deployment is called with every deployment in ID order as soon as
	// it and those before it are read: d is the valid deployment, or nil
	// with invalid saying why in one line. A deployment removed while
	// the scan runs is left out.
	Deployment func(id string, d *routes.DeploymentSpec, invalid string) error
}

// ScanResult is what a Scan saw in all.
type ScanResult struct {
	// Version is the table's version as Read computes it.
	Version int64
	// Deployments counts the deployments read, valid or not.
	Deployments int
	// Invalid is Read's Invalid: config, zones, and every invalid
	// deployment, including those refused for an alias key another
	// deployment, written earlier, holds.
	Invalid map[string]string
}

// Scan reads the whole table as Read does, but without holding it: each
// deployment is handed to opts.Deployment as it is read, the requests
// pipelined over the session, opts.InFlight at a time. A missing layout
// is ErrNoRoot.
func (s *Store) Scan(ctx context.Context, opts ScanOptions) (ScanResult, error) {
	res := ScanResult{Invalid: map[string]string{}}
	t, r, err := s.readHead(ctx)
	if err != nil {
		return res, err
	}
	ev := newEvaluator(s.l)
	head, err := ev.eval(t)
	if err != nil {
		return res, err
	}
	ids, st, err := s.conn.Children(s.l.deployments())
	if err != nil {
		return res, wrapRead(s.l.deployments(), err)
	}
	slices.Sort(ids)
	maps.Copy(res.Invalid, head.Invalid)
	res.Version = max(head.Version, st.Pzxid)
	if opts.Head != nil {
		if err := opts.Head(head, ids); err != nil {
			return res, err
		}
	}
	claims := map[string][]claim{} // alias key -> the deployments that have it
	err = pipeline(ctx, len(ids), opts.InFlight, func(i int) (*depTree, error) {
		return r.readDeployment(s.l, ids[i])
	}, func(i int, dt *depTree) error {
		if dt == nil {
			return nil
		}
		id := ids[i]
		res.Deployments++
		res.Version = max(res.Version, dt.version())
		d, err := buildDeployment(s.l, id, dt.raw())
		invalid := ""
		if err != nil {
			invalid = errText(err)
			res.Invalid[id] = invalid
		} else {
			for _, k := range aliasKeys(d) {
				claims[k] = append(claims[k], claim{id, dt.node.stat.Mzxid})
			}
		}
		if opts.Deployment == nil {
			return nil
		}
		if invalid != "" {
			d = nil
		}
		return opts.Deployment(id, d, invalid)
	})
	if err != nil {
		return res, err
	}
	s.refuseClaims(claims, res.Invalid)
	return res, nil
}

// claim is a deployment of a scan that has an alias key, and when it was
// written.
type claim struct {
	id    string
	mzxid int64
}

// refuseClaims settles the alias keys claimed by more than one deployment
// of a scan: the deployment written first holds a key, and the others
// are recorded in invalid (unless already there), in key order.
func (s *Store) refuseClaims(claims map[string][]claim, invalid map[string]string) {
	for _, k := range slices.Sorted(maps.Keys(claims)) {
		cs := claims[k]
		if len(cs) < 2 {
			continue
		}
		sort.Slice(cs, func(i, j int) bool {
			if cs[i].mzxid != cs[j].mzxid {
				return cs[i].mzxid < cs[j].mzxid
			}
			return cs[i].id < cs[j].id
		})
		for _, c := range cs[1:] {
			if _, ok := invalid[c.id]; !ok {
				invalid[c.id] = fmt.Sprintf("%s: alias key %q is already used by deployment %s", s.l.deployment(c.id), k, cs[0].id)
			}
		}
	}
}
