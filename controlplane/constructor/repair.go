package constructor

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/switchyard/switchyard/allocator/registry"
	"github.com/switchyard/switchyard/controlplane/cutover"
	"github.com/switchyard/switchyard/controlplane/placement"
	"github.com/switchyard/switchyard/controlplane/plan"
	"github.com/switchyard/switchyard/routes"
	"github.com/switchyard/switchyard/routes/zkstore"
)

// An instance on an allocator that is gone (its live node missing for
// LostGrace) or being vacated is replaced: a new instance of the same
// deployment and generation is placed (in the same zone when it fits),
// started, swapped for the old one in the table in one write, the
// proxies are waited for, and only then is the old assignment removed.
// The replacement's ID is the old one's with "m" appended, so a leader
// that takes over mid-way finds what was done.

// replacementID names the replacement of instance in.
func replacementID(in string) string { return in + "m" }

// repair replaces the instances of lost and vacated allocators, for
// deployments whose plan has no change running (a change in flight
// places its own instances; it is left to finish first).
func (c *Constructor) repair(ctx context.Context, recs []*plan.Record) error {
	views, err := c.reg.List()
	if err != nil {
		return err
	}
	now := c.now()
	gone := map[string]bool{}
	for _, v := range views {
		if v.Live != nil {
			delete(c.lostSince, v.ID)
		} else if _, ok := c.lostSince[v.ID]; !ok {
			c.lostSince[v.ID] = now
			c.log.Warn("allocator not live", "allocator", v.ID, "replacing its instances after", c.cfg.LostGrace)
		}
		since, lost := c.lostSince[v.ID]
		if v.Vacate || (lost && now.Sub(since) >= c.cfg.LostGrace) {
			gone[v.ID] = true
		}
	}
	if len(gone) == 0 {
		return nil
	}
	plans := map[string]*plan.Record{}
	for _, r := range recs {
		plans[r.Deployment] = r
	}
	var errs []error
	for _, v := range views {
		if !gone[v.ID] {
			continue
		}
		for _, in := range v.InstanceIDs() {
			a := v.Assignments[in]
			rec := plans[a.Deployment]
			if rec == nil || rec.Status == nil || !rec.Status.State.Final() {
				continue
			}
			if err := c.replace(ctx, views, gone, rec, v, in, a); err != nil {
				errs = append(errs, fmt.Errorf("replacing %s on %s: %w", in, v.ID, err))
			}
		}
	}
	return errors.Join(errs...)
}

// replace moves one step further in replacing instance in of allocator
// from; it is called again every round until the old assignment is gone.
func (c *Constructor) replace(ctx context.Context, views []*registry.View, gone map[string]bool,
	rec *plan.Record, from *registry.View, in string, a *registry.Assignment) error {
	newID := replacementID(in)
	if len(newID) > routes.MaxInstanceIDLen {
		return fmt.Errorf("replacement ID %q too long", newID)
	}
	var host *registry.View
	for _, v := range views {
		if _, ok := v.Assignments[newID]; ok {
			host = v
		}
	}
	if host == nil {
		return c.placeReplacement(views, gone, from, newID, a)
	}
	st := host.Statuses[newID]
	switch {
	case st == nil || st.State == registry.StateStarting || st.State == registry.StateRestarting:
		return nil // not running yet
	case st.State != registry.StateRunning:
		// It failed: remove it, so that the next round places it again
		// elsewhere.
		c.log.Warn("replacement failed; placing it again", "instance", newID, "allocator", host.ID, "state", st.State, "reason", st.Reason)
		return c.reg.Unassign(host.ID, newID)
	case !answers(st.Addr):
		return nil
	}
	z, err := c.swap(ctx, a.Deployment, in, &routes.Instance{ID: newID, Addr: st.Addr, Zone: host.Zone, Generation: a.Generation})
	if err != nil {
		return err
	}
	if z != 0 {
		r := &cutover.Runner{RouteServers: cutover.RouteServers{Store: c.table}, Store: c.table, WaitTimeout: c.cfg.ConvergeTimeout}
		if _, err := r.Wait(ctx, z); err != nil {
			c.log.Warn("proxies not all at the swap's version; removing the old instance anyway", "instance", in, "error", err)
		}
	}
	if err := c.reg.Unassign(from.ID, in); err != nil && !errors.Is(err, registry.ErrNotFound) {
		return err
	}
	c.recordReplacement(rec, in, newID, host)
	c.log.Info("instance replaced", "deployment", a.Deployment, "old", in, "from", from.ID, "new", newID, "on", host.ID)
	return nil
}

// placeReplacement assigns the replacement of an instance of from: same
// deployment, generation and size; its zone first.
func (c *Constructor) placeReplacement(views []*registry.View, gone map[string]bool, from *registry.View, newID string, a *registry.Assignment) error {
	s := &placement.Snapshot{}
	for _, v := range views {
		pa := placement.Allocator{ID: v.ID, Zone: v.Zone, Capacity: v.Capacity.MemoryBytes, Used: v.Used(),
			Live: v.Live != nil, Maintenance: v.Maintenance, Deployments: map[string]int{}}
		for _, as := range v.Assignments {
			pa.Deployments[as.Deployment]++
		}
		// The instance being replaced does not bar its deployment from
		// the other allocators; its own allocator is excluded anyway.
		s.Allocators = append(s.Allocators, pa)
	}
	zone := a.Zone
	if zone == "" {
		zone = from.Zone
	}
	pl, err := placement.Place(s, placement.Request{Deployment: a.Deployment, Zones: 1, PerZone: 1, MemoryBytes: a.MemoryBytes,
		PreferZones: []string{zone}, Exclude: slices.Sorted(maps.Keys(gone))})
	if err != nil {
		return err
	}
	b := *a
	b.Zone = pl[0].Zone
	if err := c.reg.Assign(pl[0].Allocator, newID, b); err != nil && !isDuplicate(err) {
		return err
	}
	c.log.Info("replacement placed", "instance", newID, "allocator", pl[0].Allocator, "zone", pl[0].Zone)
	return nil
}

// swap puts instance add in the table in place of old, in one write. It
// returns the write's zxid, 0 when the table held the swap already.
func (c *Constructor) swap(ctx context.Context, dep, old string, add *routes.Instance) (int64, error) {
	cur, _, err := c.table.ReadSpec(ctx, dep)
	if errors.Is(err, zkstore.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	d := *cur
	d.Instances = slices.DeleteFunc(slices.Clone(cur.Instances), func(in *routes.Instance) bool { return in.ID == old || in.ID == add.ID })
	if _, serving := cur.Serving[add.Generation]; serving {
		d.Instances = append(d.Instances, add)
	}
	return c.table.PutDeployment(ctx, &d)
}

// recordReplacement updates the plan's status: the replacement instead
// of the old instance. A lost write is only a stale record; the next
// change rewrites it.
func (c *Constructor) recordReplacement(rec *plan.Record, old, newID string, host *registry.View) {
	st := rec.Status
	ip, ok := st.Instances[old]
	if !ok {
		return
	}
	delete(st.Instances, old)
	ip.Allocator, ip.Zone, ip.State = host.ID, host.Zone, string(registry.StateRunning)
	st.Instances[newID] = ip
	st.UpdatedAt = c.now()
	if v, err := c.plans.WriteStatus(rec.Deployment, st, rec.StatusVersion); err == nil {
		rec.StatusVersion = v
	}
}
