package constructor

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/switchyard/switchyard/allocator/registry"
	"github.com/switchyard/switchyard/controlplane/placement"
	"github.com/switchyard/switchyard/controlplane/plan"
	"github.com/switchyard/switchyard/routes"
)

// A rolling change replaces the deployment's instances one zone at a
// time, in the order of the zones' names: for each zone, the new
// generation's instances there are placed, started and added to the
// table; the weights shift so that the new generation carries the share
// of the zones done; after the proxies and the drain, the old instances
// of that zone leave the table and the allocators. Its steps are those of
// grow-and-shrink with the zone after a slash ("place/zone-a"). Which
// zone comes next is read from the table (the zones that still hold old
// instances), so a leader that takes over goes on from the table and the
// status.
//
// It applies when the deployment already runs in as many zones as the
// plan asks; a new deployment, or a change of the number of zones, is
// carried out grow-and-shrink.

// rollingZones are the zones of the deployment's instances of other
// generations than gen, sorted; nil when the deployment is not in the
// table.
func (x *change) rollingZones(ctx context.Context) ([]string, error) {
	cur, _, err := x.c.table.ReadSpec(ctx, x.id())
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, in := range cur.Instances {
		if in.Generation != x.gen() {
			seen[in.Zone] = true
		}
	}
	return slices.Sorted(maps.Keys(seen)), nil
}

// firstStep is where a change starts: grow-and-shrink's place, or the
// first zone's for a rolling change that applies.
func (x *change) firstStep(ctx context.Context) (string, error) {
	if x.plan().Strategy != plan.Rolling {
		return stepPlace, nil
	}
	zs, err := x.rollingZones(ctx)
	if err != nil || len(zs) != x.plan().Zones {
		x.c.log.Info("rolling change carried out grow-and-shrink", "deployment", x.id(),
			"reason", fmt.Sprintf("the deployment runs in %d zones; the plan asks for %d", len(zs), x.plan().Zones))
		return stepPlace, nil
	}
	return stepPlace + "/" + zs[0], nil
}

// rolling reports whether step is a rolling step, and its zone.
func rolling(step string) (base, zone string, ok bool) {
	return strings.Cut(step, "/")
}

// runRolling does one step of a rolling change for zone.
func (x *change) runRolling(ctx context.Context, base, zone string) (string, error) {
	at := func(s string) string { return s + "/" + zone }
	switch base {
	case stepPlace:
		return at(stepStart), x.placeZone(ctx, zone)
	case stepStart:
		ok, err := x.startedIn(ctx, zone)
		if err != nil || !ok {
			return at(stepStart), err
		}
		return at(stepRoute), nil
	case stepRoute:
		return at(stepCutover), x.routeZone(ctx, zone)
	case stepCutover:
		return at(stepConverge), x.shift(ctx)
	case stepConverge:
		x.converge(ctx)
		x.st.DrainUntil = x.c.now().Add(x.c.cfg.RetireGrace)
		return at(stepDrain), nil
	case stepDrain:
		if x.c.now().Before(x.st.DrainUntil) {
			return at(stepDrain), nil
		}
		return at(stepRemove), nil
	case stepRemove:
		return at(stepRelease), x.removeZone(ctx, zone)
	case stepRelease:
		if err := x.release(func(a *registry.Assignment) bool { return a.Generation != x.gen() && a.Zone == zone }); err != nil {
			return at(stepRelease), err
		}
		zs, err := x.rollingZones(ctx)
		if err != nil {
			return at(stepRelease), err
		}
		if len(zs) == 0 {
			return "", nil
		}
		return stepPlace + "/" + zs[0], nil
	}
	return at(base), fatalf("unknown step %q", base+"/"+zone)
}

// newIn are the new generation's instances in zone, from the status.
func (x *change) newIn(zone string) []string { return inZone(x.st.Instances, zone) }

// inZone are the instances of m in zone, sorted.
func inZone(m map[string]plan.InstanceProgress, zone string) []string {
	var out []string
	for in, ip := range m {
		if ip.Zone == zone {
			out = append(out, in)
		}
	}
	slices.Sort(out)
	return out
}

// placeZone places the new generation's instances of one zone there.
func (x *change) placeZone(ctx context.Context, zone string) error {
	p := x.plan()
	if x.st.Instances == nil {
		x.st.Instances = map[string]plan.InstanceProgress{}
	}
	if len(x.newIn(zone)) == 0 {
		s, _, err := x.snapshot()
		if err != nil {
			return err
		}
		// The zone alone: the other zones' allocators are not candidates.
		s.Allocators = slices.DeleteFunc(s.Allocators, func(a placement.Allocator) bool { return a.Zone != zone })
		pl, err := placement.Place(s, placement.Request{Deployment: x.id(), Zones: 1, PerZone: p.PerZone, MemoryBytes: p.MemoryBytes})
		if err != nil {
			return fatalf("%v", err)
		}
		n := len(x.st.Instances)
		for i, at := range pl {
			x.st.Instances[instanceID(x.id(), x.st.Revision, n+i+1)] = plan.InstanceProgress{Allocator: at.Allocator, Zone: at.Zone, State: "assigned"}
		}
		if err := x.save(); err != nil {
			return err
		}
	}
	for _, in := range x.newIn(zone) {
		ip := x.st.Instances[in]
		err := x.c.reg.Assign(ip.Allocator, in, registry.Assignment{
			Deployment: x.id(), Kind: p.Kind, Generation: x.gen(), Zone: zone, MemoryBytes: p.MemoryBytes, Spec: p.Spec})
		switch {
		case err == nil, isDuplicate(err):
		case errors.Is(err, registry.ErrInvalid), errors.Is(err, registry.ErrNotFound):
			return fatalf("assigning %s to %s: %v", in, ip.Allocator, err)
		default:
			return err
		}
	}
	x.st.StartedAt = x.c.now()
	return nil
}

// startedIn is started for the new instances of one zone.
func (x *change) startedIn(ctx context.Context, zone string) (bool, error) {
	return x.startedOf(ctx, x.newIn(zone))
}

// routeZone adds the new instances of one zone to the table, the new
// generation at its current weight (0 when it is new).
func (x *change) routeZone(ctx context.Context, zone string) error {
	ins, err := x.newInstances()
	if err != nil {
		return err
	}
	cur, _, err := x.c.table.ReadSpec(ctx, x.id())
	if err != nil {
		return err
	}
	d := *cur
	d.Serving = maps.Clone(cur.Serving)
	if _, ok := d.Serving[x.gen()]; !ok {
		d.Serving[x.gen()] = 0
	}
	d.Instances = slices.DeleteFunc(slices.Clone(cur.Instances), func(in *routes.Instance) bool { return in.Generation == x.gen() })
	for _, in := range ins {
		if x.st.Instances[in.ID].Zone == zone || slices.ContainsFunc(cur.Instances, func(c *routes.Instance) bool { return c.ID == in.ID }) {
			d.Instances = append(d.Instances, in)
		}
	}
	_, err = x.c.table.PutDeployment(ctx, &d)
	return tableErr(err)
}

// shift gives the new generation the share of the zones it runs in; the
// old generations share the rest as they did.
func (x *change) shift(ctx context.Context) error {
	cur, _, err := x.c.table.ReadSpec(ctx, x.id())
	if err != nil {
		return err
	}
	newZones, oldZones := map[string]bool{}, map[string]bool{}
	for _, in := range cur.Instances {
		if in.Generation == x.gen() {
			newZones[in.Zone] = true
		} else {
			oldZones[in.Zone] = true
		}
	}
	for z := range newZones {
		delete(oldZones, z)
	}
	total := len(newZones) + len(oldZones)
	share := 100
	if total > 0 {
		share = 100 * len(newZones) / total
	}
	serving := map[string]int{x.gen(): share}
	oldSum := 0
	for g, w := range cur.Serving {
		if g != x.gen() {
			oldSum += w
		}
	}
	rest := 100 - share
	for g, w := range cur.Serving {
		if g == x.gen() {
			continue
		}
		switch {
		case oldSum > 0:
			serving[g] = rest * w / oldSum
		default:
			serving[g] = 0
		}
	}
	if maps.Equal(serving, cur.Serving) && x.st.Zxid != 0 {
		return nil
	}
	z, err := x.c.table.SetServing(ctx, x.id(), serving)
	if err != nil {
		return tableErr(err)
	}
	x.st.Zxid = z
	return nil
}

// removeZone takes the old instances of one zone out of the table; an
// old generation left without instances leaves the serving map.
func (x *change) removeZone(ctx context.Context, zone string) error {
	return x.c.dropInstances(ctx, x.id(), func(in *routes.Instance) bool { return in.Generation != x.gen() && in.Zone == zone })
}

// abortZone undoes the place, start and route of one zone of a rolling
// change that already shifted weight: that zone's new instances leave the
// table and the allocators; the zones done stay as they are.
func (x *change) abortZone(ctx context.Context, zone string, step string, why error) error {
	x.c.log.Warn("rolling change failed in a zone; removing what it added there", "deployment", x.id(), "zone", zone, "error", why)
	drop := map[string]bool{}
	for _, in := range x.newIn(zone) {
		drop[in] = true
	}
	if err := x.c.dropInstances(ctx, x.id(), func(in *routes.Instance) bool { return drop[in.ID] }); err != nil {
		return err
	}
	if err := x.release(func(a *registry.Assignment) bool { return a.Generation == x.gen() && a.Zone == zone }); err != nil {
		return err
	}
	return x.finish(plan.StateFailed, fmt.Sprintf("%s/%s: %v (the zones done before stay on %s)", step, zone, why, x.gen()))
}
