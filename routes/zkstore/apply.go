package zkstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/go-zookeeper/zk"

	"github.com/switchyard/switchyard/routes"
)

// ApplyOptions are the options of Apply. The zero value applies without
// pruning.
type ApplyOptions struct {
	// Prune deletes the deployments (and zones) that the store has and
	// the table does not.
	Prune bool
	// InFlight bounds the batches of the table's deployments read and
	// written at once over the session; 0 means DefaultBatchesInFlight.
	// (Pruning deletes a deployment a request, InFlight at a time; 0
	// means DefaultInFlight.)
	InFlight int
	// OnChange, when set, is called with each change once it is written,
	// in the order of ApplyResult.Changes, from the goroutine calling
	// Apply.
	OnChange func(Change)
	// Progress, when set, is called from the goroutine calling Apply after
	// each batch of the table's deployments is done (written or found
	// unchanged), with how many are done of how many.
	Progress func(done, total int)
}

// ApplyResult says what Apply changed.
type ApplyResult struct {
	// Deployments created, updated, left as they were, and deleted
	// (pruned).
	Created, Updated, Unchanged, Deleted int
	// Changes lists every write, in the order done.
	Changes []Change
	// Zxid is the highest zxid written; 0 when nothing was written.
	Zxid int64
	// Indexed counts the unchanged deployments whose alias index entries
	// were missing and were written (stores written before the index).
	Indexed int

	onChange func(Change)
}

// Change is one thing Apply wrote.
type Change struct {
	Action Action
	Kind   string // "config", "zone", "deployment"
	Name   string // the domain, zone or deployment ID
	Detail string // what changed, e.g. "serving, instances +1 ~1 -0"
}

// Action is what a write did.
type Action string

// Actions.
const (
	Created Action = "created"
	Updated Action = "updated"
	Deleted Action = "deleted"
)

func (c Change) String() string {
	s := string(c.Action) + " " + c.Kind + " " + c.Name
	if c.Detail != "" {
		s += " (" + c.Detail + ")"
	}
	return s
}

// maxAttempts bounds Apply's retries of a deployment whose transaction
// lost to a concurrent writer.
const maxAttempts = 3

// Apply makes the store say what t says: the domain, the zones it lists,
// and each of its deployments (with exactly its instances). It creates the
// root and containers when missing. It is idempotent: what is already
// stored (compared as decoded values) is not written again.
//
// Each deployment is written in one multi-op transaction: the deployment
// znode (created, or set at the version read, even when only its instances
// change, so that concurrent writers of one deployment are serialized),
// the instances container and every instance create, set (at its version)
// and delete. The deployments are read and written in batches
// (applyDeployments): a transaction holds several whole deployments. A
// transaction that loses to a concurrent writer writes nothing; its
// deployments are planned again from a fresh read and written one by one,
// each at most 3 times, then Apply fails with ErrConflict. Nothing of a
// failed transaction is applied; the transactions committed before it
// stay written, and ApplyResult says what they changed.
//
// t must be valid (routesfile.Parse or routes.NewTable built it).
func (s *Store) Apply(ctx context.Context, t *routes.Table, opts ApplyOptions) (ApplyResult, error) {
	res := ApplyResult{onChange: opts.OnChange}
	if t == nil || t.Len() == 0 {
		return res, routes.ErrEmptyTable
	}
	if err := s.ensureSkeleton(); err != nil {
		return res, err
	}
	if err := s.applyConfig(t.Domain, &res); err != nil {
		return res, err
	}
	if err := s.applyZones(ctx, t.Zones, opts.Prune, &res); err != nil {
		return res, err
	}
	want := map[string]bool{}
	for _, d := range t.Deployments() {
		want[d.ID] = true
	}
	ds := make([]*routes.DeploymentSpec, len(t.Deployments()))
	for i := range t.Deployments() {
		ds[i] = &t.Deployments()[i].DeploymentSpec
	}
	err := s.applyDeployments(ctx, ds, &res, opts.InFlight, func(done int) {
		if opts.Progress != nil {
			opts.Progress(done, len(ds))
		}
	})
	if err != nil || !opts.Prune {
		return res, err
	}
	ids, _, err := s.conn.Children(s.l.deployments())
	if err != nil {
		return res, fmt.Errorf("listing %s: %w", s.l.deployments(), err)
	}
	slices.Sort(ids)
	ids = slices.DeleteFunc(ids, func(id string) bool { return want[id] })
	err = s.each(ctx, &res, opts.InFlight, len(ids), func(i int, r *ApplyResult) error {
		return s.deleteDeployment(ids[i], r)
	}, nil)
	return res, err
}

// each runs write(i) for i in [0, n), inFlight at a time, and adds what
// each wrote to res in the order of i. After the first error no new
// write starts; the writes already started end and are counted, and the
// first error is returned. progress, when not nil, is called with the
// number done after each.
func (s *Store) each(ctx context.Context, res *ApplyResult, inFlight, n int, write func(i int, r *ApplyResult) error, progress func(done int)) error {
	type done struct {
		r   ApplyResult
		err error
	}
	var failed atomic.Bool
	var first error
	err := pipeline(ctx, n, inFlight, func(i int) (done, error) {
		var d done
		if failed.Load() || ctx.Err() != nil {
			return d, nil
		}
		d.err = write(i, &d.r)
		if d.err != nil {
			failed.Store(true)
		}
		return d, nil
	}, func(i int, d done) error {
		res.add(d.r)
		if d.err != nil && first == nil {
			first = d.err
		}
		if progress != nil {
			progress(i + 1)
		}
		return nil
	})
	if first != nil {
		return first
	}
	if err == nil {
		err = ctx.Err()
	}
	return err
}

// add adds what another result counted.
func (res *ApplyResult) add(o ApplyResult) {
	res.Created += o.Created
	res.Updated += o.Updated
	res.Unchanged += o.Unchanged
	res.Deleted += o.Deleted
	res.Indexed += o.Indexed
	for _, c := range o.Changes {
		res.wrote(o.Zxid, c)
	}
}

func (res *ApplyResult) wrote(zxid int64, c Change) {
	res.Zxid = max(res.Zxid, zxid)
	res.Changes = append(res.Changes, c)
	if res.onChange != nil {
		res.onChange(c)
	}
}

func (s *Store) applyConfig(domain string, res *ApplyResult) error {
	p := s.l.config()
	cur, ok, err := newReader(s.conn, false).get(p)
	if err != nil {
		return err
	}
	var curp *znode
	if ok {
		var c ConfigData
		if decode(p, cur.data, &c) == nil && c.Domain == domain {
			return nil
		}
		curp = &cur
	}
	zxid, err := s.put(p, encode(ConfigData{Domain: domain}), curp)
	if err != nil {
		return err
	}
	action := Created
	if ok {
		action = Updated
	}
	res.wrote(zxid, Change{Action: action, Kind: "config", Name: domain})
	return nil
}

func (s *Store) applyZones(ctx context.Context, zones map[string]routes.ZoneState, prune bool, res *ApplyResult) error {
	for _, z := range slices.Sorted(maps.Keys(zones)) {
		if err := ctx.Err(); err != nil {
			return err
		}
		st := zones[z]
		zxid, action, err := s.putZone(z, st)
		if err != nil {
			return err
		}
		if action != "" {
			res.wrote(zxid, Change{Action: action, Kind: "zone", Name: z, Detail: st.String()})
		}
	}
	if !prune {
		return nil
	}
	names, _, err := s.conn.Children(s.l.zones())
	if err != nil {
		return fmt.Errorf("listing %s: %w", s.l.zones(), err)
	}
	slices.Sort(names)
	for _, z := range names {
		if _, ok := zones[z]; ok {
			continue
		}
		p := s.l.zone(z)
		if err := s.conn.Delete(p, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
			return writeErr(p, err)
		}
		_, st, err := s.conn.Exists(s.l.zones())
		if err != nil {
			return fmt.Errorf("reading %s: %w", s.l.zones(), err)
		}
		res.wrote(st.Pzxid, Change{Action: Deleted, Kind: "zone", Name: z})
	}
	return nil
}

// applyDeployment writes one deployment, planning again after a conflict.
func (s *Store) applyDeployment(d *routes.DeploymentSpec, res *ApplyResult) error {
	var err error
	for attempt := 0; attempt < maxAttempts; attempt++ {
		var p *depPlan
		if p, err = s.planDeployment(d); err != nil {
			return err
		}
		if len(p.ops) == 0 {
			res.Unchanged++
			return nil
		}
		var zxid int64
		zxid, err = s.commit(p)
		if errors.Is(err, ErrConflict) {
			continue
		}
		if err != nil {
			return err
		}
		if p.indexOnly {
			res.Unchanged++
			res.Indexed++
			return nil
		}
		if p.action == Created {
			res.Created++
		} else {
			res.Updated++
		}
		res.wrote(zxid, Change{Action: p.action, Kind: "deployment", Name: d.ID, Detail: p.detail})
		return nil
	}
	return fmt.Errorf("deployment %s: gave up after %d attempts: %w", d.ID, maxAttempts, err)
}

// PutDeployment makes the store hold deployment d exactly (its spec and
// instances), as Apply does for each deployment of a table: one
// version-guarded transaction, planned again after a lost race. Like
// Apply it creates the root and the containers when missing (the domain,
// in config, is Apply's to write). It returns the zxid of the write, or 0
// when the store held d already. d is validated first
// (routes.ValidateDeployment).
func (s *Store) PutDeployment(ctx context.Context, d *routes.DeploymentSpec) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := routes.ValidateDeployment(d); err != nil {
		return 0, err
	}
	if err := s.ensureSkeleton(); err != nil {
		return 0, err
	}
	var res ApplyResult
	if err := s.applyDeployment(d, &res); err != nil {
		return 0, err
	}
	return res.Zxid, nil
}

// DeleteDeployment removes deployment id and its instances in one
// transaction; a deployment already gone is not an error. It returns the
// zxid of the write, or 0 when there was nothing to delete.
func (s *Store) DeleteDeployment(ctx context.Context, id string) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := checkName("deployment", id); err != nil {
		return 0, err
	}
	var res ApplyResult
	if err := s.deleteDeployment(id, &res); err != nil {
		return 0, err
	}
	return res.Zxid, nil
}

// depPlan is the transaction that makes the store hold one deployment.
type depPlan struct {
	id     string
	ops    []any // none: the store holds it already
	action Action
	detail string
	// indexOnly: the deployment is as wanted, only its alias index
	// entries are written (a store written before the index).
	indexOnly bool
}

// planDeployment reads what the store holds of d and returns the
// operations that make it hold d.
func (s *Store) planDeployment(d *routes.DeploymentSpec) (*depPlan, error) {
	cur, err := newReader(s.conn, false).readDeployment(s.l, d.ID)
	if err != nil {
		return nil, err
	}
	return s.planFrom(d, cur, s.aliasOps)
}

// aliasPlanner returns the operations on the alias index that a plan
// needs (Store.aliasOps, or a shortcut over entries read beforehand).
type aliasPlanner func(id string, have, want *routes.DeploymentSpec) ([]any, error)

// planFrom returns the operations that make the store, which holds cur of
// d (nil: nothing), hold d.
func (s *Store) planFrom(d *routes.DeploymentSpec, cur *depTree, aliasOps aliasPlanner) (*depPlan, error) {
	p := &depPlan{id: d.ID}
	dp := s.l.deployment(d.ID)
	want := deploymentData(d)

	if cur == nil {
		aops, err := aliasOps(d.ID, nil, d)
		if err != nil {
			return nil, err
		}
		p.action = Created
		p.ops = append(p.ops,
			&zk.CreateRequest{Path: dp, Data: encode(want), Acl: acl},
			&zk.CreateRequest{Path: s.l.instances(d.ID), Acl: acl})
		for _, in := range d.Instances {
			p.ops = append(p.ops, &zk.CreateRequest{Path: s.l.instance(d.ID, in.ID), Data: encode(instanceData(in)), Acl: acl})
		}
		p.ops = append(p.ops, aops...)
		p.detail = fmt.Sprintf("%s, %d instances", d.Kind, len(d.Instances))
		return p, nil
	}

	p.action = Updated
	var have DeploymentData
	var bad bool
	var diff []string
	if prev, ok := storedAs(cur.node.data, encode(want)); ok {
		// Stored as it would be written: the common case, told
		// without decoding.
		have = want
		have.PreviousServing = prev
	} else {
		bad = decode(dp, cur.node.data, &have) != nil
		if diff = depDiff(have, want); bad && len(diff) == 0 {
			diff = []string{"rewritten"} // the znode did not decode
		}
	}
	var stored *routes.DeploymentSpec
	if !bad {
		stored = &have.DeploymentSpec
	}
	aops, err := aliasOps(d.ID, stored, d)
	if err != nil {
		return nil, err
	}
	depChanged := len(diff) > 0
	var what []string
	if depChanged {
		what = append(what, diff...)
		if maps.Equal(have.Serving, want.Serving) {
			want.PreviousServing = have.PreviousServing
		} else {
			want.PreviousServing = have.Serving
		}
	} else {
		want.PreviousServing = have.PreviousServing
	}

	var instOps []any
	if !cur.hasInsts {
		instOps = append(instOps, &zk.CreateRequest{Path: s.l.instances(d.ID), Acl: acl})
	}
	var added, changed, removed int
	wantIDs := map[string]bool{}
	for _, in := range d.Instances {
		wantIDs[in.ID] = true
		ip := s.l.instance(d.ID, in.ID)
		data := encode(instanceData(in))
		old, ok := cur.instances[in.ID]
		switch {
		case !ok:
			added++
			instOps = append(instOps, &zk.CreateRequest{Path: ip, Data: data, Acl: acl})
		case !bytes.Equal(old.data, data) && !sameInstance(ip, old.data, instanceData(in)):
			changed++
			instOps = append(instOps, &zk.SetDataRequest{Path: ip, Data: data, Version: old.stat.Version})
		}
	}
	for _, id := range slices.Sorted(maps.Keys(cur.instances)) {
		if !wantIDs[id] {
			removed++
			instOps = append(instOps, &zk.DeleteRequest{Path: s.l.instance(d.ID, id), Version: cur.instances[id].stat.Version})
		}
	}
	if !depChanged && len(instOps) == 0 {
		if len(aops) > 0 {
			// Checked at the version read: the entries are of this state.
			p.indexOnly = true
			p.ops = append([]any{&zk.CheckVersionRequest{Path: dp, Version: cur.node.stat.Version}}, aops...)
		}
		return p, nil
	}
	if added+changed+removed > 0 {
		what = append(what, fmt.Sprintf("instances +%d ~%d -%d", added, changed, removed))
	}
	p.detail = strings.Join(what, ", ")
	// The deployment znode is set (at the version read) in every
	// transaction that changes the deployment: writers that do the same
	// cannot interleave.
	p.ops = append([]any{&zk.SetDataRequest{Path: dp, Data: encode(want), Version: cur.node.stat.Version}}, instOps...)
	p.ops = append(p.ops, aops...)
	return p, nil
}

func sameInstance(p string, data []byte, want InstanceData) bool {
	var have InstanceData
	return decode(p, data, &have) == nil && bytes.Equal(encode(have), encode(want))
}

// commit runs a plan's transaction and returns its zxid.
func (s *Store) commit(p *depPlan) (int64, error) {
	resp, err := s.conn.Multi(p.ops...)
	if err != nil {
		return 0, multiErr(p.ops, resp, err)
	}
	var zxid int64
	for _, r := range resp {
		if r.Stat != nil {
			zxid = max(zxid, r.Stat.Mzxid)
		}
	}
	if zxid == 0 {
		// Only creates and deletes, whose results carry no stat.
		_, st, err := s.conn.Exists(s.l.deployment(p.id))
		if err != nil {
			return 0, fmt.Errorf("reading %s: %w", s.l.deployment(p.id), err)
		}
		zxid = max(st.Mzxid, st.Pzxid)
	}
	return zxid, nil
}

// multiErr names the operation of a failed transaction that failed.
func multiErr(ops []any, resp []zk.MultiResponse, err error) error {
	for i, r := range resp {
		if i < len(ops) && (errors.Is(r.Error, zk.ErrBadVersion) || errors.Is(r.Error, zk.ErrNodeExists) ||
			errors.Is(r.Error, zk.ErrNoNode) || errors.Is(r.Error, zk.ErrNotEmpty)) {
			return writeErr(opPath(ops[i]), r.Error)
		}
	}
	return fmt.Errorf("transaction: %w", err)
}

func opPath(op any) string {
	switch o := op.(type) {
	case *zk.CreateRequest:
		return o.Path
	case *zk.SetDataRequest:
		return o.Path
	case *zk.DeleteRequest:
		return o.Path
	case *zk.CheckVersionRequest:
		return o.Path
	}
	return "?"
}

// deleteDeployment deletes a deployment and its instances in one
// transaction, at the versions read.
func (s *Store) deleteDeployment(id string, res *ApplyResult) error {
	var err error
	for attempt := 0; attempt < maxAttempts; attempt++ {
		var cur *depTree
		cur, err = newReader(s.conn, false).readDeployment(s.l, id)
		if err != nil {
			return err
		}
		if cur == nil {
			return nil
		}
		var ops []any
		for _, in := range slices.Sorted(maps.Keys(cur.instances)) {
			ops = append(ops, &zk.DeleteRequest{Path: s.l.instance(id, in), Version: cur.instances[in].stat.Version})
		}
		if cur.hasInsts {
			ops = append(ops, &zk.DeleteRequest{Path: s.l.instances(id), Version: cur.instsStat.Version})
		}
		ops = append(ops, &zk.DeleteRequest{Path: s.l.deployment(id), Version: cur.node.stat.Version})
		var have DeploymentData
		if decode(s.l.deployment(id), cur.node.data, &have) == nil {
			aops, err := s.aliasOps(id, &have.DeploymentSpec, nil)
			if err != nil {
				return err
			}
			ops = append(ops, aops...)
		}
		var resp []zk.MultiResponse
		if resp, err = s.conn.Multi(ops...); err != nil {
			err = multiErr(ops, resp, err)
			if errors.Is(err, zk.ErrNotEmpty) || errors.Is(err, zk.ErrBadVersion) || errors.Is(err, zk.ErrNoNode) {
				err = fmt.Errorf("%w: deleting %s: %w", ErrConflict, s.l.deployment(id), err)
				continue
			}
			return err
		}
		_, st, err := s.conn.Exists(s.l.deployments())
		if err != nil {
			return fmt.Errorf("reading %s: %w", s.l.deployments(), err)
		}
		res.Deleted++
		res.wrote(st.Pzxid, Change{Action: Deleted, Kind: "deployment", Name: id})
		return nil
	}
	return fmt.Errorf("deployment %s: gave up after %d attempts: %w", id, maxAttempts, err)
}
