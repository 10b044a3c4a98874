package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/routes"
)

// randomTables is a sequence of tables, each from the one before as a
// store watcher builds them: unchanged deployments shared, some rewritten
// with the same content, some changed, added and removed.
func randomTables(seed uint64, n int) []map[string]*routes.DeploymentSpec {
	r := rand.New(rand.NewPCG(seed, seed+1))
	deps := map[string]*routes.DeploymentSpec{}
	for i := 0; i < 20; i++ {
		d := dep(fmt.Sprintf("%08x", i), map[string]int{"blue": 1}, fmt.Sprintf("127.0.0.1:%d", i))
		deps[d.ID] = d
	}
	out := []map[string]*routes.DeploymentSpec{deps}
	for len(out) < n {
		next := make(map[string]*routes.DeploymentSpec, len(deps)+2)
		for id, d := range deps {
			next[id] = d
		}
		for k := r.IntN(4); k >= 0; k-- {
			id := fmt.Sprintf("%08x", r.IntN(26))
			switch r.IntN(4) {
			case 0:
				delete(next, id)
			case 1:
				if d, ok := next[id]; ok {
					c := *d
					next[id] = &c
				}
			default:
				next[id] = dep(id, map[string]int{"blue": 1}, fmt.Sprintf("127.0.0.1:%d", r.IntN(3)))
			}
		}
		if len(next) > 0 {
			deps = next
			out = append(out, deps)
		}
	}
	return out
}

// With HashSum each table's hash, kept up by adding and subtracting the
// deployments that changed, is the hash of the table summed from scratch;
// a receiver that applies each delta in turn agrees with it, and also one
// that started from a full table hashed the old way.
func TestSumHashIsIncremental(t *testing.T) {
	tables := randomTables(5, 40)
	zones := map[string]routes.ZoneState{"zone-b": routes.ZoneDown}
	var snaps []*Snapshot
	for i, deps := range tables {
		var prev *Snapshot
		if i > 0 {
			prev = snaps[i-1]
		}
		s := NewHashedSnapshot(HashSum, prev, uint64(i+1), "example.test", zones, deps)
		if scratch := NewHashedSnapshot(HashSum, nil, uint64(i+1), "example.test", zones, deps); s.Hash != scratch.Hash {
			t.Fatalf("table %d: incremental hash %s; from scratch %s", i+1, s.Hash, scratch.Hash)
		}
		if !strings.HasPrefix(s.Hash, "sum:") {
			t.Fatalf("table %d: hash %s; want the sum: form", i+1, s.Hash)
		}
		snaps = append(snaps, s)
	}
	// Two tables hash the same when, and only when, their content is the
	// same (the SHA-256 over the whole table says).
	for i := range snaps {
		for j := 0; j < i; j++ {
			same := NewSnapshot(nil, 1, "example.test", zones, tables[i]).Hash == NewSnapshot(nil, 1, "example.test", zones, tables[j]).Hash
			if (snaps[i].Hash == snaps[j].Hash) != same {
				t.Errorf("tables %d and %d: same sum hash %v; same content %v", j+1, i+1, snaps[i].Hash == snaps[j].Hash, same)
			}
		}
	}

	legacyStart := mustApply(t, NewSnapshot(nil, 1, "example.test", zones, tables[0]))
	for _, start := range []*State{mustApply(t, snaps[0]), legacyStart} {
		st := start
		for j := 1; j < len(snaps); j++ {
			var err error
			base := snaps[j-1]
			if j == 1 {
				b := *base
				b.Version, b.Hash = st.Version, st.Hash
				base = &b
			}
			if st, err = Apply(st, decode(t, snaps[j].Delta(base, false))); err != nil {
				t.Fatalf("delta to %d: %v", snaps[j].Version, err)
			}
			if st.Hash != snaps[j].Hash {
				t.Fatalf("after the delta to %d: hash %s; want %s", snaps[j].Version, st.Hash, snaps[j].Hash)
			}
		}
	}
}

// A sum-hashed delta that does not give the route server's table is
// refused, like a SHA-256-hashed one: a deployment altered on the way, or
// one left out.
func TestSumHashCatchesDivergence(t *testing.T) {
	s1 := NewHashedSnapshot(HashSum, nil, 1, "example.test", nil, randomTables(9, 1)[0])
	var good *Message
	for _, deps := range randomTables(9, 20)[1:] {
		s2 := NewHashedSnapshot(HashSum, s1, 2, "example.test", nil, deps)
		if m := decode(t, s2.Delta(s1, false)); len(m.Deployments) > 0 {
			good = m
			break
		}
	}
	if good == nil {
		t.Fatal("no delta with deployments in the sequence")
	}
	st := mustApply(t, s1)

	altered := *good
	altered.Deployments = append([]json.RawMessage(nil), good.Deployments...)
	altered.Deployments[0] = json.RawMessage(strings.Replace(string(altered.Deployments[0]), "127.0.0.1", "127.0.0.9", 1))
	left := *good
	left.Deployments = good.Deployments[1:]
	for name, m := range map[string]*Message{"altered": &altered, "left out": &left} {
		if _, err := Apply(st, m); !errors.Is(err, ErrHashMismatch) {
			t.Errorf("%s deployment: %v; want ErrHashMismatch", name, err)
		}
	}
	if _, err := Apply(st, good); err != nil {
		t.Errorf("the delta itself: %v", err)
	}
}
