package zones

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/switchyard/switchyard/routes"
)

// An instance that every deployment of a large table shares (the same
// address and ID) costs Prepare its share, not a copy of the list of
// deployments that have it for each of them: the bytes allocated stay
// linear in the table.
func TestPrepareSharedInstanceIsLinear(t *testing.T) {
	const n = 20000
	specs := make([]*routes.DeploymentSpec, n)
	for i := range specs {
		specs[i] = &routes.DeploymentSpec{ID: fmt.Sprintf("%016x", i), Kind: "es", Serving: map[string]int{"blue": 1},
			Instances: []*routes.Instance{{ID: "i-0", Addr: "127.0.0.1:9200", Zone: "zone-a", Generation: "blue"}}}
	}
	tb, err := routes.NewTable("example.test", nil, specs)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := testBalancer(Config{})
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.Prepare(tb)
	runtime.ReadMemStats(&after)
	// Linear: a few hundred bytes a deployment. A copy of the shared
	// list for each deployment would be n²·8/2 = 1.6 GB.
	if got := after.TotalAlloc - before.TotalAlloc; got > 64<<20 {
		t.Errorf("Prepare allocated %d MB for %d deployments sharing an instance; want linear (< 64 MB)", got>>20, n)
	}
	if e := b.snap.Load().entry(instKey{"127.0.0.1:9200", "i-0"}); e == nil || len(e.eligible().deps) != n {
		t.Errorf("the shared instance is not eligible in all %d deployments", n)
	}
}
