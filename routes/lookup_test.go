package routes

import (
	"fmt"
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
	keys := make([][]byte, len(t.Deployments))
	for i, d := range t.Deployments {
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
			if got := tb.Lookup(k); got != tb.Deployments[i] {
				t.Fatalf("Lookup(%q) = %v; want deployment %s", k, got, tb.Deployments[i].ID)
			}
		}
	}
}
