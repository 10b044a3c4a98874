package wire

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/switchyard/switchyard/routes"
)

// DeltaOver, composed from the changes a route server keeps, gives the
// same message, byte for byte, as Delta from the base table it no longer
// holds: for every base and target of a random sequence of tables, each
// built from the one before as a store watcher builds them (unchanged
// deployments shared, some rewritten with the same content, some changed,
// added and removed).
func TestDeltaOverIsDelta(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	deps := map[string]*routes.DeploymentSpec{}
	for i := 0; i < 20; i++ {
		d := dep(fmt.Sprintf("%08x", i), map[string]int{"blue": 1}, fmt.Sprintf("127.0.0.1:%d", i))
		deps[d.ID] = d
	}
	snaps := []*Snapshot{NewSnapshot(nil, 1, "example.test", nil, deps)}
	for v := 2; v <= 40; v++ {
		next := make(map[string]*routes.DeploymentSpec, len(deps)+2)
		for id, d := range deps {
			next[id] = d
		}
		for k := r.IntN(4); k >= 0; k-- {
			id := fmt.Sprintf("%08x", r.IntN(26))
			switch r.IntN(4) {
			case 0: // removed
				delete(next, id)
			case 1: // rewritten, same content: not a change
				if d, ok := next[id]; ok {
					c := *d
					next[id] = &c
				}
			default: // added or changed
				next[id] = dep(id, map[string]int{"blue": 1}, fmt.Sprintf("127.0.0.1:%d", r.IntN(3)))
			}
		}
		if len(next) == 0 {
			continue
		}
		deps = next
		snaps = append(snaps, NewSnapshot(snaps[len(snaps)-1], uint64(v), "example.test", nil, deps))
	}
	// A receiver that applies each delta in turn (keeping the sorted IDs
	// of its state across deltas that add or remove none) holds the same
	// table, and writes the same full table, as one built from scratch.
	chain := mustApply(t, snaps[0])
	for j := 1; j < len(snaps); j++ {
		var err error
		if chain, err = Apply(chain, decode(t, snaps[j].Delta(snaps[j-1], false))); err != nil {
			t.Fatalf("delta %d → %d in turn: %v", snaps[j-1].Version, snaps[j].Version, err)
		}
		if got, want := chain.Full(false), snaps[j].Full(false); string(got) != string(want) {
			t.Fatalf("after the deltas up to %d, the full table differs from the snapshot's", snaps[j].Version)
		}
	}
	for j := 1; j < len(snaps); j++ {
		for i := 0; i < j; i++ {
			var changes []*Change
			for _, s := range snaps[i+1 : j+1] {
				changes = append(changes, s.Change())
			}
			got, ok := snaps[j].DeltaOver(snaps[i].Version, snaps[i].Hash, changes, i%2 == 0)
			if want := snaps[j].Delta(snaps[i], i%2 == 0); !ok || string(got) != string(want) {
				t.Fatalf("delta %d → %d over the changes (ok %v):\n%s\nwant:\n%s", snaps[i].Version, snaps[j].Version, ok, got, want)
			}
			st, err := Apply(mustApply(t, snaps[i]), decode(t, got))
			if err != nil || st.Hash != snaps[j].Hash {
				t.Fatalf("delta %d → %d does not apply: %v", snaps[i].Version, snaps[j].Version, err)
			}
		}
	}
}

// A change lists what differs only: a deployment rewritten with the same
// content is not in it.
func TestChangeListsWhatDiffers(t *testing.T) {
	a := dep("aaaaaaaa", map[string]int{"blue": 1}, "127.0.0.1:1")
	b := dep("bbbbbbbb", map[string]int{"blue": 1}, "127.0.0.1:2")
	c := dep("cccccccc", map[string]int{"blue": 1}, "127.0.0.1:3")
	s1 := NewSnapshot(nil, 1, "example.test", nil, map[string]*routes.DeploymentSpec{a.ID: a, b.ID: b, c.ID: c})
	if s1.Change() != nil {
		t.Errorf("a snapshot built without a predecessor has a change: %+v", s1.Change())
	}
	a2 := *a // same content, new spec
	b2 := dep("bbbbbbbb", map[string]int{"blue": 1}, "127.0.0.1:9")
	d := dep("dddddddd", map[string]int{"blue": 1}, "127.0.0.1:4")
	s2 := NewSnapshot(s1, 2, "example.test", nil, map[string]*routes.DeploymentSpec{a.ID: &a2, b.ID: b2, d.ID: d})
	ch := s2.Change()
	if fmt.Sprint(ch.IDs) != "[bbbbbbbb cccccccc dddddddd]" {
		t.Fatalf("change IDs = %v; want [bbbbbbbb cccccccc dddddddd]", ch.IDs)
	}
	for i, want := range []struct{ before, after bool }{{true, true}, {true, false}, {false, true}} {
		if (ch.Before[i] != nil) != want.before || (ch.After[i] != nil) != want.after {
			t.Errorf("%s: before %q after %q; want present %v, %v", ch.IDs[i], ch.Before[i], ch.After[i], want.before, want.after)
		}
	}
	// A chain with a missing change is not composed.
	if _, ok := s2.DeltaOver(0, "", []*Change{nil}, false); ok {
		t.Error("DeltaOver composed over a nil change")
	}
}

func mustApply(t *testing.T, s *Snapshot) *State {
	t.Helper()
	st, err := Apply(nil, decode(t, s.Full(false)))
	if err != nil {
		t.Fatal(err)
	}
	return st
}
