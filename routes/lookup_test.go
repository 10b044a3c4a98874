package routes

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// bigTable builds a table of n deployments, each with one alias and three
// instances in two zones.
func bigTable(tb testing.TB, n int) *Table {
	tb.Helper()
	deps := make([]*DeploymentSpec, n)
	for i := range deps {
		id := fmt.Sprintf("%032x", uint64(i)*0x9e3779b97f4a7c15)
		deps[i] = &DeploymentSpec{
			ID:      id,
			Kind:    "es",
			Aliases: []string{fmt.Sprintf("deployment-%d", i)},
			Serving: map[string]int{"blue": 100},
			Instances: []*Instance{
				{ID: "i-0001", Addr: "127.0.0.1:19201", Zone: "zone-a", Generation: "blue"},
				{ID: "i-0002", Addr: "127.0.0.1:19202", Zone: "zone-b", Generation: "blue"},
				{ID: "i-0003", Addr: "127.0.0.1:19203", Zone: "zone-a", Generation: "blue"},
			},
		}
	}
	t, err := NewTable("example.test", nil, deps)
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

// lookupKeys returns route keys of t's deployments: every ID or every alias
// key, lowercase, as the proxy passes them.
func lookupKeys(t *Table, alias bool) [][]byte {
	keys := make([][]byte, len(t.Deployments()))
	for i, d := range t.Deployments() {
		if alias {
			keys[i] = []byte(d.Aliases[0] + "." + d.Kind)
		} else {
			keys[i] = []byte(d.ID)
		}
	}
	return keys
}

func BenchmarkLookup(b *testing.B) {
	t := bigTable(b, 1000)
	for _, bm := range []struct {
		name string
		keys [][]byte
	}{
		{"id", lookupKeys(t, false)},
		{"alias", lookupKeys(t, true)},
		{"miss", [][]byte{[]byte("no-such.es"), []byte("0123456789abcdef")}},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				t.Lookup(bm.keys[i%len(bm.keys)])
				i++
			}
		})
	}
}

func TestLookupBigTable(t *testing.T) {
	tb := bigTable(t, 1000)
	for _, alias := range []bool{false, true} {
		for i, k := range lookupKeys(tb, alias) {
			if got := tb.Lookup(k); got != tb.Deployments()[i] {
				t.Fatalf("Lookup(%q) = %v; want deployment %s", k, got, tb.Deployments()[i].ID)
			}
		}
	}
}

// randomKeys is a stream of n route keys over t, in random order: its IDs
// and alias keys, and one key in eight a miss (an ID or alias key of no
// deployment). The keys sit one after another in one buffer, so reading
// the next key is a sequential read and the lookup's own memory accesses
// are what a benchmark over the stream measures.
type randomKeys struct {
	buf []byte
	off []uint32 // key i is buf[off[i]:off[i+1]]
}

func newRandomKeys(t *Table, n int, seed uint64) *randomKeys {
	rng := rand.New(rand.NewPCG(seed, seed^0x5bd1e995))
	rk := &randomKeys{off: make([]uint32, 1, n+1)}
	for range n {
		d := t.Deployments()[rng.IntN(len(t.Deployments()))]
		switch r := rng.IntN(16); {
		case r < 2:
			rk.buf = fmt.Appendf(rk.buf, "%032x", rng.Uint64())
		case r < 7:
			rk.buf = append(rk.buf, d.ID...)
		default:
			if r == 15 {
				rk.buf = append(rk.buf, "no-"...)
			}
			rk.buf = append(append(append(rk.buf, d.Aliases[0]...), '.'), d.Kind...)
		}
		rk.off = append(rk.off, uint32(len(rk.buf)))
	}
	return rk
}

func (rk *randomKeys) len() int         { return len(rk.off) - 1 }
func (rk *randomKeys) key(i int) []byte { return rk.buf[rk.off[i]:rk.off[i+1]] }

// mapIndex is the index Table had before its open-addressing one: a Go map
// from every route key to its deployment. BenchmarkLookupRandom measures
// it beside Table.Lookup, in the same run, as the baseline.
func mapIndex(t *Table) map[string]*Deployment {
	m := make(map[string]*Deployment, 2*len(t.Deployments()))
	for _, d := range t.Deployments() {
		m[d.ID] = d
		for _, a := range d.Aliases {
			m[a+"."+d.Kind] = d
		}
	}
	return m
}

var lookupSink int

// BenchmarkLookupRandom looks up keys of a table of 100 000 deployments in
// an order that defeats the caches: a stream of 1M keys (IDs, alias keys
// and one miss in eight) cycled through. "map" is the former layout.
//
// In "stream" the lookups are independent, so the processor overlaps the
// cache misses of consecutive ones. In "chained" the next key depends on
// the deployment found, as a request's next step does: it measures the
// latency of a lookup and the first read of its deployment.
func BenchmarkLookupRandom(b *testing.B) {
	const n = 100_000
	t := bigTable(b, n)
	rk := newRandomKeys(t, 1<<20, 26)
	m := mapIndex(t)
	for _, l := range []struct {
		name   string
		lookup func([]byte) *Deployment
	}{
		{"table", t.Lookup},
		{"map", func(k []byte) *Deployment { return m[string(k)] }},
	} {
		b.Run(fmt.Sprintf("deployments=%d/stream/%s", n, l.name), func(b *testing.B) {
			b.ReportAllocs()
			found, i := 0, 0
			for b.Loop() {
				if l.lookup(rk.key(i)) != nil {
					found++
				}
				if i++; i == rk.len() {
					i = 0
				}
			}
			lookupSink += found
		})
		b.Run(fmt.Sprintf("deployments=%d/chained/%s", n, l.name), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if d := l.lookup(rk.key(i)); d != nil {
					i += int(d.TotalWeight & 1) // 0, but only known after the read
				}
				if i++; i >= rk.len() {
					i = 0
				}
			}
			lookupSink += i
		})
	}
}

// BenchmarkMemoryLatency is the machine's latency for a dependent read
// at random in memory of a given size, the floor under
// BenchmarkLookupRandom: a chain of reads, each of one cache line whose
// address the previous read gave, over a buffer of 1 to 128 MiB. A
// chained lookup makes about three such reads (the slot, its key, the
// deployment), and the table and its index at 100 000 deployments are
// tens of MiB.
func BenchmarkMemoryLatency(b *testing.B) {
	for _, mib := range []int{1, 8, 32, 128} {
		b.Run(fmt.Sprintf("MiB=%d", mib), func(b *testing.B) {
			const line = 64 / 8 // int64s in a cache line
			n := mib << 20 / 64
			next := make([]int64, n*line)
			perm := rand.New(rand.NewPCG(1, uint64(mib))).Perm(n)
			for i := range n {
				next[perm[i]*line] = int64(perm[(i+1)%n] * line)
			}
			p := int64(0)
			for b.Loop() {
				p = next[p]
			}
			lookupSink += int(p)
		})
	}
}
