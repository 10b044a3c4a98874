package zones

import (
	"fmt"
	"runtime"
	"slices"
	"testing"
	"unsafe"

	"github.com/switchyard/switchyard/routes"
)

// An instance that every deployment of a large table shares (the same
// address and ID) costs Prepare its share, not a copy of the list of
// deployments that have it for each of them: the bytes allocated stay
// linear in the table.
func TestPrepareSharedInstanceIsLinear(t *testing.T) {
	const n = 20000
	specs := make([]*routes.DeploymentSpec, n)
	for i := range specs {
		specs[i] = &routes.DeploymentSpec{ID: fmt.Sprintf("%016x", i), Kind: "es", Serving: map[string]int{"blue": 1},
			Instances: []*routes.Instance{{ID: "i-0", Addr: "127.0.0.1:9200", Zone: "zone-a", Generation: "blue"}}}
	}
	tb, err := routes.NewTable("example.test", nil, specs)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := testBalancer(Config{})
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.Prepare(tb)
	runtime.ReadMemStats(&after)
	// Linear: a few hundred bytes a deployment. A copy of the shared
	// list for each deployment would be n²·8/2 = 1.6 GB.
	if got := after.TotalAlloc - before.TotalAlloc; got > 64<<20 {
		t.Errorf("Prepare allocated %d MB for %d deployments sharing an instance; want linear (< 64 MB)", got>>20, n)
	}
	if e := b.snap.Load().entry(instKey{"127.0.0.1:9200", "i-0"}); e == nil || len(e.eligible().deps) != n {
		t.Errorf("the shared instance is not eligible in all %d deployments", n)
	}
}

// Deployments whose eligible instances list the same zones in the same
// order share one list; any other list is their own, and right.
func TestZoneListsShared(t *testing.T) {
	b, _ := testBalancer(Config{LocalZone: "zone-c"})
	spec := func(id string, zones ...string) *routes.DeploymentSpec {
		d := &routes.DeploymentSpec{ID: id, Kind: "es", Serving: map[string]int{"blue": 1}}
		for i, z := range zones {
			d.Instances = append(d.Instances, &routes.Instance{ID: fmt.Sprint("i-", i), Addr: fmt.Sprintf("10.0.%s.%d:9200", id[:1], i+1), Zone: z, Generation: "blue"})
		}
		return d
	}
	tbl, err := routes.NewTable("example.test", nil, []*routes.DeploymentSpec{
		spec("1000000000000000", "zone-a", "zone-b"), spec("2000000000000000", "zone-a", "zone-b", "zone-a"),
		spec("3000000000000000", "zone-b", "zone-a"), spec("4000000000000000", "zone-a", "zone-c"),
	})
	if err != nil {
		t.Fatal(err)
	}
	b.Prepare(tbl)
	want := map[string][]string{
		"1000000000000000": {"zone-a", "zone-b"}, "2000000000000000": {"zone-a", "zone-b"},
		"3000000000000000": {"zone-b", "zone-a"}, "4000000000000000": {"zone-c", "zone-a"},
	}
	lists := map[string][]string{}
	for d := range tbl.All() {
		ds := b.depOf(d)
		if !slices.Equal(ds.zones, want[d.ID]) {
			t.Errorf("deployment %s: zones %v; want %v", d.ID, ds.zones, want[d.ID])
		}
		lists[d.ID] = ds.zones
	}
	same := func(a, b []string) bool { return &a[0] == &b[0] }
	if !same(lists["1000000000000000"], lists["2000000000000000"]) {
		t.Error("two deployments in zones a, b have a list each; want one shared")
	}
	if same(lists["1000000000000000"], lists["3000000000000000"]) || same(lists["1000000000000000"], lists["4000000000000000"]) {
		t.Error("deployments with other zone lists share one")
	}
}

// An instance that gets requests holds an instState: it stays in the
// 80-byte size class (a field added to it costs 16 bytes an instance,
// 4.8 MB at 300 000 instances).
func TestInstStateSize(t *testing.T) {
	if n := unsafe.Sizeof(instState{}); n > 80 {
		t.Errorf("instState is %d bytes; want at most 80", n)
	}
}

// Prepare builds no view: a deployment's is built at its first pick, so
// that the deployments of a large table that get no traffic cost none.
func TestViewsBuiltAtFirstPick(t *testing.T) {
	b, _ := testBalancer(Config{LocalZone: "zone-a"})
	tbl, d := oneDep(t, nil, nil, layout(map[string]int{"zone-a": 2, "zone-b": 2}))
	b.Prepare(tbl)
	ds := b.depOf(d)
	if ds.view.Load() != nil {
		t.Fatal("Prepare built a view")
	}
	if b.Pick(d) == nil {
		t.Fatal("no instance")
	}
	v := ds.view.Load()
	if v == nil {
		t.Fatal("no view after a pick")
	}
	if b.Pick(d); ds.view.Load() != v {
		t.Error("the second pick built the view again")
	}
}

// states counts the entries of b's table that hold a state.
func states(b *Balancer) int {
	n := 0
	for e := range b.snap.Load().byKey.All() {
		if e.st.Load() != nil {
			n++
		}
	}
	return n
}

// Prepare makes no instance state: a deployment's first pick makes its
// instances', and a request an instance's. A state made is kept by the
// next table that has the instance, derived or whole.
func TestStatesMadeAtFirstPick(t *testing.T) {
	b, _ := testBalancer(Config{LocalZone: "zone-a"})
	specs := make([]*routes.DeploymentSpec, 50)
	for i := range specs {
		specs[i] = &routes.DeploymentSpec{ID: fmt.Sprintf("%016x", i), Kind: "es", Serving: map[string]int{"blue": 1}}
		for j := range 3 {
			specs[i].Instances = append(specs[i].Instances, &routes.Instance{ID: fmt.Sprint("i-", j),
				Addr: fmt.Sprintf("10.0.%d.%d:9200", i, j), Zone: fmt.Sprint("zone-", string(rune('a'+j))), Generation: "blue"})
		}
	}
	tbl, err := routes.NewTable("example.test", nil, specs)
	if err != nil {
		t.Fatal(err)
	}
	b.Prepare(tbl)
	if n := states(b); n != 0 {
		t.Fatalf("Prepare made %d states; want none", n)
	}
	d0, d1 := tbl.Deployments()[0], tbl.Deployments()[1]
	if b.Pick(d0) == nil {
		t.Fatal("no instance")
	}
	if n := states(b); n != 3 {
		t.Fatalf("after a pick in one deployment, %d states; want its 3", n)
	}
	b.Begin(d1, d1.Instances[2])
	b.End(d1, d1.Instances[2], OutcomeSuccess)
	if n := states(b); n != 4 {
		t.Fatalf("after a request on an instance of another, %d states; want 4", n)
	}
	st := b.lookup(d0.Instances[0]).st.Load()

	// A whole table (not derived from this one) with the same instances.
	again, err := routes.NewTable("example.test", nil, specs)
	if err != nil {
		t.Fatal(err)
	}
	b.Prepare(again)
	if n := states(b); n != 4 {
		t.Fatalf("after a whole table, %d states; want the 4 made", n)
	}
	if got := b.lookup(d0.Instances[0]).st.Load(); got != st {
		t.Error("the whole table's entry has another state than the previous table's")
	}
}

// A state made on the previous table's entry after a whole table came
// in (a request that found the instance there) is the state the new
// table's entry takes when it first needs one: they are the same
// instance.
func TestStateMadeOnPreviousTableIsShared(t *testing.T) {
	b, d, old, again := wholeAgain(t, Config{})
	b.Prepare(again)
	cur := b.lookup(d.Instances[0])
	if cur == old || cur.st.Load() != nil {
		t.Fatal("want a new entry without a state")
	}
	st := b.stateOf(old) // a request begun on the previous table
	if got := b.stateOf(cur); got != st {
		t.Error("the new table's entry made a state of its own; want the previous table's")
	}
}

// A state made on the previous table's entry after a whole table came
// in stays the instance's across the tables that follow, derived or
// not, and failures counted on it eject the instance.
func TestStateMadeOnPreviousTableOutlivesLaterTables(t *testing.T) {
	b, d, old, again := wholeAgain(t, Config{ConsecutiveFailures: 3, MaxEjectedPercent: 100})
	b.Prepare(again)
	st := b.stateOf(old) // a request begun on the previous table
	st.begin()
	other := &routes.DeploymentSpec{ID: "00000000000000ff", Kind: "es", Serving: map[string]int{"blue": 1},
		Instances: []*routes.Instance{{ID: "x", Addr: "127.0.0.9:1", Zone: "zone-a", Generation: "blue"}}}
	next, err := again.With(again.Zones, []*routes.DeploymentSpec{other}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.Prepare(next)
	if got := b.stateOf(b.lookup(d.Instances[0])); got != st {
		t.Fatal("after a later delta, the instance has a new state; want the one made on the previous table")
	}
	for range 3 {
		b.stateOf(old).begin()
		b.outcome(b.stateOf(old), OutcomeConnectError)
	}
	if !st.ejected(b.now()) {
		t.Error("three failures counted through the previous table's entry did not eject the instance")
	}
}

// A state made on the old entry while a whole table is prepared is
// taken over when the table is published.
func TestStateMadeDuringPrepareIsTakenOver(t *testing.T) {
	b, d, old, again := wholeAgain(t, Config{})
	// As Prepare would see it: the new entry made while the old one had
	// no state, then a request on the old table makes one.
	var st *instState
	b.testHookPrepared = func() { st = b.stateOf(old) }
	b.Prepare(again)
	b.testHookPrepared = nil
	if got := b.lookup(d.Instances[0]).st.Load(); got != st {
		t.Error("the state made on the old entry during Prepare is not the new entry's")
	}
}

// wholeAgain returns a balancer for cfg that has prepared a table of
// one deployment d of two instances, the entry of d's first instance,
// and a table of d's spec alone built whole, not yet prepared: not
// derived from the table d is in, so that Prepare makes new entries for
// it.
func wholeAgain(t *testing.T, cfg Config) (b *Balancer, d *routes.Deployment, old *entry, again *routes.Table) {
	t.Helper()
	b, _ = testBalancer(cfg)
	tbl, d := oneDep(t, nil, nil, layout(map[string]int{"zone-a": 2}))
	b.Prepare(tbl)
	again, err := routes.NewTable("example.test", nil, []*routes.DeploymentSpec{&d.DeploymentSpec})
	if err != nil {
		t.Fatal(err)
	}
	return b, d, b.lookup(d.Instances[0]), again
}

// An instance that a table dropped comes back with a fresh state, also
// when a pick during the Prepare that brings it back builds a view of
// the new entries (a table that shares its deployments with an older
// one, prepared again): the entry of a table being prepared takes a
// state from the current table only, not from the one before it.
func TestReturningInstanceFreshWithPickDuringPrepare(t *testing.T) {
	for _, pickDuring := range []bool{false, true} {
		b, _ := testBalancer(Config{})
		ins := layout(map[string]int{"zone-a": 3, "zone-b": 3})
		t1, d1 := oneDep(t, nil, nil, ins)
		b.Prepare(t1)
		fail(b, byID(t, d1, "zone-b-3"), 5)
		if !instStatus(t, allStatus(b), "zone-b-3").Ejected {
			t.Fatal("not ejected")
		}
		t2, _ := oneDep(t, nil, nil, clone(ins[:5])) // zone-b-3 leaves
		b.Prepare(t2)
		if pickDuring {
			b.testHookPrepared = func() { b.Pick(d1) } // a deployment of t1, shared
		}
		b.Prepare(t1) // zone-b-3 comes back
		b.testHookPrepared = nil
		if x := instStatus(t, allStatus(b), "zone-b-3"); x.Ejected || x.ConsecutiveFailures != 0 {
			t.Errorf("pick during Prepare %v: returning instance %+v; want a fresh state", pickDuring, x)
		}
	}
}

// A deployment that holds another picker's value keeps it: the balancer
// keeps its own state beside it.
func TestDeploymentHoldingAnotherPickersValue(t *testing.T) {
	tb, d := oneDep(t, nil, nil, layout(map[string]int{"zone-a": 2}))
	if !d.CompareAndSwapPickerState(nil, "another picker's state") {
		t.Fatal("no swap")
	}
	b, _ := testBalancer(Config{})
	b.Prepare(tb)
	if b.Pick(d) == nil || b.depOf(d) == nil {
		t.Fatal("not balanced")
	}
	if v := d.PickerState(); v != "another picker's state" {
		t.Errorf("the deployment holds %v; want the other picker's value", v)
	}
}
