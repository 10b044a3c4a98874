package routes

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestLookupProperty builds tables of random deployments, of sizes that
// make the index grow from its first slots, and checks that Lookup finds
// every ID and alias key, and nothing else: not random keys, not a key
// with one byte changed, cut short, made longer or in upper case (keys are
// lowercase before Lookup; the proxy lowers them), as the map it replaced.
func TestLookupProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(26, 1))
	label := func(n int) string {
		const chars = "abcdefghijklmnopqrstuvwxyz0123456789-"
		b := make([]byte, n)
		for i := range b {
			b[i] = chars[rng.IntN(26+10)]
		}
		return string(b)
	}
	for _, n := range []int{1, 2, 7, 100, 3000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			want := map[string]*DeploymentSpec{}
			var deps []*DeploymentSpec
			for len(deps) < n {
				id := fmt.Sprintf("%0*x", MaxIDLen, rng.Uint64())[:MinIDLen+rng.IntN(MaxIDLen-MinIDLen+1)]
				d := dep(id, map[string]int{"blue": 1}, inst("i-1", "z", "blue"))
				d.Kind = []string{"es", "kb", "apm", label(63)}[rng.IntN(4)]
				for range rng.IntN(4) {
					d.Aliases = append(d.Aliases, label(1+rng.IntN(63)))
				}
				keys := []string{d.ID}
				for _, a := range d.Aliases {
					keys = append(keys, a+"."+d.Kind)
				}
				fresh, seen := true, map[string]bool{}
				for _, k := range keys {
					_, used := want[k]
					fresh = fresh && !used && !seen[k]
					seen[k] = true
				}
				if !fresh {
					continue
				}
				for _, k := range keys {
					want[k] = d
				}
				deps = append(deps, d)
			}
			tb, err := NewTable("example.test", nil, deps)
			if err != nil {
				t.Fatal(err)
			}
			for k, d := range want {
				if got := tb.Lookup([]byte(k)); got == nil || got.ID != d.ID {
					t.Fatalf("Lookup(%q) = %v; want deployment %s", k, got, d.ID)
				}
			}
			miss := func(k []byte) {
				t.Helper()
				if _, ok := want[string(k)]; ok {
					return
				}
				if got := tb.Lookup(k); got != nil {
					t.Fatalf("Lookup(%q) = deployment %s; want nil", k, got.ID)
				}
			}
			for k := range want {
				b := []byte(k)
				miss(b[:len(b)-1])
				miss(append(bytes.Clone(b), 'a'))
				miss(bytes.ToUpper(b))
				c := bytes.Clone(b)
				c[rng.IntN(len(c))] ^= 1
				miss(c)
			}
			for range 10 * n {
				miss([]byte(fmt.Sprintf("%x", rng.Uint64())))
				miss([]byte(label(1+rng.IntN(63)) + ".es"))
			}
			miss(nil)
			miss([]byte(strings.Repeat("a", maxKeyLen+1)))
		})
	}
}

// A Table that NewTable did not build, and a nil one, find nothing.
func TestLookupEmptyTable(t *testing.T) {
	for _, tb := range []*Table{nil, {}} {
		if got := tb.Lookup([]byte("7f3a9c2e51d04b8e")); got != nil {
			t.Errorf("Lookup on %#v = %v; want nil", tb, got)
		}
	}
}

// The index is at most half full, whatever size the Builder was told.
func TestIndexLoad(t *testing.T) {
	for _, hint := range []int{0, 1, 10_000} {
		b, err := NewBuilder("example.test", nil, hint)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 1000 {
			d := dep(fmt.Sprintf("%016x", i), map[string]int{"blue": 1}, inst("i-1", "z", "blue"))
			d.Aliases = []string{fmt.Sprint("a", i)}
			if err := b.Add(d); err != nil {
				t.Fatal(err)
			}
		}
		tb, err := b.Table()
		if err != nil {
			t.Fatal(err)
		}
		x := &tb.index
		keys := 0
		for i := range indexShards {
			sh := x.shard(i)
			if len(sh.slots) == 0 {
				continue
			}
			keys += sh.n
			if 2*sh.n > len(sh.slots) {
				t.Errorf("hint %d: shard %d has %d keys in %d slots; want at most half full", hint, i, sh.n, len(sh.slots))
			}
		}
		if x.n != 2000 || keys != 2000 {
			t.Errorf("hint %d: %d keys (%d in the shards); want 2000", hint, x.n, keys)
		}
	}
}

// NewTable counts the keys of its specs to size the index before it
// validates them: a nil spec is still refused, not a panic.
func TestNewTableNilSpec(t *testing.T) {
	d := dep("7f3a9c2e51d04b8e", map[string]int{"blue": 1}, inst("i-1", "z", "blue"))
	_, err := NewTable("example.test", nil, []*DeploymentSpec{d, nil})
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("NewTable with a nil spec: %v; want ErrInvalid", err)
	}
}

// A table derived from another with one deployment changed copies only
// the blocks of shard headers and the shards that its keys hash to: the
// others are the same memory.
func TestDeriveCopiesTouchedBlocksOnly(t *testing.T) {
	specs := make([]*DeploymentSpec, 5000)
	for i := range specs {
		specs[i] = dep(fmt.Sprintf("%016x", i), map[string]int{"blue": 1}, inst("i-1", "z", "blue"))
		specs[i].Aliases = []string{fmt.Sprint("a", i)}
	}
	tb, err := NewTable("example.test", nil, specs)
	if err != nil {
		t.Fatal(err)
	}
	d := dep(fmt.Sprintf("%016x", 7), map[string]int{"blue": 1}, inst("i-2", "z", "blue"))
	d.Aliases = []string{"a7"}
	next, err := tb.With(nil, []*DeploymentSpec{d}, nil)
	if err != nil {
		t.Fatal(err)
	}
	blocks, shards := 0, 0
	for b := range indexBlocks {
		if next.index.blocks[b] != tb.index.blocks[b] {
			blocks++
		}
	}
	for i := range indexShards {
		o, n := tb.index.shard(i), next.index.shard(i)
		if len(o.slots) > 0 && len(n.slots) > 0 && &o.slots[0] != &n.slots[0] {
			shards++
		}
	}
	// Two keys (the ID and the alias key): at most two of each.
	if blocks == 0 || blocks > 2 || shards == 0 || shards > 2 {
		t.Errorf("one deployment changed: %d blocks and %d shards copied; want 1 or 2 of each", blocks, shards)
	}
	if next.Lookup([]byte("a7.es")) == nil || next.Lookup([]byte(fmt.Sprintf("%016x", 7))).Instances[0].ID != "i-2" {
		t.Error("the derived table does not find the changed deployment")
	}
}
