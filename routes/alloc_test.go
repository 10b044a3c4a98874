//go:build !race

package routes

import "testing"

// Lookup is on the proxy's hot path: it must not allocate, for a hit by ID,
// a hit by alias key, or a miss.
func TestLookupAllocs(t *testing.T) {
	tb := bigTable(t, 1000)
	for _, tc := range []struct {
		name string
		key  []byte
	}{
		{"id", lookupKeys(tb, false)[500]},
		{"alias", lookupKeys(tb, true)[500]},
		{"miss", []byte("no-such.es")},
	} {
		var d *Deployment
		if n := testing.AllocsPerRun(1000, func() { d = tb.Lookup(tc.key) }); n != 0 {
			t.Errorf("Lookup by %s: %v allocations per run; want 0", tc.name, n)
		}
		if (d == nil) != (tc.name == "miss") {
			t.Errorf("Lookup by %s = %v", tc.name, d)
		}
	}
}
