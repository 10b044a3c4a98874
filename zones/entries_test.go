package zones

import (
	"fmt"
	"math/rand/v2"
	"testing"
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
				e := &entry{st: &instState{key: k}}
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
		if want[e.st.key] != e {
			t.Fatalf("%s: yields %v, which it should not", what, e.st.key)
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
