package proxy

import (
	"net/http"
	"reflect"
	"testing"

	"github.com/switchyard/switchyard/routes"
)

// The counters are the same whether each table is built whole or derived
// from the one served (a route server's delta).
func TestGenerationReport(t *testing.T) {
	for _, mode := range []string{"whole", "derived"} {
		t.Run(mode, func(t *testing.T) { testGenerationReport(t, mode == "derived") })
	}
}

func testGenerationReport(t *testing.T, derive bool) {
	blue := startBackend(t, "blue", nil)
	green := startBackend(t, "green", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
	dep := func(serving map[string]int) *routes.DeploymentSpec {
		return &routes.DeploymentSpec{ID: "aaaaaaaa", Kind: "es", Serving: serving, Instances: []*routes.Instance{
			inst("b1", blue.addr, "zone-a", "blue"), inst("g1", green.addr, "zone-a", "green")}}
	}
	single := &routes.DeploymentSpec{ID: "bbbbbbbb", Kind: "es", Serving: map[string]int{"blue": 1},
		Instances: []*routes.Instance{inst("b1", blue.addr, "zone-a", "blue")}}
	p := startProxy(t, Config{}, mustTable(t, dep(map[string]int{"blue": 100, "green": 0}), single))

	for i := 0; i < 10; i++ {
		get(t, p.url+"/", "X-Found-Cluster", "aaaaaaaa")
		get(t, p.url+"/", "X-Found-Cluster", "bbbbbbbb")
	}
	want := []routes.GenerationCount{
		{Deployment: "aaaaaaaa", Generation: "blue", Requests: 10},
		{Deployment: "aaaaaaaa", Generation: "green"},
	}
	if got := p.GenerationReport(); !equalCounts(got, want) {
		t.Fatalf("report before the cutover: %+v; want %+v (single-generation deployments left out)", got, want)
	}

	// Cut over to green, which answers 500: the counters carry over the
	// new table and count the failures.
	tbl := mustTable(t, dep(map[string]int{"blue": 0, "green": 100}), single)
	if derive {
		tbl = derived(t, p.Table(), tbl)
	}
	tbl.Version = 2
	p.Apply(tbl)
	for i := 0; i < 5; i++ {
		if status, _, _ := get(t, p.url+"/", "X-Found-Cluster", "aaaaaaaa"); status != 500 {
			t.Fatalf("status %d from green; want its 500", status)
		}
	}
	want[1].Requests, want[1].Errors = 5, 5
	if got := p.GenerationReport(); !equalCounts(got, want) {
		t.Fatalf("report after the cutover: %+v; want %+v", got, want)
	}

	// Once the deployment has one generation left, it is not reported.
	tbl = mustTable(t, &routes.DeploymentSpec{ID: "aaaaaaaa", Kind: "es", Serving: map[string]int{"green": 1},
		Instances: []*routes.Instance{inst("g1", green.addr, "zone-a", "green")}})
	if derive {
		tbl = derived(t, p.Table(), tbl)
	}
	tbl.Version = 3
	p.Apply(tbl)
	if got := p.GenerationReport(); len(got) != 0 {
		t.Errorf("report with one generation left: %+v; want none", got)
	}
}

func equalCounts(a, b []routes.GenerationCount) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// derived returns a table with want's content derived from cur
// (routes.Table.With), as a route server's delta makes it: the
// deployments that differ replaced, those want does not have deleted.
func derived(t testing.TB, cur, want *routes.Table) *routes.Table {
	t.Helper()
	var upsert []*routes.DeploymentSpec
	var deleted []string
	for _, d := range want.Deployments() {
		if old := cur.Lookup([]byte(d.ID)); old == nil || !reflect.DeepEqual(old.DeploymentSpec, d.DeploymentSpec) {
			upsert = append(upsert, &d.DeploymentSpec)
		}
	}
	for _, d := range cur.Deployments() {
		if want.Lookup([]byte(d.ID)) == nil {
			deleted = append(deleted, d.ID)
		}
	}
	next, err := cur.With(want.Zones, upsert, deleted)
	if err != nil {
		t.Fatal(err)
	}
	if next.ChangeFrom(cur) == nil {
		t.Fatal("the derived table has no change from the table served")
	}
	return next
}
