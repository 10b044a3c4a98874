package zkstore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/go-zookeeper/zk"

	"github.com/switchyard/switchyard/routes"
)

// The alias index: <root>/aliases/<alias>.<kind> names the deployment that
// holds the key (AliasData), so that a key resolves in one read instead of
// a scan of every deployment. Every writer of a deployment (Apply,
// PutDeployment, DeleteDeployment) changes the deployment's entries in
// the transaction that changes the deployment. An entry keeps the
// deployment that claimed the key first, as route servers do (the
// deployment written later is the one refused). Route servers do not
// read the index: it is not part of the table or its version.

// aliasOps returns the operations that make the index say what deployment
// id holds: want's keys (nil: the deployment is deleted) rather than
// have's (nil: none stored, or the stored znode does not decode).
func (s *Store) aliasOps(id string, have, want *routes.DeploymentSpec) ([]any, error) {
	r := newReader(s.conn, false)
	var ops []any
	wanted := map[string]bool{}
	if want != nil {
		for _, k := range aliasKeys(want) {
			wanted[k] = true
		}
	}
	for _, k := range slices.Sorted(maps.Keys(wanted)) {
		p := s.l.alias(k)
		n, ok, err := r.get(p)
		if err != nil {
			return nil, err
		}
		if !ok {
			ops = append(ops, &zk.CreateRequest{Path: p, Data: encode(AliasData{Deployment: id}), Acl: acl})
			continue
		}
		var a AliasData
		if decode(p, n.data, &a) == nil && a.Deployment == id {
			continue
		}
		if a.Deployment != "" {
			holds, err := s.holds(a.Deployment, k)
			if err != nil {
				return nil, err
			}
			if holds {
				continue // claimed first by another deployment, which keeps it
			}
		}
		ops = append(ops, &zk.SetDataRequest{Path: p, Data: encode(AliasData{Deployment: id}), Version: n.stat.Version})
	}
	if have == nil {
		return ops, nil
	}
	for _, k := range aliasKeys(have) {
		if wanted[k] {
			continue
		}
		p := s.l.alias(k)
		n, ok, err := r.get(p)
		if err != nil {
			return nil, err
		}
		var a AliasData
		if ok && decode(p, n.data, &a) == nil && a.Deployment == id {
			ops = append(ops, &zk.DeleteRequest{Path: p, Version: n.stat.Version})
		}
	}
	return ops, nil
}

// holds reports whether deployment id, as stored, has alias key k.
func (s *Store) holds(id, k string) (bool, error) {
	p := s.l.deployment(id)
	n, ok, err := newReader(s.conn, false).get(p)
	if err != nil || !ok {
		return false, err
	}
	var dd DeploymentData
	if decode(p, n.data, &dd) != nil {
		return false, nil
	}
	return slices.Contains(aliasKeys(&dd.DeploymentSpec), k), nil
}

// Resolved is the deployment a key names.
type Resolved struct {
	ID string
	// Scanned, when not 0, is the number of deployments read because the
	// alias index had no entry for the key (a store written before the
	// index, or a key no deployment has).
	Scanned int
}

// Resolve finds the deployment a key names: its ID (one read), or an
// "<alias>.<kind>" key (through the alias index; without an entry, by
// reading every deployment znode once, InFlight at a time). Keys are
// case-insensitive. ErrNotFound when no deployment has the key.
func (s *Store) Resolve(ctx context.Context, key string) (Resolved, error) {
	key = strings.ToLower(key)
	if err := ctx.Err(); err != nil {
		return Resolved{}, err
	}
	if checkName("deployment", key) != nil {
		return Resolved{}, fmt.Errorf("%w: %q", ErrNotFound, key)
	}
	if err := s.requireRoot(); err != nil {
		return Resolved{}, err
	}
	ok, _, err := s.conn.Exists(s.l.deployment(key))
	if err != nil {
		return Resolved{}, wrapRead(s.l.deployment(key), err)
	}
	if ok {
		return Resolved{ID: key}, nil
	}
	if !strings.Contains(key, ".") {
		return Resolved{}, fmt.Errorf("%w: %q", ErrNotFound, key)
	}
	p := s.l.alias(key)
	n, ok, err := newReader(s.conn, false).get(p)
	if err != nil {
		return Resolved{}, err
	}
	var a AliasData
	if ok && decode(p, n.data, &a) == nil && a.Deployment != "" {
		holds, err := s.holds(a.Deployment, key)
		if err != nil {
			return Resolved{}, err
		}
		if holds {
			return Resolved{ID: a.Deployment}, nil
		}
	}
	return s.scanKey(ctx, key)
}

// scanKey finds the deployment that has key by reading every deployment
// znode: the one written first, if several have it.
func (s *Store) scanKey(ctx context.Context, key string) (Resolved, error) {
	ids, _, err := s.conn.Children(s.l.deployments())
	if errors.Is(err, zk.ErrNoNode) {
		return Resolved{}, fmt.Errorf("%w: %s does not exist", ErrNoRoot, s.l.deployments())
	}
	if err != nil {
		return Resolved{}, wrapRead(s.l.deployments(), err)
	}
	slices.Sort(ids)
	res := Resolved{Scanned: len(ids)}
	var first int64
	r := newReader(s.conn, false)
	err = pipeline(ctx, len(ids), 0, func(i int) (znode, error) {
		n, _, err := r.get(s.l.deployment(ids[i]))
		return n, err
	}, func(i int, n znode) error {
		var dd DeploymentData
		if n.data == nil || decode(s.l.deployment(ids[i]), n.data, &dd) != nil {
			return nil
		}
		if slices.Contains(aliasKeys(&dd.DeploymentSpec), key) && (res.ID == "" || n.stat.Mzxid < first) {
			res.ID, first = ids[i], n.stat.Mzxid
		}
		return nil
	})
	if err != nil {
		return Resolved{}, err
	}
	if res.ID == "" {
		return res, fmt.Errorf("%w: %q", ErrNotFound, key)
	}
	return res, nil
}
