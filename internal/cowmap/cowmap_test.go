package cowmap

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
)

// TestVersionsAgainstMaps applies random edits to a chain of versions and
// checks each against a plain map, and that older versions never change.
func TestVersionsAgainstMaps(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	type version struct {
		m    *Map[string, int]
		want map[string]int
	}
	var hist []version
	m, want := New[string, int](String), map[string]int{}
	for round := 0; round < 200; round++ {
		e := m.Edit()
		for range r.IntN(50) {
			k := fmt.Sprint(r.IntN(2000))
			switch r.IntN(3) {
			case 0:
				e.Delete(k)
				delete(want, k)
			case 1:
				v := r.Int()
				e.Set(k, v)
				want[k] = v
			default:
				v := r.Int()
				old, had := e.Swap(k, v)
				if w, ok := want[k]; had != ok || old != w {
					t.Fatalf("round %d: Swap(%s) gives %d, %v; want %d, %v", round, k, old, had, w, ok)
				}
				want[k] = v
			}
		}
		m = e.Done()
		hist = append(hist, version{m, maps.Clone(want)})
	}
	for i, h := range hist {
		if h.m.Len() != len(h.want) {
			t.Fatalf("version %d: Len %d; want %d", i, h.m.Len(), len(h.want))
		}
		got := maps.Collect(h.m.All())
		if !maps.Equal(got, h.want) {
			t.Fatalf("version %d: holds %d keys, differs from the map of %d", i, len(got), len(h.want))
		}
		for k, v := range h.want {
			if g, ok := h.m.Get(k); !ok || g != v {
				t.Fatalf("version %d: Get(%q) = %d, %v; want %d", i, k, g, ok, v)
			}
		}
	}
}

// TestEditCopiesOnlyTouchedShards: an edit shares every shard it did not
// write with the version it came from.
func TestEditCopiesOnlyTouchedShards(t *testing.T) {
	e := New[*int, int](Pointer[int]).Edit()
	keys := make([]*int, 10000)
	for i := range keys {
		keys[i] = new(int)
		e.Set(keys[i], i)
	}
	a := e.Done()
	e = a.Edit()
	e.Set(keys[7], -1)
	b := e.Done()
	shared := 0
	for i := range a.shards {
		if a.shards[i] != nil && fmt.Sprintf("%p", a.shards[i]) == fmt.Sprintf("%p", b.shards[i]) {
			shared++
		}
	}
	if used := countUsed(a); shared != used-1 {
		t.Errorf("%d of %d shards shared; want all but the one written", shared, used)
	}
	if v, _ := a.Get(keys[7]); v != 7 {
		t.Errorf("old version sees %d; want 7", v)
	}
	if v, _ := b.Get(keys[7]); v != -1 {
		t.Errorf("new version sees %d; want -1", v)
	}
}

func countUsed[K comparable, V any](m *Map[K, V]) int {
	n := 0
	for _, s := range m.shards {
		if s != nil {
			n++
		}
	}
	return n
}

func TestGetDoesNotAllocate(t *testing.T) {
	e := New[string, int](String).Edit()
	k := "a-longer-key-than-one-byte"
	e.Set(k, 1)
	m := e.Done()
	p := new(int)
	pe := New[*int, int](Pointer[int]).Edit()
	pe.Set(p, 1)
	pm := pe.Done()
	if n := testing.AllocsPerRun(100, func() { m.Get(k); pm.Get(p) }); n != 0 {
		t.Errorf("Get allocates %v times; want 0", n)
	}
}

// A map made with Build is the same as one made with Edit, and versions
// edited from it do not change it.
func TestBuild(t *testing.T) {
	e := Build[string, int](String, 5000)
	for i := range 5000 {
		e.Set(fmt.Sprint(i), i)
	}
	e.Delete("7")
	m := e.Done()
	if m.Len() != 4999 {
		t.Fatalf("Len %d; want 4999", m.Len())
	}
	next := m.Edit()
	next.Set("7", 7)
	next.Delete("8")
	n := next.Done()
	if _, ok := m.Get("7"); ok {
		t.Error("the built version sees a key set in its successor")
	}
	if v, ok := m.Get("8"); !ok || v != 8 {
		t.Error("the built version lost a key deleted in its successor")
	}
	if _, ok := n.Get("8"); ok || n.Len() != 4999 {
		t.Errorf("successor: Len %d, has 8 %v", n.Len(), ok)
	}
}
