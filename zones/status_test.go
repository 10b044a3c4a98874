package zones

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/routes"
)

// wholeTableSummary is the zones and unhealthy deployments of b's table
// found by looking at every instance: what Status finds from the
// instances whose health changed.
func wholeTableSummary(b *Balancer) ([]ZoneStatus, []string) {
	s := b.snap.Load()
	now := b.now()
	type count struct{ eligible, healthy int }
	zones := map[string]*count{}
	for name := range s.table.Zones {
		zones[name] = &count{}
	}
	seen := map[instKey]bool{}
	var unhealthy []string
	for _, d := range s.table.Deployments() {
		bad := false
		for _, in := range d.Instances {
			if zones[in.Zone] == nil {
				zones[in.Zone] = &count{}
			}
		}
		for _, in := range d.Eligible {
			h := s.entry(keyOf(in)).state().healthy(now)
			bad = bad || !h
			if k := keyOf(in); !seen[k] {
				seen[k] = true
				zones[in.Zone].eligible++
				if h {
					zones[in.Zone].healthy++
				}
			}
		}
		if bad {
			unhealthy = append(unhealthy, d.ID)
		}
	}
	var out []ZoneStatus
	for _, name := range sortedKeys(zones) {
		z := zones[name]
		zs := ZoneStatus{Name: name, State: StateUp, Eligible: z.eligible, Healthy: z.healthy}
		switch {
		case s.table.Zones[name] == routes.ZoneDown:
			zs.State, zs.Reason, zs.Why = StateDown, ReasonOperator, "set down by the operator"
		case z.eligible > 0 && z.healthy == 0:
			zs.State, zs.Reason = StateDown, ReasonObserved
			zs.Why = fmt.Sprintf("all %d eligible instances are ejected or failing checks", z.eligible)
		}
		out = append(out, zs)
	}
	return out, unhealthy
}

// Status summarizes zones and unhealthy deployments from the instances
// whose health changed; it must say what looking at every instance says,
// through ejections, their end, checks and new tables that drop, keep and
// bring back instances.
func TestStatusSummaryIsTheWholeTables(t *testing.T) {
	b, clk := testBalancer(Config{ConsecutiveFailures: 2, MaxEjectedPercent: 100, BaseEjection: 10 * time.Second})
	r := rand.New(rand.NewPCG(3, 4))
	spec := func(i int) *routes.DeploymentSpec {
		d := &routes.DeploymentSpec{ID: fmt.Sprintf("%08x", i), Kind: "es", Serving: map[string]int{"blue": 1}}
		for j := 0; j < 3; j++ {
			if j > 0 && r.IntN(6) == 0 {
				continue // this instance is not in this table
			}
			zone := fmt.Sprintf("zone-%c", 'a'+j)
			if i >= 12 && j == 2 {
				zone = "zone-extra" // comes and goes with these deployments
			}
			d.Instances = append(d.Instances, &routes.Instance{ID: fmt.Sprintf("i-%d", j),
				Addr: fmt.Sprintf("127.0.0.1:%d", 20000+i*3+j), Zone: zone,
				Generation: "blue", Maintenance: r.IntN(8) == 0})
		}
		return d
	}
	// derive changes a few deployments of tb, adds or deletes one, as a
	// route server's delta does (and Prepare takes in part).
	derive := func(tb *routes.Table) *routes.Table {
		var upsert []*routes.DeploymentSpec
		var deleted []string
		for range 1 + r.IntN(3) {
			upsert = append(upsert, spec(r.IntN(16)))
		}
		if r.IntN(3) == 0 && tb.Len() > 4 {
			deleted = append(deleted, tb.Deployments()[r.IntN(tb.Len())].ID)
		}
		slices.SortFunc(upsert, func(a, b *routes.DeploymentSpec) int { return strings.Compare(a.ID, b.ID) })
		upsert = slices.CompactFunc(upsert, func(a, b *routes.DeploymentSpec) bool { return a.ID == b.ID })
		next, err := tb.With(tb.Zones, upsert, deleted)
		if err != nil {
			t.Fatal(err)
		}
		if next.ChangeFrom(tb) == nil {
			t.Fatal("a table derived without a change of zones has no Change")
		}
		return next
	}
	table := func() *routes.Table {
		var specs []*routes.DeploymentSpec
		for i := 0; i < 12; i++ {
			specs = append(specs, spec(i))
		}
		zones := map[string]routes.ZoneState{}
		if r.IntN(4) == 0 {
			zones["zone-c"] = routes.ZoneDown
		}
		tb, err := routes.NewTable("example.test", zones, specs)
		if err != nil {
			t.Fatal(err)
		}
		return tb
	}
	tb := table()
	b.Prepare(tb)
	sawUnhealthy := 0
	for step := 0; step < 300; step++ {
		switch k := r.IntN(10); {
		case k < 6: // failures on an instance
			d := tb.Deployments()[r.IntN(len(tb.Deployments()))]
			if len(d.Instances) > 0 {
				fail(b, d.Instances[r.IntN(len(d.Instances))], 2)
			}
		case k < 7: // an active check flips an instance
			d := tb.Deployments()[r.IntN(len(tb.Deployments()))]
			if len(d.Instances) > 0 {
				if e := b.lookup(d.Instances[r.IntN(len(d.Instances))]); e != nil {
					b.cfg.Check.UnhealthyThreshold, b.cfg.Check.HealthyThreshold = 1, 1
					b.checked(b.stateOf(e), r.IntN(2) == 0, "", b.now())
				}
			}
		case k < 9:
			clk.Advance(time.Duration(r.IntN(8)) * time.Second)
		default:
			if r.IntN(3) == 0 {
				tb = table()
			} else {
				tb = derive(tb)
			}
			b.Prepare(tb)
			checkSnapshot(t, step, b)
		}
		st := b.Status(nil)
		zones, unhealthy := wholeTableSummary(b)
		if !reflect.DeepEqual(st.Zones, zones) {
			t.Fatalf("step %d: zones\n%+v\nwant (every instance looked at)\n%+v", step, st.Zones, zones)
		}
		var got []string
		for _, d := range st.Deployments {
			got = append(got, d.ID)
		}
		if !reflect.DeepEqual(got, unhealthy) || st.UnhealthyDeployments != len(unhealthy) {
			t.Fatalf("step %d: unhealthy deployments %v (%d); want %v", step, got, st.UnhealthyDeployments, unhealthy)
		}
		if len(st.Instances) != 0 {
			t.Fatalf("step %d: %d instances listed for an empty page", step, len(st.Instances))
		}
		if len(unhealthy) > 0 {
			sawUnhealthy++
		}
	}
	if sawUnhealthy < 100 {
		t.Errorf("unhealthy deployments at %d steps of 300; the sequence should have more", sawUnhealthy)
	}
}

// The instances listed are those of the page's deployments, in order.
func TestStatusListsThePage(t *testing.T) {
	b, _ := testBalancer(Config{})
	var specs []*routes.DeploymentSpec
	for i := 0; i < 5; i++ {
		specs = append(specs, &routes.DeploymentSpec{ID: fmt.Sprintf("%08x", i), Kind: "es", Serving: map[string]int{"blue": 1},
			Instances: layout(map[string]int{fmt.Sprintf("zone-%d", i): 2})})
	}
	tb, err := routes.NewTable("example.test", nil, specs)
	if err != nil {
		t.Fatal(err)
	}
	b.Prepare(tb)
	st := b.Status(tb.Deployments()[3:5])
	var got []string
	for _, x := range st.Instances {
		got = append(got, x.Deployment+"/"+x.ID)
	}
	want := []string{"00000003/zone-3-1", "00000003/zone-3-2", "00000004/zone-4-1", "00000004/zone-4-2"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("instances %v; want %v", got, want)
	}
	if len(st.Zones) != 5 {
		t.Errorf("%d zones; want all 5 of the table", len(st.Zones))
	}
}

// checkSnapshot checks the balancer's snapshot against its table, looked
// at whole: a deployment state for each deployment, an entry for each
// instance (by pointer and by key, counting the instances that have its
// key), each entry eligible in exactly the deployments that have it
// eligible, and the zones counted once per eligible instance. It holds
// for a snapshot prepared whole and for one prepared from a change.
func checkSnapshot(t *testing.T, step int, b *Balancer) {
	t.Helper()
	s := b.snap.Load()
	tb := s.table
	refs := map[instKey]int{}
	eligibleIn := map[instKey][]*routes.Deployment{}
	for _, d := range tb.Deployments() {
		ds := b.depOf(d)
		if ds == nil || ds.d != d || ds.gone.Load() != 0 {
			t.Fatalf("step %d: deployment %s has no state", step, d.ID)
		}
		for _, in := range d.Instances {
			refs[keyOf(in)]++
			if s.entry(keyOf(in)) == nil {
				t.Fatalf("step %d: instance %s/%s has no entry", step, d.ID, in.ID)
			}
		}
		for i, in := range d.Eligible {
			eligibleIn[keyOf(in)] = append(eligibleIn[keyOf(in)], d)
			if ds.insts[i].e != s.entry(keyOf(in)) {
				t.Fatalf("step %d: deployment %s's instance %s is not its entry", step, d.ID, in.ID)
			}
		}
	}
	if s.byKey.Len() != len(refs) {
		t.Fatalf("step %d: %d entries; want %d", step, s.byKey.Len(), len(refs))
	}
	zones := map[string]int{}
	for e := range s.byKey.All() {
		k := e.key
		if s.entry(k) != e {
			t.Fatalf("step %d: entry %v is not found by its key", step, k)
		}
		if int(e.refs) != refs[k] {
			t.Fatalf("step %d: entry %v counts %d instances; want %d", step, k, e.refs, refs[k])
		}
		el := e.eligible()
		var got []*routes.Deployment
		for _, ds := range el.deps {
			got = append(got, ds.d)
		}
		if !slices.Equal(got, eligibleIn[k]) && !sameSet(got, eligibleIn[k]) {
			t.Fatalf("step %d: entry %v eligible in %d deployments; want %d", step, k, len(got), len(eligibleIn[k]))
		}
		if len(el.deps) > 0 {
			zones[el.zone]++
			// Counted in a zone a deployment lists it in, eligible.
			listed := false
			for _, d := range eligibleIn[k] {
				for _, in := range d.Eligible {
					listed = listed || keyOf(in) == k && in.Zone == el.zone
				}
			}
			if !listed {
				t.Fatalf("step %d: entry %v is counted in zone %s, where no deployment has it eligible", step, k, el.zone)
			}
		}
	}
	for z, n := range s.zones {
		if zones[z] != n {
			t.Fatalf("step %d: zone %s counts %d eligible instances; want %d", step, z, n, zones[z])
		}
		if s.insts[z] <= 0 {
			t.Fatalf("step %d: zone %s is listed with %d instances", step, z, s.insts[z])
		}
	}
	for z, n := range zones {
		if s.zones[z] != n {
			t.Fatalf("step %d: zone %s counts %d eligible instances; want %d", step, z, s.zones[z], n)
		}
	}
}

func sameSet[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[T]int{}
	for _, x := range a {
		m[x]++
	}
	for _, x := range b {
		if m[x]--; m[x] < 0 {
			return false
		}
	}
	return true
}

// Instances that several deployments list, in different zones (bad
// data, but it happens): over random sequences of whole and derived
// tables, each eligible instance stays counted once, in a zone where a
// deployment has it eligible, and a zone's count goes with its last
// instance (checkSnapshot).
func TestZoneCountsWithSharedInstances(t *testing.T) {
	zoneNames := []string{"za", "zb", "zc"}
	ids := []string{"aaaaaaaa", "bbbbbbbb", "cccccccc", "dddddddd", "eeeeeeee", "ffffffff"}
	for seed := range uint64(200) {
		r := rand.New(rand.NewPCG(seed, 7))
		spec := func(id string) *routes.DeploymentSpec {
			d := &routes.DeploymentSpec{ID: id, Kind: "es", Serving: map[string]int{"blue": 1 + r.IntN(2), "green": r.IntN(2)}}
			used := map[string]bool{}
			for range 1 + r.IntN(4) {
				iid := fmt.Sprint("i-", r.IntN(4))
				if used[iid] {
					continue
				}
				used[iid] = true
				d.Instances = append(d.Instances, &routes.Instance{ID: iid, Addr: fmt.Sprintf("10.0.0.%d:9200", r.IntN(6)),
					Zone: zoneNames[r.IntN(3)], Generation: []string{"blue", "green"}[r.IntN(2)], Maintenance: r.IntN(5) == 0})
			}
			return d
		}
		zones := func() map[string]routes.ZoneState {
			if r.IntN(4) == 0 {
				return map[string]routes.ZoneState{"za": routes.ZoneDown}
			}
			return map[string]routes.ZoneState{}
		}
		b := NewBalancer(Config{LocalZone: "za"})
		var tb *routes.Table
		for step := 0; step < 40; step++ {
			var next *routes.Table
			var err error
			if tb == nil || r.IntN(10) == 0 {
				var specs []*routes.DeploymentSpec
				for _, id := range ids {
					if r.IntN(2) == 0 {
						specs = append(specs, spec(id))
					}
				}
				next, err = routes.NewTable("example.test", zones(), specs)
			} else {
				var upsert []*routes.DeploymentSpec
				var deleted []string
				for _, id := range ids {
					switch r.IntN(5) {
					case 0:
						upsert = append(upsert, spec(id))
					case 1:
						deleted = append(deleted, id)
					}
				}
				next, err = tb.With(tb.Zones, upsert, deleted)
			}
			if err != nil {
				continue // an empty table
			}
			tb = next
			b.Prepare(tb)
			checkSnapshot(t, int(seed)*1000+step, b)
		}
	}
}

// Removing deployments that share their instances with one that stays
// costs what they hold, not that times the size of the one that stays:
// where each instance is counted is found without a scan of it per
// instance (Balancer.scanned counts the instances looked at), with the
// shared instances listed in the same zone and in another.
func TestRemovingSharedDeploymentsIsLinear(t *testing.T) {
	const n = 2000
	insts := func(zone string) []*routes.Instance {
		var l []*routes.Instance
		for i := range n {
			l = append(l, &routes.Instance{ID: fmt.Sprint("i-", i), Addr: fmt.Sprintf("10.%d.%d.%d:9200", i>>16, (i>>8)&255, i&255),
				Zone: zone, Generation: "blue"})
		}
		return l
	}
	blue := map[string]int{"blue": 1}
	for _, zone := range []string{"zone-a", "zone-b"} {
		// Two deployments of the same n instances; the first goes.
		tb, err := routes.NewTable("example.test", nil, []*routes.DeploymentSpec{
			{ID: "10000000", Kind: "es", Serving: blue, Instances: insts("zone-a")},
			{ID: "20000000", Kind: "es", Serving: blue, Instances: insts(zone)},
		})
		if err != nil {
			t.Fatal(err)
		}
		b := NewBalancer(Config{})
		b.Prepare(tb)
		next, err := tb.With(tb.Zones, nil, []string{"10000000"})
		if err != nil {
			t.Fatal(err)
		}
		b.Prepare(next)
		checkSnapshot(t, 1, b)
		if b.scanned > 2*n || zone == "zone-a" && b.scanned != 0 {
			// In the same zone, the one that stays holds the counts
			// where they are: nothing to look at.
			t.Errorf("%s: removing a deployment of %d shared instances looked at %d instances", zone, n, b.scanned)
		}

		// n deployments of one instance each, the big one's, go.
		specs := []*routes.DeploymentSpec{{ID: "ffffffff", Kind: "es", Serving: blue, Instances: insts(zone)}}
		var ids []string
		for i, in := range insts("zone-a") {
			id := fmt.Sprintf("%08x", i+1)
			specs = append(specs, &routes.DeploymentSpec{ID: id, Kind: "es", Serving: blue, Instances: []*routes.Instance{in}})
			ids = append(ids, id)
		}
		if tb, err = routes.NewTable("example.test", nil, specs); err != nil {
			t.Fatal(err)
		}
		b = NewBalancer(Config{})
		b.Prepare(tb)
		if next, err = tb.With(tb.Zones, nil, ids); err != nil {
			t.Fatal(err)
		}
		b.Prepare(next)
		checkSnapshot(t, 2, b)
		if b.scanned > 2*n {
			t.Errorf("%s: removing %d deployments of one shared instance looked at %d instances", zone, n, b.scanned)
		}
	}
}
