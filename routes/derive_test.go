package routes

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

// TestWithMatchesNewTable applies random changes (new, replaced and
// deleted deployments, aliases moving between deployments, zones going
// down and up) to a table with With, and checks each result against the
// table NewTable builds from the same specs: the same deployments in the
// same order with the same computed fields, the same lookups for every
// key either table ever had, and a Change that names exactly what differs
// from the base.
func TestWithMatchesNewTable(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 26))
	id := func() string { return fmt.Sprintf("%016x", rng.IntN(400)) }
	spec := func(id string) *DeploymentSpec {
		gens := map[string]int{"blue": 1 + rng.IntN(3)}
		if rng.IntN(3) == 0 {
			gens["green"] = rng.IntN(2)
		}
		var insts []*Instance
		for i := range 1 + rng.IntN(4) {
			in := inst(fmt.Sprint("i-", i), fmt.Sprint("zone-", rng.IntN(3)), "blue")
			if _, ok := gens["green"]; ok && i%2 == 1 {
				in.Generation = "green"
			}
			in.Maintenance = rng.IntN(8) == 0
			insts = append(insts, in)
		}
		d := &DeploymentSpec{ID: id, Kind: []string{"es", "kb"}[rng.IntN(2)], Serving: gens, Instances: insts}
		for range rng.IntN(3) {
			d.Aliases = append(d.Aliases, fmt.Sprint("al", rng.IntN(300)))
		}
		d.Aliases = slices.Compact(slices.Sorted(slices.Values(d.Aliases)))
		if rng.IntN(5) == 0 {
			d.Allow = []string{"10.0.0.0/8"}
		}
		return d
	}
	cur := map[string]*DeploymentSpec{}
	zones := map[string]ZoneState{}
	// valid adds spec to specs unless one of its keys is taken.
	keysOf := func(d *DeploymentSpec) []string {
		ks := []string{d.ID}
		for _, a := range d.Aliases {
			ks = append(ks, a+"."+d.Kind)
		}
		return ks
	}
	var tb *Table
	for len(cur) < 150 {
		d := spec(id())
		if _, ok := cur[d.ID]; !ok && free(cur, d, keysOf) {
			cur[d.ID] = d
		}
	}
	tb, err := NewTable("example.test", maps.Clone(zones), slices.Collect(maps.Values(cur)))
	if err != nil {
		t.Fatal(err)
	}
	everKey := map[string]bool{}
	for round := range 300 {
		var upsert []*DeploymentSpec
		var deleted []string
		next := maps.Clone(cur)
		for range 1 + rng.IntN(6) {
			switch rng.IntN(3) {
			case 0:
				if i := id(); next[i] != nil && len(next) > 1 {
					deleted = append(deleted, i)
					delete(next, i)
				}
			default:
				d := spec(id())
				rest := maps.Clone(next)
				delete(rest, d.ID)
				if !free(rest, d, keysOf) || slices.ContainsFunc(upsert, func(u *DeploymentSpec) bool { return u.ID == d.ID }) {
					continue
				}
				upsert = append(upsert, d)
				next[d.ID] = d
			}
		}
		nz := maps.Clone(zones)
		if rng.IntN(10) == 0 {
			z := fmt.Sprint("zone-", rng.IntN(3))
			if nz[z] == ZoneDown {
				delete(nz, z)
			} else {
				nz[z] = ZoneDown
			}
		}
		got, err := tb.With(maps.Clone(nz), upsert, deleted)
		if err != nil {
			t.Fatalf("round %d: With: %v", round, err)
		}
		want, err := NewTable("example.test", maps.Clone(nz), slices.Collect(maps.Values(next)))
		if err != nil {
			t.Fatalf("round %d: NewTable: %v", round, err)
		}
		for _, d := range next {
			for _, k := range keysOf(d) {
				everKey[k] = true
			}
		}
		sameTables(t, round, got, want, everKey)
		if ch := got.ChangeFrom(tb); ch != nil {
			checkChange(t, round, tb, got, ch)
		} else if maps.Equal(nz, zones) {
			t.Fatalf("round %d: no Change from the base with the zones unchanged", round)
		}
		if got.ChangeFrom(want) != nil || want.ChangeFrom(tb) != nil {
			t.Fatalf("round %d: a Change from a table it was not derived from", round)
		}
		tb, cur, zones = got, next, nz
	}
}

// free reports whether none of d's keys is used by the deployments of m.
func free(m map[string]*DeploymentSpec, d *DeploymentSpec, keysOf func(*DeploymentSpec) []string) bool {
	used := map[string]bool{}
	for _, o := range m {
		for _, k := range keysOf(o) {
			used[k] = true
		}
	}
	for _, k := range keysOf(d) {
		if used[k] {
			return false
		}
	}
	return true
}

func sameTables(t *testing.T, round int, got, want *Table, keys map[string]bool) {
	t.Helper()
	if got.Len() != want.Len() || got.index.n != want.index.n {
		t.Fatalf("round %d: %d deployments, %d keys; want %d, %d", round, got.Len(), got.index.n, want.Len(), want.index.n)
	}
	for i, d := range got.Deployments() {
		w := want.Deployments()[i]
		if d.ID != w.ID || !reflect.DeepEqual(d.DeploymentSpec, w.DeploymentSpec) ||
			!reflect.DeepEqual(d.Eligible, w.Eligible) || !reflect.DeepEqual(d.Weights, w.Weights) ||
			d.TotalWeight != w.TotalWeight || !reflect.DeepEqual(d.AllowNets, w.AllowNets) {
			t.Fatalf("round %d: deployment %d is %+v; want %+v", round, i, d, w)
		}
	}
	for k := range keys {
		g, w := got.Lookup([]byte(k)), want.Lookup([]byte(k))
		if (g == nil) != (w == nil) || g != nil && g.ID != w.ID {
			t.Fatalf("round %d: Lookup(%q) = %v; want %v", round, k, g, w)
		}
	}
}

// checkChange: Removed are the base's deployments that next does not
// serve (same pointer), Added next's that the base does not.
func checkChange(t *testing.T, round int, base, next *Table, ch *Change) {
	t.Helper()
	in := func(tb *Table) map[*Deployment]bool {
		m := map[*Deployment]bool{}
		for _, d := range tb.Deployments() {
			m[d] = true
		}
		return m
	}
	b, n := in(base), in(next)
	var removed, added []*Deployment
	for _, d := range base.Deployments() {
		if !n[d] {
			removed = append(removed, d)
		}
	}
	for _, d := range next.Deployments() {
		if !b[d] {
			added = append(added, d)
		}
	}
	if !slices.Equal(removed, ch.Removed) || !slices.Equal(added, ch.Added) {
		t.Fatalf("round %d: Change removes %d and adds %d; the tables differ by %d and %d", round, len(ch.Removed), len(ch.Added), len(removed), len(added))
	}
}

// TestWithRefuses: a change that would use a key twice, or holds an
// invalid spec, is refused whole and the base table is unchanged.
func TestWithRefuses(t *testing.T) {
	a := dep("7f3a9c2e51d04b8e", map[string]int{"blue": 1}, inst("i-1", "z", "blue"))
	b := dep("8e4b0d15e2c9a3f7", map[string]int{"blue": 1}, inst("i-1", "z", "blue"))
	tb, err := NewTable("example.test", nil, []*DeploymentSpec{a, b})
	if err != nil {
		t.Fatal(err)
	}
	stolen := *b
	stolen.Aliases = []string{a.Aliases[0]}
	bad := *b
	bad.Kind = "NOT A KIND"
	newA := *a
	newA.Aliases = []string{"moved"}
	takesMoved := *b
	takesMoved.Aliases = []string{"moved"}
	for _, tc := range []struct {
		name    string
		upsert  []*DeploymentSpec
		deleted []string
	}{
		{"alias of another", []*DeploymentSpec{&stolen}, nil},
		{"invalid spec", []*DeploymentSpec{&bad}, nil},
		{"same ID twice", []*DeploymentSpec{&newA, &newA}, nil},
		{"same alias in two new", []*DeploymentSpec{&newA, &takesMoved}, nil},
	} {
		if _, err := tb.With(nil, tc.upsert, tc.deleted); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v; want ErrInvalid", tc.name, err)
		}
	}
	// Moving an alias to another deployment in one change is fine: the
	// deployment that had it is replaced in the same change.
	freed := *a
	freed.Aliases = nil
	if _, err := tb.With(nil, []*DeploymentSpec{&freed, &stolen}, nil); err != nil {
		t.Errorf("alias moved within one change: %v", err)
	}
	if _, err := tb.With(nil, nil, []string{a.ID, b.ID}); !errors.Is(err, ErrEmptyTable) {
		t.Errorf("deleting every deployment: %v; want ErrEmptyTable", err)
	}
	if tb.Len() != 2 || tb.Lookup([]byte(a.Aliases[0]+".es")) == nil || tb.Lookup([]byte("moved.es")) != nil {
		t.Errorf("the base table changed")
	}
}

// TestWithChunks changes a table of a few thousand deployments many times,
// with additions crowded into one range of IDs (so that chunks grow past
// chunkMax and are cut) and deletions that empty others, and checks the
// order, Len, All and every page of After against the IDs kept aside.
func TestWithChunks(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 9))
	spec := func(id string) *DeploymentSpec {
		return &DeploymentSpec{ID: id, Kind: "es", Serving: map[string]int{"blue": 1}, Instances: []*Instance{inst("i-1", "z", "blue")}}
	}
	ids := map[string]bool{}
	var specs []*DeploymentSpec
	for i := range 3000 {
		id := fmt.Sprintf("%08x", i*1000)
		ids[id] = true
		specs = append(specs, spec(id))
	}
	tb, err := NewTable("example.test", nil, specs)
	if err != nil {
		t.Fatal(err)
	}
	for round := range 200 {
		var upsert []*DeploymentSpec
		var deleted []string
		for range rng.IntN(40) {
			// Crowded: most new IDs fall between two old ones.
			id := fmt.Sprintf("%08x", 1_000_000+rng.IntN(1000))
			if rng.IntN(4) == 0 {
				id = fmt.Sprintf("%08x", rng.IntN(3_000_000))
			}
			if !ids[id] && !slices.ContainsFunc(upsert, func(d *DeploymentSpec) bool { return d.ID == id }) {
				upsert = append(upsert, spec(id))
				ids[id] = true
			}
		}
		for id := range ids {
			if len(deleted) >= rng.IntN(30) || len(ids)-len(deleted) < 2 {
				break
			}
			if rng.IntN(2) == 0 && !slices.ContainsFunc(upsert, func(d *DeploymentSpec) bool { return d.ID == id }) {
				deleted = append(deleted, id)
			}
		}
		for _, id := range deleted {
			delete(ids, id)
		}
		if tb, err = tb.With(nil, upsert, deleted); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		want := slices.Sorted(maps.Keys(ids))
		var got []string
		for d := range tb.All() {
			got = append(got, d.ID)
		}
		if tb.Len() != len(want) || !slices.Equal(got, want) {
			t.Fatalf("round %d: %d deployments in order %v...; want %d", round, tb.Len(), got[:min(5, len(got))], len(want))
		}
		for _, c := range tb.list.chunks {
			if len(c) == 0 || len(c) > chunkMax {
				t.Fatalf("round %d: a chunk of %d deployments", round, len(c))
			}
		}
		if round%20 == 0 {
			if flat := tb.Deployments(); len(flat) != len(want) || flat[0].ID != want[0] || flat[len(flat)-1].ID != want[len(want)-1] {
				t.Fatalf("round %d: Deployments differs from All", round)
			}
			limit := 1 + rng.IntN(700)
			after, n := "", 0
			for {
				page, more := tb.After(after, limit)
				for i, d := range page {
					if d.ID != want[n+i] {
						t.Fatalf("round %d: page after %q has %s at %d; want %s", round, after, d.ID, i, want[n+i])
					}
				}
				n += len(page)
				if !more {
					break
				}
				if len(page) != limit {
					t.Fatalf("round %d: a page of %d before the last; want %d", round, len(page), limit)
				}
				after = page[len(page)-1].ID
			}
			if n != len(want) {
				t.Fatalf("round %d: the pages hold %d deployments; want %d", round, n, len(want))
			}
			if page, more := tb.After(want[len(want)-1], 5); len(page) != 0 || more {
				t.Fatalf("round %d: a page after the last ID", round)
			}
		}
	}
}

// TestTablesTakeDeploymentsOnce builds tables of deployments given whole
// (NewTableOf, WithOf): the first table takes each one as its own, and
// every later table, of other zones' states or of the same change again,
// copies the spec, so that what one table computed is never changed by
// another.
func TestTablesTakeDeploymentsOnce(t *testing.T) {
	fresh := func(id, alias string) *Deployment {
		d := new(Deployment)
		d.DeploymentSpec = DeploymentSpec{ID: id, Kind: "es", Aliases: []string{alias}, Serving: map[string]int{"blue": 1},
			Instances: []*Instance{
				{ID: "i-1", Addr: "10.0.0.1:9200", Zone: "zone-a", Generation: "blue"},
				{ID: "i-2", Addr: "10.0.0.2:9200", Zone: "zone-b", Generation: "blue"}}}
		return d
	}
	a, b := fresh("aaaaaaaa", "one"), fresh("bbbbbbbb", "two")
	up, err := NewTableOf("example.test", nil, []*Deployment{a, b})
	if err != nil {
		t.Fatal(err)
	}
	if up.Lookup([]byte("aaaaaaaa")) != a || up.Lookup([]byte("two.es")) != b {
		t.Fatal("the first table does not hold the deployments it was given")
	}
	down, err := NewTableOf("example.test", map[string]ZoneState{"zone-a": ZoneDown}, []*Deployment{a, b})
	if err != nil {
		t.Fatal(err)
	}
	if d := down.Lookup([]byte("aaaaaaaa")); d == a || len(d.Eligible) != 1 {
		t.Fatalf("the second table shares the first one's deployment, or did not compute its own")
	}
	if len(a.Eligible) != 2 {
		t.Fatalf("the first table's deployment has %d eligible instances after the second was built; want 2", len(a.Eligible))
	}

	c := fresh("aaaaaaaa", "one-again")
	next, err := up.WithOf(nil, []*Deployment{c}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if next.Lookup([]byte("one-again.es")) != c {
		t.Fatal("a derived table does not hold the deployment it was given")
	}
	again, err := up.WithOf(map[string]ZoneState{"zone-b": ZoneDown}, []*Deployment{c}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := again.Lookup([]byte("aaaaaaaa")); d == c || len(d.Eligible) != 1 || d.Eligible[0].ID != "i-1" {
		t.Fatal("a table rebuilt for its zones shares a deployment another table took, or computed it wrong")
	}
	if d := again.Lookup([]byte("bbbbbbbb")); d == b {
		t.Fatal("a table rebuilt for its zones shares the base table's deployment")
	}
	if len(c.Eligible) != 2 || len(b.Eligible) != 2 {
		t.Fatal("a table rebuilt for its zones changed another table's deployments")
	}
}

// A deployment that a table holds, whether that table took it or copied
// it from a spec, is never taken by another table: given to NewTableOf or
// WithOf, it is copied, and what its own table computed stays.
func TestTablesNeverTakeAHeldDeployment(t *testing.T) {
	spec := &DeploymentSpec{ID: "aaaaaaaa", Kind: "es", Serving: map[string]int{"blue": 1},
		Instances: []*Instance{
			{ID: "i-1", Addr: "10.0.0.1:9200", Zone: "zone-a", Generation: "blue"},
			{ID: "i-2", Addr: "10.0.0.2:9200", Zone: "zone-b", Generation: "blue"}}}
	held, err := NewTable("example.test", nil, []*DeploymentSpec{spec})
	if err != nil {
		t.Fatal(err)
	}
	d := held.Lookup([]byte("aaaaaaaa"))
	down := map[string]ZoneState{"zone-a": ZoneDown}
	other, err := NewTableOf("example.test", down, held.Deployments())
	if err != nil {
		t.Fatal(err)
	}
	derived, err := held.WithOf(down, held.Deployments(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range []*Table{other, derived} {
		if got := tb.Lookup([]byte("aaaaaaaa")); got == d || len(got.Eligible) != 1 {
			t.Fatal("a table took a deployment another table holds, or did not compute its own")
		}
	}
	if len(d.Eligible) != 2 {
		t.Fatalf("the first table's deployment has %d eligible instances; want 2", len(d.Eligible))
	}
}
