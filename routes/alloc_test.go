//go:build !race

package routes

import (
	"net/netip"
	"testing"
)

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

// Allows runs for every request to a deployment with a traffic filter.
func TestAllowsAllocs(t *testing.T) {
	d := dep("7f3a9c2e51d04b8e", map[string]int{"blue": 1}, inst("i-1", "z", "blue"))
	d.Allow = []string{"203.0.113.0/24", "198.51.100.7", "2001:db8::/32", "10.0.0.0/8"}
	tb, err := NewTable("example.test", nil, []*DeploymentSpec{d})
	if err != nil {
		t.Fatal(err)
	}
	c := tb.Lookup([]byte(d.ID))
	a := netip.MustParseAddr("10.1.2.3")
	if n := testing.AllocsPerRun(1000, func() { _ = c.Allows(a) }); n != 0 {
		t.Errorf("Allows: %v allocations per run; want 0", n)
	}
}
