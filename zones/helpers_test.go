package zones

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/routes"
)

// fakeClock is a clock that moves only when told to.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// testBalancer returns a balancer with a fake clock and a seeded random
// source (single goroutine only), and the clock.
func testBalancer(cfg Config) (*Balancer, *fakeClock) {
	clk := newFakeClock()
	cfg.Clock = clk.Now
	if cfg.Rand == nil {
		cfg.Rand = rand.New(rand.NewPCG(1, 2)).Uint64
	}
	return NewBalancer(cfg), clk
}

// layout builds instances named "<zone>-<n>" (n from 1), count per zone,
// all of generation blue, with distinct addresses.
func layout(counts map[string]int) []*routes.Instance {
	var out []*routes.Instance
	port := 20000
	for _, z := range sortedKeys(counts) {
		for n := 1; n <= counts[z]; n++ {
			port++
			out = append(out, &routes.Instance{
				ID:         fmt.Sprintf("%s-%d", z, n),
				Addr:       fmt.Sprintf("127.0.0.1:%d", port),
				Zone:       z,
				Generation: "blue",
			})
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// clone copies instances into new objects with the same address and ID, as
// a table reloaded from its source has.
func clone(ins []*routes.Instance) []*routes.Instance {
	out := make([]*routes.Instance, len(ins))
	for i, in := range ins {
		cp := *in
		out[i] = &cp
	}
	return out
}

const testDepID = "7f3a9c2e51d04b8e"

// oneDep builds a table of one deployment with instances ins; zones may
// set zones down.
func oneDep(t testing.TB, zones map[string]routes.ZoneState, serving map[string]int, ins []*routes.Instance) (*routes.Table, *routes.Deployment) {
	t.Helper()
	if serving == nil {
		serving = map[string]int{"blue": 100}
	}
	tb, err := routes.NewTable("example.test", zones, []*routes.DeploymentSpec{{
		ID: testDepID, Kind: "es", Serving: serving, Instances: ins,
	}})
	if err != nil {
		t.Fatal(err)
	}
	return tb, tb.Deployments()[0]
}

// byID finds an instance of d by ID.
func byID(t testing.TB, d *routes.Deployment, id string) *routes.Instance {
	t.Helper()
	for _, in := range d.Instances {
		if in.ID == id {
			return in
		}
	}
	t.Fatalf("no instance %s", id)
	return nil
}

// fail ends n requests on in with a 5xx, found by address and ID.
func fail(b *Balancer, in *routes.Instance, n int) {
	for range n {
		b.Begin(nil, in)
		b.End(nil, in, OutcomeStatus5xx)
	}
}

// picks counts n picks of d by instance ID and by zone.
func picks(t testing.TB, b *Balancer, d *routes.Deployment, n int) (byInst, byZone map[string]int) {
	t.Helper()
	byInst, byZone = map[string]int{}, map[string]int{}
	for range n {
		in := b.Pick(d)
		if in == nil {
			t.Fatal("Pick = nil")
		}
		byInst[in.ID]++
		byZone[in.Zone]++
	}
	return byInst, byZone
}

// instStatus finds an instance in a Status.
func instStatus(t testing.TB, s Status, id string) InstanceStatus {
	t.Helper()
	for _, x := range s.Instances {
		if x.ID == id {
			return x
		}
	}
	t.Fatalf("no instance %s in status", id)
	return InstanceStatus{}
}

func zoneStatus(t testing.TB, s Status, name string) ZoneStatus {
	t.Helper()
	for _, z := range s.Zones {
		if z.Name == name {
			return z
		}
	}
	t.Fatalf("no zone %s in status", name)
	return ZoneStatus{}
}

// allStatus is b's status with every deployment of its table as the page.
func allStatus(b *Balancer) Status {
	var page []*routes.Deployment
	if s := b.snap.Load(); s != nil {
		page = s.table.Deployments()
	}
	return b.Status(page)
}
