package wire

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/switchyard/switchyard/routes"
)

// checkList fails unless l holds exactly want, in ID order, in chunks
// that are sorted, not empty, and no larger than chunkMax.
func checkList(t *testing.T, l *depList, want map[string][]byte) {
	t.Helper()
	if l.len() != len(want) {
		t.Fatalf("len %d; want %d", l.len(), len(want))
	}
	var ids []string
	for i, c := range l.chunks {
		if len(c) == 0 || len(c) > chunkMax {
			t.Fatalf("chunk %d holds %d entries; want 1 to %d", i, len(c), chunkMax)
		}
		for _, e := range c {
			ids = append(ids, e.id)
		}
	}
	if want := slices.Sorted(maps.Keys(want)); !slices.Equal(ids, want) {
		t.Fatalf("IDs %d in order %v...; want %d sorted", len(ids), ids[:min(5, len(ids))], len(want))
	}
	for id, enc := range want {
		if e, ok := l.get(id); !ok || !bytes.Equal(e.enc, enc) {
			t.Fatalf("get(%s) = %q, %v; want %q", id, e.enc, ok, enc)
		}
	}
	if _, ok := l.get("zz-absent"); ok {
		t.Fatal("get of an absent ID found it")
	}
}

// Random batches of sets and removals give the list a map gives, and
// leave the lists they were made from as they were.
func TestDepListWith(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	var l depList
	want := map[string][]byte{}
	type version struct {
		l    depList
		want map[string][]byte
	}
	var old []version
	for round := 0; round < 60; round++ {
		batch := map[string]edit{}
		n := 1 + r.IntN(40)
		if round%10 == 0 {
			n = 700 // past chunkMax in one batch
		}
		for i := 0; i < n; i++ {
			id := fmt.Sprintf("%05d", r.IntN(3000))
			if r.IntN(4) == 0 {
				batch[id] = edit{e: depEntry{id: id}, del: true}
			} else {
				batch[id] = edit{e: depEntry{id: id, enc: []byte(fmt.Sprintf("%s-%d", id, round))}}
			}
		}
		edits := make([]edit, 0, len(batch))
		for _, id := range slices.Sorted(maps.Keys(batch)) {
			edits = append(edits, batch[id])
		}
		old = append(old, version{l, maps.Clone(want)})
		l = l.with(edits)
		for _, ed := range edits {
			if ed.del {
				delete(want, ed.e.id)
			} else {
				want[ed.e.id] = ed.e.enc
			}
		}
		checkList(t, &l, want)
	}
	for _, v := range old {
		checkList(t, &v.l, v.want)
	}

	// Removals a few at a time do not leave a long index of small
	// chunks behind.
	ids := slices.Sorted(maps.Keys(want))
	r.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	for len(ids) > 10 {
		batch := slices.Sorted(slices.Values(ids[:3]))
		ids = ids[3:]
		edits := make([]edit, len(batch))
		for i, id := range batch {
			edits[i] = edit{e: depEntry{id: id}, del: true}
			delete(want, id)
		}
		l = l.with(edits)
		if len(l.chunks) > l.len()/(chunkFill/8)+2 {
			t.Fatalf("%d entries in %d chunks", l.len(), len(l.chunks))
		}
	}
	checkList(t, &l, want)
}

// A snapshot built step by step over a random sequence of changes, each
// from the one before, is the snapshot built from scratch from the same
// table: the same IDs, the same bytes, the same hash, with either scheme;
// and its Change, applied as a delta to the table before, gives it.
func TestNextSnapshotIsFromScratch(t *testing.T) {
	for _, scheme := range []HashScheme{HashSHA256, HashSum} {
		t.Run(scheme.String(), func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(scheme)+1, 99))
			table := map[string]*routes.DeploymentSpec{}
			var prev *Snapshot
			var st *State
			for step := 0; step < 80; step++ {
				changes := map[string]*routes.DeploymentSpec{}
				n := 1 + r.IntN(5)
				switch {
				case step == 0:
					n = 1200 // several chunks
				case step%7 == 0:
					n = 0 // only the staleness changes: the same hash
				}
				for i := 0; i < n; i++ {
					id := fmt.Sprintf("%08x", r.IntN(1600))
					switch r.IntN(5) {
					case 0:
						changes[id] = nil
					case 1:
						if d := table[id]; d != nil {
							changes[id] = d // the same spec: no change
							continue
						}
						fallthrough
					default:
						changes[id] = dep(id, map[string]int{"blue": r.IntN(3)}, fmt.Sprintf("127.0.0.1:%d", r.IntN(4)+1))
					}
				}
				for id, d := range changes {
					if d == nil {
						delete(table, id)
					} else {
						table[id] = d
					}
				}
				zones := map[string]routes.ZoneState{"zone-a": routes.ZoneState(step / 4 % 2)}
				next := NextSnapshot(scheme, prev, uint64(step+1), "example.test", zones, changes)
				scratch := NewHashedSnapshot(scheme, nil, uint64(step+1), "example.test", zones, table)
				if next.Hash != scratch.Hash || next.Len() != scratch.Len() || !bytes.Equal(next.Full(false), scratch.Full(false)) {
					t.Fatalf("step %d: incremental %d deployments, hash %s; from scratch %d, %s", step, next.Len(), next.Hash, scratch.Len(), scratch.Hash)
				}
				if viaMap := NewHashedSnapshot(scheme, prev, uint64(step+1), "example.test", zones, table); viaMap.Hash != next.Hash {
					t.Fatalf("step %d: NewHashedSnapshot from the previous snapshot: hash %s; want %s", step, viaMap.Hash, next.Hash)
				}
				if prev != nil {
					var err error
					b, ok := next.DeltaOver(prev.Version, prev.Hash, []*Change{next.Change()}, false)
					if !ok {
						t.Fatalf("step %d: no delta over the change", step)
					}
					if st, err = Apply(st, decode(t, b)); err != nil {
						t.Fatalf("step %d: the delta of the change: %v", step, err)
					}
				} else {
					st = mustApply(t, next)
				}
				prev = next
			}
		})
	}
}
