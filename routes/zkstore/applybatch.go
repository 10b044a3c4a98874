package zkstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/go-zookeeper/zk"

	"github.com/switchyard/switchyard/routes"
)

// Apply writes a table's deployments in batches: the deployments of a
// batch are read in a few multiRead requests (readBatch), planned as
// planDeployment plans one, and their plans committed together, as many
// as fit in one transaction (batchOps, batchBytes). A deployment's
// operations never split between two transactions, so each deployment is
// still written whole or not at all, under the same version guards. A
// transaction that fails on a version guard commits nothing; its
// deployments are then applied one by one from a fresh read, as
// applyDeployment does, so that one lost race costs that deployment only.

// applyBatchDeps is how many deployments a batch reads at once, at most.
const applyBatchDeps = 128

// applyDeployments applies ds, inFlight batches at a time, and adds what
// each batch wrote to res in the order of ds; progress, when not nil, is
// called with how many are done.
func (s *Store) applyDeployments(ctx context.Context, ds []*routes.DeploymentSpec, res *ApplyResult, inFlight int, progress func(done int)) error {
	var bounds []int // batch i is ds[bounds[i]:bounds[i+1]]
	ops := 0
	for i, d := range ds {
		n := 3 + len(d.Instances) + len(d.Aliases) // the reads of a deployment, about as many as its writes
		if i == 0 || ops+n > batchOps || i-bounds[len(bounds)-1] >= applyBatchDeps {
			bounds = append(bounds, i)
			ops = 0
		}
		ops += n
	}
	bounds = append(bounds, len(ds))
	if inFlight <= 0 {
		inFlight = DefaultBatchesInFlight
	}
	var known listing
	var err error
	if known.deps, err = s.listSmall(s.l.deployments(), 4*len(ds)); err != nil {
		return err
	}
	if known.aliases, err = s.listSmall(s.l.aliases(), 4*len(ds)); err != nil {
		return err
	}
	return s.each(ctx, res, inFlight, len(bounds)-1, func(i int, r *ApplyResult) error {
		return s.applyBatch(ds[bounds[i]:bounds[i+1]], &known, r)
	}, func(done int) {
		if progress != nil {
			progress(bounds[done])
		}
	})
}

// listing is what a container listed before the batches held: the
// deployments and alias keys that existed then. A nil set was not
// listed. A name not in a listed set is taken as missing without a
// read; if it was created since, the transaction that creates it fails
// on it, and the deployment is applied on its own from a fresh read.
type listing struct {
	deps, aliases map[string]bool
}

// listSmall returns the names under container p (none when it does not
// exist), or nil when it holds more than limit: a listing that would cost
// more than the reads it saves.
func (s *Store) listSmall(p string, limit int) (map[string]bool, error) {
	ok, st, err := s.conn.Exists(p)
	if err != nil {
		return nil, wrapRead(p, err)
	}
	if !ok {
		return map[string]bool{}, nil
	}
	if int(st.NumChildren) > limit {
		return nil, nil
	}
	names, _, err := s.conn.Children(p)
	if errors.Is(err, zk.ErrNoNode) {
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", p, err)
	}
	set := make(map[string]bool, len(names))
	for _, n := range names {
		set[n] = true
	}
	return set, nil
}

// applyBatch applies the deployments ds.
func (s *Store) applyBatch(ds []*routes.DeploymentSpec, known *listing, res *ApplyResult) error {
	plans, err := s.planBatch(ds, known)
	if err != nil {
		return err
	}
	// Consecutive plans go in one transaction while it stays in bounds.
	for lo := 0; lo < len(ds); {
		hi, ops, size := lo, 0, 0
		for hi < len(ds) {
			n, b := len(plans[hi].ops), opsSize(plans[hi].ops)
			if hi > lo && (ops+n > batchOps || size+b > batchBytes) {
				break
			}
			ops, size, hi = ops+n, size+b, hi+1
		}
		if err := s.commitGroup(ds[lo:hi], plans[lo:hi], res); err != nil {
			return err
		}
		lo = hi
	}
	return nil
}

// planBatch reads what the store holds of ds (but what known says is
// missing) and returns the plan of each.
func (s *Store) planBatch(ds []*routes.DeploymentSpec, known *listing) ([]*depPlan, error) {
	var ids, keys []string
	var read []int // ds[read[j]] is ids[j]
	missing := map[string]extraNode{}
	for i, d := range ds {
		if known.deps == nil || known.deps[d.ID] {
			ids, read = append(ids, d.ID), append(read, i)
		}
		for _, k := range aliasKeys(d) {
			if known.aliases == nil || known.aliases[k] {
				keys = append(keys, s.l.alias(k))
			} else {
				missing[s.l.alias(k)] = extraNode{}
			}
		}
	}
	got, err := s.readBatch(ids, keys)
	if err != nil {
		return nil, err
	}
	maps.Copy(got.extra, missing)
	cur := make([]*depTree, len(ds))
	for j, i := range read {
		cur[i] = got.deps[j]
	}
	plans := make([]*depPlan, len(ds))
	for i, d := range ds {
		if plans[i], err = s.planFrom(d, cur[i], s.knownAliasOps(got.extra)); err != nil {
			return nil, err
		}
	}
	return plans, nil
}

// commitGroup commits the plans of ds in one transaction and counts them
// in res, in order. When a version guard fails, nothing is written and
// each deployment with a plan is applied on its own (applyDeployment).
func (s *Store) commitGroup(ds []*routes.DeploymentSpec, plans []*depPlan, res *ApplyResult) error {
	var ops []any
	for _, p := range plans {
		ops = append(ops, p.ops...)
	}
	var zxid int64
	if len(ops) > 0 {
		var err error
		zxid, err = s.commitOps(ops)
		if errors.Is(err, ErrConflict) {
			for i, d := range ds {
				if len(plans[i].ops) == 0 {
					res.Unchanged++
				} else if err := s.applyDeployment(d, res); err != nil {
					return err
				}
			}
			return nil
		}
		if err != nil {
			return err
		}
	}
	for i, p := range plans {
		switch {
		case len(p.ops) == 0:
			res.Unchanged++
		case p.indexOnly:
			res.Unchanged++
			res.Indexed++
		default:
			if p.action == Created {
				res.Created++
			} else {
				res.Updated++
			}
			res.wrote(zxid, Change{Action: p.action, Kind: "deployment", Name: ds[i].ID, Detail: p.detail})
		}
	}
	return nil
}

// commitOps runs ops in one transaction and returns its zxid.
func (s *Store) commitOps(ops []any) (int64, error) {
	resp, err := s.conn.Multi(ops...)
	if err != nil {
		return 0, multiErr(ops, resp, err)
	}
	for _, r := range resp {
		if r.Stat != nil {
			return r.Stat.Mzxid, nil // every operation has the transaction's zxid
		}
	}
	// No set: the first node created has the transaction's zxid, unless
	// it changed since. (A transaction of checks and index entries only
	// counts no change.)
	for _, op := range ops {
		if c, ok := op.(*zk.CreateRequest); ok {
			_, st, err := s.conn.Exists(c.Path)
			if err != nil {
				return 0, fmt.Errorf("reading %s: %w", c.Path, err)
			}
			if st != nil {
				return st.Mzxid, nil
			}
		}
	}
	return 0, nil
}

// opsSize is about what ops send: their paths and data.
func opsSize(ops []any) int {
	n := 0
	for _, op := range ops {
		n += 16 + len(opPath(op))
		switch o := op.(type) {
		case *zk.CreateRequest:
			n += len(o.Data) + 16
		case *zk.SetDataRequest:
			n += len(o.Data)
		}
	}
	return n
}

// knownAliasOps plans the alias index of a deployment from entries read
// beforehand (known, by path) in the common cases: every key the
// deployment keeps or gains has no entry (one is created) or an entry
// that names it (nothing to do), and it loses none. Anything else is
// Store.aliasOps's, which reads what it needs.
func (s *Store) knownAliasOps(known map[string]extraNode) aliasPlanner {
	return func(id string, have, want *routes.DeploymentSpec) ([]any, error) {
		wanted := aliasKeys(want)
		if have != nil {
			for _, k := range aliasKeys(have) {
				if !slices.Contains(wanted, k) {
					return s.aliasOps(id, have, want)
				}
			}
		}
		var ops []any
		for _, k := range slices.Compact(wanted) {
			p := s.l.alias(k)
			e, ok := known[p]
			if !ok {
				return s.aliasOps(id, have, want)
			}
			if !e.ok {
				ops = append(ops, &zk.CreateRequest{Path: p, Data: encode(AliasData{Deployment: id}), Acl: acl})
				continue
			}
			if bytes.Equal(e.n.data, encode(AliasData{Deployment: id})) {
				continue
			}
			var a AliasData
			if decode(p, e.n.data, &a) != nil || a.Deployment != id {
				return s.aliasOps(id, have, want)
			}
		}
		return ops, nil
	}
}
