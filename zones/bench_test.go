package zones

import (
	"fmt"
	"math/rand/v2"
	"slices"
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
					bal.Begin(d, in)
					bal.End(d, in, OutcomeSuccess)
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

// BenchmarkPickRandom measures a pick, with Begin and End, in a
// deployment at random of a table of 100 000 deployments × 3 instances
// (each deployment its own instances), every deployment picked in once
// before: what a request costs the balancer once the table is
// larger than the caches. The deployments come from the table in a
// random order, as lookups give them.
func BenchmarkPickRandom(b *testing.B) {
	const n = 100_000
	specs := make([]*routes.DeploymentSpec, n)
	for i := range specs {
		d := &routes.DeploymentSpec{ID: fmt.Sprintf("%016x", i), Kind: "es", Serving: map[string]int{"blue": 100}}
		for j := range 3 {
			d.Instances = append(d.Instances, &routes.Instance{ID: fmt.Sprintf("i-%d", j),
				Addr: fmt.Sprintf("10.%d.%d.%d:9200", j, i/250%250, i%250+1), Zone: fmt.Sprintf("zone-%c", 'a'+j), Generation: "blue"})
		}
		specs[i] = d
	}
	tbl, err := routes.NewTable("example.test", nil, specs)
	if err != nil {
		b.Fatal(err)
	}
	bal := NewBalancer(Config{LocalZone: "zone-a"})
	bal.Prepare(tbl)
	deps := slices.Clone(tbl.Deployments())
	for _, d := range deps {
		bal.Pick(d) // its view
	}
	r := rand.New(rand.NewPCG(7, 7))
	order := make([]*routes.Deployment, 1<<20)
	for i := range order {
		order[i] = deps[r.IntN(n)]
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		d := order[i]
		in := bal.Pick(d)
		bal.Begin(d, in)
		bal.End(d, in, OutcomeSuccess)
		if i++; i == len(order) {
			i = 0
		}
	}
}
