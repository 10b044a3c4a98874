package wire

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/switchyard/switchyard/routes"
)

func rawOf(s *State) map[string][]byte {
	m := map[string][]byte{}
	for id, enc := range s.All() {
		m[id] = enc
	}
	return m
}

func depsOf(s *State) map[string]*routes.DeploymentSpec {
	m := map[string]*routes.DeploymentSpec{}
	for _, id := range s.IDs() {
		d, _, _ := s.Deployment(id)
		m[id] = d
	}
	return m
}

// TestDeltasMatchFullTables applies a random sequence of deltas, with
// both table hashes, and checks each state and the table derived from the
// previous one (State.Table) against what a full table of the same
// content gives: the same hash, the same IDs in order, the same
// encodings, and a table with the same deployments and lookups as one
// built whole. The derived tables must be derived, not rebuilt.
func TestDeltasMatchFullTables(t *testing.T) {
	for _, scheme := range []HashScheme{HashSHA256, HashSum} {
		t.Run(scheme.String(), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(26, uint64(scheme)))
			spec := func(i int) *routes.DeploymentSpec {
				d := dep(fmt.Sprintf("%08x", i), map[string]int{"blue": 1}, fmt.Sprintf("127.0.0.1:%d", 1000+rng.IntN(5000)))
				d.Aliases = []string{fmt.Sprint("a", i)}
				if rng.IntN(4) == 0 {
					d.Instances[0].Maintenance = true
				}
				return d
			}
			zones := map[string]routes.ZoneState{"zone-a": routes.ZoneUp}
			deps := map[string]*routes.DeploymentSpec{}
			for i := range 50 {
				deps[fmt.Sprintf("%08x", i)] = spec(i)
			}
			snap := NewHashedSnapshot(scheme, nil, 1, "example.test", zones, deps)
			st := mustApply(t, snap)
			if _, err := st.Table(); err != nil {
				t.Fatal(err)
			}
			derivedTables := 0
			for round := range 200 {
				prevSnap, prevSt := snap, st
				deps = maps.Clone(deps)
				for range 1 + rng.IntN(4) {
					i := rng.IntN(70)
					id := fmt.Sprintf("%08x", i)
					if _, ok := deps[id]; ok && rng.IntN(3) == 0 && len(deps) > 1 {
						delete(deps, id)
					} else {
						deps[id] = spec(i)
					}
				}
				if rng.IntN(15) == 0 {
					zones = maps.Clone(zones)
					if zones["zone-b"] == routes.ZoneDown {
						zones["zone-b"] = routes.ZoneUp
					} else {
						zones["zone-b"] = routes.ZoneDown
					}
				}
				snap = NewHashedSnapshot(scheme, prevSnap, uint64(round+2), "example.test", zones, deps)
				var err error
				if st, err = Apply(prevSt, decode(t, snap.Delta(prevSnap, false))); err != nil {
					t.Fatalf("round %d: delta: %v", round, err)
				}
				full, err := Apply(nil, decode(t, snap.Full(false)))
				if err != nil {
					t.Fatalf("round %d: full: %v", round, err)
				}
				if st.Hash != full.Hash || !slices.Equal(st.IDs(), full.IDs()) || !maps.EqualFunc(rawOf(st), rawOf(full), slices.Equal) ||
					string(st.Full(false)) != string(full.Full(false)) {
					t.Fatalf("round %d: the state from the delta differs from the full table's", round)
				}
				got, err := st.Table()
				if err != nil {
					t.Fatalf("round %d: table: %v", round, err)
				}
				want, err := full.Table()
				if err != nil {
					t.Fatal(err)
				}
				base, _ := prevSt.Table()
				if got.ChangeFrom(base) != nil {
					derivedTables++
				}
				if got.Version != want.Version || got.Len() != want.Len() {
					t.Fatalf("round %d: table version %d with %d deployments; want %d, %d", round, got.Version, got.Len(), want.Version, want.Len())
				}
				for i, d := range got.Deployments() {
					w := want.Deployments()[i]
					if !reflect.DeepEqual(d.DeploymentSpec, w.DeploymentSpec) || !reflect.DeepEqual(d.Eligible, w.Eligible) || d.TotalWeight != w.TotalWeight {
						t.Fatalf("round %d: deployment %s differs from the whole table's", round, d.ID)
					}
					for _, k := range []string{d.ID, d.Aliases[0] + "." + d.Kind} {
						if got.Lookup([]byte(k)) != d {
							t.Fatalf("round %d: Lookup(%q) does not find %s", round, k, d.ID)
						}
					}
				}
				for i := range 70 {
					id := fmt.Sprintf("%08x", i)
					if (got.Lookup([]byte(id)) == nil) != (want.Lookup([]byte(id)) == nil) {
						t.Fatalf("round %d: Lookup(%s) differs from the whole table's", round, id)
					}
				}
			}
			if derivedTables < 150 {
				t.Errorf("%d of 200 tables derived from the previous one; want all but those of a zone change", derivedTables)
			}
		})
	}
}

// inMarshalForm says true exactly when json.Marshal would write the JSON
// unchanged, for JSON with spaces, escapes and the characters it escapes
// in and out of strings.
func TestInMarshalForm(t *testing.T) {
	parts := []string{`{"a":"b"}`, `{ "a": "b" }`, `{"a":"<b>"}`, `{"a":"\"x\" y"}`, "{\"a\":\"\u2028\"}", "{\"a\":\"\u2029\"}",
		`{"a":"\\"}`, `{"a":"tab\there"}`, `{"a":[1, 2]}`, `{"a":"&amp;"}`, "{\"a\":\n1}", `{"a":"\u003c"}`, `{"a":"é"}`, "{\"a\":\"\u2027\"}"}
	rng := rand.New(rand.NewPCG(1, 1))
	for range 2000 {
		var b []byte
		b = append(b, '[')
		for i := range 1 + rng.IntN(4) {
			if i > 0 {
				b = append(b, ","[:1]...)
				if rng.IntN(5) == 0 {
					b = append(b, ' ')
				}
			}
			b = append(b, parts[rng.IntN(len(parts))]...)
		}
		b = append(b, ']')
		want, err := json.Marshal(json.RawMessage(b))
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if got := inMarshalForm(b); got != (string(want) == string(b)) {
			t.Fatalf("inMarshalForm(%s) = %v; json.Marshal writes %s", b, got, want)
		}
	}
}
