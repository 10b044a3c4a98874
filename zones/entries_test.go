package zones

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"weak"

	"github.com/switchyard/switchyard/routes"
)

// TestEntrySetFollowsAMap adds and removes random keys (many at the same
// address, so that probe runs are long and removals shift them) and
// checks each version against a Go map, and that an older version is not
// changed by the editing of a newer one.
func TestEntrySetFollowsAMap(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	key := func() instKey {
		if r.IntN(2) == 0 { // one address, many IDs: keys of one hash
			return instKey{addr: fmt.Sprintf("10.0.0.%d:9200", r.IntN(300)), id: fmt.Sprint("i-", r.IntN(40))}
		}
		return instKey{addr: fmt.Sprintf("10.1.%d.%d:9200", r.IntN(100), r.IntN(100)), id: "i-1"}
	}
	type version struct {
		set  *entrySet
		want map[instKey]*entry
	}
	var versions []version
	cur, want := buildEntries(0).done(), map[instKey]*entry{}
	for round := range 60 {
		x := cur.edit()
		if round == 0 {
			x = buildEntries(2000)
		}
		for range r.IntN(400) + 1 {
			k := key()
			e, ok := want[k]
			if ok && r.IntN(3) > 0 {
				if x.get(k) != e {
					t.Fatalf("round %d: %v not found before its removal", round, k)
				}
				x.remove(k)
				delete(want, k)
				continue
			}
			if !ok {
				e := &entry{key: k}
				x.add(e)
				want[k] = e
			}
		}
		x.remove(instKey{addr: "absent", id: "i-0"}) // a key not there: no change
		cur = x.done()
		cp := make(map[instKey]*entry, len(want))
		for k, e := range want {
			cp[k] = e
		}
		versions = append(versions, version{cur, cp})
		for i, v := range versions {
			checkEntrySet(t, fmt.Sprintf("round %d, version %d", round, i), v.set, v.want)
		}
	}
}

func checkEntrySet(t *testing.T, what string, s *entrySet, want map[instKey]*entry) {
	t.Helper()
	if s.Len() != len(want) {
		t.Fatalf("%s: %d entries; want %d", what, s.Len(), len(want))
	}
	n := 0
	for e := range s.All() {
		n++
		if want[e.key] != e {
			t.Fatalf("%s: yields %v, which it should not", what, e.key)
		}
	}
	if n != len(want) {
		t.Fatalf("%s: yields %d entries; want %d", what, n, len(want))
	}
	for k, e := range want {
		if s.get(k) != e {
			t.Fatalf("%s: %v not found", what, k)
		}
	}
	for _, k := range []instKey{{"10.0.0.1:9200", "i-99"}, {"nowhere", "i-1"}} {
		if s.get(k) != nil {
			t.Fatalf("%s: finds %v, which it does not hold", what, k)
		}
	}
}

// TestServesFollowsEligibility checks Balancer.Serves, which the proxy
// asks which addresses leave service: an address is served while an
// instance at it is eligible in some deployment, whatever its ID, and
// not once every instance at it is in maintenance, of a generation out
// of service, or gone, whether the table is built whole or derived.
func TestServesFollowsEligibility(t *testing.T) {
	inst := func(id, addr, gen string, maint bool) *routes.Instance {
		return &routes.Instance{ID: id, Addr: addr, Zone: "zone-a", Generation: gen, Maintenance: maint}
	}
	dep := func(id string, serving map[string]int, ins ...*routes.Instance) *routes.DeploymentSpec {
		return &routes.DeploymentSpec{ID: id, Kind: "es", Serving: serving, Instances: ins}
	}
	blue := map[string]int{"blue": 1}
	shared := "10.0.0.1:9200"
	base, err := routes.NewTable("example.test", nil, []*routes.DeploymentSpec{
		dep("aaaaaaaa", blue, inst("i-1", shared, "blue", false), inst("i-2", "10.0.0.2:9200", "blue", false)),
		dep("bbbbbbbb", map[string]int{"blue": 1, "green": 0}, inst("i-9", shared, "blue", true), inst("i-3", "10.0.0.3:9200", "green", false)),
	})
	if err != nil {
		t.Fatal(err)
	}
	b := NewBalancer(Config{})
	if b.Serves(shared) {
		t.Fatal("serves an address before any table")
	}
	b.Prepare(base)
	for addr, want := range map[string]bool{shared: true, "10.0.0.2:9200": true, "10.0.0.3:9200": false, "10.9.9.9:1": false} {
		if got := b.Serves(addr); got != want {
			t.Errorf("whole table: Serves(%s) = %v; want %v", addr, got, want)
		}
	}
	// aaaaaaaa leaves: the shared address is left with an instance in
	// maintenance only; green comes into service in bbbbbbbb.
	next, err := base.With(nil, []*routes.DeploymentSpec{
		dep("bbbbbbbb", map[string]int{"blue": 1, "green": 1}, inst("i-9", shared, "blue", true), inst("i-3", "10.0.0.3:9200", "green", false)),
	}, []string{"aaaaaaaa"})
	if err != nil {
		t.Fatal(err)
	}
	if next.ChangeFrom(base) == nil {
		t.Fatal("the next table is not derived")
	}
	b.Prepare(next)
	for addr, want := range map[string]bool{shared: false, "10.0.0.2:9200": false, "10.0.0.3:9200": true} {
		if got := b.Serves(addr); got != want {
			t.Errorf("derived table: Serves(%s) = %v; want %v", addr, got, want)
		}
	}
}

// A balancer given whole tables (no Change: a full message, a change of
// the zones, a routes file reloaded) keeps nothing of a table once two
// others have replaced it: the state of an instance outlives its
// entries, and must not keep them, and their deployments, alive.
func TestWholeTablesDoNotKeepOldDeployments(t *testing.T) {
	spec := func() []*routes.DeploymentSpec {
		return []*routes.DeploymentSpec{{ID: "aaaaaaaa", Kind: "es", Serving: map[string]int{"blue": 1},
			Instances: []*routes.Instance{{ID: "i-1", Addr: "10.0.0.1:9200", Zone: "zone-a", Generation: "blue"}}}}
	}
	b := NewBalancer(Config{})
	var first weak.Pointer[routes.Deployment]
	func() {
		t1, err := routes.NewTable("example.test", nil, spec())
		if err != nil {
			t.Fatal(err)
		}
		first = weak.Make(t1.Lookup([]byte("aaaaaaaa")))
		b.Prepare(t1)
	}()
	for range 3 {
		tn, err := routes.NewTable("example.test", nil, spec())
		if err != nil {
			t.Fatal(err)
		}
		b.Prepare(tn)
	}
	for range 5 {
		runtime.GC()
	}
	if first.Value() != nil {
		t.Fatal("the first table's deployment is still reachable after three whole tables")
	}
	runtime.KeepAlive(b)
}
