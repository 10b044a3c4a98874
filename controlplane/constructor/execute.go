package constructor

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/switchyard/switchyard/allocator/registry"
	"github.com/switchyard/switchyard/controlplane/cutover"
	"github.com/switchyard/switchyard/controlplane/placement"
	"github.com/switchyard/switchyard/controlplane/plan"
	"github.com/switchyard/switchyard/routes"
	"github.com/switchyard/switchyard/routes/zkstore"
)

// The steps of a grow-and-shrink change, in order. Each is idempotent:
// a constructor that takes over from one that died re-runs the step the
// status names, and that finishes what was half done.
const (
	stepPlace    = "place"    // choose allocators, write the assignments
	stepStart    = "start"    // wait until every new instance runs
	stepRoute    = "route"    // add the new instances to the table at weight 0
	stepCutover  = "cutover"  // one serving write: all weight to the new generation
	stepConverge = "converge" // wait until the proxies applied it
	stepDrain    = "drain"    // let the old generation's requests end
	stepRemove   = "remove"   // take the old instances out of the table
	stepRelease  = "release"  // remove the old assignments
)

// errFatal marks a step failure that no retry mends: the change fails.
type errFatal struct{ err error }

func (e errFatal) Error() string { return e.err.Error() }
func (e errFatal) Unwrap() error { return e.err }

func fatalf(format string, a ...any) error { return errFatal{fmt.Errorf(format, a...)} }

// change is one plan revision being carried out.
type change struct {
	c   *Constructor
	rec *plan.Record
	st  *plan.Status
	ver int32 // the status znode's version
}

func (x *change) id() string { return x.rec.Deployment }

// plan is the plan of the revision being carried out.
func (x *change) plan() *plan.Plan {
	if x.st.Plan != nil {
		return x.st.Plan
	}
	return x.rec.Plan
}
func (x *change) gen() string { return x.st.Generation }

// generation names the generation a revision makes.
func generation(revision int) string { return "r" + strconv.Itoa(revision) }

// instanceID names the n-th instance (from 1) of a revision.
func instanceID(dep string, revision, n int) string {
	return dep + "-r" + strconv.Itoa(revision) + "-" + strconv.Itoa(n)
}

// save writes the status, guarded by its version: a write that loses
// means another constructor acts on this plan, and this one stops.
func (x *change) save() error {
	x.st.UpdatedAt = x.c.now()
	v, err := x.c.plans.WriteStatus(x.id(), x.st, x.ver)
	if err != nil {
		return err
	}
	x.ver = v
	return nil
}

// enter records that the change moved to step.
func (x *change) enter(step string) error {
	x.st.History = append(x.st.History, plan.HistoryEntry{Revision: x.st.Revision, State: x.st.State, Step: x.st.Step, At: x.c.now()})
	x.st.Step = step
	x.c.log.Info("plan step", "deployment", x.id(), "revision", x.st.Revision, "step", step)
	return x.save()
}

// finish ends the change in state with reason.
func (x *change) finish(state plan.State, reason string) error {
	x.st.State, x.st.Reason = state, reason
	x.st.History = append(x.st.History, plan.HistoryEntry{Revision: x.st.Revision, State: state, Step: x.st.Step, Reason: reason, At: x.c.now()})
	x.c.log.Info("plan finished", "deployment", x.id(), "revision", x.st.Revision, "state", state, "step", x.st.Step, "reason", reason)
	return x.save()
}

// advance runs the change's steps from the one its status names until it
// ends, has to wait (nil: come back later), or fails.
func (x *change) advance(ctx context.Context) error {
	for !x.st.State.Final() {
		step := x.st.Step
		next, err := x.run(ctx, step)
		var fe errFatal
		switch {
		case errors.As(err, &fe):
			if base, zone, ok := rolling(step); ok && x.st.Zxid != 0 {
				switch base {
				case stepPlace, stepStart, stepRoute:
					return x.abortZone(ctx, zone, base, fe.err)
				}
				return x.finish(plan.StateFailed, fmt.Sprintf("%s: %v", step, fe.err))
			}
			if x.cutOver() {
				return x.finish(plan.StateFailed, fmt.Sprintf("%s: %v", step, fe.err))
			}
			return x.abort(ctx, step, fe.err)
		case err != nil:
			return err // retried on the next round
		case next == step:
			return nil // waiting
		case next == "":
			return x.finish(plan.StateDone, "")
		}
		if err := x.enter(next); err != nil {
			return err
		}
	}
	return nil
}

// cutOver reports whether the change went past its cutover (then the new
// generation serves, and the way out is forward, or a rollback).
func (x *change) cutOver() bool {
	base, _, _ := rolling(x.st.Step)
	switch base {
	case stepPlace, stepStart, stepRoute, "":
		return false
	}
	return true
}

// run does one step; it returns the step to go to ("" when done), or the
// same step to wait.
func (x *change) run(ctx context.Context, step string) (string, error) {
	if base, zone, ok := rolling(step); ok {
		return x.runRolling(ctx, base, zone)
	}
	switch step {
	case stepPlace:
		return stepStart, x.place(ctx)
	case stepStart:
		ok, err := x.started(ctx)
		if err != nil || !ok {
			return stepStart, err
		}
		return stepRoute, nil
	case stepRoute:
		first, err := x.route(ctx)
		if err != nil {
			return stepRoute, err
		}
		if first {
			return "", nil // a new deployment: serving from the first write
		}
		return stepCutover, nil
	case stepCutover:
		return stepConverge, x.cutover(ctx)
	case stepConverge:
		x.converge(ctx)
		x.st.DrainUntil = x.c.now().Add(x.c.cfg.RetireGrace)
		return stepDrain, nil
	case stepDrain:
		if rolled, err := x.watchNew(ctx); err != nil || rolled {
			return stepDrain, err
		}
		if x.c.now().Before(x.st.DrainUntil) {
			return stepDrain, nil
		}
		return stepRemove, nil
	case stepRemove:
		return stepRelease, x.removeOld(ctx)
	case stepRelease:
		return "", x.releaseOld()
	}
	return step, fatalf("unknown step %q", step)
}

// snapshot is the allocators as placement sees them.
func (x *change) snapshot() (*placement.Snapshot, []*registry.View, error) {
	views, err := x.c.reg.List()
	if err != nil {
		return nil, nil, err
	}
	s := &placement.Snapshot{}
	for _, v := range views {
		a := placement.Allocator{ID: v.ID, Zone: v.Zone, Capacity: v.Capacity.MemoryBytes, Used: v.Used(),
			Live: v.Live != nil, Maintenance: v.Maintenance, Deployments: map[string]int{}}
		for _, as := range v.Assignments {
			a.Deployments[as.Deployment]++
		}
		s.Allocators = append(s.Allocators, a)
	}
	return s, views, nil
}

// place chooses allocators for the new generation, records the choice in
// the status, then writes the assignments. A standby that takes over
// after the record writes the assignments still missing.
func (x *change) place(ctx context.Context) error {
	p := x.plan()
	if len(x.st.Instances) == 0 {
		s, _, err := x.snapshot()
		if err != nil {
			return err
		}
		pl, err := placement.Place(s, placement.Request{Deployment: x.id(), Zones: p.Zones, PerZone: p.PerZone, MemoryBytes: p.MemoryBytes})
		if err != nil {
			return fatalf("%v", err)
		}
		x.st.Instances = map[string]plan.InstanceProgress{}
		for i, at := range pl {
			x.st.Instances[instanceID(x.id(), x.st.Revision, i+1)] = plan.InstanceProgress{Allocator: at.Allocator, Zone: at.Zone, State: "assigned"}
		}
		if err := x.save(); err != nil {
			return err
		}
	}
	for _, in := range slices.Sorted(maps.Keys(x.st.Instances)) {
		ip := x.st.Instances[in]
		err := x.c.reg.Assign(ip.Allocator, in, registry.Assignment{
			Deployment: x.id(), Kind: p.Kind, Generation: x.gen(), Zone: ip.Zone, MemoryBytes: p.MemoryBytes, Spec: p.Spec})
		switch {
		case err == nil:
		case errors.Is(err, registry.ErrInvalid) && isDuplicate(err):
			// Written before a takeover.
		case errors.Is(err, registry.ErrInvalid), errors.Is(err, registry.ErrNotFound):
			return fatalf("assigning %s to %s: %v", in, ip.Allocator, err)
		default:
			return err // ErrConflict and ZooKeeper errors: again next round
		}
	}
	x.st.StartedAt = x.c.now()
	return nil
}

func isDuplicate(err error) bool {
	return err != nil && containsText(err.Error(), "already has instance")
}

// started reports whether every new instance runs and answers on its
// address; an instance that failed, or a start past the plan's timeout,
// fails the change.
func (x *change) started(ctx context.Context) (bool, error) {
	return x.startedOf(ctx, slices.Sorted(maps.Keys(x.st.Instances)))
}

// startedOf is started for the instances ids of the change.
func (x *change) startedOf(ctx context.Context, ids []string) (bool, error) {
	all := true
	for _, in := range ids {
		ip := x.st.Instances[in]
		v, err := x.c.reg.Read(ip.Allocator)
		if errors.Is(err, registry.ErrNotFound) {
			return false, fatalf("allocator %s of %s is gone", ip.Allocator, in)
		}
		if err != nil {
			return false, err
		}
		st := v.Statuses[in]
		state := "assigned"
		if st != nil {
			state = string(st.State)
		}
		if ip.State != state {
			ip.State = state
			x.st.Instances[in] = ip
		}
		switch {
		case st == nil || st.State != registry.StateRunning:
			all = false
			if st != nil && (st.State == registry.StateFailed || st.State == registry.StateInvalid) {
				return false, fatalf("instance %s on %s: %s: %s", in, ip.Allocator, st.State, st.Reason)
			}
		case !answers(st.Addr):
			all = false
		}
	}
	if all {
		return true, nil
	}
	if since := x.c.now().Sub(x.st.StartedAt); since > x.c.cfg.StartTimeout {
		return false, fatalf("the new instances were not all running within %v", x.c.cfg.StartTimeout)
	}
	return false, x.save() // record the instances' states
}

// answers checks an instance through its address: it accepts a
// connection.
func answers(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// newInstances are the routing table's instances of the new generation:
// addresses from their allocators' statuses.
func (x *change) newInstances() ([]*routes.Instance, error) {
	var out []*routes.Instance
	for _, in := range slices.Sorted(maps.Keys(x.st.Instances)) {
		ip := x.st.Instances[in]
		v, err := x.c.reg.Read(ip.Allocator)
		if err != nil {
			return nil, err
		}
		st := v.Statuses[in]
		if st == nil || st.Addr == "" {
			return nil, fatalf("instance %s on %s has no address", in, ip.Allocator)
		}
		out = append(out, &routes.Instance{ID: in, Addr: st.Addr, Zone: ip.Zone, Generation: x.gen()})
	}
	return out, nil
}

// route adds the new generation to the table at weight 0 (with the
// plan's names and filter). A deployment not in the table yet is written
// whole, serving the new generation: first reports that.
func (x *change) route(ctx context.Context) (first bool, err error) {
	ins, err := x.newInstances()
	if err != nil {
		return false, err
	}
	p := x.plan()
	cur, _, err := x.c.table.ReadSpec(ctx, x.id())
	if errors.Is(err, zkstore.ErrNotFound) {
		d := &routes.DeploymentSpec{ID: x.id(), Kind: p.Kind, DisplayName: p.DisplayName, Aliases: p.Aliases, Allow: p.Allow,
			Serving: map[string]int{x.gen(): 100}, Instances: ins}
		if _, err := x.c.table.PutDeployment(ctx, d); err != nil {
			return false, tableErr(err)
		}
		return true, nil
	}
	if err != nil {
		return false, err
	}
	d := *cur
	d.Kind, d.DisplayName, d.Aliases, d.Allow = p.Kind, p.DisplayName, p.Aliases, p.Allow
	d.Serving = maps.Clone(cur.Serving)
	if _, ok := d.Serving[x.gen()]; !ok {
		d.Serving[x.gen()] = 0
	}
	d.Instances = slices.DeleteFunc(slices.Clone(cur.Instances), func(in *routes.Instance) bool { return in.Generation == x.gen() })
	d.Instances = append(d.Instances, ins...)
	_, err = x.c.table.PutDeployment(ctx, &d)
	return false, tableErr(err)
}

// cutover gives the new generation all the weight, in one write.
func (x *change) cutover(ctx context.Context) error {
	cur, _, err := x.c.table.ReadSpec(ctx, x.id())
	if err != nil {
		return err
	}
	t := cutover.Target{Deployment: cur}
	if err := t.CanServe(x.gen()); err != nil {
		return fatalf("%v", err)
	}
	serving := t.Cutover(x.gen())
	if maps.Equal(serving, cur.Serving) && x.st.Zxid != 0 {
		return nil // written before a takeover
	}
	z, err := x.c.table.SetServing(ctx, x.id(), serving)
	if err != nil {
		return err
	}
	x.st.Zxid = z
	return nil
}

// converge waits, within its bound, until the proxies applied the
// cutover. Proxies that lag past it are logged: the drain that follows
// still gives them the retire grace.
func (x *change) converge(ctx context.Context) {
	if x.st.Zxid == 0 {
		return
	}
	r := &cutover.Runner{RouteServers: cutover.RouteServers{Store: x.c.table}, Store: x.c.table, WaitTimeout: x.c.cfg.ConvergeTimeout}
	w, err := r.Wait(ctx, x.st.Zxid)
	if err != nil {
		x.c.log.Warn("proxies not all at the cutover's version; draining anyway", "deployment", x.id(), "error", err)
		return
	}
	x.c.log.Info("proxies applied the cutover", "deployment", x.id(), "result", w.String())
}

// removeOld takes every other generation out of the table.
func (x *change) removeOld(ctx context.Context) error {
	return x.c.dropInstances(ctx, x.id(), func(in *routes.Instance) bool { return in.Generation != x.gen() })
}

// releaseOld removes the assignments of the deployment's other
// generations.
func (x *change) releaseOld() error {
	return x.release(func(a *registry.Assignment) bool { return a.Generation != x.gen() })
}

// release removes the deployment's assignments that drop says.
func (x *change) release(drop func(*registry.Assignment) bool) error {
	views, err := x.c.reg.List()
	if err != nil {
		return err
	}
	for _, v := range views {
		for _, in := range v.InstanceIDs() {
			a := v.Assignments[in]
			if a.Deployment != x.id() || !drop(a) {
				continue
			}
			if err := x.c.reg.Unassign(v.ID, in); err != nil && !errors.Is(err, registry.ErrNotFound) {
				return err
			}
		}
	}
	return nil
}

// abort undoes a change that failed before its cutover: the new
// instances leave the table (a deployment that had no other generation
// leaves it whole) and their assignments go. Traffic is as before.
func (x *change) abort(ctx context.Context, step string, why error) error {
	x.c.log.Warn("plan failed before its cutover; removing what it added", "deployment", x.id(), "step", step, "error", why)
	if err := x.c.dropInstances(ctx, x.id(), func(in *routes.Instance) bool { return in.Generation == x.gen() }); err != nil {
		return err
	}
	if err := x.release(func(a *registry.Assignment) bool { return a.Generation == x.gen() }); err != nil {
		return err
	}
	return x.finish(plan.StateFailed, fmt.Sprintf("%s: %v", step, why))
}

// watchNew applies the rollback rule while the old generation drains:
// when the proxies report more than RollbackRate of at least
// RollbackMinRequests attempts to the new generation failed, the
// previous serving map is written back (only while the cutover's is still
// stored), the new generation leaves the table and the allocators, and
// the change ends rolled back. Without route servers, or their reports,
// there is nothing to watch.
func (x *change) watchNew(ctx context.Context) (rolledBack bool, err error) {
	rate := x.c.cfg.RollbackRate
	if rate <= 0 {
		return false, nil
	}
	r := &cutover.Runner{RouteServers: cutover.RouteServers{Store: x.c.table}, Store: x.c.table}
	counts, err := r.Counts(ctx, x.id(), x.gen())
	if err != nil {
		x.c.log.Debug("no reports to watch the new generation by", "deployment", x.id(), "error", err)
		return false, nil
	}
	var total cutover.Count
	for _, c := range counts {
		total.Requests += c.Requests
		total.Errors += c.Errors
	}
	spec := cutover.Spec{Rate: rate, MinRequests: x.c.cfg.RollbackMinRequests}
	if !spec.Fails(total) {
		return false, nil
	}
	why := fmt.Sprintf("generation %s: %d of %d attempts failed at %d proxies, over %.1f%%", x.gen(), total.Errors, total.Requests, len(counts), 100*rate)
	cur, dd, err := x.c.table.ReadSpec(ctx, x.id())
	if err != nil {
		return false, err
	}
	prev := dd.PreviousServing
	if len(prev) == 0 {
		return false, fatalf("%s; no previous serving map to go back to", why)
	}
	if _, err := x.c.table.SetServingIf(ctx, x.id(), cur.Serving, prev); err != nil {
		return false, fmt.Errorf("%s; rolling back: %w", why, err)
	}
	x.c.log.Warn("new generation failing; rolled back", "deployment", x.id(), "why", why)
	if err := x.c.dropInstances(ctx, x.id(), func(in *routes.Instance) bool { return in.Generation == x.gen() }); err != nil {
		return false, err
	}
	if err := x.release(func(a *registry.Assignment) bool { return a.Generation == x.gen() }); err != nil {
		return false, err
	}
	return true, x.finish(plan.StateRolledBack, why)
}
