package zones

import (
	"fmt"
	"testing"

	"github.com/switchyard/switchyard/routes"
)

// BenchmarkPick measures a pick with Begin and End, in parallel, for
// deployments of n instances over three zones.
func BenchmarkPick(b *testing.B) {
	for _, n := range []int{3, 30, 300} {
		b.Run(fmt.Sprintf("instances=%d", n), func(b *testing.B) {
			bal := NewBalancer(Config{LocalZone: "zone-a"})
			tbl, d := oneDep(b, nil, nil, layout(map[string]int{"zone-a": n / 3, "zone-b": n / 3, "zone-c": n / 3}))
			bal.Prepare(tbl)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					in := bal.Pick(d)
					bal.Begin(in)
					bal.End(in, OutcomeSuccess)
				}
			})
		})
	}
}

func BenchmarkWeighted(b *testing.B) {
	tbl, d := oneDep(b, nil, nil, layout(map[string]int{"zone-a": 10, "zone-b": 10, "zone-c": 10}))
	_ = tbl
	var in *routes.Instance
	b.ReportAllocs()
	for b.Loop() {
		in = Weighted{}.Pick(d)
	}
	_ = in
}
