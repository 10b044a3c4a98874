//go:build !race

package zones

import (
	"testing"

	"github.com/switchyard/switchyard/routes"
)

// Pick, PickOther, Begin and End are on the proxy's hot path: none may
// allocate, healthy, degraded or in panic.
func TestHotPathAllocs(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		ejected []string
	}{
		{"healthy", Config{LocalZone: "zone-a"}, nil},
		{"spilling over", Config{LocalZone: "zone-a"}, []string{"zone-a-1", "zone-a-2"}},
		{"panic", Config{LocalZone: "zone-a", MaxEjectedPercent: 100}, []string{"zone-a-1", "zone-a-2", "zone-a-3", "zone-b-1", "zone-b-2"}},
		{"no local zone", Config{}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := testBalancer(tc.cfg)
			tbl, d := oneDep(t, nil, nil, layout(map[string]int{"zone-a": 4, "zone-b": 4}))
			b.Prepare(tbl)
			for _, id := range tc.ejected {
				fail(b, byID(t, d, id), 5)
			}
			tried := []*routes.Instance{d.Eligible[3]}
			var in *routes.Instance
			for name, f := range map[string]func(){
				"Pick":      func() { in = b.Pick(d) },
				"PickOther": func() { in = b.PickOther(d, tried) },
				"Begin+End": func() { b.Begin(d, d.Eligible[3]); b.End(d, d.Eligible[3], OutcomeSuccess) },
				"End 5xx": func() {
					b.Begin(d, d.Eligible[7])
					b.End(d, d.Eligible[7], OutcomeStatus5xx)
					b.End(d, d.Eligible[7], OutcomeSuccess)
				},
			} {
				if n := testing.AllocsPerRun(1000, f); n != 0 {
					t.Errorf("%s: %v allocations per run; want 0", name, n)
				}
			}
			if in == nil {
				t.Error("no instance")
			}
		})
	}
}
