package constructor

import (
	"context"
	"errors"
	"maps"
	"slices"

	"github.com/switchyard/switchyard/routes"
	"github.com/switchyard/switchyard/routes/zkstore"
)

// dropInstances takes the instances that drop says out of deployment
// dep in the table, in one write: a generation left without an instance
// leaves the serving map, the one generation left (if one is) serves all,
// and a deployment left without instances leaves the table. A deployment
// not in the table, or nothing to drop, writes nothing.
func (c *Constructor) dropInstances(ctx context.Context, dep string, drop func(*routes.Instance) bool) error {
	cur, _, err := c.table.ReadSpec(ctx, dep)
	if errors.Is(err, zkstore.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	d := *cur
	d.Instances = slices.DeleteFunc(slices.Clone(cur.Instances), drop)
	switch {
	case len(d.Instances) == len(cur.Instances):
		return nil
	case len(d.Instances) == 0:
		_, err := c.table.DeleteDeployment(ctx, dep)
		return err
	}
	d.Serving = maps.Clone(cur.Serving)
	for g := range d.Serving {
		if !slices.ContainsFunc(d.Instances, func(in *routes.Instance) bool { return in.Generation == g }) {
			delete(d.Serving, g)
		}
	}
	if len(d.Serving) == 1 {
		for g := range d.Serving {
			d.Serving[g] = 100
		}
	}
	_, err = c.table.PutDeployment(ctx, &d)
	return tableErr(err)
}

// tableErr makes the table's refusal of a deployment fatal to a change;
// other errors (ZooKeeper, a lost race) are tried again.
func tableErr(err error) error {
	var re *routes.Error
	if errors.As(err, &re) {
		return fatalf("the table refuses it: %v", err)
	}
	return err
}
